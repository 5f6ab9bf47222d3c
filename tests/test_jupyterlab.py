"""A learner's path through the course: JupyterLab serves the chapter notebooks and runs their first cells.

JupyterLab (a project dependency) is started on 127.0.0.1 with a token, a free port and its own runtime
and config folders. Through its REST API the test checks that the chapter notebooks are listed and open
as notebooks, then opens a chapter the way the Lab page does (a session with a kernel) and runs, over the
kernel's websocket, the chapter's parameters cell and the setup cell after it, with ``artifacts_dir``
pointed at a temporary folder the way papermill would inject it.
"""

from __future__ import annotations

import ast
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
START_TIMEOUT_S = 180  # a cold JupyterLab on a busy 2-core machine
CELL_TIMEOUT_S = 180

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Lab:
    """A running JupyterLab and the few REST calls the test needs."""

    def __init__(self, process: subprocess.Popen, port: int, token: str, log: Path):
        self.process, self.port, self.token, self.log = process, port, token, log
        self.url = f"http://127.0.0.1:{port}"

    def request(self, method: str, path: str, body: dict | None = None, token: str | None = None):
        """(status, parsed JSON or text) of one call; HTTP errors are returned, not raised."""
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.url + path, data=data, method=method, headers={
            "Authorization": f"token {self.token if token is None else token}",
            "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                status, text = response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            status, text = error.code, error.read().decode(errors="replace")
        try:
            return status, json.loads(text) if text else None
        except json.JSONDecodeError:
            return status, text


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory):
    home = tmp_path_factory.mktemp("jupyterlab")
    port, token = free_port(), uuid.uuid4().hex
    # its own config, data and runtime folders: no user setting applies and nothing is written to ~
    env = {**os.environ, "ROOTS_PROFILE": "smoke", **{f"JUPYTER_{kind}_DIR": str(home / kind.lower())
                                                      for kind in ("CONFIG", "DATA", "RUNTIME")}}
    command = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1",
               f"--ServerApp.port={port}", "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
               f"--ServerApp.root_dir={ROOT}", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
               "--LabApp.extension_manager=readonly"]  # no extension searches on PyPI
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--allow-root")  # CI and these machines run as root
    log = home / "jupyterlab.log"
    with open(log, "w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    server = Lab(process, port, token, log)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if process.poll() is not None:
                pytest.fail(f"JupyterLab exited with {process.returncode}:\n{log.read_text()[-3000:]}")
            try:
                if server.request("GET", "/api/status")[0] == 200:
                    break
            except OSError:
                pass  # not listening yet
            if time.monotonic() > deadline:
                pytest.fail(f"JupyterLab did not answer within {START_TIMEOUT_S} s:\n{log.read_text()[-3000:]}")
            time.sleep(1)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_the_server_wants_its_token(lab: Lab):
    assert lab.request("GET", "/api/contents/notebooks", token="wrong")[0] == 403
    status, page = lab.request("GET", "/lab")
    assert status == 200 and "jupyter-config-data" in page  # the Lab page itself is served


def test_the_chapter_notebooks_are_listed_and_open(lab: Lab):
    assert NOTEBOOKS, "no chapter notebooks in notebooks/"
    status, folder = lab.request("GET", "/api/contents/notebooks?content=1")
    assert status == 200, folder
    listed = {item["name"] for item in folder["content"] if item["type"] == "notebook"}
    assert {path.name for path in NOTEBOOKS} <= listed
    for path in NOTEBOOKS:
        status, model = lab.request("GET", f"/api/contents/notebooks/{path.name}?content=1&type=notebook")
        assert status == 200, f"{path.name}: {model}"
        cells = model["content"]["cells"]
        assert len(cells) == len(nbformat.read(path, as_version=4).cells), path.name
        assert any("parameters" in cell["metadata"].get("tags", []) for cell in cells), path.name


# --- running cells in a kernel, over the websocket as the Lab page does ------------------------

class KernelChannel:
    """Jupyter messages over ``/api/kernels/<id>/channels`` (the JSON form of the protocol)."""

    def __init__(self, lab: Lab, kernel_id: str):
        import websocket  # websocket-client

        self.session = uuid.uuid4().hex
        self.socket = websocket.create_connection(
            f"ws://127.0.0.1:{lab.port}/api/kernels/{kernel_id}/channels?session_id={self.session}",
            header=[f"Authorization: token {lab.token}"], timeout=CELL_TIMEOUT_S)

    def execute(self, code: str, expressions: dict[str, str] | None = None) -> dict:
        """Run ``code``; return the execute_reply's content plus the stream text and errors it printed."""
        msg_id = uuid.uuid4().hex
        self.socket.send(json.dumps({
            "header": {"msg_id": msg_id, "msg_type": "execute_request", "session": self.session,
                       "username": "test", "version": "5.3"},
            "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
            "content": {"code": code, "silent": False, "store_history": True, "allow_stdin": False,
                        "stop_on_error": True, "user_expressions": expressions or {}}}))
        reply, idle, printed = None, False, []
        deadline = time.monotonic() + CELL_TIMEOUT_S
        while reply is None or not idle:
            if time.monotonic() > deadline:
                raise TimeoutError(f"no reply within {CELL_TIMEOUT_S} s to:\n{code}")
            message = json.loads(self.socket.recv())
            if message.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind, content = message["header"]["msg_type"], message["content"]
            if kind == "execute_reply":
                reply = content
            elif kind == "status" and content["execution_state"] == "idle":
                idle = True
            elif kind == "stream":
                printed.append(content["text"])
            elif kind == "error":
                printed.append("\n".join(content["traceback"]))
        return {**reply, "printed": "".join(printed)}

    def close(self):
        self.socket.close()


def parameters_of(source: str) -> dict[str, object]:
    """The names a parameters cell assigns, with their literal values."""
    return {node.targets[0].id: ast.literal_eval(node.value) for node in ast.parse(source).body
            if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name)}


