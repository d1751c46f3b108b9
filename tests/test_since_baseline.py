"""--baseline and --fail-on new through the plugin: the terminal, signoff.json/.md/.html, JUnit and Allure
say what is new, fixed, still failing and flaky, and --fail-on new excuses only old failures (exit 0)."""

import json
import xml.etree.ElementTree as ET

import pytest

from tests.test_plugin_reports import FULL_CONFTEST, FULL_SUITE

pytest_plugins = ["pytester"]

SETTINGS = 'reports_dir=config.rootpath / "reports")'
CONFTEST = FULL_CONFTEST.replace(SETTINGS, SETTINGS[:-1] + ', fail_on=os.environ.get("FAIL_ON", "any"))').replace(
    "    config.option.xmlpath", "    config.stash[STATE].baseline = baseline.load(Path(os.environ['BASELINE'])) "
                                 "if os.environ.get('BASELINE') else None\n    config.option.xmlpath")
CONFTEST = "import os\nfrom pathlib import Path\nfrom seatrials.reporting import baseline\n" + CONFTEST


@pytest.fixture
def nightly(pytester, monkeypatch):
    """Run the two-check suite (one failing) as a nightly would; returns (result, reports folder)."""
    assert CONFTEST.count("BASELINE") == 2 and "FAIL_ON" in CONFTEST
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_suite=FULL_SUITE)

    def run(baseline=None, fail_on="any"):
        monkeypatch.setenv("FAIL_ON", fail_on)
        if baseline:
            monkeypatch.setenv("BASELINE", str(baseline))
        result = pytester.runpytest("-p", "no:cacheprovider", "--alluredir", "reports/allure-results")
        return result, pytester.path / "reports"

    return run


def last_night(reports, tmp_path, outcome: str):
    """Last night's sign-off: this one, its failing case given `outcome`."""
    data = json.loads((reports / "signoff.json").read_text())
    data["started"], data["run_id"] = "2026-11-29T01:00:00Z", "night-1"
    for c in data["checks"]:
        if c["outcome"] == "failed":
            c["outcome"] = outcome
    path = tmp_path / f"night-1-{outcome}" / "signoff.json"
    path.parent.mkdir()
    path.write_text(json.dumps(data))
    return path


def test_old_failures_only_exit_0_under_fail_on_new_and_every_report_says_so(nightly, tmp_path):
    first, reports = nightly()
    assert first.ret == 1
    second, reports = nightly(baseline=last_night(reports, tmp_path, "failed"), fail_on="new")
    assert second.ret == 0
    out = second.stdout.str()
    assert "seatrials: since the last run" in out and "STILL FAILING: 1" in out and "NEW: 0" in out
    assert "test_endpoint[worker-1] [sg-node-to-apiserver] since 2026-11-29T01:00:00Z" in out
    assert "verdict: NOT SIGNED OFF (exit 0)" in out
    assert "--fail-on new: exit 0 although NOT SIGNED OFF: every failure (1) was failing in the baseline too" in out
    s = json.loads((reports / "signoff.json").read_text())
    assert s["verdict"] == "NOT SIGNED OFF" and s["exit_code"] == 0
    assert s["baseline"]["still_failing"] == [{"case": "test_endpoint[worker-1]", "cause": "sg-node-to-apiserver",
                                               "summary": s["checks"][0]["summary"],
                                               "since": "2026-11-29T01:00:00Z"}]
    assert s["baseline"]["latest"]["run_id"] == "night-1" and s["baseline"]["fail_on"] == "new"
    html, md = (reports / "signoff.html").read_text(), (reports / "signoff.md").read_text()
    assert 'href="#since-still-failing">1 still failing</a>' in html and "every failure (1) was failing" in html
    assert "## Since the last run" in md and "### Still failing: 1" in md
    root = ET.parse(reports / "junit.xml").getroot()
    props = {p.get("name"): p.get("value") for p in root.find("testsuite").find("properties")}
    assert props["baseline_still_failing"] == "1" and props["baseline_new"] == "0"
    case = next(c for c in root.iter("testcase") if c.get("name") == "test_endpoint[worker-1]")
    assert {"name": "since_baseline", "value": "failing since 2026-11-29T01:00:00Z"} in [
        p.attrib for p in case.iter("property")]
    environment = (reports / "allure-results" / "environment.properties").read_text()
    assert "since.last.run=0 new, 0 fixed, 1 still failing, 0 flaky" in environment
    previous = [json.loads(p.read_text())["run_id"] for p in (reports / "previous").glob("signoff-*.json")]
    assert previous == ["night-1"]  # the next night's --baseline on this folder sees last night too


def test_a_new_failure_fails_under_fail_on_new(nightly, tmp_path):
    _, reports = nightly()
    run, reports = nightly(baseline=last_night(reports, tmp_path, "passed"), fail_on="new")
    assert run.ret == 1
    out = run.stdout.str()
    assert "NEW: 1" in out and "test_endpoint[worker-1] [sg-node-to-apiserver]: " in out
    assert "--fail-on new: 1 new failure since the baseline; exit 1" in out
    s = json.loads((reports / "signoff.json").read_text())
    assert s["exit_code"] == 1 and s["baseline"]["causes"] == {"sg-node-to-apiserver": "new"}
    assert '<a class="ch ch-new" href="#since-new">1 new</a>' in (reports / "signoff.html").read_text()


def test_without_baseline_the_reports_have_no_such_section(nightly):
    run, reports = nightly()
    assert "since the last run" not in run.stdout.str()
    assert json.loads((reports / "signoff.json").read_text())["baseline"] is None
    assert "Since the last run" not in (reports / "signoff.html").read_text()
