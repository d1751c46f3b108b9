"""Reports of a run: the terminal summary grouped by cause, allure categories,
and the sign-off report (JSON, Markdown, HTML with the reachability matrix
drawn as SVG). JUnit and allure results themselves are written by pytest and
allure-pytest; the cause id rides along as a property of each failed case.

Secrets never reach a report: known secret values (kubeconfig tokens and keys,
Harbor password, AWS secret) and secret-shaped text are redacted everywhere.
"""

from __future__ import annotations

import html
import json
import re
import time
import xml.etree.ElementTree as ET
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import urlsplit

from seatrials import causes, kubeconfig, network
from seatrials import verdict as verdict_mod

REDACTED = "[REDACTED]"
SECRET_PATTERNS = [
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----", re.S),
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]{8,}"),
    re.compile(r"(?i)((?:password|passwd|secret|token|client-key-data)[\"']?\s*[:=]\s*[\"']?)[^\s\"',}]{4,}"),
    re.compile(r"(?<![A-Z0-9])(AKIA|ASIA)[A-Z0-9]{16}(?![A-Z0-9])"),
    re.compile(r"(://[^/\s:@]+:)[^@\s/]+(@)"),
]


def known_secrets(state) -> list[str]:
    values = list(state.settings.extra_secrets)
    if state.cluster is not None:
        values += kubeconfig.secrets(state.cluster.kubeconfig)
    for url in (state.settings.harbor_url, state.settings.harbor_registry):
        password = urlsplit(url).password if url else None
        values += [password] if password else []
    return [v for v in values if v and len(v) >= 4]


def redact(text: str, secrets: list[str] = ()) -> str:
    for value in sorted(secrets, key=len, reverse=True):
        text = text.replace(value, REDACTED)
    for pattern in SECRET_PATTERNS:
        text = pattern.sub(lambda m: (m.group(1) if m.groups() and m.group(1) else "") + REDACTED
                           + (m.group(2) if m.re.groups >= 2 and m.group(2) else ""), text)
    return text


def cause_url(cause_id: str, settings) -> str:
    page = causes.cause(cause_id).page
    if settings.docs_base_url:
        return f"{settings.docs_base_url.rstrip('/')}/{Path(page).name}"
    return (causes.DOCS_DIR / Path(page).name).as_uri()


# ---------------------------------------------------------------- per-case records
@dataclass
class CheckReport:
    nodeid: str
    check: str  # the test function, e.g. test_pod_to_pod
    case: str  # the parameter id, e.g. master-1->worker-2
    outcome: str  # passed, failed, skipped, error
    cause: str
    message: str
    duration: float
    area: str = ""  # what the check signs off (options.AREAS)

    @classmethod
    def of(cls, report) -> CheckReport:
        name = report.nodeid.split("::")[-1]
        check, _, case = name.partition("[")
        props = dict(report.user_properties)
        outcome = report.outcome
        if report.when != "call" and report.outcome == "failed":
            outcome = "error"
        if report.skipped and isinstance(report.longrepr, tuple):
            message = report.longrepr[2].removeprefix("Skipped: ")
        else:
            message = str(report.longrepr or "")
        return cls(report.nodeid, check, case.rstrip("]"), outcome, props.get("cause", ""), message,
                   round(report.duration, 3), props.get("area", ""))


def causes_found(reports: list[CheckReport]) -> dict[str, dict]:
    found: dict[str, dict] = {}
    for r in reports:
        if r.outcome != "failed" or not r.cause:
            continue
        c = causes.cause(r.cause)
        entry = found.setdefault(c.id, {"title": c.title, "fix": c.fix, "page": c.page, "cases": []})
        entry["cases"].append(f"{r.check}[{r.case}]" if r.case else r.check)
    return found


def matrices(trial) -> dict[str, dict]:
    """kind -> {sources, targets, cells[src][dst] = outcome}; the picture's data."""
    out: dict[str, dict] = {}
    if trial is None:
        return out
    for kind in network.KINDS:
        rows = [r for r in trial.results if r.kind == kind]
        if not rows:
            continue
        cells = defaultdict(dict)
        for r in rows:
            cells[r.source][r.target] = r.outcome
        out[kind] = {"title": network.KINDS[kind][1], "sources": sorted({r.source for r in rows}),
                     "targets": sorted({r.target for r in rows}), "cells": dict(cells)}
    return out


