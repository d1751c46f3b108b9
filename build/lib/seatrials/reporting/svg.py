"""The reachability matrices as pictures that read at any size.

Up to SYMBOLS_UP_TO nodes each cell is a swatch with the outcome's symbol (never colour
alone) and a tooltip; above it a heatmap (one PNG pixel block per cell, lightness tells
ok from failed) whose failing rows and columns are named in the margins with leader
lines. Labels use a monospace font so their width is known: nothing is clipped.
"""

from __future__ import annotations

import base64
import html
import struct
import zlib
from dataclasses import dataclass

SYMBOLS_UP_TO = 30  # nodes; the pair-case threshold of the scale work may take this place
FONT = "DejaVu Sans Mono, Menlo, Consolas, monospace"
FONT_SIZE = 12
CHAR_W = 0.61 * FONT_SIZE  # DejaVu Sans Mono advances 0.602 em
CELL = 26
LABEL_GAP = 14  # px between two labels in a heatmap margin
MAX_LABELS = 30
# code -> (fill, symbol, symbol colour, meaning); see signoff.OUTCOME_CODES
STYLE = {
    "o": ("#c8e6c9", "\u2713", "#1b5e20", "ok"),
    "t": ("#b71c1c", "T", "#ffffff", "timeout"),
    "r": ("#d84315", "R", "#ffffff", "refused"),
    "n": ("#6a1b9a", "N", "#ffffff", "no route"),
    "e": ("#3e2723", "E", "#ffffff", "error"),
    "-": ("#757575", "\u2013", "#ffffff", "not run: the probe did not run"),
    " ": ("#ffffff", "", "#000000", "no such path: a node to itself"),
}
FAILED = "trne"
e = html.escape


def text_width(text: str) -> float:
    return len(text) * CHAR_W


def label(x: float, y: float, text: str, anchor: str = "start", extra: str = "") -> str:
    return f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}"{extra}>{e(text)}</text>'


def svg(width: float, height: float, body: list[str], title: str = "", kind: str = "") -> str:
    head = f'<text x="4" y="16" font-size="14" font-weight="bold">{e(title)}</text>' if title else ""
    shift = 26 if title else 0
    width = max(width, text_width(title) * 1.2 + 12) if title else width
    return (f'<svg xmlns="http://www.w3.org/2000/svg" class="matrix" data-kind="{e(kind)}" width="{width:.0f}" '
            f'height="{height + shift:.0f}" viewBox="0 0 {width:.0f} {height + shift:.0f}" font-family="{FONT}" '
            f'font-size="{FONT_SIZE}" role="img"><title>{e(title or kind)}</title>{hatch(kind)}{head}'
            f'<g transform="translate(0,{shift})">{"".join(body)}</g></svg>')


def hatch(kind: str) -> str:
    return (f'<defs><pattern id="nopath-{e(kind)}" width="6" height="6" patternUnits="userSpaceOnUse" '
            'patternTransform="rotate(45)"><rect width="6" height="6" fill="#fafafa"/>'
            '<line x1="0" y1="0" x2="0" y2="6" stroke="#bdbdbd" stroke-width="2"/></pattern></defs>')


def axes(label_w: float, top: float, down: str = "from \u2193", across: str = "to \u2192") -> list[str]:
    """Which way the picture reads, in its empty top-left corner."""
    return [label(4, top - 6, down, extra=' fill="#555"'), label(label_w - 4, top - 6, across, "end", ' fill="#555"')]


# ---------------------------------------------------------------- small: a symbol per cell
def symbol_grid(kind: str, rows: list[str], cols: list[str], cell_of, title: str = "", footer: str = "") -> str:
    """cell_of(row, col) -> (fill, symbol, symbol colour, tooltip) or None for an empty cell."""
    label_w = max(90.0, 12 + max((text_width(r) for r in rows), default=0))
    slant = max((text_width(c) for c in cols), default=0) * 0.7071  # column labels at -45 degrees
    top = slant + 16
    right = max((label_w + (j + 0.5) * CELL + text_width(c) * 0.7071 for j, c in enumerate(cols)), default=0)
    width = max(label_w + len(cols) * CELL, right) + 8
    body = axes(label_w, top)
    for j, col in enumerate(cols):
        x = label_w + (j + 0.5) * CELL
        body.append(label(0, 0, col, extra=f' transform="translate({x:.1f},{top - 6:.1f}) rotate(-45)"'))
    for i, row in enumerate(rows):
        y = top + i * CELL
        body.append(label(label_w - 6, y + CELL / 2 + 4, row, "end"))
        for j, col in enumerate(cols):
            if (look := cell_of(row, col)) is None:
                continue
            fill, symbol, ink, tip = look
            x = label_w + j * CELL
            body.append(f'<rect x="{x + 1}" y="{y + 1:.1f}" width="{CELL - 2}" height="{CELL - 2}" fill="{fill}" '
                        f'stroke="#ffffff"><title>{e(tip)}</title></rect>')
            if symbol:
                body.append(label(x + CELL / 2, y + CELL / 2 + 5, symbol, "middle",
                                  f' fill="{ink}" font-size="14" font-weight="bold" pointer-events="none"'))
    height = top + len(rows) * CELL + 6
    if footer:
        body.append(label(4, height + 14, footer))
        width, height = max(width, text_width(footer) + 12), height + 22
    return svg(width, height, body, title, kind)


