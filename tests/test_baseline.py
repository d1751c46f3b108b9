"""Compared with the last runs: new, fixed, still failing since when, flaky."""

import json

import pytest

from seatrials.reporting import baseline


def run(started: str, **outcomes) -> dict:
    checks = [{"check": "test_pod_to_pod", "case": case.replace("_", "->"), "outcome": o}
              for case, o in outcomes.items()]
    causes = {"ec2-source-dest-check": {}} if any(o == "failed" for o in outcomes.values()) else {}
    return {"started": started, "checks": checks, "causes_found": causes}


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
    current = {**run("5", a_b="passed", b_a="passed"), "retried_ok": ["test_pod_to_pod[b->a]"]}
    changes = baseline.compare(current, history)
    assert changes.flaky == {"test_pod_to_pod[a->b]": "passed and failed in turn over the last runs",
                             "test_pod_to_pod[b->a]": "passed only after a retry"}
    assert changes.fixed == ["test_pod_to_pod[a->b]"]


def test_a_baseline_is_a_file_or_a_directory_of_them_oldest_first(tmp_path):
    (tmp_path / "night-2").mkdir()
    (tmp_path / "night-2" / "signoff.json").write_text(json.dumps(run("2026-11-29", a_b="failed")))
    (tmp_path / "signoff.json").write_text(json.dumps(run("2026-11-28", a_b="passed")))
    assert [r["started"] for r in baseline.load(tmp_path)] == ["2026-11-28", "2026-11-29"]
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(baseline.BadBaseline, match="no signoff.json there"):
        baseline.load(empty)
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(baseline.BadBaseline, match="not a seatrials signoff.json"):
        baseline.load(tmp_path / "bad.json")
