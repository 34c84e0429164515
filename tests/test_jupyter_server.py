"""The notebooks under a real Jupyter server, as ``make lab`` serves them.

Starts ``jupyter server`` headless on 127.0.0.1 (free port, random token, the
environment's own configuration, so the Jupytext contents manager that
JupyterLab uses is the one under test), then, over HTTP and the kernel
websocket only:

1. opens the Jupytext twin ``notebooks/01_h_matrix.md`` through the contents API
   *as a notebook* (only Jupytext makes a ``.md`` file a notebook);
2. starts a kernel for it through the sessions API (cwd: ``notebooks/``);
3. runs every code cell through ``/api/kernels/<id>/channels`` with
   ``BNLIB_PROFILE=smoke`` in the server's environment, and checks that no cell
   fails, that the profile the notebook prints is ``smoke``, and that no cell
   shows TensorFlow's start-up lines (absl, cuda stub, oneDNN, cuInit: the
   kernelspec that ``make setup`` installs keeps them out, see
   ``jupyter/kernel_startup.py``) while a real C-level error and a Python
   warning written afterwards do show;
4. shuts the kernel and the server down, and checks the notebooks were not modified.
"""

from __future__ import annotations

import datetime
import json
import os
import secrets
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import requests

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = "notebooks/01_h_matrix.md"
KERNEL_START_TIMEOUT = 180
CELL_TIMEOUT = 900  # seconds per cell; the machine may be busy training
# TensorFlow's start-up lines that must not reach a notebook (jupyter/kernel_startup.py).
STARTUP_NOISE = ("absl::InitializeLog()", "cudart_stub.cc", "oneDNN custom operations",
                 "failed call to cuInit")
REAL_STDERR = """\
import os, tensorflow as tf, warnings
tf.config.list_physical_devices()
os.write(2, b"E0000 00:00:0.0  1 bnlib_test.cc:1] a real C-level error\\n")
warnings.warn("a real Python warning")
__import__("time").sleep(0.5)  # let descriptor 2 drain into this cell's output
"""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def snapshot(folder: Path) -> dict[str, float]:
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns
            for p in folder.iterdir() if p.is_file()}


class Server:
    """A Jupyter server we start (``app``: ``jupyter_server``, or ``jupyterlab``
    for the full JupyterLab, as ``make lab`` runs it), isolated from the user's
    own configuration; ``extra_args`` and ``extra_env`` are added."""

    def __init__(self, root: Path, workdir: Path, app: str = "jupyter_server",
                 extra_args: tuple[str, ...] = (), extra_env: dict[str, str] | None = None):
        self.port = free_port()
        self.token = secrets.token_hex(24)
        self.base = f"http://127.0.0.1:{self.port}"
        env = dict(os.environ)
        env.update(
            BNLIB_PROFILE="smoke",
            TF_CPP_MIN_LOG_LEVEL="2",
            PYDEVD_DISABLE_FILE_VALIDATION="1",
            JUPYTER_PLATFORM_DIRS="1",
            # Isolate from the user's ~/.jupyter and ~/.ipython; the virtualenv's
            # own configuration (sys.prefix/etc/jupyter: jupytext; its kernelspec
            # and JupyterLab settings from jupyter/install.py) still applies.
            JUPYTER_CONFIG_DIR=str(workdir / "config"),
            JUPYTER_RUNTIME_DIR=str(workdir / "runtime"),
            IPYTHONDIR=str(workdir / "ipython"),
        )
        env.update(extra_env or {})
        env.pop("JUPYTER_TOKEN", None)
        # tests/conftest.py sets this for the test process; `make lab` does not.
        env.pop("TF_USE_LEGACY_KERAS", None)
        # Under pytest ipykernel stops forwarding file descriptor 2 into the
        # notebook; a user's kernel does forward it, so the kernels here must too.
        env.pop("PYTEST_CURRENT_TEST", None)
        workdir.mkdir(parents=True, exist_ok=True)
        self.log_path = workdir / "server.log"
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", app, "--no-browser",
             "--ip=127.0.0.1", f"--port={self.port}", "--port-retries=0",
             f"--ServerApp.root_dir={root}",
             f"--IdentityProvider.token={self.token}",
             # Checkpoints (written when a file is opened) go to the work folder.
             f"--FileCheckpoints.root_dir={workdir / 'checkpoints'}",
             "--allow-root",  # CI containers run as root
             *extra_args],
            cwd=root, env=env, stdout=self._log, stderr=subprocess.STDOUT)
        self.http = requests.Session()
        self.http.trust_env = False  # never through a proxy
        self.http.headers["Authorization"] = f"token {self.token}"
        deadline = time.monotonic() + 120
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"jupyter server exited:\n{self.log()}")
            try:
                if self.http.get(f"{self.base}/api/status", timeout=5).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"jupyter server did not start:\n{self.log()}")
            time.sleep(0.5)

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")[-6000:]

    def api(self, method: str, path: str, **kwargs):
        response = self.http.request(method, f"{self.base}/api/{path}", timeout=120, **kwargs)
        assert response.status_code < 400, \
            f"{method} /api/{path}: {response.status_code} {response.text[:2000]}"
        return response.json() if response.content else None

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                self.http.post(f"{self.base}/api/shutdown", timeout=30)
            except requests.RequestException:
                pass
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.terminate()  # the server we started, by its process id
                try:
                    self.proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
        self._log.close()


