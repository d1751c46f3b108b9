from seatrials.options import DEFAULT_PROBE_IMAGE, Settings


def settings(**kw):
    return Settings(kubeconfig=None, context=None, **kw)


def test_probe_image_defaults_to_public_busybox():
    assert settings().image == DEFAULT_PROBE_IMAGE


def test_image_registry_rewrites_the_registry_host_only():
    s = settings(image_registry="harbor.example.com/library")
    assert s.image == "harbor.example.com/library/busybox:1.36.1"
    s = settings(image_registry="harbor.example.com/mirror/", probe_image="quay.io/prometheus/busybox:latest")
    assert s.image == "harbor.example.com/mirror/prometheus/busybox:latest"
    s = settings(image_registry="10.0.0.5:5000", probe_image="busybox:1.36")
    assert s.image == "10.0.0.5:5000/busybox:1.36"
