"""The plugin is the one pytest boundary: what a check's Result becomes in pytest and the
reports (the cause id as a JUnit property, an allure label and link to the cause page, a
clean one-paragraph message, "not checked" as a skip with its reason), and a check that
returns no Result is a failure, never a silent pass."""

import json
import xml.etree.ElementTree as ET

import pytest

pytest_plugins = ["pytester"]

CONFTEST = """
import pytest

from seatrials.options import Settings
from seatrials.plugin import STATE, Run, pytest_pyfunc_call, pytest_runtest_makereport  # noqa: F401 - real hooks


def pytest_configure(config):
    config.addinivalue_line("markers", "cause(*ids): the documented causes this check can point at")
    config.addinivalue_line("markers", "area(name): what the check signs off")
    settings = Settings(kubeconfig=None, context=None, extra_secrets=["hunter2hunter2"])
    config.stash[STATE] = Run(settings)


@pytest.fixture
def trial():  # stands for the probe trial: a check using it gets its measurement time in Allure
    return None
"""

SUITE = """
import pytest
from seatrials.causes import Result, Verdict
from seatrials.topology import Node

PAIR = (Node("worker-1", "worker", "10.240.0.21"), Node("master-1", "master", "10.240.0.11"))


@pytest.mark.cause("unknown")
@pytest.mark.parametrize("pair", [PAIR], ids=["worker-1->master-1"])
@pytest.mark.parametrize("node", [PAIR[1]], ids=["master-1"])
def test_readable(pair, node, trial):
    return Result.passed()


@pytest.mark.cause("sg-node-to-apiserver")
def test_blocked():
    return Result.failed("sg-node-to-apiserver", ["pod-to-apiserver worker-1 -> 10.240.0.11:6444: timeout"])


@pytest.mark.cause("kubelet-cgroups")
def test_blames_an_undeclared_cause():
    return Result.failed("ec2-source-dest-check", ["x"])


@pytest.mark.cause("kubelet-cgroups")
def test_nothing_readable():
    v = Verdict("kubelet-cgroups")
    v.add("kubelet log", "unreadable", "403 password=hunter2hunter2")
    return v.result()


@pytest.mark.cause("sg-node-to-apiserver")
def test_nothing_there():
    v = Verdict("sg-node-to-apiserver")
    v.add("path", "absent", "master-1 -> 10.240.0.11:6444 stays inside instance i-1: no security group on the way")
    return v.result()


@pytest.mark.cause("kubelet-cgroups")
def test_passes_with_a_note():
    v = Verdict("kubelet-cgroups")
    v.add("kubelet log", "ok", "clean")
    v.add("configz", "unreadable", "404 Not Found")
    return v.result()


@pytest.mark.cause("kubelet-cgroups")
def test_forgot_to_return():
    Result.passed()
"""


@pytest.fixture
def ran(pytester):
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_suite=SUITE)
    result = pytester.runpytest("-p", "no:cacheprovider", "--junitxml=junit.xml", "--alluredir=allure",
                                "-o", "junit_family=xunit1")
    return pytester, result


def cases(pytester):
    return {c.get("name"): c for c in ET.parse(pytester.path / "junit.xml").getroot().iter("testcase")}


def test_junit_carries_the_cause_and_a_clean_message(ran):
    pytester, result = ran
    result.assert_outcomes(failed=3, skipped=2, passed=2)
    blocked = cases(pytester)["test_blocked"]
    props = {p.get("name"): p.get("value") for p in blocked.iter("property")}
    assert props["cause"] == "sg-node-to-apiserver"
    assert props["cause_page"] == "docs/causes/sg-node-to-apiserver.md"
    assert blocked.find("failure").get("message") == (  # one line for CI views; the finding is the body
        "[cause: sg-node-to-apiserver] Masters' security group does not admit worker nodes on the apiserver port: "
        "pod-to-apiserver worker-1 -> 10.240.0.11:6444: timeout")
    text = blocked.find("failure").text
    assert text.startswith("[cause: sg-node-to-apiserver]") and "fix: " in text
    assert "Traceback" not in text and "seatrials/plugin.py" not in text  # the finding, not our internals


def test_a_check_blaming_an_undeclared_cause_is_flagged(ran):
    pytester, _ = ran
    assert "does not declare cause ec2-source-dest-check" in cases(pytester)[
        "test_blames_an_undeclared_cause"].find("failure").text


def test_a_check_that_returns_no_result_fails(ran):
    pytester, _ = ran
    assert "returned NoneType, not a seatrials Result" in cases(pytester)["test_forgot_to_return"].find(
        "failure").get("message")


def test_not_checked_is_a_skip_with_the_reason_and_secrets_are_redacted(ran):
    pytester, _ = ran
    junit = (pytester.path / "junit.xml").read_text()
    assert "not checked: kubelet log: 403" in junit
    assert "hunter2hunter2" not in junit


def test_nothing_of_the_kind_is_a_skip_that_says_not_applicable(ran):
    pytester, _ = ran
    skipped = cases(pytester)["test_nothing_there"].find("skipped")
    assert skipped.get("message").startswith("not applicable: path: master-1 -> 10.240.0.11:6444 stays inside")


