"""Compared with the last runs: what is new since the baseline, what is fixed, what is still failing
(and since when), and what is flaky.

A baseline is one earlier signoff.json, or a directory of them (a nightly job keeps the last few).
Cases are matched by their test id (`test_pod_to_pod[worker-1->worker-2]`), causes by their id. Pure:
the plugin reads the files and hands the data in.

- new: fails now, passed (or did not exist) in the latest baseline run;
- fixed: passed now, failed in the latest baseline run;
- still failing: failed now and in the latest baseline run, since the oldest consecutive failing run;
- flaky: passed now only after a retry (the probe's own retries), or passed and failed in turn over
  the last runs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

FAILED = ("failed", "error")


class BadBaseline(ValueError):
    """The baseline cannot be read; str(self) is the one line to show."""


def load(path: Path) -> list[dict]:
    """The sign-off reports of a baseline (a file, or every signoff*.json of a directory, oldest first)."""
    files = sorted(path.glob("**/signoff*.json")) if path.is_dir() else [path]
    if not files:
        raise BadBaseline(f"--baseline {path}: no signoff.json there")
    runs = []
    for f in files:
        try:
            data = json.loads(f.read_text())
        except (OSError, ValueError) as exc:
            raise BadBaseline(f"--baseline {f}: not a seatrials signoff.json ({exc})") from None
        if not isinstance(data, dict) or "checks" not in data or "started" not in data:
            raise BadBaseline(f"--baseline {f}: not a seatrials signoff.json (no checks)")
        runs.append(data)
    return sorted(runs, key=lambda r: r["started"])


def case_id(check: dict) -> str:
    return f"{check['check']}[{check['case']}]" if check.get("case") else check["check"]


def outcomes(run: dict) -> dict[str, str]:
    return {case_id(c): c["outcome"] for c in run.get("checks", [])}


@dataclass
class Changes:
    """What changed since the baseline, per case and per cause."""

    new: list[str] = field(default_factory=list)
    fixed: list[str] = field(default_factory=list)
    still_failing: dict[str, str] = field(default_factory=dict)  # case -> since (the run's start)
    flaky: dict[str, str] = field(default_factory=dict)  # case -> why
    causes: dict[str, str] = field(default_factory=dict)  # cause -> new, fixed or still failing
    baseline_runs: int = 0

    def to_json(self) -> dict:
        return {"baseline_runs": self.baseline_runs, "new": self.new, "fixed": self.fixed,
                "still_failing": self.still_failing, "flaky": self.flaky, "causes": self.causes}


def compare(current: dict, baseline: list[dict]) -> Changes:
    """The current run (a signoff dict) against the baseline runs, oldest first."""
    now = outcomes(current)
    history = [outcomes(run) for run in baseline]
    last = history[-1] if history else {}
    changes = Changes(baseline_runs=len(baseline))
    for case, outcome in sorted(now.items()):
        before = last.get(case)
        if outcome in FAILED:
            if before in FAILED:
                changes.still_failing[case] = failing_since(case, baseline)
            else:
                changes.new.append(case)
        elif outcome == "passed" and before in FAILED:
            changes.fixed.append(case)
        if outcome == "passed" and alternates([h.get(case) for h in history] + [outcome]):
            changes.flaky[case] = "passed and failed in turn over the last runs"
    for case in current.get("retried_ok", []):
        changes.flaky.setdefault(case, "passed only after a retry")
    changes.causes = compare_causes(current, baseline[-1] if baseline else {})
    return changes


def failing_since(case: str, baseline: list[dict]) -> str:
    """The start of the earliest run of the unbroken failing streak that reaches the latest baseline run."""
    since = ""
    for run in reversed(baseline):
        if outcomes(run).get(case) not in FAILED:
            break
        since = run["started"]
    return since


def alternates(seq: list[str | None]) -> bool:
    """Passed and failed in turn, at least twice each way (one change is a regression or a fix)."""
    states = [s in FAILED for s in seq if s in (*FAILED, "passed")]
    return sum(1 for a, b in zip(states, states[1:], strict=False) if a != b) >= 2


def compare_causes(current: dict, last: dict) -> dict[str, str]:
    now, before = set(current.get("causes_found", {})), set(last.get("causes_found", {}))
    return {**{c: "new" for c in now - before}, **{c: "still failing" for c in now & before},
            **{c: "fixed" for c in before - now}}
