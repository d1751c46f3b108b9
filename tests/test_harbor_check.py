"""The Harbor push-then-list check against a real registry behind the Harbor double."""

import time

import pytest

from seatrials.causes import Result
from seatrials.checks import harbor
from seatrials.checks.harbor import HarborApi
from seatrials.checks.registry import Registry, probe_image
from seatrials.options import Settings

RUN_ID = "20260101-test"


def _settings(url: str | None, timeout: float = 10.0, project: str = "library",
              registry: str | None = None) -> Settings:
    return Settings(kubeconfig=None, context=None, harbor_url=url, harbor_registry=registry,
                    harbor_project=project, harbor_timeout=timeout)


def _env(credentials) -> dict[str, str]:
    return {"HARBOR_USERNAME": credentials[0], "HARBOR_PASSWORD": credentials[1]}


def _probe_tags(registry_url: str) -> list[str]:
    return Registry(registry_url).tags(f"library/{harbor.PROBE_REPOSITORY}")


def _fails(settings, environ) -> tuple[Result, float]:
    started = time.monotonic()
    failed = harbor.check_push_is_listed(settings, RUN_ID, environ=environ)
    assert failed.status == "failed", failed
    if environ.get("HARBOR_PASSWORD"):
        assert environ["HARBOR_PASSWORD"] not in str(failed)
    assert "\n" not in failed.finding.evidence[0]
    return failed, time.monotonic() - started


def test_without_a_harbor_url_it_is_not_checked():
    result = harbor.check_push_is_listed(_settings(None), RUN_ID, environ={})
    assert result.status == "not checked" and result.reason.startswith("no Harbor URL given")


def test_healthy_harbor_passes_records_the_delay_and_cleans_up(harbor_lab, double_credentials):
    outcome = harbor.check_push_is_listed(_settings(harbor_lab.double.url), RUN_ID,
                                          environ=_env(double_credentials))
    assert outcome.ok and outcome.notes == []
    assert 0 <= float(outcome.properties["harbor_visible_after_s"]) < 10
    assert outcome.properties["harbor_probe_image"].startswith(
        f"127.0.0.1:{harbor_lab.double.port}/library/seatrials-probe:st-{RUN_ID}-")
    assert _probe_tags(harbor_lab.registry.url) == []
    artifacts = HarborApi(harbor_lab.double.url, *double_credentials).artifacts("library", harbor.PROBE_REPOSITORY)
    assert artifacts == []


def test_separate_registry_endpoint_is_used_for_the_push(harbor_lab, double_credentials):
    # --harbor-registry pointing at the registry itself (no auth there): Harbor still hears of the push
    outcome = harbor.check_push_is_listed(_settings(harbor_lab.double.url, registry=harbor_lab.registry.url),
                                          RUN_ID, environ=_env(double_credentials))
    assert outcome.properties["harbor_probe_image"].startswith(f"127.0.0.1:{harbor_lab.registry.port}/")


@pytest.mark.parametrize("staleness", ["notifications-ignored", "notifications-sent-elsewhere"])
def test_stale_harbor_fails_with_the_cause_within_the_bound(staleness, start_harbor_lab, start_registry,
                                                            start_double, closed_url, double_credentials):
    if staleness == "notifications-ignored":
        lab = start_harbor_lab(ignore_notifications=True)
        registry, double = lab.registry, lab.double
    else:  # the field report: the registry's webhook points where Harbor core is not
        registry = start_registry(notify=f"{closed_url}/service/notifications")
        double = start_double(registry)
    failure, took = _fails(_settings(double.url, timeout=2), _env(double_credentials))

    assert failure.finding.cause == harbor.CAUSE
    assert took < 2 + 5
    message = str(failure)
    tag = message.split("seatrials-probe:", 1)[1].split(" ", 1)[0]
    assert tag.startswith(f"st-{RUN_ID}-")
    assert f"/v2/library/seatrials-probe/tags/list includes {tag}" in message
    assert "(same as pushed)" in message
    assert f"does not list {tag} in library/seatrials-probe after 2." in message
    assert "clean-up" not in message  # Harbor did not know it: deleted through the registry
    assert _probe_tags(registry.url) == []


