"""Compared with the last runs: what is new since the baseline, what is fixed, what is still failing
(and since when), and what is flaky.

A baseline is one earlier signoff.json, or a directory of them (a nightly job keeps the last few: each
report folder carries the runs it was compared with in `previous/`, so the previous night's artifact alone
is a baseline of several nights). Cases are matched by their test id (`test_pod_to_pod[worker-1->worker-2]`),
causes by their id. Pure: the plugin reads the files and hands the data in.

A case's history is its judged outcomes (passed, failed, errored) over the baseline runs, oldest first; a
run that did not judge it (not checked, not run, a run that could not start) says nothing about it.

- new: fails now, passed (or was never judged) before;
- fixed: passed now, failed when last judged;
- still failing: failed now and when last judged, since the first run of that unbroken failing streak;
- flaky: passed now only after a retry (the probe's own retries), or passed and failed in turn over the last
  runs (at least three changes: a regression and its fix are two).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

FAILED = ("failed", "error")
JUDGED = ("passed", *FAILED)
KEEP = 7  # runs a report folder carries in previous/: a week of nights
ALTERNATIONS = 3  # changes between passed and failed that make a case flaky


class BadBaseline(ValueError):
    """The baseline cannot be read; str(self) is the one line to show."""


def load(path: Path) -> list[dict]:
    """The sign-off reports of a baseline (a file, or every signoff*.json under a directory), oldest first,
    each run once."""
    files = sorted(path.glob("**/signoff*.json")) if path.is_dir() else [path]
    if not files:
        raise BadBaseline(f"--baseline {path}: no signoff.json there")
    runs = {}
    for f in files:
        try:
            data = json.loads(f.read_text())
        except (OSError, ValueError) as exc:
            raise BadBaseline(f"--baseline {f}: not a seatrials signoff.json ({exc})") from None
        if not isinstance(data, dict) or "checks" not in data or "started" not in data:
            raise BadBaseline(f"--baseline {f}: not a seatrials signoff.json (no checks)")
        runs[(data["started"], data.get("run_id", ""))] = data
    return [runs[key] for key in sorted(runs)]


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
    """The current run (a signoff dict, or any dict with its `checks`) against the baseline runs, oldest
    first."""
    history = [outcomes(run) for run in baseline]
    changes = Changes(baseline_runs=len(baseline))
    for case, outcome in sorted(outcomes(current).items()):
        judged = [(run, h[case]) for run, h in zip(baseline, history, strict=True) if h.get(case) in JUDGED]
        before = judged[-1][1] if judged else None
        if outcome in FAILED:
            if before in FAILED:
                changes.still_failing[case] = failing_since(judged)
            else:
                changes.new.append(case)
        elif outcome == "passed" and before in FAILED:
            changes.fixed.append(case)
        if outcome == "passed" and alternates([o for _, o in judged] + [outcome]):
            changes.flaky[case] = "passed and failed in turn over the last runs"
    for case in retried_ok(current):
        changes.flaky.setdefault(case, "passed only after a retry")
    changes.causes = compare_causes(current, baseline)
    return changes


def failing_since(judged: list[tuple[dict, str]]) -> str:
    """The start of the earliest run of the unbroken failing streak that reaches the latest judgement."""
    since = ""
    for run, outcome in reversed(judged):
        if outcome not in FAILED:
            break
        since = run["started"]
    return since


def alternates(seq: list[str]) -> bool:
    states = [s in FAILED for s in seq]
    return sum(1 for a, b in zip(states, states[1:], strict=False) if a != b) >= ALTERNATIONS


def retried_ok(run: dict) -> list[str]:
    """Cases that passed only on a later try of their probe."""
    return [case_id(c) for c in run.get("checks", []) if c["outcome"] == "passed" and c.get("tries", 0) > 1]


def failing_causes(run: dict) -> set[str]:
    return {c["cause"] for c in run.get("checks", []) if c["outcome"] in FAILED and c.get("cause")}


def compare_causes(current: dict, baseline: list[dict]) -> dict[str, str]:
    """Against the latest baseline run that judged anything (a run that could not start judged nothing)."""
    judged = [run for run in baseline if any(o in JUDGED for o in outcomes(run).values())]
    now, before = failing_causes(current), failing_causes(judged[-1]) if judged else set()
    return {**{c: "new" for c in now - before}, **{c: "still failing" for c in now & before},
            **{c: "fixed" for c in before - now}}


# ---------------------------------------------------------------- what the reports carry
def section(current: dict, baseline: list[dict], changes: Changes, fail_on: str, policy: str) -> dict:
    """signoff.json's `baseline` (docs/report-schema.md): the runs compared with, and each change with the
    cause and one line of what failed, so every report can list it without the checks."""
    now = {case_id(c): c for c in current.get("checks", [])}
    latest = baseline[-1] if baseline else {}

    def failure(case: str) -> dict:
        c = now.get(case, {})
        return {"case": case, "cause": c.get("cause", ""), "summary": c.get("summary") or c.get("message", "")}

    return {
        "runs": len(baseline),
        "latest": {k: latest.get(k, "") for k in ("run_id", "started", "verdict", "fingerprint_hash")},
        "oldest_started": baseline[0]["started"] if baseline else "",
        "same_cluster": latest.get("fingerprint_hash", "") == current.get("fingerprint_hash", ""),
        "new": [failure(case) for case in changes.new],
        "fixed": changes.fixed,
        "still_failing": [{**failure(case), "since": since} for case, since in changes.still_failing.items()],
        "flaky": [{"case": case, "why": why} for case, why in sorted(changes.flaky.items())],
        "causes": dict(sorted(changes.causes.items())),
        "fail_on": fail_on,
        "exit_policy": policy,
    }


def keep(out_dir: Path, baseline: list[dict]) -> None:
    """The report folder carries the last runs it was compared with (previous/), so that the next run's
    `--baseline` on this folder alone sees several runs. Written afresh each time."""
    previous = out_dir / "previous"
    if previous.exists():
        for stale in previous.glob("signoff-*.json"):
            stale.unlink()
    if not baseline:
        return
    previous.mkdir(parents=True, exist_ok=True)
    for i, run in enumerate(baseline[-(KEEP - 1):]):
        (previous / f"signoff-{i:02d}.json").write_text(json.dumps(run, indent=1))


def described(since: dict) -> str:
    """One line: what the run was compared with."""
    if not since["runs"]:
        return "no baseline given: every failure counts as new"
    latest = since["latest"]
    line = (f"compared with {since['runs']} earlier {'run' if since['runs'] == 1 else 'runs'}, the latest "
            f"{latest['run_id'] or '(none)'} of {latest['started']} ({latest['verdict'] or '?'})")
    return line + ("" if since["same_cluster"] else "; its cluster fingerprint differs from this run's")


def listed(since: dict) -> list[tuple[str, list[str]]]:
    """(heading, one line per change) in the order every report shows them."""

    def tag(x: dict) -> str:
        return f" [{x['cause']}]" if x.get("cause") else ""

    return [("new", [f"{x['case']}{tag(x)}: {x['summary']}" for x in since["new"]]),
            ("fixed", list(since["fixed"])),
            ("still failing", [f"{x['case']}{tag(x)} since {x['since']}" for x in since["still_failing"]]),
            ("flaky", [f"{x['case']}: {x['why']}" for x in since["flaky"]])]


def exit_words(s: dict) -> str:
    """The exit code as the reports' first lines give it, saying when --fail-on new made it 0."""
    excused = s.get("baseline") and s["exit_code"] == 0 and s["verdict"] != "SIGNED OFF"
    return f"exit code {s['exit_code']}" + (" (--fail-on new: nothing new)" if excused else "")
