"""lab/harbor_double.py: a Harbor API listing fed only by registry notifications and a start-up scan."""

import subprocess
import sys
import time
from pathlib import Path

import requests

from seatrials.checks.harbor import HarborApi, tagged
from seatrials.checks.registry import Registry, probe_image

HARBOR_DOUBLE = Path(__file__).resolve().parent.parent / "lab" / "harbor_double.py"


def _listed_within(api: HarborApi, repository: str, tag: str, seconds: float) -> dict | None:
    deadline = time.monotonic() + seconds
    while True:
        artifact = tagged(api.artifacts("library", repository), tag)
        if artifact or time.monotonic() >= deadline:
            return artifact
        time.sleep(0.05)


def _push(url, credentials, repository: str, tag: str) -> str:
    image = probe_image("double-test", tag)
    Registry(url, *credentials).push_image(f"library/{repository}", tag, image)
    return image.digest


def test_notified_push_is_listed_like_harbor(harbor_lab, double_credentials):
    api = HarborApi(harbor_lab.double.url, *double_credentials)
    digest = _push(harbor_lab.double.url, double_credentials, "app", "v1")

    artifact = _listed_within(api, "app", "v1", 10)
    assert artifact["digest"] == digest
    assert artifact["push_time"] and artifact["type"] == "IMAGE"
    repos = requests.get(f"{harbor_lab.double.url}/api/v2.0/projects/library/repositories", timeout=5).json()
    assert [(r["name"], r["artifact_count"]) for r in repos] == [("library/app", 1)]
    assert api.preflight("library").startswith("v2.0")
    assert requests.get(f"{harbor_lab.double.url}/api/v2.0/projects/nope", timeout=5).status_code == 404


def test_repository_with_a_slash_is_addressed_double_encoded(harbor_lab, double_credentials):
    digest = _push(harbor_lab.double.url, double_credentials, "team/app", "v1")
    api = HarborApi(harbor_lab.double.url, *double_credentials)
    assert _listed_within(api, "team/app", "v1", 10)["digest"] == digest
    once = requests.get(f"{harbor_lab.double.url}/api/v2.0/projects/library/repositories/team%2Fapp/artifacts",
                        timeout=5)
    assert once.status_code == 404  # a single encoding is a path separator to Harbor


def test_api_delete_removes_the_artifact_from_harbor_and_the_registry(harbor_lab, double_credentials):
    api = HarborApi(harbor_lab.double.url, *double_credentials)
    digest = _push(harbor_lab.double.url, double_credentials, "app", "gone")
    assert _listed_within(api, "app", "gone", 10)
    assert api.delete_artifact("library", "app", digest) is True
    assert tagged(api.artifacts("library", "app"), "gone") is None
    assert Registry(harbor_lab.registry.url).tags("library/app") == []
    assert api.delete_artifact("library", "app", digest) is False
    anonymous = requests.delete(f"{harbor_lab.double.url}/api/v2.0/projects/library/repositories/app/"
                                f"artifacts/{digest}", timeout=5)
    assert anonymous.status_code == 401


def test_ignored_notifications_leave_it_stale_until_a_restart(start_harbor_lab, start_double,
                                                              double_credentials):
    lab = start_harbor_lab(ignore_notifications=True)
    digest = _push(lab.double.url, double_credentials, "app", "late")

    told = "ignored registry event (--ignore-notifications): push library/app late"
    deadline = time.monotonic() + 10
    while told not in lab.double.log_text():  # the registry did deliver the manifest push
        assert time.monotonic() < deadline, lab.double.log_text()
        time.sleep(0.05)
    assert tagged(HarborApi(lab.double.url, *double_credentials).artifacts("library", "app"), "late") is None
    assert Registry(lab.registry.url).tags("library/app") == ["late"]

    lab.double.stop()
    restarted = start_double(lab.registry, port=lab.double.port)  # its start-up scan finds what was missed
    listed = tagged(HarborApi(restarted.url, *double_credentials).artifacts("library", "app"), "late")
    assert listed["digest"] == digest
    assert "1 tagged artifact(s) found at start" in restarted.log_text()


def test_unreachable_registry_stops_the_double_with_one_line(closed_url):
    result = subprocess.run([sys.executable, str(HARBOR_DOUBLE), "--listen", "127.0.0.1:0", "--registry",
                             closed_url, "--password", "x"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert result.stderr.startswith(f"harbor_double: cannot scan the registry at {closed_url}:")
