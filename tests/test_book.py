"""The rendered book, as a reader gets it.

Builds the book exactly like ``make book`` (``book/build.sh``: strict, from the
committed notebook outputs), then opens every page of ``book/_toc.yml`` from disk
(``file://``) in headless Chromium, driven through the Chrome DevTools Protocol
(``websocket-client``; no WebDriver needed), and checks what a reader would see:

* every page loads, has one title and no JavaScript errors;
* its equations are typeset by MathJax (``mjx-container``, no raw ``$$``);
* its figures load (``naturalWidth > 0``);
* the navigation (sidebar and "next" links) reaches every chapter in order;
* no request leaves the machine (only ``file:``/``data:``/``blob:``/localhost);
* nothing is clipped: with every folded cell unfolded, no code block, output or
  table is wider than the box it sits in (``scrollWidth > clientWidth``);
* no test machinery shows: no ``NBVAL_*`` marker, no absolute path of the
  machine that built it (``/work/``, ``/tmp/``, ``/root/``, ``/home/``);
* the article's Japanese title is drawn with a CJK font (``fonts-noto-cjk``,
  installed by ``tests/install_browser.sh``), not as empty boxes.

A screenshot of every page is written to ``book/_build/screenshots/``. A second test injects broken references into a
copy of the sources and checks that the strict build fails.

Chromium: Debian's ``chromium`` (``bash tests/install_browser.sh`` installs it
when run as root). Without a browser on PATH the browser tests are skipped,
unless ``$CI`` is set, in which case they fail.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
BUILD = ROOT / "book" / "_build"
HTML = BUILD / "html"
SCREENSHOTS = BUILD / "screenshots"
BUILD_SCRIPT = ROOT / "book" / "build.sh"
JUPYTER_BOOK = Path(sys.executable).with_name("jupyter-book")

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",  # small /dev/shm in CI containers
    "--no-default-browser-check",
    "--disable-default-apps",
    "--disable-extensions",
    "--disable-domain-reliability",
    "--disable-client-side-phishing-detection",
    "--disable-features=Translate,MediaRouter,OptimizationHints,AutofillServerCommunication",
    "--metrics-recording-only",
    "--safebrowsing-disable-auto-update",
    "--hide-scrollbars",
    "--mute-audio",
    "--window-size=1280,900",
]
LOCAL_SCHEMES = {"file", "data", "blob", "about", "chrome", "devtools", "chrome-extension"}
LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1", "[::1]"}


def toc_docnames(toc_path: Path = ROOT / "book" / "_toc.yml") -> list[str]:
    """Document names in reading order: the root, then every ``file:`` entry."""
    toc = yaml.safe_load(toc_path.read_text(encoding="utf-8"))
    names = [toc["root"]]

    def walk(node):
        if isinstance(node, dict):
            if "file" in node:
                names.append(node["file"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk({k: v for k, v in toc.items() if k != "root"})
    return [re.sub(r"\.(md|ipynb)$", "", n) for n in names]


DOCNAMES = toc_docnames()
# Every page's screenshot is written to book/_build/screenshots/<stem>.png.
SCREENSHOT_PAGES = {d: d.rsplit("/", 1)[-1] for d in DOCNAMES}
# What no page may show: nbval's markers, and absolute paths of the machine.
NBVAL_MARKER = re.compile(r"NBVAL_[A-Z_]+")
MACHINE_PATH = re.compile(r"(?<![\w.~-])/(work|tmp|root|home)/")
# The article's title, drawn with a CJK font on the references page.
JAPANESE_PROBE = ("book/references", "理解メモ")
CJK_FONT = re.compile(r"CJK|\bJP\b|Japanese|Gothic|Mincho|IPA|Takao|WenQuanYi", re.I)


def page_url(docname: str) -> str:
    return (HTML / f"{docname}.html").as_uri()


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    return None


def run_build(root: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, JUPYTER_BOOK=str(JUPYTER_BOOK), NO_COLOR="1")
    return subprocess.run(["bash", str(root / "book" / "build.sh")], cwd=root, env=env,
                          capture_output=True, text=True, timeout=1800)


# --------------------------------------------------------------------------- CDP
class CDPError(RuntimeError):
    pass


class Browser:
    """Headless Chromium with one page, driven over the DevTools websocket."""

    def __init__(self, executable: str, profile_dir: Path):
        import websocket  # websocket-client

        profile_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = profile_dir.parent / "chromium.log"
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [executable, *CHROMIUM_FLAGS, f"--user-data-dir={profile_dir}",
             "--remote-debugging-port=0", "about:blank"],
            stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)
        port_file = profile_dir / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not (port_file.exists() and port_file.read_text().strip()):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.close()
                raise CDPError(f"chromium did not start; see {self.log_path}:\n"
                               + self.log_path.read_text(errors="replace")[-3000:])
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        targets = json.loads(opener.open(f"http://127.0.0.1:{port}/json/list", timeout=30).read())
        page = next(t for t in targets if t.get("type") == "page")
        self.ws = websocket.create_connection(
            page["webSocketDebuggerUrl"], timeout=120, suppress_origin=True,
            http_no_proxy=["127.0.0.1", "localhost"])
        self._next_id = 0
        self.events: list[dict] = []
        for domain in ("Page", "Network", "Runtime", "Log"):
            self.call(f"{domain}.enable")
        self.call("Network.setCacheDisabled", cacheDisabled=True)

    # -- protocol
    def _receive(self) -> dict:
        message = json.loads(self.ws.recv())
        if "method" in message:
            self.events.append(message)
        return message

    def call(self, method: str, **params):
        self._next_id += 1
        call_id = self._next_id
        self.ws.send(json.dumps({"id": call_id, "method": method, "params": params}))
        while True:
            message = self._receive()
            if message.get("id") == call_id:
                if "error" in message:
                    raise CDPError(f"{method}: {message['error']}")
                return message.get("result", {})

    def evaluate(self, expression: str, await_promise: bool = True):
        result = self.call("Runtime.evaluate", expression=expression,
                           awaitPromise=await_promise, returnByValue=True)
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get("text")
            raise CDPError(f"JavaScript error: {text}")
        return result["result"].get("value")

    # -- pages
    def load(self, url: str, expect: str | None = None, timeout: float = 90) -> None:
        """Navigate and wait until the page (or ``expect`` after redirects) is
        complete, MathJax has typeset it, its fonts and its images are loaded."""
        self.events.clear()
        self.call("Page.navigate", url=url)
        expect = expect or url
        deadline = time.monotonic() + timeout
        while True:
            try:
                href, state = self.evaluate("[location.href, document.readyState]")
                if state == "complete" and href.split("#")[0] == expect:
                    break
            except CDPError:
                pass  # the execution context is being replaced by the navigation
            if time.monotonic() > deadline:
                raise CDPError(f"timed out loading {url}")
            time.sleep(0.1)
        self.evaluate(f"""(async () => {{
            const deadline = Date.now() + {int(timeout * 1000)};
            const sleep = ms => new Promise(r => setTimeout(r, ms));
            if (document.querySelector('script[src*="mathjax"]')) {{
                while (!(window.MathJax && MathJax.startup && MathJax.startup.promise)
                       && Date.now() < deadline) await sleep(100);
                if (window.MathJax && MathJax.startup && MathJax.startup.promise)
                    await MathJax.startup.promise;
            }}
            const images = Array.from(document.images);
            images.forEach(img => {{ img.loading = 'eager'; }});
            await Promise.all(images.map(img => img.complete ? null : new Promise(r => {{
                img.addEventListener('load', r); img.addEventListener('error', r);
            }})));
            await document.fonts.ready;
            return true;
        }})()""")
        time.sleep(0.5)  # let late requests (fonts, lazy scripts) show up as events
        self.call("Runtime.evaluate", expression="0")  # drain queued events

    def report(self) -> dict:
        """What the current page shows, measured in the browser."""
        return self.evaluate(r"""(() => {
            const main = document.querySelector('main') || document.body;
            const article = main.querySelector('article') || main;
            const maths = Array.from(article.querySelectorAll('.math'));
            const text = (() => {
                const c = article.cloneNode(true);
                c.querySelectorAll('pre, code, script, style, .highlight, mjx-container, .cell_output')
                 .forEach(e => e.remove());
                return c.textContent;
            })();
            const nav = Array.from(document.querySelectorAll('nav.bd-docs-nav a.reference.internal'))
                             .map(a => a.href.split('#')[0]);
            const next = document.querySelector('a.right-next');
            return {
                href: location.href.split('#')[0],
                title: document.title,
                h1: Array.from(article.querySelectorAll('h1')).map(h => h.textContent.trim()),
                math_elements: maths.length,
                math_untypeset: maths.filter(e => !e.querySelector('mjx-container'))
                                     .map(e => e.textContent.trim().slice(0, 80)),
                mjx_containers: article.querySelectorAll('mjx-container').length,
                mjx_errors: Array.from(article.querySelectorAll('mjx-merror'))
                                 .map(e => e.getAttribute('data-mjx-error') || e.textContent),
                raw_dollars: text.includes('$$'),
                raw_delimiters: /\\\(|\\\[/.test(text),
                images: Array.from(document.images).map(i => ({
                    src: i.currentSrc || i.src, ok: i.complete && i.naturalWidth > 0,
                    width: i.naturalWidth, alt: i.getAttribute('alt') || ''})),
                nav: nav,
                next: next ? next.href.split('#')[0] : null,
            };
        })()""")

    def layout(self) -> dict:
        """Unfold every folded cell, then measure what a reader could find
        clipped, and collect the page's full text (code and outputs included).
        Folds are closed again afterwards (the screenshot shows the page as a
        reader first sees it)."""
        return self.evaluate(r"""(async () => {
            const article = document.querySelector('main article')
                            || document.querySelector('main') || document.body;
            const closed = Array.from(article.querySelectorAll('details:not([open])'));
            closed.forEach(d => { d.open = true; });
            // sphinx-togglebutton hides some blocks with a class instead
            const toggled = Array.from(article.querySelectorAll('.toggle-hidden'));
            toggled.forEach(e => e.classList.remove('toggle-hidden'));
            await new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)));
            const boxes = article.querySelectorAll(
                'pre, table, .highlight, .output, .cell_output, .output_html, '
                + '.pst-scrollable-table-container, .table-wrapper');
            const clipped = [];
            for (const e of boxes) {
                const style = getComputedStyle(e);
                if (style.display === 'none' || e.clientWidth === 0) continue;
                if (e.scrollWidth > e.clientWidth + 1) {
                    clipped.push({tag: e.tagName.toLowerCase(), cls: e.className.toString(),
                                  scroll: e.scrollWidth, client: e.clientWidth,
                                  text: e.textContent.trim().slice(0, 120)});
                }
            }
            const right = article.getBoundingClientRect().right;
            for (const e of article.querySelectorAll('img, table, pre')) {
                const box = e.getBoundingClientRect();
                if (box.width > 0 && box.right > right + 1) {
                    clipped.push({tag: e.tagName.toLowerCase(), cls: e.className.toString(),
                                  scroll: Math.round(box.right), client: Math.round(right),
                                  text: (e.textContent || e.src || '').trim().slice(0, 120)});
                }
            }
            const text = article.innerText;
            closed.forEach(d => { d.open = false; });
            toggled.forEach(e => e.classList.add('toggle-hidden'));
            return {clipped: clipped, text: text};
        })()""")

    def fonts_for_text(self, needle: str) -> list[dict]:
        """The platform fonts Chromium used to draw the innermost element
        whose text contains ``needle`` (CSS.getPlatformFontsForNode)."""
        found = self.evaluate(f"""(() => {{
            let best = null;
            for (const e of document.querySelectorAll('body *')) {{
                if (e.textContent.includes({json.dumps(needle)})) best = e;
            }}
            if (best) best.setAttribute('data-font-probe', '1');
            return best !== null;
        }})()""")
        if not found:
            return []
        self.call("DOM.enable")
        self.call("CSS.enable")
        root = self.call("DOM.getDocument", depth=0)["root"]["nodeId"]
        node = self.call("DOM.querySelector", nodeId=root,
                         selector="[data-font-probe]")["nodeId"]
        return self.call("CSS.getPlatformFontsForNode", nodeId=node)["fonts"]

    def requests(self) -> list[str]:
        return [e["params"]["request"]["url"] for e in self.events
                if e["method"] == "Network.requestWillBeSent"]

    def failed_requests(self) -> list[str]:
        urls = {e["params"]["requestId"]: e["params"]["request"]["url"] for e in self.events
                if e["method"] == "Network.requestWillBeSent"}
        return [f"{urls.get(e['params']['requestId'], '?')}: {e['params'].get('errorText')}"
                for e in self.events if e["method"] == "Network.loadingFailed"
                and not e["params"].get("canceled")]

    def js_errors(self) -> list[str]:
        errors = []
        for e in self.events:
            if e["method"] == "Runtime.exceptionThrown":
                d = e["params"]["exceptionDetails"]
                errors.append(d.get("exception", {}).get("description") or d.get("text"))
            elif e["method"] == "Log.entryAdded" and e["params"]["entry"]["level"] == "error":
                errors.append(f"{e['params']['entry'].get('url', '')}: "
                              f"{e['params']['entry']['text']}")
        return errors

    def screenshot(self, path: Path, max_height: int = 12000) -> None:
        # the theme animates its layout (sidebars) when the capture resizes the
        # viewport to the page's height: without this, a capture taken
        # mid-transition shows the page shifted left, its sidebar gone
        self.evaluate("""(async () => {
            const style = document.createElement('style');
            style.textContent = '*, *::before, *::after '
                + '{ transition: none !important; animation: none !important; }';
            document.head.appendChild(style);
            await new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)));
            return true;
        })()""")
        metrics = self.call("Page.getLayoutMetrics")
        size = metrics.get("cssContentSize") or metrics["contentSize"]
        clip = {"x": 0, "y": 0, "width": size["width"],
                "height": min(size["height"], max_height), "scale": 1}
        shot = self.call("Page.captureScreenshot", format="png", clip=clip,
                         captureBeyondViewport=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(shot["data"]))

    def close(self) -> None:
        try:
            self.ws.close()
        except Exception:
            pass
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)  # our own process group only
                self.proc.wait(timeout=15)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        self._log.close()


def is_local(url: str) -> bool:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme in LOCAL_SCHEMES:
        return True
    return parts.scheme in ("http", "https", "ws", "wss") and parts.hostname in LOCAL_HOSTS


# --------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def built_book() -> Path:
    """Build the book like ``make book`` (strict, no execution)."""
    result = run_build(ROOT)
    if result.returncode != 0:
        pytest.fail("book build failed (strict: warnings are errors):\n"
                    + (result.stdout + result.stderr)[-8000:])
    assert (HTML / "index.html").is_file()
    return HTML


def require_chromium() -> str:
    """The Chromium executable; skip without one, but fail in CI."""
    executable = find_chromium()
    if executable is None:
        reason = ("no chromium on PATH: run `sudo bash tests/install_browser.sh` "
                  "(apt-get install chromium chromium-driver)")
        if in_ci():
            pytest.fail(reason + " -- CI is set, so this is a failure, not a skip")
        pytest.skip(reason)
    return executable


@pytest.fixture(scope="module")
def browser(built_book, tmp_path_factory):
    executable = require_chromium()
    b = Browser(executable, tmp_path_factory.mktemp("chromium") / "profile")
    try:
        yield b
    finally:
        b.close()


@pytest.fixture(scope="module")
def visited(browser) -> dict:
    """Open every page once; remember what the browser saw."""
    pages = {}
    for docname in DOCNAMES:
        assert (HTML / f"{docname}.html").is_file(), f"page {docname}.html was not built"
        browser.load(page_url(docname))
        pages[docname] = {"report": browser.report(), "requests": browser.requests(),
                          "failed": browser.failed_requests(), "js_errors": browser.js_errors(),
                          "layout": browser.layout()}
        if docname == JAPANESE_PROBE[0]:
            pages[docname]["fonts"] = browser.fonts_for_text(JAPANESE_PROBE[1])
        if docname in SCREENSHOT_PAGES:
            browser.screenshot(SCREENSHOTS / f"{SCREENSHOT_PAGES[docname]}.png")
    return pages


# --------------------------------------------------------------------------- tests
def test_build_is_offline_and_self_contained(built_book):
    assert (built_book / "_static" / "mathjax" / "tex-chtml.js").is_file(), \
        "MathJax must be served from the build output (sphinx-mathjax-offline)"
    remote = re.compile(r"<(script|link|img|iframe|source|video|audio)\b[^>]*?"
                        r"\b(src|href)=\"(https?:)?//", re.I)
    for page in built_book.rglob("*.html"):
        for match in remote.finditer(page.read_text(encoding="utf-8")):
            tag = match.group(0)
            if match.group(1).lower() == "link" and "stylesheet" not in tag \
                    and "preload" not in tag and "icon" not in tag:
                continue  # <link rel="canonical"> etc. are not fetched
            pytest.fail(f"{page.relative_to(built_book)} loads a remote asset: {tag}")
    assert not (ROOT / "book" / "_build" / ".jupyter_cache").exists(), \
        "the book build must not execute notebooks"


def test_numbered_figures_and_their_references_say_figure(built_book):
    """Sphinx numbers the introduction's figure; it reads "Figure 1" like the
    chapters' Markdown captions, in its caption and where it is referenced."""
    found = []
    for page in built_book.rglob("*.html"):
        text = page.read_text(encoding="utf-8")
        found += re.findall(r'class="caption-number">([^<]*)<', text)
        found += re.findall(r'class="std std-numref">([^<]*)<', text)
    assert found, "no numbered figure in the book: the introduction's figure?"
    assert all(re.fullmatch(r"Figure \d+(\.\d+)* ?", label) for label in found), found


