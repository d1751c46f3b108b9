"""signoff.html in a real browser (Debian's Chromium, headless): a healthy and a broken 3-node
report and a 500-node one. Every link resolves offline, no text leaves its box at a laptop's
and a narrow window's width, the first screen holds the decision, and the 500-node page stays
small and fast. SEATRIALS_SCREENSHOTS=DIR keeps a screenshot of each first screen and page."""

import os
import re
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from seatrials import reporting
from tests import report_samples
from tests.browser import CHROMIUM, Browser

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="no chromium: lab/setup-host.sh installs it")
SCREEN = (1280, 800)  # a laptop; the first screen is what it shows without scrolling
NARROW = 760
OPEN_ALL = "document.querySelectorAll('details').forEach(d => d.open = true)"
OVERFLOW = """(() => {
  const bad = [];
  for (const el of document.querySelectorAll('body *')) {
    if (el.closest('svg') || !el.getClientRects().length) continue;
    const display = getComputedStyle(el).display;
    if (display === 'inline') continue;
    if (el.scrollWidth > el.clientWidth + 1)
      bad.push(`${el.tagName} ${el.className}: ${el.scrollWidth} > ${el.clientWidth}: ${el.textContent.slice(0, 80)}`);
  }
  for (const t of document.querySelectorAll('svg text')) {
    const box = t.getBoundingClientRect(), frame = t.ownerSVGElement.getBoundingClientRect();
    if (box.left < frame.left - 1 || box.right > frame.right + 1 || box.top < frame.top - 1
        || box.bottom > frame.bottom + 1) bad.push(`clipped in its picture: ${t.textContent}`);
  }
  const page = document.documentElement.scrollWidth;
  if (page > innerWidth) bad.push(`the page is ${page} px wide in a ${innerWidth} px window`);
  return bad;
})()"""
FIRST_SCREEN = """(() => {
  const at = sel => [...document.querySelectorAll(sel)].map(el => {
    const r = el.getBoundingClientRect();
    return {text: el.textContent.trim().slice(0, 100), top: r.top, bottom: r.bottom, width: r.width};
  });
  return {height: innerHeight, verdict: at('#verdict'), causes: at('#causes h3'), none: at('#causes .none'),
          fixes: at('#causes .fix'), not_verified: at('#not-verified li, #not-verified .none'),
          facts: at('.facts dt')};
})()"""
# An inline link after a line's last words ("2001 failed checks and 497 more nodes") starts where they end.
OVERLAP = """(() => {
  const bad = [];
  for (const a of document.querySelectorAll('li > a')) {
    let before = a.previousSibling;  // the words just before it, text or element
    while (before && !before.textContent.trim()) before = before.previousSibling;
    if (!before) continue;
    const range = document.createRange();
    range.selectNodeContents(before);
    const mine = a.getClientRects()[0], theirs = [...range.getClientRects()].pop();
    if (theirs && mine && mine.top < theirs.bottom - 1 && mine.left < theirs.right - 1)
      bad.push(`${a.textContent} over ${before.textContent}`);
  }
  return bad;
})()"""
LINKS = "[[...document.querySelectorAll('a[href]')].map(a => a.href), [...document.querySelectorAll('[id]')]" \
        ".map(e => e.id)]"


@pytest.fixture(scope="module")
def reports(tmp_path_factory) -> dict[str, Path]:
    made = {"healthy": report_samples.three_nodes(), "broken": report_samples.three_nodes(("worker-2",)),
            "500-nodes": report_samples.five_hundred_nodes(), "since": report_samples.three_nodes_since_last_nights()}
    out = {}
    for name, record in made.items():
        folder = tmp_path_factory.mktemp(name)
        reporting.write_report(folder, reporting.signoff(record))
        out[name] = folder / "signoff.html"
    return out


@pytest.fixture(scope="module")
def browser():
    b = Browser(*SCREEN)
    yield b
    b.close()


