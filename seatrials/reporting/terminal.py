"""The terminal summary: the causes with the nodes they concern and their fix, what was not
checked, and the verdict, so a terminal alone is enough to act on."""

from __future__ import annotations

from collections import Counter

from seatrials import causes
from seatrials import verdict as verdict_mod
from seatrials.reporting.baseline import described, listed
from seatrials.reporting.redaction import known_secrets, redact
from seatrials.reporting.signoff import causes_of, node_list

SUBJECTS_SHOWN = 5
CHANGES_SHOWN = 8
CHANGE_LOOK = {"new": {"red": True, "bold": True}, "fixed": {"green": True}, "still failing": {"yellow": True},
               "flaky": {"yellow": True}}


def terminal_summary(tr, state) -> None:
    reports = state.reports
    tr.section("seatrials: failures by cause")
    found = causes_of(reports, node_list(state.topology))
    errors = [r for r in reports if r.outcome == "error"]
    if not found and not errors:
        tr.write_line("no failures")
    pages = state.settings.reports_dir / "causes"
    for c in found:
        tr.write_line(f"[{c['id']}] {c['title']}: {c['failures']} failed", red=True, bold=True)
        for x in c["subjects"][:SUBJECTS_SHOWN]:
            ids = ", ".join(v for v in (x["instance"], x["ip"]) if v)
            tr.write_line(f"    {x['node']} ({ids}): {x['what']}")
        if len(c["subjects"]) > SUBJECTS_SHOWN:
            tr.write_line(f"    ... and {len(c['subjects']) - SUBJECTS_SHOWN} more nodes")
        for x in c["cluster_wide"][:SUBJECTS_SHOWN]:
            tr.write_line(f"    cluster-wide: {x['what']}")
        tr.write_line(f"    fix: {c['fix']}")
        for command in c["fix_commands"][:SUBJECTS_SHOWN]:
            tr.write_line(f"      {command}")
        tr.write_line(f"    page: {pages / (c['id'] + '.html')}")
    if errors:
        tr.write_line(f"errors (seatrials could not judge): {len(errors)}", red=True, bold=True)
        for r in errors[:8]:
            tr.write_line(f"    {r.name}: {r.summary}")
    for judged in ("skipped", causes.NOT_APPLICABLE):
        cases = [r for r in reports if r.judged == judged]
        if cases:
            reasons = Counter(r.message.split(":", 1)[-1].strip()[:120] for r in cases)
            tr.write_line(f"{'not checked' if judged == 'skipped' else judged}: {len(cases)} cases")
            for reason, n in reasons.most_common(6):
                tr.write_line(f"    {n} x {reason}")
    if state.sections_left_out:
        tr.write_line(f"pytest's section for each failure is left out ({state.sections_left_out} failures): every "
                      f"finding is in {state.settings.reports_dir / 'signoff.md'} (and .html, .json)")
    since_last_run(tr, state.since)
    judgement = state.judgement
    if judgement is None:
        return
    secrets = known_secrets(state)
    signed = judgement.verdict == verdict_mod.SIGNED_OFF
    tr.write_line(f"verdict: {judgement.verdict} (exit {judgement.exit_code}); sign-off report: "
                  f"{state.settings.reports_dir / 'signoff.html'} (also .json, .md)", bold=True, green=signed,
                  red=not signed)
    for reason in judgement.reasons:
        tr.write_line(f"    {redact(reason, secrets)}")
    if state.since and state.since["exit_policy"]:
        tr.write_line(state.since["exit_policy"], bold=True, green=bool(judgement.excused))


def since_last_run(tr, since: dict | None) -> None:
    """--baseline: new, fixed, still failing (since when) and flaky, each with its cases."""
    if since is None:
        return
    tr.section("seatrials: since the last run")
    tr.write_line(described(since))
    for heading, lines in listed(since):
        tr.write_line(f"{heading.upper()}: {len(lines)}", **(CHANGE_LOOK[heading] if lines else {}))
        for line in lines[:CHANGES_SHOWN]:
            tr.write_line(f"    {line}")
        if len(lines) > CHANGES_SHOWN:
            tr.write_line(f"    ... and {len(lines) - CHANGES_SHOWN} more (signoff.json: baseline)")
    if since["causes"]:
        tr.write_line("causes: " + ", ".join(f"{c} {what}" for c, what in since["causes"].items()))