def api_requests(state) -> int:
    """Requests of every process of the run (each leaves its count in the shared directory)."""
    if not state.shared or not state.shared.exists():
        return state.cluster.requests_made if state.cluster else 0
    return sum(int(p.read_text() or 0) for p in state.shared.glob("requests-*"))


# ---------------------------------------------------------------- writers
def write_all(state, trial, junit: Path | None = None, allure_dir: Path | None = None) -> dict:
    """Write signoff.json/.md/.html, the matrix pictures and allure's categories and environment, then
    redact every report file (JUnit and allure results included) of the run's secrets."""
    settings = state.settings
    out_dir = settings.reports_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    reports = state.reports
    judgement = state.judgement
    signoff = {
        "run_id": state.run_id,
        "server": state.cluster.server,
        "context": state.cluster.context,
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(state.started)),
        "wall_seconds": round(time.time() - state.started, 1),
        "api_requests": api_requests(state),
        "nodes": len(state.topology.nodes),
        "cluster": state.topology.fingerprint(),
        "verdict": judgement.verdict,
        "verdict_reasons": judgement.reasons,
        "exit_code": judgement.exit_code,
        "required_areas": list(settings.require),
        "not_verified": judgement.not_verified,
        "outcomes": dict(Counter(r.outcome for r in reports)),
        "causes_found": causes_found(reports),
        "checks": [asdict(r) for r in reports],
        "matrix": matrices(trial),
        "trial_timings": trial.timings if trial else {},
        "removed_leftovers": state.removed,
        "probe_namespace_deleted": bool(state.namespace_deleted),
    }
    write_signoff(out_dir, signoff)
    for kind, m in signoff["matrix"].items():
        (out_dir / f"matrix-{kind}.svg").write_text(matrix_svg(kind, m))
    allure_dir = allure_dir or out_dir / "allure-results"
    if allure_dir.exists():
        (allure_dir / "categories.json").write_text(json.dumps(allure_categories(), indent=2))
        write_allure_environment(allure_dir, signoff)
    if junit and junit.exists():
        add_junit_properties(junit, {"verdict": judgement.verdict, "verdict_reasons": "; ".join(judgement.reasons),
                                     "run_id": state.run_id or ""})
    redact_files([out_dir, allure_dir, *([junit] if junit else [])], known_secrets(state))
    return signoff


def add_junit_properties(junit: Path, properties: dict[str, str]) -> None:
    """Suite-level properties (the verdict and why) in every <testsuite>, ahead of its cases, as JUnit wants."""
    tree = ET.parse(junit)
    suites = [tree.getroot()] if tree.getroot().tag == "testsuite" else tree.getroot().findall("testsuite")
    for suite in suites:
        element = suite.find("properties")
        if element is None:
            element = ET.Element("properties")
            suite.insert(0, element)
        for name, value in properties.items():
            ET.SubElement(element, "property", name=name, value=value)
    tree.write(junit, encoding="utf-8", xml_declaration=True)


def write_signoff(out_dir: Path, signoff: dict) -> None:
    (out_dir / "signoff.json").write_text(json.dumps(signoff, indent=2))
    (out_dir / "signoff.md").write_text(markdown(signoff))
    (out_dir / "signoff.html").write_text(html_report(signoff))


def write_allure_environment(allure_dir: Path, signoff: dict) -> None:
    """Allure shows environment.properties on its overview: the verdict and why, next to the cluster."""
    values = {"verdict": signoff["verdict"], "verdict reasons": "; ".join(signoff["verdict_reasons"]),
              "run id": signoff.get("run_id") or "", "server": signoff.get("server") or ""}
    values.update({k: ", ".join(v) if isinstance(v, list) else str(v) for k, v in signoff.get("cluster", {}).items()})
    lines = [f"{k.replace(' ', '.')}={v}".replace("\n", " ") for k, v in values.items()]
    (allure_dir / "environment.properties").write_text("\n".join(lines) + "\n")