@pytest.mark.parametrize("docname", DOCNAMES)
def test_page_loads_with_title_and_no_errors(visited, docname):
    page = visited[docname]
    report = page["report"]
    assert report["href"] == page_url(docname)
    assert len(report["h1"]) == 1 and report["h1"][0].strip("#"), \
        f"{docname}: expected exactly one top-level title, found {report['h1']}"
    assert not page["failed"], f"{docname}: resources failed to load: {page['failed']}"
    assert not page["js_errors"], f"{docname}: JavaScript errors: {page['js_errors']}"


@pytest.mark.parametrize("docname", DOCNAMES)
def test_equations_are_typeset(visited, docname):
    report = visited[docname]["report"]
    assert not report["math_untypeset"], \
        f"{docname}: math not typeset by MathJax: {report['math_untypeset']}"
    assert report["mjx_containers"] >= report["math_elements"]
    assert not report["mjx_errors"], f"{docname}: MathJax errors: {report['mjx_errors']}"
    assert not report["raw_dollars"], f"{docname}: raw $$ left in the page text"
    assert not report["raw_delimiters"], f"{docname}: raw \\( or \\[ left in the page text"


def test_math_is_present_where_expected(visited):
    """The introduction and the H-matrix chapter are about formulas."""
    for docname in ("book/intro", "notebooks/01_h_matrix"):
        assert docname in visited, f"{docname} is no longer in book/_toc.yml"
        assert visited[docname]["report"]["mjx_containers"] > 0, \
            f"{docname}: no typeset equation found"


