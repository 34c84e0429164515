"""JupyterLab as a reader meets it (``make lab``), in a real browser.

Starts ``jupyter lab`` (the full JupyterLab) on 127.0.0.1 with a random token,
rooted at ``notebooks/`` like ``make lab``, with a fresh user-settings and
workspaces folder in a temporary directory (the user's own ``~/.jupyter`` does
not apply; the environment's app settings that ``make setup`` installs from
``jupyter/`` do), and drives headless Chromium over the DevTools protocol with
``tests/test_book.py``'s ``Browser``:

1. ``/lab/tree/01_h_matrix.md`` opens the Jupytext twin as a *notebook panel*
   with its cells and the committed outputs of the paired ``.ipynb`` (not the
   text editor); no news / update pop-up appears;
2. its first code cell is run through the UI (click the cell, click "Run"):
   under ``BNLIB_PROFILE=smoke`` it prints ``smoke``, and shows none of
   TensorFlow's start-up lines;
3. in a fresh workspace, a double click on each ``.md`` twin in the file browser
   opens it as a notebook panel.

The server is then stopped; the page must not have asked it to write a file
(autosave is off in the test's user settings; checkpoints go to the temporary
folder).
Screenshots go to ``$BNLIB_SCREENSHOTS`` or ``<tmp>/bnlib-lab-ui/`` (never into
the repository), for a person to look at.
"""

from __future__ import annotations

import base64
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path

import pytest

from test_book import Browser, CDPError, require_chromium
from test_jupyter_server import STARTUP_NOISE, Server

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
FIRST = "01_h_matrix.md"
TWINS = sorted(p.name for p in NOTEBOOKS.glob("*.md") if p.with_suffix(".ipynb").is_file())
SCREENSHOTS = Path(os.environ.get("BNLIB_SCREENSHOTS")
                   or Path(tempfile.gettempdir()) / "bnlib-lab-ui")
UI_TIMEOUT = 180     # JupyterLab's first load on a busy 2-core machine
CELL_TIMEOUT = 600   # the first cell imports TensorFlow
RUN_COMMAND = "notebook:run-cell-and-select-next"

# User settings of the test's own (fresh) settings folder: never write notebooks/.
USER_SETTINGS = {
    "@jupyterlab/docmanager-extension/plugin.jupyterlab-settings": {"autosave": False},
}

# What the page shows, measured in the browser (one expression, JSON out).
STATE_JS = r"""(() => {
    const tabs = Array.from(document.querySelectorAll('#jp-main-dock-panel .lm-TabBar-tab'));
    const widgets = tabs.map(t => {
        const w = document.getElementById(t.dataset.id);
        return {
            label: (t.querySelector('.lm-TabBar-tabLabel') || t).textContent.trim(),
            current: t.classList.contains('lm-mod-current'),
            notebook: !!(w && w.classList.contains('jp-NotebookPanel')),
            editor: !!(w && (w.classList.contains('jp-FileEditor')
                             || w.querySelector('.jp-FileEditor'))),
            cells: w ? w.querySelectorAll('.jp-Cell').length : 0,
            code_cells: w ? w.querySelectorAll('.jp-CodeCell').length : 0,
            outputs: w ? w.querySelectorAll('.jp-OutputArea-output').length : 0,
        };
    });
    return {
        href: location.href,
        widgets: widgets,
        toasts: Array.from(document.querySelectorAll('.Toastify__toast'))
                     .map(e => e.textContent.trim()),
        dialogs: Array.from(document.querySelectorAll('.jp-Dialog'))
                      .map(e => e.textContent.trim().slice(0, 300)),
        listing: Array.from(document.querySelectorAll('.jp-DirListing-item .jp-DirListing-itemText'))
                      .map(e => e.textContent.trim()),
    };
})()"""


# ``{}``: an expression using ``panel``, the widget of the current main-area tab.
CURRENT_PANEL_JS = """(() => {{
    const tab = document.querySelector('#jp-main-dock-panel .lm-TabBar-tab.lm-mod-current');
    const panel = tab && document.getElementById(tab.dataset.id);
    return panel ? {} : null;
}})()"""