def write_not_started(settings, reason: str, secrets: list[str], junit: Path | None = None,
                      allure_dir: Path | None = None) -> None:
    """A run that could not start still leaves reports saying so (INCOMPLETE), never last night's.

    Best effort: the reports directory itself may be what is wrong."""
    out_dir = settings.reports_dir
    signoff = {"run_id": "", "server": "", "context": settings.context or "",
               "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "verdict": verdict_mod.INCOMPLETE,
               "verdict_reasons": [f"the run could not start: {reason}"], "exit_code": verdict_mod.NOT_STARTED_EXIT,
               "required_areas": list(settings.require), "not_verified": {}, "outcomes": {}, "causes_found": {},
               "checks": [], "matrix": {}, "cluster": {}, "wall_seconds": 0, "api_requests": 0, "nodes": 0,
               "trial_timings": {}, "removed_leftovers": [], "probe_namespace_deleted": False}
    junit = junit or out_dir / "junit.xml"
    allure_dir = allure_dir or out_dir / "allure-results"
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        write_signoff(out_dir, signoff)
        junit.write_text(not_started_junit(signoff["verdict_reasons"][0]))
        if allure_dir.exists():
            for stale in allure_dir.iterdir():
                if stale.is_file():
                    stale.unlink()
            write_allure_environment(allure_dir, signoff)
        redact_files([out_dir, allure_dir, junit], secrets)
    except OSError:
        return


def not_started_junit(reason: str) -> str:
    e = html.escape
    return (f'<?xml version="1.0" encoding="utf-8"?>\n<testsuites><testsuite name="seatrials" errors="1" '
            f'failures="0" skipped="0" tests="1"><properties><property name="verdict" value="INCOMPLETE"/>'
            f'<property name="verdict_reasons" value="{e(reason)}"/></properties><testcase classname="seatrials" '
            f'name="run"><error type="INCOMPLETE" message="{e(reason)}">{e(reason)}</error></testcase>'
            f"</testsuite></testsuites>\n")


def redact_files(paths: list[Path], secrets: list[str]) -> None:
    """Every text file of the reports, rewritten without the run's secrets (whatever path a message took)."""
    files = [f for p in paths if p and p.exists() for f in ([p] if p.is_file() else p.rglob("*")) if f.is_file()]
    for f in files:
        try:
            text = f.read_text()
        except (UnicodeDecodeError, OSError):
            continue
        clean = redact(text, secrets)
        if clean != text:
            f.write_text(clean)


def allure_categories() -> list[dict]:
    """One allure category per cause: failures are grouped by the cause their message names."""
    cats = [{"name": f"{c.id}: {c.title}", "matchedStatuses": ["failed"],
             "messageRegex": rf"(?s).*\[cause: {re.escape(c.id)}\].*"} for c in causes.catalog().values()]
    cats.append({"name": "not checked (skipped)", "matchedStatuses": ["skipped"]})
    cats.append({"name": "broken (setup or seatrials error)", "matchedStatuses": ["broken"]})
    return cats