@pytest.mark.parametrize("docname", DOCNAMES)
def test_figures_load(visited, docname):
    images = visited[docname]["report"]["images"]
    broken = [i["src"] for i in images if not i["ok"]]
    assert not broken, f"{docname}: images that did not load: {broken}"


@pytest.mark.parametrize("docname", DOCNAMES)
def test_figures_have_alt_text(visited, docname):
    """A figure drawn by a notebook cell gets the alt text of its cell's
    ``mystnb.image.alt`` metadata; without it the page says only the file's
    name to a screen reader (or when the image fails to load)."""
    figures = [i for i in visited[docname]["report"]["images"] if "/_images/" in i["src"]]
    nameless = [i["src"].rsplit("/", 1)[-1] for i in figures
                if not i["alt"].strip() or re.search(r"\.(png|svg|jpe?g)$", i["alt"])]
    assert not nameless, (f"{docname}: figures without alt text (give their code cell "
                          f"mystnb: image: alt: ...): {nameless}")


# "**Figure 5.1.**", or a cell's several figures "**Figures 5.6–5.10.**"
FIGURE_CAPTION = re.compile(r"^\*\*Figures? (\d+)\.(\d+)(?:–\1\.(\d+))?\.\*\*", re.MULTILINE)
FIGURE_MENTION = re.compile(r"\bFigures? (\d+)\.(\d+)\b")


