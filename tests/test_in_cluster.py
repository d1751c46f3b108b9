"""Inside a pod, with no kubeconfig, the suite uses the pod's ServiceAccount the way client-go's in-cluster
config does: the kubernetes Service's host and port from the environment, the token and CA the kubelet
mounts. The lab proves the same path against a real apiserver (tests/e2e/test_nightly.py)."""

import base64

import pytest

from seatrials import kubeconfig, options
from seatrials.kubeconfig import IN_CLUSTER, SetupError


@pytest.fixture
def pod(tmp_path, monkeypatch):
    """A pod's view: the Service's environment and a mounted ServiceAccount; no home kubeconfig."""
    account = tmp_path / "serviceaccount"
    account.mkdir()
    (account / "token").write_text("eyJhbGciOi.token\n")
    (account / "ca.crt").write_bytes(b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    monkeypatch.setattr(kubeconfig, "SERVICE_ACCOUNT", account)
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.32.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    return account


def test_the_service_account_becomes_a_kubeconfig_of_one_context(pod):
    raw = kubeconfig.read(IN_CLUSTER)
    assert kubeconfig.select_context(raw, None, IN_CLUSTER) == IN_CLUSTER
    assert raw["clusters"][0]["cluster"]["server"] == "https://10.32.0.1:443"
    assert base64.b64decode(raw["clusters"][0]["cluster"]["certificate-authority-data"]).startswith(b"-----BEGIN")
    assert raw["users"][0]["user"] == {"token": "eyJhbGciOi.token"}
    assert kubeconfig.secrets(raw) == ["eyJhbGciOi.token"]  # redacted from every report like any token


def test_an_ipv6_service_address_is_bracketed(pod, monkeypatch):
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "fd00:10:96::1")
    assert kubeconfig.read(IN_CLUSTER)["clusters"][0]["cluster"]["server"] == "https://[fd00:10:96::1]:443"


def test_without_a_kubeconfig_a_pod_uses_its_service_account(pod):
    assert options.default_kubeconfig() == IN_CLUSTER


def test_a_kubeconfig_in_home_or_kubeconfig_env_wins_over_the_service_account(pod, tmp_path, monkeypatch):
    home = tmp_path / "home" / ".kube"
    home.mkdir(parents=True)
    (home / "config").write_text("{}")
    assert options.default_kubeconfig() == str(home / "config")
    monkeypatch.setenv("KUBECONFIG", "/etc/k.yaml")
    assert options.default_kubeconfig() == "/etc/k.yaml"


def test_outside_a_pod_the_default_stays_the_home_kubeconfig(pod, tmp_path, monkeypatch):
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST")
    assert options.default_kubeconfig() == str(tmp_path / "home" / ".kube" / "config")


def test_an_unreadable_service_account_is_one_line(pod):
    (pod / "token").unlink()
    with pytest.raises(SetupError, match=r"^in-cluster: the ServiceAccount at .* cannot be read: No such file"):
        kubeconfig.read(IN_CLUSTER)
