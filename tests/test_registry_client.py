"""seatrials.checks.registry against a real registry: anonymous, HTTP basic and Bearer tokens."""

import gzip
import io
import json
import tarfile

import pytest

from seatrials.checks.registry import (
    MANIFEST_V2,
    Registry,
    RegistryError,
    digest_of,
    parse_challenge,
    probe_image,
)


def test_probe_image_is_deterministic_unique_and_self_consistent():
    image = probe_image("run-1", "st-run-1-abc")
    assert probe_image("run-1", "st-run-1-abc").digest == image.digest
    assert probe_image("run-1", "st-run-1-def").digest != image.digest
    manifest = json.loads(image.manifest)
    assert manifest["mediaType"] == MANIFEST_V2 == image.media_type
    config, layer = image.blobs
    assert manifest["config"] == config.descriptor()
    assert manifest["layers"] == [layer.descriptor()]
    layer_tar = gzip.decompress(layer.data)
    assert json.loads(config.data)["rootfs"]["diff_ids"] == [digest_of(layer_tar)]
    with tarfile.open(fileobj=io.BytesIO(layer_tar)) as tar:
        text = tar.extractfile("seatrials-probe.txt").read().decode()
    assert "run: run-1" in text and "tag: st-run-1-abc" in text


def test_bearer_challenge_keeps_the_comma_inside_the_scope():
    scheme, params = parse_challenge(
        'Bearer realm="https://h/service/token",service="harbor-registry",scope="repository:a/b:pull,push"')
    assert scheme == "bearer"
    assert params == {"realm": "https://h/service/token", "service": "harbor-registry",
                      "scope": "repository:a/b:pull,push"}


def _round_trip(client: Registry, name: str) -> None:
    """Push, list, pull by tag, delete by digest, and see each step in the registry."""
    image = probe_image("client-test", "t1")
    assert client.push_image(name, "t1", image) == image.digest
    assert client.tags(name) == ["t1"]
    pulled = client.pull_manifest(name, "t1")
    assert pulled.digest == pulled.registry_digest == image.digest
    assert pulled.media_type == MANIFEST_V2
    assert client.push_blob(name, image.blobs[1]) is False  # already there: HEAD skips the upload
    assert client.delete_manifest(name, image.digest) is True
    assert client.pull_manifest(name, "t1") is None
    assert client.delete_manifest(name, image.digest) is False


def test_anonymous_round_trip(start_registry):
    registry = start_registry()
    _round_trip(Registry(registry.url), "library/anon")
    assert Registry(registry.url).tags("library/never-pushed") == []


def test_basic_auth_round_trip_and_rejection(start_registry, htpasswd, double_credentials):
    user, password = double_credentials
    registry = start_registry(htpasswd=htpasswd)
    _round_trip(Registry(registry.url, user, password), "library/basic")

    with pytest.raises(RegistryError) as wrong:
        Registry(registry.url, user, "not-" + password).tags("library/basic")
    assert wrong.value.status == 401
    assert f"(user {user})" in str(wrong.value) and password not in str(wrong.value)

    with pytest.raises(RegistryError, match="wants HTTP basic credentials .no credentials were given"):
        Registry(registry.url).tags("library/basic")


def test_bearer_token_flow_through_the_harbor_double(harbor_lab, double_credentials):
    user, password = double_credentials
    _round_trip(Registry(harbor_lab.double.url, user, password), "library/bearer")

    anonymous = Registry(harbor_lab.double.url)  # the token service grants anonymous pull only
    with pytest.raises(RegistryError) as refused:
        anonymous.push_image("library/bearer", "t2", probe_image("client-test", "t2"))
    assert refused.value.status == 401
    assert "no credentials were given" in str(refused.value)
    assert anonymous.tags("library/bearer") == []

    with pytest.raises(RegistryError) as wrong:
        Registry(harbor_lab.double.url, user, "not-" + password).tags("library/bearer")
    assert "token service" in str(wrong.value) and f"(user {user})" in str(wrong.value)
    assert password not in str(wrong.value)


def test_unreachable_registry_is_one_line(closed_url):
    with pytest.raises(RegistryError) as failed:
        Registry(closed_url).tags("library/x")
    assert str(failed.value) == "GET /v2/library/x/tags/list: [Errno 111] Connection refused"