def keep(browser: Browser, name: str) -> None:
    if folder := os.environ.get("SEATRIALS_SCREENSHOTS"):
        Path(folder).mkdir(parents=True, exist_ok=True)
        browser.screenshot(Path(folder) / f"{name}-first-screen.png")
        browser.screenshot(Path(folder) / f"{name}-page.png", full_page=True)


@pytest.mark.parametrize("name", ["healthy", "broken", "500-nodes", "since"])
def test_the_first_screen_holds_the_decision(browser, reports, name):
    browser.resize(*SCREEN)
    browser.load(reports[name])
    keep(browser, name)
    seen = browser.eval(FIRST_SCREEN)
    below = {k for k, items in seen.items() if k != "height" for x in items if x["bottom"] > seen["height"]}
    assert seen["verdict"][0]["text"].endswith(("SIGNED OFF", "NOT SIGNED OFF"))
    assert not below & {"verdict", "causes", "fixes", "none", "not_verified"}, seen
    if name == "healthy":
        assert seen["none"] and not seen["causes"] and seen["verdict"][0]["text"] == "\u2713 SIGNED OFF"
    else:
        assert seen["causes"] and seen["verdict"][0]["text"] == "\u2717 NOT SIGNED OFF"
    assert seen["not_verified"]
    facts = {x["text"] for x in seen["facts"] if x["bottom"] <= seen["height"]}  # who ran what against which cluster
    assert facts >= {"tool", "command", "options", "started", "ended", "fingerprint", "version", "nodes"}, facts


def test_a_broken_first_screen_names_the_node_its_instance_and_the_command(browser, reports):
    browser.resize(*SCREEN)
    browser.load(reports["broken"])
    text = browser.eval("document.querySelector('#causes').innerText")
    instance = next(n for n in report_samples.three_nodes().nodes if n["name"] == "worker-2")["instance"]
    assert f"worker-2 ({instance} \u00b7 10.240.0.13 \u00b7 worker)" in text
    assert f"aws ec2 modify-instance-attribute --instance-id {instance} --no-source-dest-check" in text


@pytest.mark.parametrize("width", [SCREEN[0], NARROW])
@pytest.mark.parametrize("name", ["healthy", "broken", "500-nodes", "since"])
def test_no_text_leaves_its_box(browser, reports, name, width):
    browser.resize(width, SCREEN[1])
    browser.load(reports[name])
    browser.eval(OPEN_ALL)
    assert browser.eval(OVERFLOW) == []


@pytest.mark.parametrize("width", [SCREEN[0], NARROW])
def test_a_link_at_a_lines_end_covers_none_of_its_words(browser, reports, width):
    browser.resize(width, SCREEN[1])
    browser.load(reports["500-nodes"])
    assert browser.eval("document.querySelectorAll('#causes li > a.more').length")  # the page has such links
    assert browser.eval(OVERLAP) == []


@pytest.mark.parametrize("name", ["healthy", "broken", "500-nodes", "since"])
def test_every_link_resolves_offline(browser, reports, name):
    folder = reports[name].parent
    pages = [reports[name], *sorted((folder / "causes").glob("*.html"))]
    checked = 0
    for page in pages:
        browser.load(page)
        hrefs, ids = browser.eval(LINKS)
        for href in hrefs:
            url = urlsplit(href)
            assert url.scheme == "file", f"{page.name}: {href} leaves the report folder"
            target = Path(unquote(url.path))
            assert target.is_file(), f"{page.name}: {href} does not exist"
            if url.fragment and target == page:
                assert url.fragment in ids, f"{page.name}: no element #{url.fragment}"
            checked += 1
    assert checked > len(pages)


def test_the_500_node_page_is_small_and_fast(browser, reports):
    page = reports["500-nodes"]
    size = page.stat().st_size
    browser.resize(*SCREEN)
    seconds = browser.load(page)
    print(f"500-node signoff.html: {size / 1e6:.2f} MB, loaded in {seconds:.3f} s")
    assert size < 5e6 and seconds < 2
    assert not re.search(r"""(?:src|href)=["']https?://""", page.read_text())  # nothing fetched from outside
