"""Writing a run's reports: signoff.json/.md/.html with the matrix pictures and the cause
pages, then Allure's extras and the JUnit suite properties, then every report file
redacted of the run's secrets."""

from __future__ import annotations

import json
import time
from pathlib import Path

from seatrials import verdict as verdict_mod
from seatrials.reporting import allure, baseline
from seatrials.reporting import junit as junit_mod
from seatrials.reporting.html import html_report
from seatrials.reporting.markdown import markdown
from seatrials.reporting.pages import write_pages
from seatrials.reporting.redaction import known_secrets, redact_files
from seatrials.reporting.signoff import RunRecord, options_of, record_of, signoff
from seatrials.reporting.svg import matrix_svg


def cause_url(cause_id: str, settings) -> str:
    """Where a failure's link goes: --docs-base-url's page, else the page in the report folder as seen from
    an Allure report generated beside it (allure generate REPORTS/allure-results -o REPORTS/allure-report)."""
    if settings.docs_base_url:
        return f"{settings.docs_base_url.rstrip('/')}/{cause_id}.md"
    return f"../causes/{cause_id}.html"


def write_all(state, trial, junit: Path | None = None, allure_dir: Path | None = None, command=()) -> dict:
    """Write every report of a finished run; returns the sign-off as data."""
    secrets = known_secrets(state)
    report = signoff(record_of(state, trial, list(command), secrets))
    out_dir = state.settings.reports_dir
    write_report(out_dir, report)
    baseline.keep(out_dir, state.baseline or [])
    allure_dir = allure_dir or out_dir / "allure-results"
    if allure_dir.exists():
        allure.write(allure_dir, report, trial.window if trial is not None else None)
    if junit and junit.exists():
        junit_mod.complete(junit, report)
    redact_files([out_dir, allure_dir, *([junit] if junit else [])], secrets)
    return report


def write_report(out_dir: Path, report: dict) -> None:
    """The sign-off in three forms, the matrix pictures and the cause pages they link to."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in out_dir.glob("matrix-*.svg"):
        stale.unlink()
    (out_dir / "signoff.json").write_text(json.dumps(report, indent=1))
    (out_dir / "signoff.md").write_text(markdown(report))
    (out_dir / "signoff.html").write_text(html_report(report))
    for kind, m in report["matrix"].items():
        (out_dir / f"matrix-{kind}.svg").write_text(matrix_svg(kind, m, f"{kind}: {m['title']}"))
    write_pages(out_dir)


def write_not_started(settings, reason: str, secrets: list[str], junit: Path | None = None,
                      allure_dir: Path | None = None, previous: list[dict] = ()) -> None:
    """A run that could not start still leaves reports saying so (INCOMPLETE), never last night's.

    Its folder still carries the runs it was given as baseline (previous/), so that the history goes on.
    Best effort: the reports directory itself may be what is wrong."""
    now = time.time()
    report = signoff(RunRecord(
        run_id="", server="", context=settings.context or "", started=now, ended=now,
        verdict=verdict_mod.INCOMPLETE, reasons=[f"the run could not start: {reason}"],
        exit_code=verdict_mod.NOT_STARTED_EXIT, not_verified={}, options=options_of(settings, secrets),
        required=tuple(settings.require)))
    out_dir = settings.reports_dir
    junit = junit or out_dir / "junit.xml"
    allure_dir = allure_dir or out_dir / "allure-results"
    try:
        write_report(out_dir, report)
        baseline.keep(out_dir, list(previous))
        junit.write_text(junit_mod.not_started(report["verdict_reasons"][0]))
        if allure_dir.exists():
            for stale in allure_dir.iterdir():
                if stale.is_file():
                    stale.unlink()
            allure.write_environment(allure_dir, report)
        redact_files([out_dir, allure_dir, junit], secrets)
    except OSError:
        return
