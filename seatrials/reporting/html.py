"""signoff.html: the decision on the first screen, the detail below it, no script.

First screen: the verdict and why; each cause with the nodes it concerns in words and
its fix with their ids; what was not verified and why; beside it, who ran what against
which cluster. Below: the failures grouped by cause then by node, the reachability
pictures in a grid, every check (passes folded away), the nodes.
"""

from __future__ import annotations

import html
from collections import Counter, defaultdict
from importlib import resources

from seatrials.network.cases import first_of
from seatrials.reporting import svg
from seatrials.reporting.baseline import described, exit_words, listed
from seatrials.reporting.pages import origin_text

e = html.escape
VERDICT_LOOK = {"SIGNED OFF": ("signed", "\u2713"), "NOT SIGNED OFF": ("not-signed", "\u2717"),
                "INCOMPLETE": ("incomplete", "!"), "INTERRUPTED": ("incomplete", "!"), "PARTIAL": ("partial", "~"),
                "NOTHING CHECKED": ("partial", "\u2205")}
OUTCOME_LOOK = {"passed": "\u2713", "failed": "\u2717", "error": "!", "skipped": "\u2013", "not applicable": "\u2205"}
OUTCOME_WORDS = {"skipped": "not checked"}
OUTCOME_ORDER = ["passed", "failed", "error", "skipped", "not applicable"]


def ordered(tally: dict[str, int]) -> list[tuple[str, int]]:
    """Outcome counts in a fixed order: passed, failed, error, not checked."""
    return sorted(tally.items(), key=lambda kv: OUTCOME_ORDER.index(kv[0]) if kv[0] in OUTCOME_ORDER else 9)


def counts_html(tally: dict[str, int]) -> str:
    return " ".join(f'<span class="o-{o.replace(" ", "-")}">{OUTCOME_LOOK.get(o, "?")} {n} '
                    f'{OUTCOME_WORDS.get(o, o)}</span>' for o, n in ordered(tally))
FIRST_SCREEN_LINES = 6  # nodes named (and fix commands shown) on the first screen, shared by the causes
FAILURES_PER_NODE = 100  # listed per node; signoff.json keeps them all
GROUP_OPEN_UP_TO = 20  # failures of a node shown unfolded
CASES_LISTED_UP_TO = 400  # per check function; above, counts only
NODES_OPEN_UP_TO = 12


def css() -> str:
    return resources.files("seatrials.reporting").joinpath("report.css").read_text()


