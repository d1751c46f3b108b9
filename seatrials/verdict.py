"""The verdict of a run, the reasons for it and the exit code: one pure function.

A sign-off tool is worth its worst verdict, so SIGNED OFF needs all of: the
whole suite ran to its end (no early stop, no selection), nothing failed or
errored, and nothing the sign-off policy requires (--require) went unchecked.
The first rule that holds decides, in this order:

    INTERRUPTED     Ctrl-C or SIGTERM                                   exit 2
    INCOMPLETE      the run could not start or stopped early             exit 3 (4: could not start)
    NOT SIGNED OFF  a case failed or errored, or a required area was
                    not checked                                         exit 1
    PARTIAL         a selection ran (-k, -m, --deselect, --lf, a subset
                    of the suite's files) and nothing in it failed       exit 6
    NOTHING CHECKED nothing passed                                      exit 5
    SIGNED OFF      everything else                                     exit 0

`--fail-on new` (fail_on_new) changes one thing: a NOT SIGNED OFF run of the whole suite, whose
required areas were all checked and whose failures were all failing in the baseline too, exits 0,
and says so. The verdict stays NOT SIGNED OFF; a run that stopped, was interrupted or ran a
selection is never excused.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field

from seatrials.causes import NOT_APPLICABLE

SIGNED_OFF, NOT_SIGNED_OFF, INCOMPLETE, PARTIAL = "SIGNED OFF", "NOT SIGNED OFF", "INCOMPLETE", "PARTIAL"
INTERRUPTED, NOTHING_CHECKED = "INTERRUPTED", "NOTHING CHECKED"
EXIT_CODES = {SIGNED_OFF: 0, NOT_SIGNED_OFF: 1, INTERRUPTED: 2, INCOMPLETE: 3, NOTHING_CHECKED: 5, PARTIAL: 6}
NOT_STARTED_EXIT = 4  # INCOMPLETE before any check ran: bad input, or the cluster could not be used


@dataclass
class RunFacts:
    """What the run knows about itself when it ends."""

    outcomes: list[tuple[str, str, str]] = field(default_factory=list)  # (outcome, area, check[case]) per case
    interrupted: str = ""  # why, when Ctrl-C or SIGTERM ended it
    stopped: list[str] = field(default_factory=list)  # why it could not start or stopped early
    selection: list[str] = field(default_factory=list)  # how the cases run are a subset of the suite
    required: tuple[str, ...] = ()  # areas the sign-off policy requires
    caveats: list[str] = field(default_factory=list)  # what limits any verdict (an unproved Kubernetes minor)


@dataclass
class Judgement:
    verdict: str
    reasons: list[str]
    not_verified: dict[str, list[str]]  # area -> the cases not checked there
    excused: str = ""  # why --fail-on new lets a NOT SIGNED OFF run exit 0

    @property
    def exit_code(self) -> int:
        return 0 if self.excused else EXIT_CODES[self.verdict]


def judge(facts: RunFacts) -> Judgement:
    """The verdict; the caveats follow its reasons whatever it is, so a pass they limit is never silent."""
    judgement = verdict_of(facts)
    judgement.reasons += facts.caveats
    return judgement


def verdict_of(facts: RunFacts) -> Judgement:
    counts = Counter(outcome for outcome, _, _ in facts.outcomes)
    skipped = defaultdict(list)
    for outcome, area, case in facts.outcomes:
        if outcome == "skipped":
            skipped[area].append(case)
    missing_required = [a for a in facts.required if skipped.get(a)]
    if facts.interrupted:
        return Judgement(INTERRUPTED, [f"interrupted ({facts.interrupted}): nothing is signed off"], skipped)
    if facts.stopped:
        return Judgement(INCOMPLETE, list(facts.stopped), skipped)
    reasons = []
    if counts["failed"]:
        reasons.append(f"{counts['failed']} failed")
    if counts["error"]:
        reasons.append(f"{counts['error']} errored (seatrials could not judge them)")
    reasons += [f"required area {a} not checked: {len(skipped[a])} cases ({skipped[a][0]} ...)"
                for a in missing_required]
    if reasons:
        return Judgement(NOT_SIGNED_OFF, reasons + [f"selection: {s}" for s in facts.selection], skipped)
    if facts.selection:
        return Judgement(PARTIAL, [f"only a selection ran: {s}" for s in facts.selection], skipped)
    if not counts["passed"]:
        return Judgement(NOTHING_CHECKED, ["no check passed"], skipped)
    unchecked = sum(len(v) for v in skipped.values())
    return Judgement(SIGNED_OFF, [f"the whole suite ran: {counts['passed']} passed, nothing failed"
                                  + (f", {unchecked} not checked (allowed by the policy)" if unchecked else "")
                                  + (f", {n} not applicable" if (n := counts[NOT_APPLICABLE]) else "")],
                     skipped)


def fail_on_new(judgement: Judgement, facts: RunFacts, new: int | None, old: int) -> str:
    """--fail-on new, given the failures new since the baseline (None: no baseline) and those failing in it
    too: the line saying what the policy did; sets judgement.excused when the run exits 0 for it."""
    if judgement.verdict == SIGNED_OFF:
        return "--fail-on new: nothing failed"
    if judgement.verdict != NOT_SIGNED_OFF:
        return (f"--fail-on new does not apply: {judgement.verdict} keeps exit {judgement.exit_code} "
                "(a run that stopped or ran a subset is never excused)")
    missing = [a for a in facts.required if judgement.not_verified.get(a)]
    if facts.selection or missing:
        why = "only a selection ran" if facts.selection else f"required area {', '.join(missing)} not checked"
        return f"--fail-on new does not apply: {why}; exit {judgement.exit_code}"
    if new is None:
        return f"--fail-on new: no baseline, so every failure counts as new; exit {judgement.exit_code}"
    if new:
        return f"--fail-on new: {new} new {'failure' if new == 1 else 'failures'} since the baseline; " \
               f"exit {judgement.exit_code}"
    judgement.excused = ("--fail-on new: exit 0 although NOT SIGNED OFF: every failure "
                         f"({old}) was failing in the baseline too, nothing new")
    return judgement.excused