def markdown(s: dict) -> str:
    lines = [f"# seatrials sign-off: {s['verdict']}", ""]
    lines += [f"- {reason}" for reason in s["verdict_reasons"]]
    lines += ["", f"Run `{s['run_id']}` against `{s['server']}` (context `{s['context']}`), started {s['started']}, "
             f"{s['wall_seconds']} s, {s['api_requests']} API requests, {s['nodes']} nodes.", "", "## Cluster", ""]
    lines += [f"- **{k}**: {', '.join(v) if isinstance(v, list) else v}" for k, v in s["cluster"].items()]
    lines += ["", "## Causes found", ""]
    if not s["causes_found"]:
        lines.append("None.")
    for cid, c in s["causes_found"].items():
        lines += [f"### `{cid}`: {c['title']} ({len(c['cases'])} failing cases)", "", f"Fix: {c['fix']}", "",
                  f"Page: {c['page']}", "", "Cases: " + ", ".join(f"`{x}`" for x in c["cases"][:50]), ""]
    lines += ["## Reachability", ""]
    for kind, m in s["matrix"].items():
        lines += [f"### {kind}: {m['title']}", "", f"![{kind}](matrix-{kind}.svg)", "",
                  "| from \\ to | " + " | ".join(m["targets"]) + " |",
                  "|---" * (len(m["targets"]) + 1) + "|"]
        for src in m["sources"]:
            row = [SYMBOL.get(m["cells"].get(src, {}).get(t, ""), " ") for t in m["targets"]]
            lines.append(f"| {src} | " + " | ".join(row) + " |")
        lines.append("")
    lines += ["## Checks", "", "| check | case | outcome | cause |", "|---|---|---|---|"]
    lines += [f"| {c['check']} | {c['case']} | {c['outcome']} | {c['cause']} |" for c in s["checks"]]
    return "\n".join(lines) + "\n"


SYMBOL = {"ok": "ok", "timeout": "TIMEOUT", "refused": "REFUSED", "no-route": "NO ROUTE", "error": "ERROR",
          "not-run": "-"}
COLOUR = {"ok": "#2e7d32", "not-run": "#9e9e9e"}
BAD_COLOUR = "#c62828"


def grid_svg(title: str, rows: list[str], cols: list[str], cells: dict[tuple[str, str], tuple[str, str]],
             footer: str) -> str:
    """A labelled grid picture; cells map (row, column) to (short text, colour)."""
    char = 6.5  # px per character at font-size 11
    cell = 34
    label_w = 12 + char * max((len(r) for r in rows), default=4)
    slant = char * max((len(c) for c in cols), default=4)  # column labels are drawn at -55 degrees
    top = 30 + slant * 0.82
    width = label_w + cell * len(cols) + slant * 0.57 + 10
    height = top + cell * len(rows) + 30
    e = html.escape
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{max(width, 420):.0f}" height="{height:.0f}" '
             f'font-family="sans-serif" font-size="11"><title>{e(title)}</title>',
             f'<text x="4" y="14" font-size="13" font-weight="bold">{e(title)}</text>']
    for j, col in enumerate(cols):
        x = label_w + j * cell + cell / 2
        parts.append(f'<text transform="translate({x},{top - 6}) rotate(-55)">{e(col)}</text>')
    for i, row in enumerate(rows):
        y = top + i * cell
        parts.append(f'<text x="4" y="{y + cell / 2 + 4}">{e(row)}</text>')
        for j, col in enumerate(cols):
            if (row, col) not in cells:
                continue
            text, colour = cells[(row, col)]
            x = label_w + j * cell
            parts.append(f'<rect x="{x + 1}" y="{y + 1}" width="{cell - 2}" height="{cell - 2}" fill="{colour}">'
                         f'<title>{e(row)} / {e(col)}: {e(text)}</title></rect>')
            if text:
                parts.append(f'<text x="{x + 3}" y="{y + cell / 2 + 3}" fill="white" font-size="7">'
                             f'{e(text[:8])}</text>')
    parts.append(f'<text x="4" y="{height - 8}">{e(footer)}</text>')
    parts.append("</svg>")
    return "\n".join(parts)


def matrix_svg(kind: str, m: dict) -> str:
    cells = {}
    for src, row in m["cells"].items():
        for dst, outcome in row.items():
            cells[(src, dst)] = ("" if outcome == "ok" else SYMBOL.get(outcome, outcome),
                                 COLOUR.get(outcome, BAD_COLOUR))
    return grid_svg(f"{kind}: {m['title']}", m["sources"], m["targets"], cells,
                    "rows: from; columns: to. green ok, red failed, grey not run")