def test_figure_numbers_follow_the_chapters():
    """Chapter figures are captioned in the Markdown (so JupyterLab shows the
    caption too) as **Figure <chapter>.<n>.**: numbered 1, 2, ... in each
    chapter, and every "Figure c.n" in the book names a caption that exists."""
    captions = set()
    for source in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.md")):
        chapter = int(source.name[:2])
        found = [(int(c), n) for c, first, last in FIGURE_CAPTION.findall(source.read_text())
                 for n in range(int(first), int(last or first) + 1)]
        expected = [(chapter, n) for n in range(1, len(found) + 1)]
        assert found == expected, f"{source.name}: figure captions numbered {found}"
        captions.update(found)
    sources = list((ROOT / "notebooks").glob("*.md")) + list((ROOT / "book").glob("*.md"))
    for source in sources:
        for c, n in FIGURE_MENTION.findall(source.read_text()):
            assert (int(c), int(n)) in captions, \
                f"{source.name} mentions Figure {c}.{n}, which no chapter captions"


def test_exercise_answers_are_folded_in_the_book_and_in_jupyterlab():
    """Every chapter has exercises whose answers a reader unfolds: each
    *Answer* is a ``<details class="answer">`` block (folded by the browser in
    the book and in JupyterLab alike; MyST's ``{dropdown}`` would show raw in
    JupyterLab), and every code cell of the Exercises section, which checks or
    computes an answer, is folded too: ``hide-cell`` for the book, Jupyter's
    ``source_hidden``/``outputs_hidden`` for JupyterLab."""
    for notebook in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        cells = json.loads(notebook.read_text())["cells"]
        in_exercises, has_exercises, answers = False, False, 0
        for cell in cells:
            source = "".join(cell["source"])
            if cell["cell_type"] == "markdown":
                for line in source.splitlines():
                    if line.startswith("## "):
                        in_exercises = line.startswith("## Exercises")
                        has_exercises |= in_exercises
                assert "{dropdown}" not in source and "*Answer.*" not in source, (
                    f"{notebook.name}: fold answers in <details class=\"answer\">")
                answers += source.count('<details class="answer"><summary>')
                assert source.count("<details") == source.count("</details>"), notebook.name
            elif in_exercises:
                metadata = cell["metadata"]
                assert "hide-cell" in metadata.get("tags", []), (notebook.name, source[:60])
                assert metadata.get("jupyter") == {"source_hidden": True,
                                                   "outputs_hidden": True}, notebook.name
        assert has_exercises, f"{notebook.name} has no Exercises section"
        assert answers >= 1, f"{notebook.name}: no folded answer"


