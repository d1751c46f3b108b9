"""The cause pages that travel with every report: each rendered from the catalog's facts
(seatrials/causes.yaml: title, severity, origin, symptom, signals, what the cause requires
and what rules it out, fix) and the page's prose (docs/causes/<id>.md: why, how seatrials
sees it, details), so no fact is written twice. A report folder holds causes/<id>.html
and causes/<id>.md for every cause, and causes/index.html; links between pages are
relative, so they work offline, from a CI artifact and from Allure."""

from __future__ import annotations

import html
import re
from functools import cache
from pathlib import Path

from seatrials import causes

ORIGINS = {"field-report": "the field report this tool exists to catch", "added": "added beyond the field report",
           "seatrials": "the trial itself (its probes), or the catch-all"}
# (field, heading): the catalog's facts in the order a reader needs them; requires and ruled_out_by
# where the catalog carries them
FACTS = (("symptom", "What you see"), ("signals", "Signals seatrials reads"), ("requires", "Named only when"),
         ("ruled_out_by", "Ruled out by"), ("fix", "Fix"))
PAGE_CSS = """body{font:15px/1.5 "DejaVu Sans",system-ui,sans-serif;color:#212121;max-width:52em;margin:1.5em auto;
padding:0 1em}h1{font-size:1.5em;line-height:1.3}h2{font-size:1.15em;margin-top:1.6em}code,pre{font-family:
"DejaVu Sans Mono",monospace;font-size:.9em}pre{background:#f5f5f5;padding:.6em .8em;overflow-x:auto;
white-space:pre-wrap;overflow-wrap:anywhere}code{overflow-wrap:anywhere}.facts{border:1px solid #cfd8dc;
border-radius:6px;padding:.2em 1em 1em;background:#fafcfd}.sev{display:inline-block;padding:0 .5em;border-radius:3px;
color:#fff;font-size:.8em;text-transform:uppercase;vertical-align:middle}.sev-critical{background:#4a0072}
.sev-high{background:#b71c1c}.sev-medium{background:#e65100}.sev-low{background:#546e7a}nav{font-size:.9em}
nav a{margin-right:1em}"""


def origin_text(origin: str) -> str:
    return ORIGINS.get(origin, origin)


def facts_of(cause: causes.Cause) -> list[tuple[str, str | tuple[str, ...]]]:
    return [(heading, value) for name, heading in FACTS if (value := getattr(cause, name, None))]


@cache
def prose(cause_id: str) -> str:
    """The page's own text (its title, severity and origin are the catalog's)."""
    path = causes.DOCS_DIR / f"{cause_id}.md"
    return path.read_text().strip() + "\n" if path.exists() else ""


# ---------------------------------------------------------------- a small Markdown subset to HTML
def inline(text: str) -> str:
    """`code`, **bold**, *emphasis* and [links](target); links to sibling .md pages go to their .html."""
    parts = text.split("`")
    out = []
    for k, part in enumerate(parts):
        if k % 2:
            out.append(f"<code>{html.escape(part)}</code>")
            continue
        part = html.escape(part, quote=False)
        part = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", part)
        part = re.sub(r"(?<![\w*])\*(?!\s)(.+?)(?<!\s)\*(?![\w*])", r"<em>\1</em>", part)
        part = re.sub(r"\[([^\]]+)\]\(([^)\s]+)\)", lambda m: f'<a href="{local_link(m.group(2))}">{m.group(1)}</a>',
                      part)
        out.append(part)
    return "".join(out)


def local_link(target: str) -> str:
    if "://" in target or target.startswith("#"):
        return target
    name, _, anchor = target.partition("#")
    name = Path(name).name.removesuffix(".md") + ".html" if name.endswith(".md") else name
    return name + (f"#{anchor}" if anchor else "")