def html_report(s: dict) -> str:
    look, symbol = VERDICT_LOOK.get(s["verdict"], ("incomplete", "!"))
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{e(s['verdict'])}: seatrials sign-off {e(s['run_id'])}</title><style>{css()}</style></head><body>
<header class="masthead v-{look}" id="top"><div class="badge" id="verdict">{symbol} {e(s['verdict'])}</div>
<div class="what"><h1>Sign-off of <code>{e(s['context'] or '?')}</code> at <code>{e(s['server'] or '?')}</code></h1>
<p class="sub">{masthead_line(s)}</p></div></header>
<div class="first"><main class="decision">{why(s)}{since_first(s)}{causes_first(s)}{errors_first(s)}{areas(s)}</main>
<aside class="facts">{not_verified(s)}{run_facts(s)}{cluster_facts(s)}</aside></div>
{since_detail(s)}{failures(s)}{reachability(s)}{checks(s)}{nodes(s)}
<footer><a href="signoff.json">signoff.json</a> (schema {s.get('schema_version', 1)}, see docs/report-schema.md)
<a href="signoff.md">signoff.md</a> <a href="causes/index.html">the documented causes</a>
<a href="#top">top</a></footer>
</body></html>
"""


def masthead_line(s: dict) -> str:
    parts = [f"run <code>{e(s['run_id'] or 'none')}</code>", f"{e(s['started'])} to {e(s.get('ended', '?'))}",
             f"{s['wall_seconds']} s", f"{s['nodes']} nodes", exit_words(s)]
    return " \u00b7 ".join(parts)


# ---------------------------------------------------------------- first screen: the decision
def why(s: dict) -> str:
    reasons = "".join(f"<li>{e(r)}</li>" for r in s["verdict_reasons"])
    return f'<section id="why"><h2>Why</h2><ul class="reasons">{reasons}</ul></section>'


def since_first(s: dict) -> str:
    """--baseline: how many cases are new, fixed, still failing and flaky, each linked to its list below."""
    since = s.get("baseline")
    if not since:
        return ""
    chips = " ".join(f'<a class="ch ch-{slug(h)}{" none" if not lines else ""}" href="#since-{slug(h)}">'
                     f"{len(lines)} {e(h)}</a>" for h, lines in listed(since))
    policy = (f'<p class="policy-line{" excused" if s["exit_code"] == 0 else ""}">{e(since["exit_policy"])}</p>'
              if since["exit_policy"] else "")
    return (f'<section id="since"><h2>Since the last run</h2><p class="changes">{chips}</p>'
            f'<p class="policy">{e(described(since))}</p>{policy}</section>')


def since_detail(s: dict) -> str:
    since = s.get("baseline")
    if not since:
        return ""
    parts = []
    for heading, lines in listed(since):
        items = "".join(f"<li><code>{e(x)}</code></li>" for x in lines[:CASES_LISTED_UP_TO])
        more = f'<li class="more">and {len(lines) - CASES_LISTED_UP_TO} more, in signoff.json</li>' if len(
            lines) > CASES_LISTED_UP_TO else ""
        parts.append(f'<h3 id="since-{slug(heading)}">{e(heading.capitalize())} <span class="count">{len(lines)}'
                     f'</span></h3>' + (f"<ul>{items}{more}</ul>" if lines else '<p class="none">None.</p>'))
    causes = ", ".join(f"<code>{e(c)}</code> {e(what)}" for c, what in since["causes"].items())
    return (f'<section id="since-detail"><h2>Since the last run, case by case</h2>{"".join(parts)}'
            + (f"<p>Causes: {causes}.</p>" if causes else "") + "</section>")


def slug(heading: str) -> str:
    return heading.replace(" ", "-")


def areas(s: dict) -> str:
    """What the sign-off covers, area by area."""
    rows = []
    for area, tally in s.get("areas", {}).items():
        rows.append(f"<tr><th>{e(area)}</th><td>{counts_html(tally) or 'no check ran'}</td></tr>")
    return (f'<section id="areas"><h2>What was checked</h2><table class="areas">{"".join(rows)}</table>'
            '<p class="more-links"><a href="#reachability">reachability pictures</a> <a href="#checks">every check'
            "</a></p></section>") if rows else ""


def node_words(subject: dict) -> str:
    ids = " \u00b7 ".join(e(x) for x in (subject["instance"], subject["ip"], subject["role"]) if x)
    return f'<b>{e(subject["node"])}</b> <span class="ids">({ids})</span>'


def causes_first(s: dict) -> str:
    found = s.get("causes", [])
    if not found:
        return '<section id="causes"><h2>Causes found</h2><p class="none">None: no check failed.</p></section>'
    shown = max(1, min(3, FIRST_SCREEN_LINES // len(found)))
    return (f'<section id="causes"><h2>Causes found <span class="count">{len(found)}</span></h2>'
            + "".join(cause_card(c, shown) for c in found) + "</section>")


def cause_card(c: dict, shown: int) -> str:
    """A cause on the first screen: the nodes it concerns in words, what shows its shape, its fix."""
    subjects = c["subjects"][:shown]
    lines = [f"<li>{node_words(x)}: {e(x['what'])}"
             + (f' <span class="n">{x["failures"]} failed checks</span>' if x["failures"] > 1 else "") + "</li>"
             for x in subjects]
    lines += [f"<li><b>cluster-wide</b>: {e(x['what'])}</li>" for x in c["cluster_wide"][:shown]]
    rest = len(c["subjects"]) - len(subjects)
    if rest > 0:
        lines[-1] = lines[-1].removesuffix("</li>") + (f' <a class="more" href="#fail-{e(c["id"])}">and {rest} more '
                                                      f"{plural(rest, 'node')}</a></li>")
    told = {x["what"] for x in c["subjects"]}
    patterns = "".join(f'<p class="pattern">Pattern: {e(p)}</p>' for p in [p for p in c["patterns"]
                                                                           if p not in told][:1])
    hints = "".join(f'<p class="pattern">Hint: {e(h)}</p>' for h in c["hints"][:1])
    return f"""<article class="cause sev-{e(c['severity'])}" id="cause-{e(c['id'])}">