def test_notebooks_name_the_kernel_jupyterlab_starts():
    """JupyterLab rewrites a notebook's kernelspec to the kernel it starts, and
    a notebook whose metadata it rewrites opens already marked modified (the
    reader is then asked to save a file they never changed). Every notebook
    names ipykernel's own spec, exactly as ``jupyter kernelspec list`` shows it."""
    from jupyter_client.kernelspec import KernelSpecManager

    spec = KernelSpecManager().get_kernel_spec("python3")
    expected = {"display_name": spec.display_name, "language": spec.language,
                "name": "python3"}
    for notebook in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        assert json.loads(notebook.read_text())["metadata"]["kernelspec"] == expected, (
            f"{notebook.name}: set its kernelspec to {expected} (in the .md twin too)")


def test_every_output_renders_in_jupyterlab():
    """The committed notebooks are also read in JupyterLab: no output may hide
    behind a MIME type only the book's build understands (myst-nb's
    ``glue(..., display=False)`` writes ``application/papermill.record/...``,
    which JupyterLab shows as nothing: chapter 04's figures once did)."""
    import json

    for notebook in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        cells = json.loads(notebook.read_text())["cells"]
        for index, cell in enumerate(cells):
            for output in cell.get("outputs", []):
                hidden = [m for m in output.get("data", {}) if "papermill" in m]
                assert not hidden, f"{notebook.name} cell {index}: {hidden}"