def markdown_html(text: str) -> str:
    """Headings, paragraphs, lists (items may continue on indented lines) and indented code blocks."""
    out: list[str] = []
    block: list[str] = []
    kind = ""

    def close():
        nonlocal block, kind
        if kind == "p":
            out.append(f"<p>{inline(' '.join(block))}</p>")
        elif kind == "ul":
            out.append("<ul>" + "".join(f"<li>{inline(item)}</li>" for item in block) + "</ul>")
        elif kind == "pre":
            out.append(f"<pre>{html.escape(chr(10).join(block))}</pre>")
        block, kind = [], ""

    for line in text.splitlines():
        if not line.strip():
            if kind != "pre":
                close()
            else:
                block.append("")
        elif line.startswith("    ") and kind in ("", "pre"):
            kind = "pre"
            block.append(line[4:])
        elif match := re.match(r"(#{1,4}) (.*)", line):
            close()
            level = max(2, len(match.group(1)))  # the title is the catalog's
            out.append(f"<h{level}>{inline(match.group(2))}</h{level}>")
        elif match := re.match(r"[-*] (.*)", line):
            if kind != "ul":
                close()
                kind = "ul"
            block.append(match.group(1))
        elif kind == "ul":
            block[-1] += " " + line.strip()
        else:
            if kind == "pre":
                close()
            kind = "p"
            block.append(line.strip())
    if kind == "pre":
        while block and not block[-1]:
            block.pop()
    close()
    return "\n".join(out)


# ---------------------------------------------------------------- pages
def facts_html(cause: causes.Cause) -> str:
    rows = []
    for heading, value in facts_of(cause):
        body = ("<ul>" + "".join(f"<li>{inline(v)}</li>" for v in value) + "</ul>") if isinstance(value, tuple) \
            else f"<p>{inline(value)}</p>"
        rows.append(f"<h2>{html.escape(heading)}</h2>{body}")
    return "".join(rows)


NAV = '<nav><a href="../signoff.html">&larr; the sign-off report</a><a href="index.html">all causes</a></nav>'


@cache
def page_html(cause_id: str, nav: bool = True) -> str:
    """The page; without its links to the report folder where it travels alone (an Allure attachment)."""
    c = causes.cause(cause_id)
    e = html.escape
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>{e(c.id)}: {e(c.title)}</title>
<style>{PAGE_CSS}</style></head><body>
{NAV if nav else ""}
<h1>{e(c.title)}</h1>
<p><span class="sev sev-{e(c.severity)}">{e(c.severity)}</span> cause id <code>{e(c.id)}</code>; origin:
{e(origin_text(c.origin))}</p>
<section class="facts">{facts_html(c)}</section>
<section class="prose">{markdown_html(prose(c.id))}</section>
</body></html>
"""


def page_markdown(cause_id: str) -> str:
    c = causes.cause(cause_id)
    lines = [f"# {c.title}", "", f"**Severity:** {c.severity}. **Cause id:** `{c.id}`. **Origin:** "
             f"{origin_text(c.origin)}.", ""]
    for heading, value in facts_of(c):
        lines += [f"## {heading}", ""]
        lines += [f"- {v}" for v in value] if isinstance(value, tuple) else [value]
        lines.append("")
    return "\n".join(lines) + "\n" + prose(c.id)


def index_html() -> str:
    e = html.escape
    rows = "".join(f'<li><span class="sev sev-{e(c.severity)}">{e(c.severity)}</span> <a href="{e(c.id)}.html">'
                   f"{e(c.title)}</a> <code>{e(c.id)}</code></li>" for c in causes.catalog().values())
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>seatrials: the documented causes</title><style>{PAGE_CSS} li{{margin:.4em 0}}</style></head><body>
<nav><a href="../signoff.html">&larr; the sign-off report</a></nav><h1>The documented causes</h1><ul>{rows}</ul>
</body></html>
"""


def write_pages(out_dir: Path) -> None:
    pages = out_dir / "causes"
    pages.mkdir(parents=True, exist_ok=True)
    for cause_id in causes.catalog():
        (pages / f"{cause_id}.html").write_text(page_html(cause_id))
        (pages / f"{cause_id}.md").write_text(page_markdown(cause_id))
    (pages / "index.html").write_text(index_html())
