"""Compared with the last runs: new, fixed, still failing since when, flaky."""

import json

import pytest

from seatrials.reporting import baseline


def run(started: str, **outcomes) -> dict:
    checks = [{"check": "test_pod_to_pod", "case": case.replace("_", "->"), "outcome": o,
               "cause": "ec2-source-dest-check" if o == "failed" else "", "summary": f"{case} timed out"}
              for case, o in outcomes.items()]
    return {"started": started, "run_id": f"r{started}", "checks": checks, "fingerprint_hash": "sha256:1"}


def test_new_fixed_and_still_failing_since_when():
    history = [run("2026-11-27", a_b="passed", b_a="failed", c_a="failed"),
               run("2026-11-28", a_b="passed", b_a="failed", c_a="failed"),
               run("2026-11-29", a_b="passed", b_a="failed", c_a="failed")]
    changes = baseline.compare(run("2026-11-30", a_b="failed", b_a="failed", c_a="passed"), history)
    assert changes.new == ["test_pod_to_pod[a->b]"]
    assert changes.fixed == ["test_pod_to_pod[c->a]"]
    assert changes.still_failing == {"test_pod_to_pod[b->a]": "2026-11-27"}
    assert changes.causes == {"ec2-source-dest-check": "still failing"}


def test_flaky_by_turns_across_runs_and_by_retry_within_the_run():
    history = [run("1", a_b="passed"), run("2", a_b="failed"), run("3", a_b="passed"), run("4", a_b="failed")]
    current = run("5", a_b="passed", b_a="passed")
    current["checks"][1]["tries"] = 2  # its probe answered on the second try
    changes = baseline.compare(current, history)
    assert changes.flaky == {"test_pod_to_pod[a->b]": "passed and failed in turn over the last runs",
                             "test_pod_to_pod[b->a]": "passed only after a retry"}
    assert changes.fixed == ["test_pod_to_pod[a->b]"]
    assert changes.causes == {"ec2-source-dest-check": "fixed"}


def test_a_fault_and_its_fix_are_new_then_fixed_not_flaky():
    healthy, broken = run("1", a_b="passed"), run("2", a_b="failed")
    assert baseline.compare(broken, [healthy]).new == ["test_pod_to_pod[a->b]"]
    healed = baseline.compare(run("3", a_b="passed"), [healthy, broken])
    assert healed.fixed == ["test_pod_to_pod[a->b]"] and healed.flaky == {}


def test_runs_that_did_not_judge_a_case_say_nothing_about_it():
    """A night that could not start (no checks), or left the case not checked, does not break a streak."""
    history = [run("1", a_b="failed"), {**run("2"), "verdict": "INCOMPLETE"}, run("3", a_b="skipped")]
    changes = baseline.compare(run("4", a_b="failed"), history)
    assert changes.still_failing == {"test_pod_to_pod[a->b]": "1"} and changes.new == []
    assert changes.causes == {"ec2-source-dest-check": "still failing"}


def test_a_baseline_is_a_file_or_a_directory_of_them_oldest_first_each_run_once(tmp_path):
    (tmp_path / "night-2").mkdir()
    (tmp_path / "night-2" / "signoff.json").write_text(json.dumps(run("2026-11-29", a_b="failed")))
    (tmp_path / "signoff.json").write_text(json.dumps(run("2026-11-28", a_b="passed")))
    (tmp_path / "signoff-copy.json").write_text(json.dumps(run("2026-11-28", a_b="passed")))
    assert [r["started"] for r in baseline.load(tmp_path)] == ["2026-11-28", "2026-11-29"]
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(baseline.BadBaseline, match="no signoff.json there"):
        baseline.load(empty)
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(baseline.BadBaseline, match="not a seatrials signoff.json"):
        baseline.load(tmp_path / "bad.json")


def test_a_report_folder_carries_its_baseline_so_the_next_run_sees_the_history(tmp_path):
    nights = [run(str(i), a_b="passed" if i % 2 else "failed") for i in range(10)]
    folder = tmp_path / "reports"
    folder.mkdir()
    (folder / "signoff.json").write_text(json.dumps(nights[-1]))
    baseline.keep(folder, nights[:-1])
    seen = baseline.load(folder)
    assert [r["started"] for r in seen] == [str(i) for i in range(10 - baseline.KEEP, 10)]
    baseline.keep(folder, [])  # a run without a baseline leaves no stale history behind
    assert [r["started"] for r in baseline.load(folder)] == ["9"]


def test_the_section_names_each_change_with_its_cause_and_what_failed():
    history = [run("1", a_b="passed", b_a="failed")]
    current = run("2", a_b="failed", b_a="failed")
    since = baseline.section(current, history, baseline.compare(current, history), "new", "policy line")
    assert since["latest"]["run_id"] == "r1" and since["same_cluster"] and since["runs"] == 1
    assert dict(baseline.listed(since)) == {
        "new": ["test_pod_to_pod[a->b] [ec2-source-dest-check]: a_b timed out"], "fixed": [],
        "still failing": ["test_pod_to_pod[b->a] [ec2-source-dest-check] since 1"], "flaky": []}
    assert baseline.described(since).startswith("compared with 1 earlier run, the latest r1 of 1")
    other = {**current, "fingerprint_hash": "sha256:2"}
    assert "fingerprint differs" in baseline.described(
        baseline.section(other, history, baseline.compare(other, history), "any", ""))