def test_headline_figure_is_shown(visited):
    images = visited["book/intro"]["report"]["images"]
    assert any(i["ok"] and "best" in i["src"] for i in images), \
        "the introduction must show the headline figure book/figures/best.png"


def test_experiment_chapter_has_figures(visited):
    docname = "notebooks/04_experiment"
    assert docname in visited, f"{docname} is no longer in book/_toc.yml"
    assert any(i["ok"] for i in visited[docname]["report"]["images"]), \
        f"{docname}: no figure"


@pytest.mark.parametrize("docname", DOCNAMES)
def test_no_request_leaves_the_machine(visited, docname):
    requests = visited[docname]["requests"]
    assert requests, "no request recorded: is the Network domain enabled?"
    remote = [u for u in requests if not is_local(u)]
    assert not remote, f"{docname}: requests to the network: {remote}"


def test_navigation_reaches_every_chapter(browser):
    browser.load((HTML / "index.html").as_uri(), expect=page_url(DOCNAMES[0]))
    start = browser.report()
    missing = [d for d in DOCNAMES[1:] if page_url(d) not in start["nav"]]
    assert not missing, f"sidebar of the introduction does not link to {missing}"
    # Follow the "next" links from the introduction to the last page.
    seen = [start["href"]]
    next_url = start["next"]
    while next_url and len(seen) <= len(DOCNAMES):
        browser.load(next_url)
        report = browser.report()
        seen.append(report["href"])
        next_url = report["next"]
    assert seen == [page_url(d) for d in DOCNAMES], f"reading order: {seen}"
    assert not [u for u in browser.requests() if not is_local(u)]