def test_what_was_not_read_next_to_a_pass_is_a_property(ran):
    pytester, _ = ran
    props = [(p.get("name"), p.get("value")) for p in cases(pytester)["test_passes_with_a_note"].iter("property")]
    assert ("not checked", "configz: 404 Not Found") in props


def test_allure_gets_a_cause_label_and_a_link_to_the_page(ran):
    pytester, _ = ran
    results = [json.loads(p.read_text()) for p in (pytester.path / "allure").glob("*-result.json")]
    blocked = next(r for r in results if r["name"] == "test_blocked")
    assert {"name": "cause", "value": "sg-node-to-apiserver"} in blocked["labels"]
    link = next(x for x in blocked["links"] if x["name"] == "cause: sg-node-to-apiserver")
    assert link["url"] == "../causes/sg-node-to-apiserver.html"  # the page in the report folder beside allure-report
    assert blocked["statusDetails"]["trace"].startswith("[cause: sg-node-to-apiserver]")  # the finding, not a traceback
    assert "pod-to-apiserver worker-1 -&gt; 10.240.0.11:6444: timeout" in blocked["descriptionHtml"]
    page = next(a for a in blocked["attachments"] if a["name"] == "cause page: sg-node-to-apiserver")
    assert "<h1>Masters&#x27; security group" in (pytester.path / "allure" / page["source"]).read_text()


def test_allure_parameters_read_as_written_and_trial_checks_are_labelled(ran):
    pytester, _ = ran
    results = [json.loads(p.read_text()) for p in (pytester.path / "allure").glob("*-result.json")]
    readable = next(r for r in results if r["name"].startswith("test_readable"))
    assert {p["name"]: p["value"] for p in readable["parameters"]} == {
        "pair": "worker-1 -> master-1", "node": "master-1 (master, 10.240.0.11)"}
    assert {"name": "measured", "value": "probe trial"} in readable["labels"]


FULL_CONFTEST = """
from types import SimpleNamespace

import pytest

from seatrials.options import Settings
from seatrials.plugin import (STATE, Run, RunReporter, pytest_pyfunc_call, pytest_runtest_makereport,  # noqa: F401
                              pytest_sessionfinish)
from seatrials.topology import Node, Topology


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config):
    config.addinivalue_line("markers", "cause(*ids): causes")
    config.addinivalue_line("markers", "area(name): area")
    settings = Settings(kubeconfig=None, context="lab", reports_dir=config.rootpath / "reports")
    cluster = SimpleNamespace(server="https://127.0.0.1:6443", context="lab", kubeconfig={},
                              requests_by_endpoint={"GET /version": 7})
    nodes = [Node("master-1", "master", "10.240.0.11", "aws:///eu-west-1a/i-0aaa"),
             Node("worker-1", "worker", "10.240.0.21", "aws:///eu-west-1a/i-0bbb")]
    config.stash[STATE] = Run(settings, cluster=cluster, topology=Topology(nodes, ("10.32.0.1", 443),
                                                                             [("10.240.0.11", 6444)], "other",
                                                                             version="v1.38.0"),
                              run_id="r1")
    config.option.xmlpath = str(config.rootpath / "reports" / "junit.xml")
    config.pluginmanager.register(RunReporter(config), "seatrials-run-reporter")
"""

FULL_SUITE = """
import pytest
from seatrials.causes import Result

pytestmark = pytest.mark.area("network")


@pytest.mark.cause("sg-node-to-apiserver")
@pytest.mark.parametrize("source", ["worker-1"])
def test_endpoint(source):
    return Result.failed("sg-node-to-apiserver", [f"pod-to-apiserver {source} -> 10.240.0.11:6444: timeout",
                                                  "pattern: pods on workers (worker-1) cannot reach the apiserver"])


def test_fine():
    pass
"""


def test_a_whole_run_leaves_the_signoff_its_pages_and_completed_junit_and_allure(pytester):
    pytester.makeconftest(FULL_CONFTEST)
    pytester.makepyfile(test_suite=FULL_SUITE)
    pytester.runpytest("-p", "no:cacheprovider", "--alluredir", "reports/allure-results")
    reports = pytester.path / "reports"
    signoff = json.loads((reports / "signoff.json").read_text())
    [cause] = signoff["causes"]
    assert signoff["api_requests"] == 7 and signoff["api_requests_by_endpoint"] == {"GET /version": 7}
    assert [(x["node"], x["instance"]) for x in cause["subjects"]] == [("worker-1", "i-0bbb")]
    assert signoff["checks"][0]["evidence"][0] == "pod-to-apiserver worker-1 -> 10.240.0.11:6444: timeout"
    assert (reports / "causes" / "sg-node-to-apiserver.html").exists() and (reports / "signoff.html").exists()
    root = ET.parse(reports / "junit.xml").getroot()
    assert [f.get("type") for f in root.iter("failure")] == ["sg-node-to-apiserver"]
    props = {p.get("name"): p.get("value") for p in root.find("testsuite").find("properties")}
    assert props["fingerprint_hash"] == signoff["fingerprint_hash"] and props["verdict"] == "NOT SIGNED OFF"
    unproved = "Kubernetes v1.38.0 is newer than 1.37, the newest minor this suite is proved on"
    assert signoff["verdict_reasons"][-1].startswith(unproved) and unproved in props["verdict_reasons"]
    assert unproved in (reports / "signoff.html").read_text() and unproved in (reports / "signoff.md").read_text()
    results = [json.loads(p.read_text()) for p in (reports / "allure-results").glob("*-result.json")]
    failed = next(r for r in results if r["status"] == "failed")
    assert failed["statusDetails"]["message"] == ("[cause: sg-node-to-apiserver] Masters' security group does not "
                                                  "admit worker nodes on the apiserver port")
    executor = json.loads((reports / "allure-results" / "executor.json").read_text())
    assert executor["buildName"] == "seatrials run r1"
    assert "fingerprint=sha256:" in (reports / "allure-results" / "environment.properties").read_text()


