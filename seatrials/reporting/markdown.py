"""signoff.md: the content of signoff.html, in the same order, for CI pages and chat."""

from __future__ import annotations

from collections import Counter, defaultdict

from seatrials.network.cases import first_of
from seatrials.reporting import svg
from seatrials.reporting.baseline import described, exit_words, listed
from seatrials.reporting.html import (
    CASES_LISTED_UP_TO,
    FAILURES_PER_NODE,
    OUTCOME_WORDS,
    case_name,
    ordered,
    plural,
)
from seatrials.reporting.pages import origin_text


def cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def markdown(s: dict) -> str:
    lines = [f"# {s['verdict']}: seatrials sign-off of `{s['context']}` at `{s['server']}`", "",
             f"Run `{s['run_id'] or 'none'}`, {s['started']} to {s.get('ended', '?')}, {s['wall_seconds']} s, "
             f"{s['nodes']} nodes, {exit_words(s)}.", "", "## Why", ""]
    lines += [f"- {r}" for r in s["verdict_reasons"]]
    lines += since_section(s) + causes_section(s) + errors_section(s) + areas_section(s) + not_verified_section(s)
    lines += facts_section(s)
    lines += failures_section(s) + reachability_section(s) + checks_section(s) + nodes_section(s)
    return "\n".join(lines) + "\n"


def node_words(x: dict) -> str:
    ids = ", ".join(v for v in (x["instance"], x["ip"], x["role"]) if v)
    return f"**{x['node']}** ({ids})"


def since_section(s: dict) -> list[str]:
    since = s.get("baseline")
    if not since:
        return []
    lines = ["", "## Since the last run", "", described(since) + "."]
    lines += ["", f"**{since['exit_policy']}**"] if since["exit_policy"] else []
    for heading, items in listed(since):
        lines += ["", f"### {heading.capitalize()}: {len(items)}", ""]
        lines += [f"- {cell(item)}" for item in items[:CASES_LISTED_UP_TO]] or ["None."]
    if since["causes"]:
        lines += ["", "Causes: " + ", ".join(f"`{c}` {what}" for c, what in since["causes"].items()) + "."]
    return lines


def causes_section(s: dict) -> list[str]:
    found = s.get("causes", [])
    lines = ["", "## Causes found", ""]
    if not found:
        return lines + ["None: no check failed."]
    for c in found:
        lines += [f"### [{c['severity'].upper()}] {c['title']}", "",
                  f"`{c['id']}`, {c['failures']} failed checks; cause page: "
                  f"[{c['page_markdown']}]({c['page_markdown']})", ""]
        lines += [f"- {node_words(x)}: {x['what']} ({x['failures']} failed checks)" for x in c["subjects"]]
        lines += [f"- **cluster-wide**: {x['what']}" for x in c["cluster_wide"]]
        lines += [""] + [f"Pattern: {p}" for p in c["patterns"]] + [f"Hint: {h}" for h in c["hints"]]
        if c["corroboration"]:
            lines += ["", "Corroborated by:", ""] + [f"- {x}" for x in c["corroboration"]]
        lines += ["", f"**Fix.** {c['fix']}", ""]
        if c["fix_commands"]:
            lines += ["```sh", *c["fix_commands"], "```", ""]
    return lines


def counts_text(tally: dict[str, int]) -> str:
    return ", ".join(f"{n} {OUTCOME_WORDS.get(o, o)}" for o, n in ordered(tally))


def areas_section(s: dict) -> list[str]:
    rows = [f"| {area} | {counts_text(tally) or 'no check ran'} |" for area, tally in s.get("areas", {}).items()]
    return ["", "## What was checked", "", "| area | checks |", "|---|---|", *rows] if rows else []


def errors_section(s: dict) -> list[str]:
    errors = s.get("errors", [])
    if not errors:
        return []
    return ["", f"## Errors ({len(errors)})", "", "seatrials could not judge these checks:", ""] + [
        f"- `{x['check']}`: {x['summary']}" for x in errors]


def not_verified_section(s: dict) -> list[str]:
    lines = ["", "## Not verified", ""]
    grouped, partly = s.get("not_verified_reasons", {}), s.get("partly_checked", [])
    if not grouped and not partly:
        return lines + ["Nothing: every check ran."]
    for area, reasons in grouped.items():
        required = " (required)" if area in s.get("required_areas", []) else ""
        for r in reasons:
            lines.append(f"- **{area}**{required}: {len(r['cases'])} not checked: {r['reason']}: "
                         + first_of([f"`{c}`" for c in r["cases"]], 12))
    lines += [f"- **{p['area'] or 'other'}**: `{p['check']}` passed with signals not read: {'; '.join(p['notes'])}"
              for p in partly]
    policy = ", ".join(s.get("required_areas", [])) or "none required (lenient)"
    return lines + ["", f"Sign-off policy (--require): {policy}."]