@pytest.mark.parametrize("docname", DOCNAMES)
def test_nothing_is_clipped(visited, docname):
    """No code block, output or table is wider than its box, folded cells
    included: long lines wrap, result tables fit the text column."""
    clipped = visited[docname]["layout"]["clipped"]
    assert not clipped, f"{docname}: clipped (scrollWidth > clientWidth): " + "\n".join(
        f"<{c['tag']} class='{c['cls']}'> {c['scroll']} > {c['client']} px: {c['text']!r}"
        for c in clipped[:10])


@pytest.mark.parametrize("docname", DOCNAMES)
def test_no_test_markers_on_the_page(visited, docname):
    """nbval's markers are cell tags (metadata), never text on the page."""
    markers = sorted(set(NBVAL_MARKER.findall(visited[docname]["layout"]["text"])))
    assert not markers, f"{docname} shows test markers: {markers}"


@pytest.mark.parametrize("docname", DOCNAMES)
def test_no_machine_paths_on_the_page(visited, docname):
    """Outputs name data by file name and sha256, never by where it sat."""
    text = visited[docname]["layout"]["text"]
    hits = [text[max(0, m.start() - 60):m.end() + 60].replace("\n", " ")
            for m in MACHINE_PATH.finditer(text)]
    assert not hits, f"{docname} shows absolute paths of the machine: {hits[:5]}"


def test_japanese_title_is_drawn_with_a_cjk_font(visited):
    docname, needle = JAPANESE_PROBE
    assert docname in visited, f"{docname} is no longer in book/_toc.yml"
    assert needle in visited[docname]["layout"]["text"], \
        f"{docname}: the article's Japanese title ({needle}...) is not on the page"
    fonts = visited[docname].get("fonts") or []
    assert any(CJK_FONT.search(f.get("familyName", "") + " " + f.get("postScriptName", ""))
               and f.get("glyphCount", 0) > 0 for f in fonts), (
        f"{docname}: the Japanese title is not drawn with a CJK font (fonts used: "
        f"{[(f.get('familyName'), f.get('glyphCount')) for f in fonts]}); "
        "install one: sudo bash tests/install_browser.sh (fonts-noto-cjk)")


def test_screenshots_written(visited):
    for stem in SCREENSHOT_PAGES.values():
        path = SCREENSHOTS / f"{stem}.png"
        assert path.is_file() and path.stat().st_size > 10_000, f"missing screenshot {path}"
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_broken_reference_fails_the_build(tmp_path):
    """Strictness: a broken {ref}, a broken {doc} and a missing figure each
    make the build fail (exit status != 0), with the reason in the log."""
    copy = tmp_path / "repo"
    ignore = shutil.ignore_patterns("_build", ".ipynb_checkpoints", "__pycache__")
    shutil.copytree(ROOT / "book", copy / "book", ignore=ignore)
    shutil.copytree(ROOT / "notebooks", copy / "notebooks", ignore=ignore)
    intro = copy / "book" / "intro.md"
    intro.write_text(intro.read_text(encoding="utf-8") + """

## A broken section

See {ref}`no-such-label-bnlib` and {doc}`no-such-page-bnlib`.

```{figure} figures/no-such-figure-bnlib.png
A figure that does not exist.
```
""", encoding="utf-8")
    result = run_build(copy)
    log = result.stdout + result.stderr
    assert result.returncode != 0, "the build must fail on broken references:\n" + log[-4000:]
    for needle in ("no-such-label-bnlib", "no-such-page-bnlib", "no-such-figure-bnlib"):
        assert needle in log, f"the build log does not report {needle}:\n" + log[-4000:]