# The first code cell's prompt and the text of all its outputs.
CELL_JS = """
    const prompt = cell.querySelector('.jp-InputPrompt').textContent.trim();
    const outputs = Array.from(cell.querySelectorAll('.jp-OutputArea-output'));
    return {prompt: prompt, text: outputs.map(o => o.innerText).join('\\n')};"""


def first_code_cell_js(body: str) -> str:
    """JS evaluated with ``cell`` = the first code cell of the current notebook."""
    return f"""(() => {{
        const tab = document.querySelector('#jp-main-dock-panel .lm-TabBar-tab.lm-mod-current');
        const panel = tab && document.getElementById(tab.dataset.id);
        const cell = panel && panel.querySelector('.jp-CodeCell');
        if (!cell) return null;
        {body}
    }})()"""


class Lab:
    """JupyterLab (our server) + headless Chromium (test_book's Browser)."""

    def __init__(self, server: Server, browser: Browser):
        self.server, self.browser = server, browser

    def url(self, path: str) -> str:
        return f"{self.server.base}{path}?token={self.server.token}"

    def open(self, path: str) -> None:
        """Navigate; a "Leave site?" prompt (a notebook with unsaved changes, as
        autosave is off) is answered "Leave": nothing is saved."""
        b = self.browser
        b._next_id += 1
        call_id = b._next_id
        b.ws.send(json.dumps({"id": call_id, "method": "Page.navigate",
                              "params": {"url": self.url(path)}}))
        while True:
            message = b._receive()
            if message.get("method") == "Page.javascriptDialogOpening":
                b._next_id += 1
                b.ws.send(json.dumps({"id": b._next_id, "method": "Page.handleJavaScriptDialog",
                                      "params": {"accept": True}}))
            elif message.get("id") == call_id:
                if "error" in message:
                    raise CDPError(f"Page.navigate: {message['error']}")
                return

    def state(self) -> dict:
        try:
            return self.browser.evaluate(STATE_JS) or {}
        except CDPError:
            return {}  # the page is being replaced by a navigation

    def wait(self, what: str, predicate, timeout: float = UI_TIMEOUT):
        deadline = time.monotonic() + timeout
        while True:
            state = self.state()
            value = predicate(state) if state else None
            if value:
                return value
            if time.monotonic() > deadline:
                self.screenshot("timeout")
                raise AssertionError(f"timed out waiting for {what}; the page shows:\n"
                                     + json.dumps(state, indent=1)[:4000]
                                     + f"\nserver log:\n{self.server.log()}")
            time.sleep(0.5)

    def rect_center(self, js_element: str) -> tuple[float, float] | None:
        """Scroll an element (a JS expression) into view and return its centre."""
        return self.browser.evaluate(f"""(() => {{
            const e = {js_element};
            if (!e) return null;
            e.scrollIntoView({{block: 'center'}});
            const r = e.getBoundingClientRect();
            return r.width && r.height ? [r.x + r.width / 2, r.y + r.height / 2] : null;
        }})()""")

    def click(self, x: float, y: float, count: int = 1) -> None:
        """A real mouse click (``count=2``: a double click) at page coordinates."""
        self.browser.call("Input.dispatchMouseEvent", type="mouseMoved", x=x, y=y)
        for n in range(1, count + 1):
            for kind in ("mousePressed", "mouseReleased"):
                self.browser.call("Input.dispatchMouseEvent", type=kind, x=x, y=y,
                                  button="left", buttons=1 if kind == "mousePressed" else 0,
                                  clickCount=n)

    def screenshot(self, name: str) -> Path:
        path = SCREENSHOTS / f"{name}.png"
        try:
            shot = self.browser.call("Page.captureScreenshot", format="png")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(base64.b64decode(shot["data"]))
        except CDPError:
            pass
        return path