def facts_section(s: dict) -> list[str]:
    t = s.get("tool", {})
    lines = ["", "## Run", "", "| | |", "|---|---|",
             f"| tool | {cell(t.get('name', 'seatrials'))} {cell(t.get('version', '?'))}; Python "
             f"{cell(t.get('python', '?'))}, pytest {cell(t.get('pytest', '?'))} |",
             f"| command | `{cell(s.get('command', ''))}` |",
             "| options | " + (cell(", ".join(f"{k}={v}" for k, v in s.get("options", {}).items())) or "defaults")
             + " |",
             f"| started | {s['started']} |", f"| ended | {s.get('ended', '')} |",
             f"| took | {s['wall_seconds']} s, {s['api_requests']} API requests |", "", "## Cluster", ""]
    fp = s.get("cluster", {})
    if not fp:
        return lines + ["Not reached."]
    lines += ["| | |", "|---|---|", f"| fingerprint | `{s.get('fingerprint_hash', '')}` |"]
    lines += [f"| {k} | {cell(first_of(v, 3) if isinstance(v, list) else v)} |" for k, v in fp.items()]
    return lines


def failures_section(s: dict) -> list[str]:
    found = s.get("causes", [])
    if not found:
        return []
    by_name = {case_name(c): c for c in s["checks"]}
    lines = ["", "## Failures by cause, then by node"]
    for c in found:
        lines += ["", f"### {c['title']} (`{c['id']}`)", "",
                  f"Origin: {origin_text(c['origin'])}. {c['failures']} failed checks.", ""]
        groups = [(node_words(x), x["checks"]) for x in c["subjects"]]
        if c["cluster_wide"]:
            groups.append(("**cluster-wide**", [x["check"] for x in c["cluster_wide"]]))
        for title, names in groups:
            lines += [f"#### {title}: {len(names)} failed {plural(len(names), 'check')}", ""]
            for name in names[:FAILURES_PER_NODE]:
                check = by_name.get(name, {})
                evidence = [x for x in check.get("evidence", []) if not x.startswith("pattern: ")]
                lines.append(f"- `{name}`: " + "; ".join(evidence or [check.get("summary", "")]))
            if len(names) > FAILURES_PER_NODE:
                lines.append(f"- and {len(names) - FAILURES_PER_NODE} more, all in signoff.json")
            lines.append("")
    return lines


def reachability_section(s: dict) -> list[str]:
    matrix = s.get("matrix", {})
    if not matrix:
        return []
    codes = s.get("matrix_codes", {})
    lines = ["", "## Reachability", "", "Rows: from; columns: to. "
             + ", ".join(f"`{svg.STYLE[c][1] or ' '}` {svg.STYLE[c][3]}" for c in svg.STYLE if c in codes) + "."]
    for kind, m in matrix.items():
        lines += ["", f"### {kind}: {m['title']}", "", f"![{kind}](matrix-{kind}.svg)", ""]
        if max(len(m["sources"]), len(m["targets"])) > svg.SYMBOLS_UP_TO:
            tally = Counter(code for row in m["rows"].values() for code in row if code != " ")
            lines.append(", ".join(f"{n} {svg.STYLE[code][3].split(':')[0]}" for code, n in tally.most_common())
                         + "; every cell is in signoff.json.")
            continue
        lines += ["| from \\ to | " + " | ".join(m["targets"]) + " |", "|---" * (len(m["targets"]) + 1) + "|"]
        lines += [f"| {src} | " + " | ".join(svg.STYLE[code][1] or " " for code in m["rows"][src]) + " |"
                  for src in m["sources"]]
    return lines


def checks_section(s: dict) -> list[str]:
    by_check: dict[str, list[dict]] = defaultdict(list)
    for c in s["checks"]:
        by_check[c["check"]].append(c)
    lines = ["", f"## Every check ({len(s['checks'])})", "", "| check | area | outcomes | not passed |",
             "|---|---|---|---|"]
    for name, cases in by_check.items():
        tally = Counter(c["outcome"] for c in cases)
        bad = [c for c in cases if c["outcome"] != "passed"]
        listed = ", ".join(f"`{c['case'] or c['check']}` {c['outcome']}" for c in bad[:CASES_LISTED_UP_TO])
        lines.append(f"| `{name}` | {cases[0]['area']} | {counts_text(tally)} | {cell(listed)} |")
    read = [f"- `{name_of(c)}`: {key}: {cell(value)}"
            for c in s["checks"] for key, value in (c.get("read") or {}).items()]
    return lines + (["", "What the checks report they read:", "", *read] if read else [])


def name_of(case: dict) -> str:
    return f"{case['check']}[{case['case']}]" if case["case"] else case["check"]


def nodes_section(s: dict) -> list[str]:
    listed = s.get("node_list", [])
    if not listed:
        return []
    lines = ["", f"## Nodes ({len(listed)})", "", "| node | role | address | instance | pod CIDRs | state |",
             "|---|---|---|---|---|---|"]
    lines += [f"| {n['name']} | {n['role']} | {n['ip']} | {n['instance']} | {', '.join(n['pod_cidrs'])} | "
              f"{'ready' if n['ready'] else 'NOT READY'}{(': ' + cell(n['unreachable'])) if n['unreachable'] else ''} |"
              for n in listed]
    return lines
