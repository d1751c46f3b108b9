"""What a failed check leaves in the reports: the cause id as a JUnit property,
an allure label and link to the cause page, a clean one-paragraph message."""

import json
import xml.etree.ElementTree as ET

import pytest

pytest_plugins = ["pytester"]

CONFTEST = """
from seatrials.options import Settings
from seatrials.plugin import STATE, Run, judge, pytest_runtest_makereport  # noqa: F401 - the real hooks


def pytest_configure(config):
    config.addinivalue_line("markers", "cause(*ids): the documented causes this check can point at")
    settings = Settings(kubeconfig=None, context=None, extra_secrets=["hunter2hunter2"])
    config.stash[STATE] = Run(settings)
"""

SUITE = """
import pytest
from seatrials import causes


@pytest.mark.cause("sg-node-to-apiserver")
def test_blocked():
    causes.fail("sg-node-to-apiserver", ["pod-to-apiserver worker-1 -> 10.240.0.11:6444: timeout"])


@pytest.mark.cause("kubelet-cgroups")
def test_blames_an_undeclared_cause():
    causes.fail("ec2-source-dest-check", ["x"])


@pytest.mark.cause("kubelet-cgroups")
def test_nothing_readable(judge):
    v = causes.Verdict("kubelet-cgroups")
    v.add("kubelet log", "unreadable", "403 password=hunter2hunter2")
    judge(v)
"""


@pytest.fixture
def ran(pytester):
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_suite=SUITE)
    result = pytester.runpytest("-p", "no:cacheprovider", "--junitxml=junit.xml", "--alluredir=allure",
                                "-o", "junit_family=xunit1")
    return pytester, result


def test_junit_carries_the_cause_and_a_clean_message(ran):
    pytester, result = ran
    result.assert_outcomes(failed=2, skipped=1)
    cases = {c.get("name"): c for c in ET.parse(pytester.path / "junit.xml").getroot().iter("testcase")}
    blocked = cases["test_blocked"]
    props = {p.get("name"): p.get("value") for p in blocked.iter("property")}
    assert props["cause"] == "sg-node-to-apiserver"
    assert props["cause_page"] == "docs/causes/sg-node-to-apiserver.md"
    text = blocked.find("failure").text
    assert text.startswith("[cause: sg-node-to-apiserver]") and "fix: " in text
    assert "Traceback" not in text and "seatrials/causes.py" not in text  # the finding, not our internals


def test_a_check_blaming_an_undeclared_cause_is_flagged(ran):
    pytester, _ = ran
    cases = {c.get("name"): c for c in ET.parse(pytester.path / "junit.xml").getroot().iter("testcase")}
    assert "does not declare cause ec2-source-dest-check" in cases["test_blames_an_undeclared_cause"].find(
        "failure").text


def test_not_checked_is_a_skip_with_the_reason_and_secrets_are_redacted(ran):
    pytester, _ = ran
    junit = (pytester.path / "junit.xml").read_text()
    assert "not checked: kubelet log: 403" in junit
    assert "hunter2hunter2" not in junit


def test_allure_gets_a_cause_label_and_a_link_to_the_page(ran):
    pytester, _ = ran
    results = [json.loads(p.read_text()) for p in (pytester.path / "allure").glob("*-result.json")]
    blocked = next(r for r in results if r["name"] == "test_blocked")
    assert {"name": "cause", "value": "sg-node-to-apiserver"} in blocked["labels"]
    link = next(x for x in blocked["links"] if x["name"] == "cause: sg-node-to-apiserver")
    assert link["url"].endswith("docs/causes/sg-node-to-apiserver.md")