<h3><span class="sev">{e(c['severity'])}</span> <a href="{e(c['page'])}">{e(c['title'])}</a>
<span class="meta"><code>{e(c['id'])}</code> \u00b7 {c['failures']} failed {plural(c['failures'], 'check')} \u00b7
<a href="#fail-{e(c['id'])}">the evidence</a></span></h3>
<ul class="subjects">{''.join(lines)}</ul>{patterns}{hints}{fix_block(c, shown)}</article>"""


def fix_block(c: dict, shown: int) -> str:
    commands = c["fix_commands"][:shown]
    more = len(c["fix_commands"]) - len(commands)
    shown = "".join(f'<pre class="cmd">{e(x)}</pre>' for x in commands)
    if more > 0:
        shown += f'<p class="more"><a href="#fix-{e(c["id"])}">and {more} more commands</a></p>'
    return f'<div class="fix"><b>Fix.</b> {e(c["fix"])}{shown}</div>'


def errors_first(s: dict) -> str:
    errors = s.get("errors", [])
    if not errors:
        return ""
    items = "".join(f"<li><code>{e(x['check'])}</code>: {e(x['summary'])}</li>" for x in errors[:5])
    more = f'<li class="more">and {len(errors) - 5} more</li>' if len(errors) > 5 else ""
    return (f'<section id="errors"><h2>Errors <span class="count">{len(errors)}</span></h2><p>seatrials could not '
            f"judge these checks (a setup or seatrials problem, not a cause):</p><ul>{items}{more}</ul></section>")


def not_verified(s: dict) -> str:
    grouped = s.get("not_verified_reasons", {})
    partly = s.get("partly_checked", [])
    if not grouped and not partly:
        return '<section id="not-verified"><h2>Not verified</h2><p class="none">Nothing: every check ran.</p></section>'
    partly_by_area = Counter(p["area"] or "other" for p in partly)
    items = []
    for area in sorted(set(grouped) | set(partly_by_area)):
        required = ' <span class="req">required</span>' if area in s.get("required_areas", []) else ""
        parts = []
        if reasons := grouped.get(area):
            total = sum(len(r["cases"]) for r in reasons)
            others = f"; {len(reasons) - 1} other reasons" if len(reasons) > 1 else ""
            parts.append(f"{total} {plural(total, 'check')} not checked: {e(reasons[0]['reason'])}"
                         + (f" ({len(reasons[0]['cases'])})" if total > 1 else "") + e(others))
        if n := partly_by_area.get(area):
            parts.append(f"{n} {plural(n, 'check')} passed on what could be read, with signals not read")
        items.append(f'<li><b>{e(area)}</b>{required}: {"; ".join(parts)} (<a href="#not-verified-detail">'
                     "detail</a>)</li>")
    policy = ", ".join(s.get("required_areas", [])) or "none required (lenient)"
    return (f'<section id="not-verified"><h2>Not verified</h2><ul>{"".join(items)}</ul>'
            f'<p class="policy">Sign-off policy (--require): {e(policy)}.</p></section>')


def plural(n: int, word: str) -> str:
    return word if n == 1 else word + "s"


def run_facts(s: dict) -> str:
    t = s.get("tool", {})
    options = ", ".join(f"{k}={v}" for k, v in s.get("options", {}).items()) or "defaults"
    rows = [("tool", f"{t.get('name', 'seatrials')} {t.get('version', '?')}; Python {t.get('python', '?')}, "
                     f"pytest {t.get('pytest', '?')}"),
            ("command", s.get("command", "")), ("options", options),
            ("started", s["started"]), ("ended", s.get("ended", "")),
            ("took", f"{s['wall_seconds']} s, {s['api_requests']} API requests")]
    return "<h2>Run</h2>" + definitions(rows, code={"command", "options"})


def cluster_facts(s: dict) -> str:
    fp = s.get("cluster", {})
    if not fp:
        return "<h2>Cluster</h2><p class=\"none\">Not reached.</p>"
    nodes = s.get("node_list", [])
    roles = Counter(n["role"] for n in nodes)
    rows = [("fingerprint", s.get("fingerprint_hash", "")),
            ("version", fp.get("version", "")),
            ("nodes", f"{len(nodes)}: " + ", ".join(f"{n} {plural(n, r)}" for r, n in sorted(roles.items())))]
    for key in ("masters", "workers"):
        if key in fp:
            rows.append((key, first_of(fp[key], 3)))
    rows += [(k, first_of(v, 3) if isinstance(v, list) else str(v)) for k, v in fp.items()
             if k not in ("version", "masters", "workers")]
    return "<h2>Cluster</h2>" + definitions(rows, code={"fingerprint"})


def definitions(rows: list[tuple[str, str]], code: set[str] = frozenset()) -> str:
    body = "".join(f"<dt>{e(k)}</dt><dd>{f'<code>{e(v)}</code>' if k in code else e(v)}</dd>" for k, v in rows)
    return f"<dl>{body}</dl>"


# ---------------------------------------------------------------- below: the detail
def failures(s: dict) -> str:
    found = s.get("causes", [])
    if not found:
        return ""
    by_name = {c["check"] if not c["case"] else f"{c['check']}[{c['case']}]": c for c in s["checks"]}
    blocks = []
    for c in found:
        groups = [(node_words(x), x["checks"]) for x in c["subjects"]]
        if c["cluster_wide"]:
            groups.append(("<b>cluster-wide</b>", [x["check"] for x in c["cluster_wide"]]))
        body = "".join(node_group(title, names, by_name, open_=k < 3 and len(names) <= GROUP_OPEN_UP_TO)
                       for k, (title, names) in enumerate(groups))
        commands = "".join(f"<pre class=\"cmd\">{e(x)}</pre>" for x in c["fix_commands"])
        corroboration = "".join(f"<li>{e(x)}</li>" for x in c["corroboration"])
        blocks.append(f"""<div class="cause-block sev-{e(c['severity'])}" id="fail-{e(c['id'])}">