def test_a_chapter_runs_its_first_cells_in_a_jupyterlab_kernel(lab: Lab, tmp_path: Path):
    chapter = NOTEBOOKS[0]
    notebook = nbformat.read(chapter, as_version=4)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert "parameters" in code[0].metadata.get("tags", []), f"{chapter.name}: the first code cell is not its parameters"
    parameters = parameters_of(code[0].source)
    assert parameters, f"{chapter.name}: its parameters cell assigns nothing"

    status, session = lab.request("POST", "/api/sessions", {
        "path": f"notebooks/{chapter.name}", "name": chapter.name, "type": "notebook",
        "kernel": {"name": notebook.metadata["kernelspec"]["name"]}})
    assert status == 201, session
    channel = KernelChannel(lab, session["kernel"]["id"])
    try:
        reply = channel.execute(code[0].source, {name: f"repr({name})" for name in parameters})
        assert reply["status"] == "ok", reply["printed"]
        seen = {name: ast.literal_eval(value["data"]["text/plain"]) for name, value in reply["user_expressions"].items()}
        assert seen == {name: repr(value) for name, value in parameters.items()}

        # what papermill would inject, so that nothing is written into the project's artifacts/
        assert channel.execute(f"artifacts_dir = {str(tmp_path)!r}")["status"] == "ok"
        reply = channel.execute(code[1].source, {"profile": "ch.profile.name", "artifacts": "str(ch.paths.root)"})
        assert reply["status"] == "ok", reply["printed"]
        results = {name: ast.literal_eval(value["data"]["text/plain"]) for name, value in reply["user_expressions"].items()}
        assert results == {"profile": "smoke", "artifacts": str(tmp_path.resolve())}, reply
        assert "profile 'smoke'" in reply["printed"]  # the chapter's own narration reached the notebook
    finally:
        channel.close()
        lab.request("DELETE", f"/api/sessions/{session['id']}")