class KernelChannel:
    """The kernel's websocket (legacy JSON protocol) behind the server."""

    def __init__(self, server: Server, kernel_id: str):
        import websocket  # websocket-client

        self.session = uuid.uuid4().hex
        self.ws = websocket.create_connection(
            f"ws://127.0.0.1:{server.port}/api/kernels/{kernel_id}/channels"
            f"?session_id={self.session}",
            header=[f"Authorization: token {server.token}"], timeout=30,
            suppress_origin=True, http_no_proxy=["127.0.0.1", "localhost"])

    def send(self, msg_type: str, content: dict, channel: str = "shell") -> str:
        msg_id = uuid.uuid4().hex
        self.ws.send(json.dumps({
            "header": {"msg_id": msg_id, "msg_type": msg_type, "username": "pytest",
                       "session": self.session, "version": "5.3",
                       "date": datetime.datetime.now(datetime.timezone.utc).isoformat()},
            "parent_header": {}, "metadata": {}, "content": content,
            "channel": channel, "buffers": []}))
        return msg_id

    def replies(self, msg_id: str, timeout: float):
        """Messages answering ``msg_id`` until its reply *and* iopub idle arrived."""
        import websocket

        deadline = time.monotonic() + timeout
        got_reply = got_idle = False
        while not (got_reply and got_idle):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no complete answer to {msg_id} in {timeout} s")
            self.ws.settimeout(min(remaining, 30))
            try:
                message = json.loads(self.ws.recv())
            except websocket.WebSocketTimeoutException:
                continue
            if message.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            yield message
            if message["channel"] == "shell" and message["msg_type"].endswith("_reply"):
                got_reply = True
            if (message["channel"] == "iopub" and message["msg_type"] == "status"
                    and message["content"]["execution_state"] == "idle"):
                got_idle = True

    def wait_ready(self, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            msg_id = self.send("kernel_info_request", {})
            try:
                for message in self.replies(msg_id, timeout=15):
                    if message["msg_type"] == "kernel_info_reply":
                        return message["content"]
            except TimeoutError:
                if time.monotonic() > deadline:
                    raise

    def execute(self, code: str, timeout: float) -> tuple[dict, list[dict]]:
        msg_id = self.send("execute_request", {
            "code": code, "silent": False, "store_history": True,
            "user_expressions": {}, "allow_stdin": False, "stop_on_error": True})
        reply, outputs = None, []
        for message in self.replies(msg_id, timeout):
            if message["msg_type"] == "execute_reply":
                reply = message["content"]
            elif message["msg_type"] in ("stream", "execute_result", "display_data", "error"):
                outputs.append({"type": message["msg_type"], **message["content"]})
        return reply, outputs

    def close(self) -> None:
        self.ws.close()


def stderr_text(outputs: list[dict]) -> str:
    return "".join(o["text"] for o in outputs if o["type"] == "stream" and o["name"] == "stderr")


def output_text(outputs: list[dict]) -> str:
    parts = []
    for out in outputs:
        if out["type"] == "stream":
            parts.append(out["text"])
        elif out["type"] in ("execute_result", "display_data"):
            parts.append(out["data"].get("text/plain", ""))
    return "".join(parts)


def test_md_twin_runs_through_jupyter_server(tmp_path):
    notebook_path = ROOT / NOTEBOOK
    assert notebook_path.is_file(), f"{NOTEBOOK} is missing"
    before = snapshot(notebook_path.parent)
    server = Server(ROOT, tmp_path)
    channel = None
    try:
        # 1. The .md twin, opened as a notebook (Jupytext contents manager).
        model = server.api("GET", f"contents/{NOTEBOOK}",
                           params={"type": "notebook", "content": 1})
        assert model["type"] == "notebook" and model["format"] == "json", model.get("type")
        notebook = model["content"]
        assert notebook["nbformat"] == 4
        assert notebook["metadata"].get("jupytext"), "not opened through Jupytext"
        code_cells = [c for c in notebook["cells"] if c["cell_type"] == "code"]
        assert code_cells, f"{NOTEBOOK} has no code cell"
        paired = notebook_path.with_suffix(".ipynb")
        if paired.is_file():  # outputs come from the paired, committed .ipynb
            assert any(c.get("outputs") for c in code_cells), \
                f"{NOTEBOOK} opened without the outputs of {paired.name}"

        # 2. A kernel for it, started by the server (as JupyterLab does).
        session = server.api("POST", "sessions", json={
            "path": NOTEBOOK, "type": "notebook", "name": notebook_path.name,
            "kernel": {"name": "python3"}})
        kernel_id = session["kernel"]["id"]
        channel = KernelChannel(server, kernel_id)
        info = channel.wait_ready(KERNEL_START_TIMEOUT)
        assert info["language_info"]["name"] == "python"

        # 3. Every code cell, through the kernel's websocket.
        texts, noise = [], []
        for index, cell in enumerate(code_cells):
            reply, outputs = channel.execute(cell["source"], CELL_TIMEOUT)
            errors = [f"{o['ename']}: {o['evalue']}" for o in outputs if o["type"] == "error"]
            assert not errors, f"code cell {index} failed: {errors}\n{cell['source'][:500]}"
            assert reply is not None and reply["status"] == "ok", \
                f"code cell {index}: {reply}\n{cell['source'][:500]}"
            texts.append(output_text(outputs))
            noise += [f"code cell {index}: {line}" for line in stderr_text(outputs).splitlines()
                      if any(n in line for n in STARTUP_NOISE)]
        printed = "".join(texts)
        assert "smoke" in printed, \
            "the notebook should print its profile (smoke, from the server's environment)"
        assert not noise, ("TensorFlow's start-up lines reached the notebook (is the "
                           "kernelspec of `make setup` installed?):\n" + "\n".join(noise))
        # ... and nothing else is hidden: real stderr still reaches the notebook.
        reply, outputs = channel.execute(REAL_STDERR, CELL_TIMEOUT)
        assert reply["status"] == "ok", reply
        shown = stderr_text(outputs)
        assert "a real C-level error" in shown and "a real Python warning" in shown, shown
        channel.close()
        channel = None

        # 4. Shut the kernel down through the server.
        server.api("DELETE", f"sessions/{session['id']}")
        assert kernel_id not in [k["id"] for k in server.api("GET", "kernels")]
    except BaseException:
        print(server.log())
        raise
    finally:
        if channel is not None:
            channel.close()
        server.stop()
    assert server.proc.returncode is not None
    assert snapshot(notebook_path.parent) == before, "opening/running changed files in notebooks/"