KUBELETS_CONFTEST = """
import pytest

from seatrials.options import Settings
from seatrials.plugin import (STATE, Run, cluster, kubelets, pytest_generate_tests, pytest_pyfunc_call,  # noqa: F401
                              topology)
from seatrials.topology import Node, Topology


class Kubelets:
    \"\"\"Healthy kubelets, but worker-3's cAdvisor does not know the kubelet's cgroup; every read is written down
    (the xdist workers are other processes).\"\"\"

    def __init__(self, asked):
        self.asked = asked

    def node_proxy(self, node, path, query=None, timeout=30):
        with open(self.asked, "a") as handle:
            handle.write(f"{node} {path}\\n")
        if path == "logs/":
            return "I1127 15:50:56.000000 1 server.go:1] Kubelet version v1.37.2\\nI1127 15:51:00.000000 1 x.go:2] ok"
        containers = [{"name": "pods"}] + ([] if node == "worker-3" else [{"name": "kubelet"}])
        return '{"node": {"systemContainers": %s}}' % str(containers).replace("'", '"')


def pytest_configure(config):
    config.addinivalue_line("markers", "cause(*ids): causes")
    config.addinivalue_line("markers", "area(name): area")
    shared = config.rootpath / "shared"
    shared.mkdir(exist_ok=True)
    nodes = [Node(f"worker-{i}", "worker", f"10.240.0.{20 + i}") for i in range(6)]
    config.stash[STATE] = Run(Settings(kubeconfig=None, context=None), cluster=Kubelets(config.rootpath / "asked.txt"),
                              topology=Topology(nodes, ("10.32.0.1", 443), [("10.240.0.11", 6444)], "other"),
                              shared=shared)
"""

KUBELETS_SUITE = """
import pytest


@pytest.mark.cause("kubelet-cgroups")
def test_kubelet_cgroups(kubelets, node):
    return kubelets(node)
"""


def test_each_selected_kubelet_is_read_once_for_the_run_whatever_the_xdist_workers(pytester):
    pytester.makeconftest(KUBELETS_CONFTEST)
    pytester.makepyfile(test_suite=KUBELETS_SUITE)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-n", "2", "-k", "worker-1 or 3 or 4")
    result.assert_outcomes(passed=2, failed=1)  # xdist does not count the deselected
    result.stdout.fnmatch_lines(["FAILED *test_kubelet_cgroups?worker-3?*"])
    asked = sorted((pytester.path / "asked.txt").read_text().splitlines())
    assert asked == sorted([f"{n} {path}" for n in ("worker-1", "worker-3", "worker-4")
                            for path in ("logs/", "stats/summary")] + ["worker-3 configz"])  # a fault: corroborated


MANY = """
import pytest
from seatrials.causes import Result


@pytest.mark.cause("unknown")
@pytest.mark.parametrize("i", range({count}))
def test_row(i):
    return Result.failed("unknown", [f"row {{i}} failed"])
"""


@pytest.mark.parametrize("count", [3, 101])
def test_past_a_hundred_failures_pytest_gives_no_section_to_each(pytester, count):
    """pytest looks for each failure's teardown among every report (quadratic: over a minute at 2500 failures of
    500 nodes): past FAILURE_SECTIONS_UP_TO failures its per-failure sections are left out, and said so."""
    pytester.makeconftest(CONFTEST.replace("    config.stash[STATE] = Run(settings)\n", (
        "    config.stash[STATE] = Run(settings)\n"
        "    from seatrials.plugin import RunReporter\n"
        "    config.pluginmanager.register(RunReporter(config), 'seatrials-run-reporter')\n")))
    pytester.makepyfile(test_suite=MANY.format(count=count))
    result = pytester.runpytest("-p", "no:cacheprovider")
    out = result.stdout.str()
    assert result.ret != 0 and f"{count} failed" in out
    left_out = f"pytest's section for each failure is left out ({count} failures)"
    assert (left_out in out, "_ test_row[0] _" in out) == ((True, False) if count > 100 else (False, True)), out[-3000:]