def matrix_cells(kind: str, m: dict):
    def cell_of(source: str, target: str):
        code = m["rows"][source][m["targets"].index(target)]
        fill, symbol, ink, meaning = STYLE.get(code, STYLE["e"])
        if code == " ":
            fill = f"url(#nopath-{kind})"
        return fill, symbol, ink, f"{source} \u2192 {target}: {meaning}"
    return cell_of


# ---------------------------------------------------------------- large: a heatmap with named failing lines
def png(width: int, height: int, rows: list[bytes], palette: list[str]) -> bytes:
    """An 8-bit palette PNG (rows of palette indices), written with zlib alone."""
    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    colours = b"".join(bytes.fromhex(c.lstrip("#")) for c in palette)
    raw = b"".join(b"\x00" + row for row in rows)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 3, 0, 0, 0))
            + chunk(b"PLTE", colours) + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b""))


def heat_png(m: dict, sx: int, sy: int) -> bytes:
    codes = list(STYLE)
    table = bytes.maketrans("".join(codes).encode(), bytes(range(len(codes))))
    palette = [STYLE[c][0] if c != " " else "#eeeeee" for c in codes]
    rows = []
    for source in m["sources"]:
        line = m["rows"][source].encode().translate(table)
        line = line if sx == 1 else b"".join(bytes([b]) * sx for b in line)
        rows += [line] * sy
    return png(len(m["targets"]) * sx, len(m["sources"]) * sy, rows, palette)


@dataclass
class Line:
    """A row or column of a heatmap worth naming: mostly failed, or not run at all."""

    index: int
    name: str
    failed: int
    not_run: bool

    @property
    def text(self) -> str:
        if self.not_run:
            return f"{self.name} (not run)"
        return f"{self.name} ({self.failed} failed)" if self.failed else self.name


def tallies(lines: list[str]) -> list[tuple[int, int, int]]:
    """(failed, measured, not run) of each line of outcome codes."""
    return [(sum(line.count(c) for c in FAILED), len(line) - line.count(" ") - line.count("-"), line.count("-"))
            for line in lines]


def worth_naming(names: list[str], lines: list[str], scattered: bool) -> list[Line]:
    """Lines mostly failing or not run at all; when `scattered` and no line is mostly failing, the worst few."""
    counted = tallies(lines)
    named = [Line(i, names[i], f, not m and bool(n)) for i, (f, m, n) in enumerate(counted)
             if (m and f * 2 >= m) or (not m and n)]
    if scattered and not any(not x.not_run for x in named):
        worst = sorted((i for i, (f, _, _) in enumerate(counted) if f), key=lambda i: -counted[i][0])[:12]
        named += [Line(i, names[i], counted[i][0], False) for i in sorted(worst)]
    return named


def named_lines(m: dict) -> tuple[list[Line], list[Line]]:
    """The sources and the targets a heatmap names; scattered failures name their worst sources."""
    columns = transposed(m)
    targets = worth_naming(m["targets"], columns, scattered=False)
    sources = worth_naming(m["sources"], [m["rows"][s] for s in m["sources"]],
                           scattered=not any(not t.not_run for t in targets))
    return sources, targets


def transposed(m: dict) -> list[str]:
    """The matrix by target: one string of outcome codes per target, a letter per source."""
    return ["".join(column) for column in zip(*(m["rows"][s] for s in m["sources"]), strict=True)]


def spread(wanted: list[float], low: float, gap: float) -> list[float]:
    """Positions at least `gap` apart, each as close to where it is wanted as the others allow."""
    placed: list[float] = []
    for w in wanted:
        placed.append(max(w, low, placed[-1] + gap if placed else low))
    return placed


