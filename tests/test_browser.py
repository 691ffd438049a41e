"""Every page of the built book, opened in a real browser (headless Chromium driven by Playwright).

The book is built once per session (``built_book`` in conftest.py: every chapter at its smoke
parameters), served over loopback HTTP and read offline: requests that leave the local server are
aborted. Each page fails, naming the offending item, on

- a console error or an uncaught exception;
- a failed request, or an HTTP status >= 400, for a file of the book;
- TeX left unrendered in the visible text once MathJax has finished (code is left out);
- a traceback, a warning, a progress bar or a local path in a cell's output;
- a figure without a caption, or an image that does not load;
- a table wider than its column that nothing lets the reader scroll.

It drives the system's Chromium (Debian's ``chromium``, which ``make env`` installs when it may);
Playwright never downloads a browser here.
"""

from __future__ import annotations

import functools
import http.server
import os
import re
import shutil
import tempfile
import threading
import time
import urllib.parse
from collections import defaultdict
from pathlib import Path

import pytest
import yaml
from conftest import REPO

CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "chromium", "chromium-browser")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1280, "height": 900}


def toc_pages(toc_path: Path = REPO / "_toc.yml") -> list[str]:
    """The pages of the book, in reading order, as paths relative to the HTML root."""
    toc = yaml.safe_load(toc_path.read_text())
    files = [toc["root"]]

    def walk(entries):
        for entry in entries or []:
            if "file" in entry:
                files.append(entry["file"])
            walk(entry.get("sections"))

    for part in toc.get("parts", []):
        walk(part.get("chapters"))
    walk(toc.get("chapters"))
    return ["index.html"] + [f"{Path(f).with_suffix('')}.html" for f in files]


PAGES = toc_pages()


def find_chromium() -> str | None:
    for candidate in CHROMIUM_CANDIDATES:
        path = shutil.which(candidate)
        if path:
            return path
    return None


CHROMIUM = find_chromium()
NO_CHROMIUM = (
    "Chromium not found (/usr/bin/chromium, or chromium on PATH) and it could not be installed: "
    "`make env` installs Debian's chromium only as root or with passwordless sudo "
    "(or run `apt-get install chromium`)."
)
# Decided before any fixture runs, so a machine without Chromium does not build the book for nothing.
pytestmark = [pytest.mark.slow, pytest.mark.browser, pytest.mark.skipif(CHROMIUM is None, reason=NO_CHROMIUM)]


# --------------------------------------------------------------------------------------------------
# fixtures: the server, the browser


# Every page is checked as a reader's first visit: nothing kept from the page before.
FIRST_VISIT_JS = "try { localStorage.clear(); sessionStorage.clear(); } catch (e) {}"


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


class _QuietServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):  # the browser drops connections when a page closes
        pass


@pytest.fixture(scope="module")
def book_url(built_book):
    """The built book served on 127.0.0.1 (a free port) for the duration of the module."""
    handler = functools.partial(_QuietHandler, directory=str(built_book.parent))
    server = _QuietServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def browser_context(book_url):
    """One headless Chromium and one context for every page; requests leaving the server are aborted."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as err:  # the test extra was not installed: a broken set-up, not a skip
        pytest.fail(f"playwright is not importable ({err}); run `make env` (it installs the test extra).")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        context = browser.new_context(viewport=VIEWPORT, service_workers="block")
        context.add_init_script(FIRST_VISIT_JS)

        def offline(route):
            if route.request.url.startswith(book_url):
                route.continue_()
            else:
                route.abort("internetdisconnected")

        context.route("**/*", offline)
        yield context
        context.close()
        browser.close()


# --------------------------------------------------------------------------------------------------
# what is checked inside the page

# $$, \( \) \[ \], a TeX command (\frac, \sqrt, \mathrm, \langle ...), or $...$ holding ^ or _
TEX_PATTERN = r"\$\$|\\\(|\\\)|\\\[|\\\]|\\[A-Za-z]{2,}(?![A-Za-z])|\$[^$\s][^$\n]{0,80}?[\^_][^$\n]{0,80}?\$"
OUTPUT_WORDS = ("Traceback", "Warning", "it/s]", "s/it]")

# Run in the page once MathJax has finished; returns one list of findings per check. Its longest lines are split
# across string pieces (implicit concatenation, nothing added between them) only to keep this file's lines
# within 120 characters: the script is unchanged.
PAGE_CHECKS_JS = (
    r"""