def html_report(s: dict) -> str:
    e = html.escape
    colour = {"SIGNED OFF": "#2e7d32"}.get(s["verdict"], "#c62828")
    rows = "".join(f"<tr><th>{e(k)}</th><td>{e(', '.join(v) if isinstance(v, list) else str(v))}</td></tr>"
                   for k, v in s["cluster"].items())
    found = "".join(f"<tr><td><code>{e(cid)}</code></td><td>{e(c['title'])}</td><td>{len(c['cases'])}</td>"
                    f"<td>{e(c['fix'])}</td><td>{e(c['page'])}</td></tr>" for cid, c in s["causes_found"].items())
    pictures = "".join(f"<div>{matrix_svg(kind, m)}</div>" for kind, m in s["matrix"].items())
    reasons = "".join(f"<li>{e(r)}</li>" for r in s["verdict_reasons"])
    not_verified = "".join(f"<li>{e(area)}: {len(cases)} cases not checked ({e(', '.join(cases[:5]))}"
                           f"{' ...' if len(cases) > 5 else ''})</li>" for area, cases in s["not_verified"].items())
    not_verified = f"<p>Not verified:</p><ul>{not_verified}</ul>" if not_verified else ""
    checks = "".join(f"<tr class='{e(c['outcome'])}'><td>{e(c['check'])}</td><td>{e(c['case'])}</td>"
                     f"<td>{e(c['outcome'])}</td><td>{e(c['cause'])}</td><td><pre>{e(c['message'][:2000])}</pre></td>"
                     "</tr>" for c in s["checks"])
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>seatrials sign-off {e(s['run_id'])}</title>
<style>body{{font-family:sans-serif;margin:2em}} table{{border-collapse:collapse}} td,th{{border:1px solid #ccc;
padding:4px;vertical-align:top;text-align:left}} .failed,.error{{background:#fdecea}} .skipped{{background:#fff8e1}}
pre{{white-space:pre-wrap;margin:0}} .verdict{{color:white;background:{colour};padding:6px 12px;display:inline-block}}
</style></head><body>
<h1>seatrials sign-off <span class="verdict">{e(s['verdict'])}</span></h1>
<ul>{reasons}</ul>{not_verified}
<p>Run <code>{e(s['run_id'])}</code> against <code>{e(s['server'])}</code> (context {e(s['context'])}), started
{e(s['started'])}; {s['wall_seconds']} s; {s['api_requests']} API requests; {s['nodes']} nodes;
outcomes {e(json.dumps(s['outcomes']))}.</p>
<h2>Cluster</h2><table>{rows}</table>
<h2>Causes found</h2><table><tr><th>cause</th><th>title</th><th>cases</th><th>fix</th><th>page</th></tr>{found}</table>
<h2>Reachability</h2>{pictures}
<h2>Checks</h2><table><tr><th>check</th><th>case</th><th>outcome</th><th>cause</th><th>message</th></tr>{checks}</table>
</body></html>
"""


# ---------------------------------------------------------------- terminal
def terminal_summary(tr, state) -> None:
    reports: list[CheckReport] = state.reports
    tr.section("seatrials: failures by cause")
    by_cause = defaultdict(list)
    for r in reports:
        if r.outcome in ("failed", "error"):
            by_cause[r.cause or "error (no cause: setup or seatrials problem)"].append(r)
    if not by_cause:
        tr.write_line("no failures")
    for cid, rs in sorted(by_cause.items(), key=lambda kv: -len(kv[1])):
        title = causes.cause(cid).title if cid in causes.catalog() else ""
        tr.write_line(f"[{cid}] {title}: {len(rs)} failing", red=True, bold=True)
        for r in rs[:8]:
            tr.write_line(f"    {r.check}[{r.case}]" if r.case else f"    {r.check}")
        if len(rs) > 8:
            tr.write_line(f"    ... and {len(rs) - 8} more")
        if cid in causes.catalog():
            tr.write_line(f"    fix: {causes.cause(cid).fix}")
            tr.write_line(f"    page: {causes.cause(cid).page}")
    skipped = [r for r in reports if r.outcome == "skipped"]
    if skipped:
        reasons = Counter(r.message.split(":", 1)[-1].strip()[:120] for r in skipped)
        tr.write_line(f"not checked: {len(skipped)} cases")
        for reason, n in reasons.most_common(6):
            tr.write_line(f"    {n} x {reason}")
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