def content_writes(events: list[dict]) -> list[str]:
    """Requests of the page that would change a file (checkpoints excepted: they
    go to the server's temporary folder)."""
    writes = []
    for event in events:
        if event["method"] != "Network.requestWillBeSent":
            continue
        request = event["params"]["request"]
        path = request["url"].split("?")[0]
        if ("/api/contents" in path and request["method"] in ("PUT", "PATCH", "POST", "DELETE")
                and not path.rstrip("/").split("/")[-1] == "checkpoints"
                and "/checkpoints/" not in path):
            writes.append(f"{request['method']} {path}")
    return writes


def notebook_tab(label: str):
    """Predicate: the current tab is ``label``, shown as a notebook panel with cells."""
    def predicate(state):
        for w in state.get("widgets", []):
            if w["label"] == label and w["current"] and (w["editor"] or w["cells"]):
                return w
        return None
    return predicate


def expect_notebook(lab: Lab, name: str, how: str) -> dict:
    """``name`` is the current tab, a notebook panel (not the text editor) with all
    the code cells of the ``.md`` and the committed outputs of its ``.ipynb``."""
    tab = lab.wait(f"{name} to open ({how})", notebook_tab(name))
    assert tab["notebook"] and not tab["editor"], \
        f"{how}: {name} opened in the text editor, not as a notebook: {tab}"
    code_cells = sum(1 for line in (NOTEBOOKS / name).read_text(encoding="utf-8").splitlines()
                     if line.startswith("```{code-cell}"))
    tab = lab.wait(f"the {code_cells} code cells of {name}",
                   lambda s: (w := notebook_tab(name)(s)) and w["code_cells"] >= code_cells and w)
    if any(c.get("outputs") for c in json.loads(
            (NOTEBOOKS / name).with_suffix(".ipynb").read_text(encoding="utf-8"))["cells"]):
        assert tab["outputs"] > 0, f"{how}: {name} opened without the outputs of its .ipynb"
    return tab


# --------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    executable = require_chromium()
    kernelspec = Path(sys.prefix) / "share" / "jupyter" / "kernels" / "python3" / "kernel.json"
    assert "kernel_startup.py" in kernelspec.read_text(), \
        f"{kernelspec} is ipykernel's default: run `make setup` (jupyter/install.py)"

    work = tmp_path_factory.mktemp("lab")
    settings = work / "user-settings"
    for name, values in USER_SETTINGS.items():
        (settings / name).parent.mkdir(parents=True, exist_ok=True)
        (settings / name).write_text(json.dumps(values), encoding="utf-8")
    if SCREENSHOTS.is_dir():
        for old in SCREENSHOTS.glob("*.png"):
            old.unlink()
    server = Server(NOTEBOOKS, work / "server", app="jupyterlab", extra_env={
        "JUPYTERLAB_SETTINGS_DIR": str(settings),
        "JUPYTERLAB_WORKSPACES_DIR": str(work / "workspaces"),
    })
    browser, writes = None, []
    try:
        browser = Browser(executable, work / "chromium" / "profile")
        browser.call("Emulation.setDeviceMetricsOverride", width=1280, height=900,
                     deviceScaleFactor=1, mobile=False)
        yield Lab(server, browser)
        browser.call("Runtime.evaluate", expression="0")  # drain the last events
        writes = content_writes(browser.events)
    finally:
        if browser is not None:
            browser.close()
        try:
            for session in server.api("GET", "sessions"):
                server.api("DELETE", f"sessions/{session['id']}")
        except Exception:
            pass
        server.stop()
    assert not writes, f"the JupyterLab session wrote to notebooks/: {writes}"


# --------------------------------------------------------------------------- tests
def test_environment_settings_apply(lab):
    """The app settings of the environment are the defaults a fresh JupyterLab user gets."""
    def default(plugin: str, key: str):
        answer = lab.server.http.get(f"{lab.server.base}/lab/api/settings/{plugin}", timeout=60)
        assert answer.status_code == 200, f"{plugin}: {answer.status_code}"
        return answer.json()["schema"]["properties"][key]["default"]

    viewers = default("@jupyterlab/docmanager-extension:plugin", "defaultViewers")
    assert viewers.get("markdown") == "Jupytext Notebook", viewers
    assert viewers.get("myst") == "Jupytext Notebook", viewers
    assert default("@jupyterlab/apputils-extension:notification", "fetchNews") == "false"
    assert default("@jupyterlab/apputils-extension:notification", "checkForUpdates") is False