async ({texPattern, outputWords, localPaths, minScale}) => {
  const article = document.querySelector('article.bd-article') || document.querySelector('main') || document.body;
  const snippet = (text, i, n = 40) => """
    r"""JSON.stringify(text.slice(Math.max(0, i - n), i + n).replace(/\s+/g, ' ').trim());
  const describe = (el) => {
    const id = el.closest('[id]');
    return id ? `#${id.id}` : el.tagName.toLowerCase();
  };
  const visible = (el) => {
    for (let e = el; e && e !== document.body; e = e.parentElement) {
      const s = getComputedStyle(e);
      if (s.display === 'none' || s.visibility === 'hidden') return false;
    }
    return true;
  };
  const found = {tex: [], output: [], figure: [], image: [], table: [], readable: [], plotly: []};

  // raw TeX in visible text outside code, scripts and rendered math
  const skip = """
    r"""'pre, code, script, style, textarea, .cell_input, .highlight, mjx-container, .MathJax, mjx-assistive-mml';
  const tex = new RegExp(texPattern, 'g');
  const escape = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const localPath = new RegExp([...localPaths].sort((a, b) => b.length - a.length).map(escape).join('|'), 'g');
  const walker = document.createTreeWalker(article, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const parent = node.parentElement;
    if (!parent || parent.closest(skip) || !visible(parent)) continue;
    const hits = [...node.data.matchAll(tex)];
    if (hits.length) {
      const tokens = [...new Set(hits.map((m) => m[0]))].join(' ');
      found.tex.push(`${tokens} in ${snippet(node.data, hits[0].index, 50)} (${describe(parent)})`);
    }
  }

  // cell outputs: tracebacks, warnings, progress bars, local paths, in what a reader can see (an interactive
  // figure's scripts, plotly.js among them, are left out)
  const readable = (el) => {
    const parts = [];
    const texts = document.createTreeWalker(el, NodeFilter.SHOW_TEXT);
    for (let node = texts.nextNode(); node; node = texts.nextNode()) {
      if (!node.parentElement.closest('script, style')) parts.push(node.data);
    }
    return parts.join('');
  };
  document.querySelectorAll('.cell_output').forEach((out, k) => {
    const text = readable(out);
    const where = `output ${k + 1} (${describe(out)})`;
    for (const w of outputWords) {
      const i = text.indexOf(w);
      if (i >= 0) found.output.push(`${w} in ${where}: ${snippet(text, i)}`);
    }
    const paths = [...text.matchAll(localPath)];
    if (paths.length) {
      const which = [...new Set(paths.map((m) => m[0]))].join(' ');
      found.output.push(`local path ${which} in ${where}: ${snippet(text, paths[0].index)}`);
    }
  });

  // images: they load, and each is a captioned figure (theme logos and badges aside)
  const images = [...article.querySelectorAll('img')];
  await Promise.all(images.map((img) => {
    img.loading = 'eager';
    if (img.complete) return null;
    return new Promise((done) => {
      img.addEventListener('load', done, {once: true});
      img.addEventListener('error', done, {once: true});
      setTimeout(done, 5000);
    });
  }));
  images.forEach((img, k) => {
    const src = img.getAttribute('src') || '';
    const name = `image ${k + 1} ${src.split('/').pop().slice(0, 24)} (${describe(img)})`;
    if (!img.complete || img.naturalWidth === 0) found.image.push(`${name} does not load`);
    if (/badge|shields\.io|logo/i.test(src) || img.closest('.navbar-brand, .header-article, .bd-header')) return;
    const fig = img.closest('figure');
    const caption = fig && fig.querySelector('figcaption');
    if (!fig) found.figure.push(`${name} is not in a figure`);
    else if (!caption || !caption.textContent.trim()) found.figure.push(`${name} has no caption`);
    // figures are drawn at 100 dpi with text of at least 9 pt: shown at under minScale of their size,
    // that text falls below about 8 pt on the page
    const scale = img.getBoundingClientRect().width / img.naturalWidth;
    if (img.naturalWidth > 0 && scale < minScale) {
      found.readable.push(`${name} is shown at ${Math.round(100 * scale)} % of its ${img.naturalWidth} px width`);
    }
  });

  // tables wider than the text column must sit in something that scrolls sideways
  const column = article.getBoundingClientRect().width;
  article.querySelectorAll('table').forEach((table, k) => {
    const width = Math.max(table.getBoundingClientRect().width, table.scrollWidth);
    if (width <= column + 1) return;
    let scroller = null;
    for (let e = table; e && e !== article.parentElement; e = e.parentElement) {
      const s = getComputedStyle(e);
      if ((s.overflowX === 'auto' || s.overflowX === 'scroll') && e.scrollWidth > e.clientWidth) {
        scroller = e;
        break;
      }
    }
    const head = (table.querySelector('th, td') || table).textContent.trim().slice(0, 30);
    const name = """
    r"""`table ${k + 1} (${table.closest('.cell_output, .output') ? 'output' : 'prose'}, """
    r"""starts ${JSON.stringify(head)}, ${describe(table)})`;
    if (!scroller) found.table.push("""
    r"""`${name} is ${Math.round(width)} px wide in a ${Math.round(column)} px column and nothing scrolls it`);
    else if (scroller.getBoundingClientRect().width > column + 1) found.table.push("""
    r"""`${name} scrolls inside a box wider than the column """
    r"""(${Math.round(scroller.getBoundingClientRect().width)} px)`);
  });
  // plotly.js (about 4.8 MB) is inlined by the first interactive figure of a page; a second copy is waste
  const plotlyCopies = [...document.querySelectorAll('script')].filter((s) => /\* plotly\.js v\d/.test(s.text)).length;
  if (plotlyCopies > 1) found.plotly.push(`plotly.js is inlined ${plotlyCopies} times`);
  return found;
}
"""
)

WAIT_FOR_MATHJAX_JS = """
async (timeoutMs) => {
  const mj = window.MathJax;
  if (!(mj && mj.startup && mj.startup.promise)) return mj ? 'MathJax did not load' : 'no math on this page';
  const late = new Promise((done) => setTimeout(() => done('MathJax did not finish in time'), timeoutMs));
  return Promise.race([mj.startup.promise.then(() => 'typeset', (err) => `MathJax failed: ${err}`), late]);
}
"""


def local_paths(book_html: Path) -> list[str]:
    """Paths of this machine and run that must not appear in a reader's book."""
    paths = {"/root/", "/home/", "/tmp/", "/work/", tempfile.gettempdir().rstrip("/") + "/"}
    for p in (os.environ.get("NEUROALIGN_DATA"), REPO, book_html.parent.parent.parent, Path.home()):
        if p and str(p) not in ("/", ""):
            paths.add(str(p))
    return sorted(paths)