def heatmap(kind: str, m: dict, title: str = "") -> str:
    """Sources down and targets across; with a few targets only (the service, DNS) the other way round,
    so that 500 sources make a strip, not a column."""
    across_sources = len(m["targets"]) < 8
    named_sources, named_targets = named_lines(m)
    if across_sources:
        m = {"sources": m["targets"], "targets": m["sources"], "rows": dict(zip(m["targets"], transposed(m),
                                                                                strict=True))}
        every_target = [Line(j, t, f, False) for j, (t, (f, _, _)) in enumerate(zip(m["sources"], tallies(
            [m["rows"][t] for t in m["sources"]]), strict=True))]
        rows, cols, axis = every_target, named_sources, ("to \u2193", "from \u2192")
    else:
        rows, cols, axis = named_sources, named_targets, ("from \u2193", "to \u2192")
    sources, targets = m["sources"], m["targets"]
    sx = max(1, min(CELL, 640 // len(targets)))
    sy = max(1, min(CELL, 640 // len(sources)))
    more = [f"+{len(lines) - MAX_LABELS} more named lines in the list" for lines in (rows, cols)
            if len(lines) > MAX_LABELS]
    rows, cols = rows[:MAX_LABELS], cols[:MAX_LABELS]
    label_w = max(90.0, 12 + max((text_width(x.text) for x in rows), default=0)) + 30  # 30: leader lines
    top = max(40.0, 16 + max((text_width(x.text) for x in cols), default=0)) + 30
    grid_w, grid_h = len(targets) * sx, len(sources) * sy
    data = base64.b64encode(heat_png(m, sx, sy)).decode()
    body = axes(label_w - 30, top, *axis)
    body.append(f'<image x="{label_w}" y="{top}" width="{grid_w}" height="{grid_h}" '
                f'href="data:image/png;base64,{data}" style="image-rendering:pixelated"/>')
    body.append(f'<rect x="{label_w}" y="{top}" width="{grid_w}" height="{grid_h}" fill="none" stroke="#9e9e9e"/>')
    ys = spread([top + (x.index + 0.5) * sy + 4 for x in rows], top + 8, LABEL_GAP)
    for x, y in zip(rows, ys, strict=True):
        at, ink = top + (x.index + 0.5) * sy, line_ink(x)
        body.append(label(label_w - 34, y, x.text, "end", f' fill="{ink}"'))
        body.append(leader(label_w - 32, y - 4, label_w - 8, y - 4, label_w - 2, at, ink))
    xs = spread([label_w + (x.index + 0.5) * sx + 4 for x in cols], label_w + 8, LABEL_GAP)
    for x, at_x in zip(cols, xs, strict=True):
        at, ink = label_w + (x.index + 0.5) * sx, line_ink(x)
        body.append(label(0, 0, x.text, extra=f' fill="{ink}" transform="translate({at_x:.1f},{top - 32:.1f}) '
                                              f'rotate(-90)"'))
        body.append(leader(at_x - 4, top - 30, at_x - 4, top - 8, at, top - 2, ink))
    width = max(label_w + grid_w, (xs[-1] + 6) if xs else 0) + 10
    height = max(top + grid_h, (ys[-1] + 6) if ys else 0) + 8
    for note in more:
        body.append(label(4, height + 10, note, extra=' fill="#b71c1c"'))
        height += 16
    return svg(width, height + 4, body, title, kind)


def line_ink(line: Line) -> str:
    return "#616161" if line.not_run else "#b71c1c" if line.failed else "#212121"


def leader(x1: float, y1: float, x2: float, y2: float, x3: float, y3: float, ink: str) -> str:
    return (f'<polyline points="{x1:.1f},{y1:.1f} {x2:.1f},{y2:.1f} {x3:.1f},{y3:.1f}" fill="none" '
            f'stroke="{ink}" stroke-width="1"/>')


# ---------------------------------------------------------------- entry points
def matrix_svg(kind: str, m: dict, title: str = "") -> str:
    """The picture of one matrix of signoff.json (rows of outcome codes)."""
    if max(len(m["sources"]), len(m["targets"])) > SYMBOLS_UP_TO:
        return heatmap(kind, m, title)
    return symbol_grid(kind, m["sources"], m["targets"], matrix_cells(kind, m), title)


def grid_svg(title: str, rows: list[str], cols: list[str], cells: dict[tuple[str, str], tuple[str, str]],
             footer: str) -> str:
    """A labelled grid of short texts on colours, e.g. the detection matrix of the lab tests."""
    def cell_of(row: str, col: str):
        if (row, col) not in cells:
            return None
        text, colour = cells[(row, col)]
        return colour, "", "#ffffff", f"{row} / {col}: {text or 'none'}"

    return symbol_grid("grid", rows, cols, cell_of, title, footer)


def legend_items(codes: set[str]) -> list[tuple[str, str, str, str]]:
    """(fill, symbol, symbol colour, meaning) of the outcomes present, in a fixed order."""
    return [STYLE[c] for c in STYLE if c in codes]