<h3><span class="sev">{e(c['severity'])}</span> {e(c['title'])} <span class="n">{c['failures']} failed checks on
{len(c['subjects'])} {plural(len(c['subjects']), 'node')}</span></h3>
<p class="meta"><code>{e(c['id'])}</code>; origin: {e(origin_text(c['origin']))};
<a href="{e(c['page'])}">the cause page</a></p>
{''.join(f'<p class="pattern">Pattern: {e(p)}</p>' for p in c['patterns'])}
{f'<p>Corroborated by:</p><ul>{corroboration}</ul>' if corroboration else ''}
{''.join(f'<p class="pattern">Hint: {e(h)}</p>' for h in c['hints'])}
<div class="fix" id="fix-{e(c['id'])}"><b>Fix.</b> {e(c['fix'])}{commands}</div>{body}</div>""")
    return f'<section id="failures"><h2>Failures by cause, then by node</h2>{"".join(blocks)}</section>'


def node_group(title: str, names: list[str], by_name: dict, open_: bool) -> str:
    shown = names[:FAILURES_PER_NODE]
    items = "".join(failure_item(by_name[n]) for n in shown if n in by_name)
    more = (f'<li class="more">and {len(names) - len(shown)} more failures of this node, all in signoff.json</li>'
            if len(names) > len(shown) else "")
    return (f'<details class="node"{" open" if open_ else ""}><summary>{title} <span class="n">{len(names)} failed '
            f'{plural(len(names), "check")}</span></summary><ul class="fails">{items}{more}</ul></details>')


def failure_item(c: dict) -> str:
    evidence = [x for x in c.get("evidence", []) if not x.startswith("pattern: ")] or [c.get("summary", "")]
    lines = "".join(f"<li>{e(x)}</li>" for x in evidence)
    return f'<li><code class="case">{e(case_name(c))}</code><ul class="evidence">{lines}</ul></li>'


def case_name(c: dict) -> str:
    return f"{c['check']}[{c['case']}]" if c["case"] else c["check"]


def reachability(s: dict) -> str:
    matrix = s.get("matrix", {})
    if not matrix:
        return ""
    present = {code for m in matrix.values() for row in m["rows"].values() for code in row}
    node_to_node = [k for k, m in matrix.items() if m["sources"] == m["targets"]]  # the square pictures first
    order = node_to_node + [k for k in matrix if k not in node_to_node]
    figures = "".join(figure(kind, matrix[kind]) for kind in order)
    large = any(max(len(m["sources"]), len(m["targets"])) > svg.SYMBOLS_UP_TO for m in matrix.values())
    return f"""<section id="reachability"><h2>Reachability</h2>{legend(present, large)}