def test_md_twin_opens_as_notebook_and_runs_a_cell(lab):
    lab.open(f"/lab/tree/{FIRST}")
    expect_notebook(lab, FIRST, "/lab/tree/ URL")
    time.sleep(3)  # a news pop-up would show within a few seconds of the start
    state = lab.state()
    assert not state["toasts"], f"JupyterLab shows pop-ups: {state['toasts']}"
    assert not state["dialogs"], f"JupyterLab shows a dialog: {state['dialogs']}"
    lab.screenshot("01_opened_as_notebook")

    # Run the first code cell through the UI: select it, press the toolbar's Run.
    where = lab.rect_center(first_code_cell_js("return cell.querySelector('.jp-InputPrompt');"))
    assert where, "no first code cell to click"
    lab.click(*where)
    run_button = lab.rect_center(CURRENT_PANEL_JS.format(
        f"panel.querySelector('[data-command=\"{RUN_COMMAND}\"]')"))
    assert run_button, f"no Run button ({RUN_COMMAND}) in the notebook's toolbar"
    committed = lab.browser.evaluate(first_code_cell_js(CELL_JS))
    lab.click(*run_button)
    # Running: the prompt turns to [*] (TensorFlow's import takes seconds), or the
    # committed output is replaced; finished: a number in the prompt again.
    started, deadline = False, time.monotonic() + CELL_TIMEOUT
    while True:
        cell = lab.browser.evaluate(first_code_cell_js(CELL_JS))
        started = started or cell["prompt"] == "[*]:" or cell["text"] != committed["text"]
        if started and re.fullmatch(r"\[\d+\]:", cell["prompt"]):
            break
        if time.monotonic() > deadline:
            lab.screenshot("02_first_cell_timeout")
            pytest.fail(f"the first cell did not run in {CELL_TIMEOUT} s: {cell}\n"
                        + lab.server.log())
        time.sleep(0.2)
    time.sleep(1)  # late lines on stderr would show now
    cell = lab.browser.evaluate(first_code_cell_js(CELL_JS))
    lab.screenshot("02_first_cell_run")
    assert "Traceback" not in cell["text"], f"the first cell failed:\n{cell['text'][-3000:]}"
    assert "smoke" in cell["text"], \
        f"the first cell should print the profile 'smoke' (BNLIB_PROFILE): {cell['text']!r}"
    noise = [line for line in cell["text"].splitlines()
             if any(n in line for n in STARTUP_NOISE)]
    assert not noise, f"TensorFlow's start-up lines are shown in the notebook: {noise}"


def test_double_click_opens_every_md_twin_as_notebook(lab):
    assert FIRST in TWINS, TWINS
    lab.open("/lab/workspaces/double-click")  # a fresh workspace: no tab open
    lab.wait("the file browser listing the notebooks",
             lambda s: set(TWINS) <= set(s.get("listing", [])))
    for name in TWINS:
        item_js = ("Array.from(document.querySelectorAll('.jp-DirListing-item'))"
                   ".find(e => e.querySelector('.jp-DirListing-itemText').textContent.trim()"
                   f" === {json.dumps(name)})")
        deadline = time.monotonic() + 60
        while not (item := lab.rect_center(item_js)) and time.monotonic() < deadline:
            time.sleep(0.5)  # listed, but not laid out yet
        if not item:
            lab.screenshot(f"03_double_click_{Path(name).stem}_missing")
        assert item, f"{name} is not shown in the file browser: {lab.state()}"
        lab.click(*item, count=2)
        expect_notebook(lab, name, "double click in the file browser")
        lab.screenshot(f"03_double_click_{Path(name).stem}")