def test_refused_push_is_unknown_not_the_stale_cause(start_harbor_lab, double_credentials):
    lab = start_harbor_lab(readonly=True)
    failure, _ = _fails(_settings(lab.double.url), _env(double_credentials))
    assert failure.finding.cause == "unknown"
    assert failure.finding.evidence[0].startswith("push of 127.0.0.1:")
    assert "HTTP 405" in failure.finding.evidence[0]


def test_rejected_credentials_fail_in_one_line_without_the_password(harbor_lab, double_credentials):
    wrong = "wrong-" + double_credentials[1]
    failure, _ = _fails(_settings(harbor_lab.double.url), _env((double_credentials[0], wrong)))
    assert failure.finding.cause == "unknown"
    assert failure.finding.evidence == [
        f"Harbor at {harbor_lab.double.url} rejected the credentials of HARBOR_USERNAME (admin)"]
    assert double_credentials[1] not in str(failure)


def test_unreachable_harbor_fails_in_one_line(closed_url):
    failure, _ = _fails(_settings(closed_url), {})
    assert failure.finding.evidence == [f"Harbor at {closed_url} is unreachable: [Errno 111] Connection refused"]


def test_missing_project_fails_in_one_line(harbor_lab, double_credentials):
    failure, _ = _fails(_settings(harbor_lab.double.url, project="nope"), _env(double_credentials))
    assert failure.finding.evidence == [f"Harbor at {harbor_lab.double.url} has no project 'nope' (--harbor-project)"]


def test_half_given_credentials_fail_in_one_line():
    failure, _ = _fails(_settings("http://127.0.0.1:1"), {"HARBOR_PASSWORD": "secret-x"})
    assert failure.finding.evidence == ["HARBOR_PASSWORD is set but HARBOR_USERNAME is not: "
                                        "give both, or neither for anonymous"]


def test_interrupted_check_still_deletes_its_image(harbor_lab, double_credentials, monkeypatch):
    pushed = []

    def interrupt(api, watch):
        pushed.append(watch.tag in _probe_tags(harbor_lab.registry.url))
        raise KeyboardInterrupt  # Ctrl-C while Harbor is being polled

    monkeypatch.setattr(harbor, "_wait_for_listing", interrupt)
    with pytest.raises(KeyboardInterrupt):
        harbor.check_push_is_listed(_settings(harbor_lab.double.url), RUN_ID, environ=_env(double_credentials))
    assert pushed == [True]
    assert _probe_tags(harbor_lab.registry.url) == []
    assert HarborApi(harbor_lab.double.url, *double_credentials).artifacts("library", harbor.PROBE_REPOSITORY) == []


def test_probe_tags_a_killed_run_left_are_deleted_by_the_next(harbor_lab, double_credentials):
    """A run SIGKILLed mid-check leaves its probe tag; the next run's check deletes it (by its age)."""
    dead = harbor.probe_tag("20200101-000000-dead")
    Registry(harbor_lab.double.url, *double_credentials).push_image(
        f"library/{harbor.PROBE_REPOSITORY}", dead, probe_image("20200101-000000-dead", dead))
    api = HarborApi(harbor_lab.double.url, *double_credentials)
    _wait(lambda: harbor.tagged(api.artifacts("library", harbor.PROBE_REPOSITORY), dead))
    assert harbor.check_push_is_listed(_settings(harbor_lab.double.url), RUN_ID, environ=_env(double_credentials)).ok
    assert api.artifacts("library", harbor.PROBE_REPOSITORY) == []
    assert dead not in _probe_tags(harbor_lab.registry.url)


def _wait(condition, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met"
        time.sleep(0.1)