<div class="pictures">{figures}</div></section>"""


def legend(present: set[str], large: bool) -> str:
    items = []
    for fill, symbol, ink, meaning in svg.legend_items(present):
        swatch_style = f"background:{fill};color:{ink}" if fill != "#ffffff" else ""
        cls = "swatch nopath" if not swatch_style else "swatch"
        items.append(f'<li><span class="{cls}" style="{swatch_style}">{e(symbol)}</span> {e(meaning)}</li>')
    notes = ["Rows: from (the source node); columns: to (the target node or address)."]
    if " " in present:
        notes.append("Hatched cells sit on the diagonal of pictures of paths between two different nodes; in the "
                     "other node-to-node pictures the diagonal is measured: a node to a pod on itself.")
    if large:
        notes.append(f"Above {svg.SYMBOLS_UP_TO} nodes a picture is a heatmap without symbols (lightness tells ok "
                     "from failed); its mostly failing rows and columns are named in the margins.")
    return f'<ul class="legend">{"".join(items)}</ul><p class="legend-note">{" ".join(notes)}</p>'


def figure(kind: str, m: dict) -> str:
    tally = Counter(code for row in m["rows"].values() for code in row if code != " ")
    parts = ", ".join(f"{n} {svg.STYLE.get(code, svg.STYLE['e'])[3].split(':')[0]}" for code, n in tally.most_common())
    wide = max(len(m["sources"]), len(m["targets"])) > svg.SYMBOLS_UP_TO
    return (f'<figure class="picture{" wide" if wide else ""}" id="matrix-{e(kind)}"><figcaption><b>{e(kind)}</b>: '
            f'{e(m["title"])}<span class="tally">{sum(tally.values())} paths: {e(parts)}</span></figcaption>'
            f'<div class="pic">{svg.matrix_svg(kind, m)}<a class="file" href="matrix-{e(kind)}.svg">picture file</a>'
            f"</div>{named_list(m) if wide else ''}</figure>")


def named_list(m: dict) -> str:
    """Beside a heatmap, the lines it names, in words."""
    sources, targets = svg.named_lines(m)
    items = []
    for heading, lines in (("from", sources), ("to", targets)):
        for not_run, what in ((False, "failing"), (True, "not run")):
            chosen = [x.text for x in lines if x.not_run == not_run]
            if chosen:
                items.append(f"<li><b>{e(what)}, {e(heading)}</b>: {e(first_of(chosen, 40))}</li>")
    return f'<ul class="named">{"".join(items) or "<li>nothing failed</li>"}</ul>'



def checks(s: dict) -> str:
    by_check: dict[str, list[dict]] = defaultdict(list)
    for c in s["checks"]:
        by_check[c["check"]].append(c)
    rows = []
    for name, cases in by_check.items():
        tally = Counter(c["outcome"] for c in cases)
        bad = tally["failed"] + tally["error"]
        counts = counts_html(tally)
        if len(cases) <= CASES_LISTED_UP_TO:
            listed = case_chips(cases)
        else:
            not_passed = [c for c in cases if c["outcome"] != "passed"]
            listed = case_chips(not_passed[:CASES_LISTED_UP_TO]) + (
                f"<p>{len(cases) - min(len(not_passed), CASES_LISTED_UP_TO)} more cases "
                f"({tally['passed']} passed), every one in signoff.json.</p>")
        read = "".join(f"<li>{e(c['case'] or name)}: <b>{e(key)}</b>: {e(value)}</li>"
                       for c in cases for key, value in (c.get("read") or {}).items())
        rows.append(f'<details class="check{" bad" if bad else ""}"{" open" if bad else ""}><summary>'
                    f'<code>{e(name)}</code> <span class="area">{e(cases[0]["area"])}</span> {counts}</summary>'
                    f'{listed}{f"<ul class=read>{read}</ul>" if read else ""}</details>')
    partly = "".join(f"<li><code>{e(p['check'])}</code>: {e('; '.join(p['notes']))}</li>"
                     for p in s.get("partly_checked", []))
    skipped = "".join(f"<li><b>{e(area)}</b>: {e(r['reason'])}: {e(first_of(r['cases'], 12))}</li>"
                      for area, reasons in s.get("not_verified_reasons", {}).items() for r in reasons)
    detail = ""
    if partly or skipped:
        detail = (f'<div id="not-verified-detail"><h3>Not checked, and why</h3><ul>{skipped}</ul>'
                  + (f"<h3>Passed with signals not read</h3><ul>{partly}</ul>" if partly else "") + "</div>")
    return (f'<section id="checks"><h2>Every check <span class="count">{len(s["checks"])}</span></h2>'
            f'<p class="legend-note">Checks with failures are open; the others fold away.</p>{"".join(rows)}{detail}'
            "</section>")


def case_chips(cases: list[dict]) -> str:
    chips = "".join(f'<li class="o-{e(c["outcome"])}" title="{e(OUTCOME_WORDS.get(c["outcome"], c["outcome"]))}">'
                    f'{OUTCOME_LOOK.get(c["outcome"], "?")} {e(c["case"] or c["check"])}</li>' for c in cases)
    return f'<ul class="chips">{chips}</ul>'


def nodes(s: dict) -> str:
    listed = s.get("node_list", [])
    if not listed:
        return ""
    rows = "".join(f"<tr><td>{e(n['name'])}</td><td>{e(n['role'])}</td><td>{e(n['ip'])}</td><td>{e(n['instance'])}"
                   f"</td><td>{e(', '.join(n['pod_cidrs']))}</td><td>{'ready' if n['ready'] else 'NOT READY'}"
                   f"{(': ' + e(n['unreachable'])) if n['unreachable'] else ''}</td></tr>" for n in listed)
    table = (f"<table><thead><tr><th>node</th><th>role</th><th>address</th><th>instance</th><th>pod CIDRs</th>"
             f"<th>state</th></tr></thead><tbody>{rows}</tbody></table>")
    opened = " open" if len(listed) <= NODES_OPEN_UP_TO else ""
    return (f'<section id="nodes"><h2>Nodes <span class="count">{len(listed)}</span></h2><details{opened}>'
            f"<summary>every node, its address, instance and pod CIDRs</summary>{table}</details></section>")