REDIRECT = re.compile(r'<meta http-equiv="Refresh" content="\d+; url=([^"]+)"', re.IGNORECASE)


def check_page(context, base_url: str, html_dir: Path, page_path: str, paths: list[str]) -> dict[str, list[str]]:
    """Open one page and return its findings, check name -> items (only checks that found something)."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    findings: dict[str, list[str]] = defaultdict(list)
    page = context.new_page()

    def on_console(msg):
        if msg.type == "error":
            loc = msg.location or {}
            where = loc.get("url", "").replace(base_url, "") or "?"
            findings["console"].append(f"{msg.text} [at {where}:{loc.get('lineNumber', '?')}]")

    def on_failed(request):
        if request.url.startswith(base_url):
            findings["request"].append(f"{request.url.replace(base_url, '')} failed: {request.failure}")
        else:
            findings["external"].append(f"{request.url} (the book must read offline)")

    def on_response(response):
        if response.url.startswith(base_url) and response.status >= 400:
            findings["request"].append(f"{response.url.replace(base_url, '')} answered HTTP {response.status}")

    page.on("console", on_console)
    page.on("pageerror", lambda exc: findings["pageerror"].append(str(exc).splitlines()[0]))
    page.on("requestfailed", on_failed)
    page.on("response", on_response)
    try:
        redirect = REDIRECT.search((html_dir / page_path).read_text(errors="replace"))
        page.goto(base_url + page_path, wait_until="load")
        if redirect:  # index.html sends the reader to the root page
            target = urllib.parse.urljoin(base_url + page_path, redirect.group(1))
            page.wait_for_url(target, timeout=10_000)
            page.wait_for_load_state("load")
        math = page.evaluate(WAIT_FOR_MATHJAX_JS, 20_000)
        if math not in ("typeset", "no math on this page"):
            findings["tex"].append(math)
        try:  # fonts and extensions MathJax fetches after typesetting
            page.wait_for_load_state("networkidle", timeout=5000)
        except PlaywrightTimeout:  # a page that keeps the network busy is still checked
            pass
        result = page.evaluate(
            PAGE_CHECKS_JS,
            {"texPattern": TEX_PATTERN, "outputWords": list(OUTPUT_WORDS), "localPaths": paths, "minScale": MIN_SCALE},
        )
    finally:
        page.close()
    for check, items in result.items():
        findings[check].extend(items)
    return {k: v for k, v in findings.items() if v}


CHECK_NAMES = {
    "console": "console error",
    "pageerror": "uncaught exception",
    "request": "failed request",
    "external": "request leaving the book",
    "tex": "unrendered TeX",
    "output": "cell output",
    "figure": "figure without caption",
    "image": "image not loading",
    "table": "table clipped",
    "readable": "figure shrunk below readable",
    "plotly": "plotly.js inlined more than once",
}
#: Smallest display scale of a figure: 9-pt text (style.MIN_FONT_SIZE) at 0.88 stays about 8 pt.
MIN_SCALE = 0.88


def format_findings(page_path: str, findings: dict[str, list[str]], limit: int = 12) -> str:
    lines = [f"{page_path}: " + ", ".join(f"{len(v)} {CHECK_NAMES.get(k, k)}" for k, v in findings.items())]
    for check, items in findings.items():
        for item in items[:limit]:
            lines.append(f"  [{CHECK_NAMES.get(check, check)}] {item}")
        if len(items) > limit:
            lines.append(f"  [{CHECK_NAMES.get(check, check)}] ... and {len(items) - limit} more")
    return "\n".join(lines)


@pytest.mark.parametrize("page_path", PAGES)
def test_page_in_browser(page_path, browser_context, book_url, built_book):
    start = time.perf_counter()
    findings = check_page(browser_context, book_url, built_book.parent, page_path, local_paths(built_book))
    print(f"{page_path}: {time.perf_counter() - start:.1f} s")
    if findings:
        pytest.fail(format_findings(page_path, findings), pytrace=False)


# --------------------------------------------------------------------------------------------------
# the "Live code" button (launch_buttons.thebe in _config.yml)

THEBE_PAGE = "notebooks/00_overview.html"
THEBE_CONFIG = re.compile(r'<script type="text/x-thebe-config">(.*?)</script>', re.S)
# where a reader's browser goes once "Live code" is clicked: thebe's CDN, then Binder (both offline here)
THEBE_HOSTS = ("https://unpkg.com/", "https://mybinder.org/")


def check_live_code(context, base_url: str, html_dir: Path, page_path: str) -> dict[str, list[str]]:
    """Check a page's "Live code" set-up and click it; return the findings, check name -> items.

    sphinx-thebe must be included once (a second copy redeclares ``THEBE_JS_URL``: a SyntaxError on the
    page), its Binder settings must name the repository of ``_config.yml`` and the commit the book was built
    from (its branch where the book was not built from a git checkout), and the click must log no error and
    raise nothing before thebe is fetched from its CDN, which is the first request to leave the book.
    """
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    from neuroalign_utils import launch

    findings: dict[str, list[str]] = defaultdict(list)
    text = (html_dir / page_path).read_text()
    for needle in ("sphinx-thebe.js", "const THEBE_JS_URL"):
        if text.count(needle) != 1:
            findings["include"].append(f"{needle!r} appears {text.count(needle)} times, not once")
    configs = THEBE_CONFIG.findall(text)
    url, branch = launch.read_repository(REPO)
    refs = {branch, launch.current_commit(html_dir.parent.parent) or branch}
    repo = "/".join(url.rstrip("/").split("/")[-2:])
    if len(configs) != 1:
        findings["binder"].append(f"{len(configs)} thebe configurations, not one")
    else:
        settings = dict(re.findall(r'(\w+): "([^"]*)"', configs[0]))
        if settings.get("repo") != repo or settings.get("ref") not in refs:
            findings["binder"].append(
                f"thebe's Binder settings name {settings.get('repo')}@{settings.get('ref')}, "
                f"not {repo}@{' or '.join(sorted(refs))} (_config.yml)"
            )

    page = context.new_page()
    left: list[str] = []

    def on_console(msg):
        loc = (msg.location or {}).get("url", "")
        if msg.type == "error" and not loc.startswith(THEBE_HOSTS):  # the offline fetch of thebe is expected
            findings["console"].append(f"{msg.text} [at {loc.replace(base_url, '') or '?'}]")

    def on_request(request):
        if not request.url.startswith(base_url):
            left.append(request.url)

    page.on("console", on_console)
    page.on("pageerror", lambda exc: findings["pageerror"].append(str(exc).splitlines()[0]))
    page.on("request", on_request)
    try:
        page.goto(base_url + page_path, wait_until="load")
        page.locator(".dropdown-launch-buttons .dropdown-toggle").click()
        try:
            with page.expect_event("requestfailed", lambda r: r.url.startswith(THEBE_HOSTS), timeout=10_000):
                page.locator("button.btn-launch-thebe").click()
        except PlaywrightTimeout:
            findings["request"].append(f"clicking Live code did not fetch thebe (requests leaving the book: {left})")
        if left and not left[0].startswith(THEBE_HOSTS):
            findings["request"].append(f"clicking Live code first went to {left[0]}, not to thebe's CDN or Binder")
    finally:
        page.close()
    return {k: v for k, v in findings.items() if v}


def test_live_code_button_starts_thebe_for_this_repository(browser_context, book_url, built_book):
    findings = check_live_code(browser_context, book_url, built_book.parent, THEBE_PAGE)
    if findings:
        lines = [f"{THEBE_PAGE}, Live code:"] + [f"  [{k}] {item}" for k, v in findings.items() for item in v]
        pytest.fail("\n".join(lines), pytrace=False)


# --------------------------------------------------------------------------------------------------
# the interactive figures draw (plotly, no kernel, offline)

#: Page → figure label of each interactive figure, and how it draws: "svg" (2-D) or "webgl" (3-D).
INTERACTIVE_FIGURES = {
    "notebooks/04_kernel_alignment.html": ("ka-fig-area-genotype", "svg"),
    "notebooks/07_factortopy_encoding.html": ("ft-fig-layer-3d", "webgl"),
}

# The figure's plot: the number of points plotly was given and drew (2-D), and its canvases.
PLOT_STATE_JS = """
(figureId) => {
  const figure = document.getElementById(figureId);
  const plot = figure && figure.querySelector('.js-plotly-plot');
  if (!plot) return null;
  // _fullData holds the traces as drawn, their base64 arrays decoded
  const given = (plot._fullData || []).filter((t) => t.type === 'scatter').reduce((n, t) => n + t.y.length, 0);
  return {
    given,
    drawnPoints: plot.querySelectorAll('.scatterlayer .point').length,
    canvases: [...plot.querySelectorAll('canvas')].map((c) => [c.width, c.height]),
    caption: (figure.querySelector('figcaption') || {textContent: ''}).textContent.trim(),
  };
}
"""


def _drawn_colours(png: bytes) -> tuple[float, int]:
    """Share of pixels that are not page background, and the number of distinct colours, of a screenshot."""
    import io

    import numpy as np
    from PIL import Image

    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).reshape(-1, 3)
    background = (pixels >= 250).all(axis=1)
    return float(1 - background.mean()), len(np.unique(pixels[~background], axis=0))


@pytest.mark.parametrize("page_path", list(INTERACTIVE_FIGURES))
def test_interactive_figure_draws(page_path, browser_context, book_url):
    """The figure's plot is drawn (points in SVG, or a WebGL canvas with a coloured surface) with a caption,
    and the page logs no error while it draws."""
    figure_id, kind = INTERACTIVE_FIGURES[page_path]
    page = browser_context.new_page()
    errors = []
    page.on("console", lambda msg: msg.type == "error" and errors.append(msg.text))
    page.on("pageerror", lambda exc: errors.append(str(exc).splitlines()[0]))
    try:
        page.goto(book_url + page_path, wait_until="load")
        page.wait_for_function(
            "(id) => { const p = document.querySelector(`#${id} .js-plotly-plot`); return p && p._fullLayout; }",
            arg=figure_id,
            timeout=30_000,
        )
        page.wait_for_timeout(1000)  # the WebGL scene draws on the next animation frames
        state = page.evaluate(PLOT_STATE_JS, figure_id)
        plot = page.locator(f"#{figure_id} .js-plotly-plot")
        plot.scroll_into_view_if_needed()
        share, colours = _drawn_colours(plot.screenshot())
    finally:
        page.close()
    assert state is not None, f"{page_path}: no plotly figure in #{figure_id}"
    assert state["caption"], f"{page_path}: #{figure_id} has no caption"
    assert not errors, f"{page_path}: console errors while the figure drew: {errors}"
    if kind == "svg":
        assert state["given"] > 0 and state["drawnPoints"] == state["given"], state
    else:
        assert state["canvases"] and all(w > 0 and h > 0 for w, h in state["canvases"]), state
        # both hemispheres in grey and the subject's vertices in layer colours: many colours, a good part of the plot
        assert share > 0.1 and colours > 50, (share, colours)
