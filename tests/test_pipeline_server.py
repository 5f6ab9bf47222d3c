"""The pipeline as a team runs it: a real `prefect server start`, `python -m pipelines serve` and
`prefect deployment run ... --watch`; a process work pool with a worker (prefect.yaml); and
`python -m pipelines run`. Every process started here is stopped by its PID."""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from pipeline_course import make_course

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(command: list[str], env: dict[str, str], log: Path, cwd: Path = ROOT) -> subprocess.Popen:
    """Start a process in its own session (its children follow it when it is stopped)."""
    return subprocess.Popen(command, cwd=cwd, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT,
                            start_new_session=True)


def stop(process: subprocess.Popen) -> None:
    """Stop a process started by ``start`` (and its process group) by its PID: TERM, then KILL."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)


def wait_until(check, timeout: float, what: str, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(1)
    tail = log.read_text()[-3000:] if log and log.exists() else ""
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}\n{tail}")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """`prefect server start` on 127.0.0.1 (SQLite in a temporary PREFECT_HOME); yields the shell env to use."""
    home = tmp_path_factory.mktemp("prefect-home")
    port = free_port()
    url = f"http://127.0.0.1:{port}/api"
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_API_URL": url,
           "PREFECT_RESULTS_LOCAL_STORAGE_PATH": str(home / "storage"),
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1"}
    log = home / "server.log"
    process = start([str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)], env, log)
    try:
        def healthy() -> bool:
            assert process.poll() is None, log.read_text()[-3000:]
            try:
                return httpx.get(f"{url}/health", timeout=5).status_code == 200
            except httpx.HTTPError:
                return False
        wait_until(healthy, 120, "the Prefect server", log)
        yield {"env": env, "url": url, "home": home}
    finally:
        stop(process)


def prefect(server, *args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "prefect"), *args], cwd=ROOT, env=server["env"], check=False, capture_output=True,
                          text=True, timeout=timeout)


def deployment_exists(server, name: str) -> bool:
    response = httpx.get(f"{server['url']}/deployments/name/{name}", timeout=5)
    return response.status_code == 200


def flow_runs(server, deployment: str) -> list[dict]:
    deployment_id = httpx.get(f"{server['url']}/deployments/name/{deployment}", timeout=5).json()["id"]
    response = httpx.post(f"{server['url']}/flow_runs/filter", timeout=10,
                          json={"deployments": {"id": {"any_": [deployment_id]}}})
    return response.json()


def course_params(course, *extra: str) -> list[str]:
    args = []
    for key in ("notebooks", "artifacts", "book"):
        args += ["--param", f"{key}_dir={course[key]}"]
    for item in extra:
        args += ["--param", item]
    return args


def test_serve_then_run_a_deployment_and_watch_it(server, tmp_path):
    course = make_course(tmp_path, chapters=(1, 2))
    log = tmp_path / "serve.log"
    serving = start([sys.executable, "-m", "pipelines", "serve"], server["env"], log)
    try:
        wait_until(lambda: serving.poll() is None and all(deployment_exists(server, f"{f}/{p}")
                   for f in ("regenerate", "pretrain", "finetune", "evaluate", "publish")
                   for p in ("smoke", "cpu", "gpu")), 120, "the served deployments", log)
        result = prefect(server, "deployment", "run", "regenerate/smoke", *course_params(course, "chapters=[1, 2]"),
                         "--watch")
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        assert "Completed" in result.stdout
        runs = flow_runs(server, "regenerate/smoke")
        assert [r["state"]["type"] for r in runs] == ["COMPLETED"]
        assert runs[0]["parameters"]["profile"] == "smoke"
        assert (course["book"] / "_build" / "html" / "chapters" / "02_optimization.html").is_file()
    finally:
        stop(serving)
    assert serving.returncode is not None


def test_a_worker_of_the_work_pool_runs_the_gpu_deployment(server, tmp_path):
    course = make_course(tmp_path, chapters=(1, 2))
    created = prefect(server, "work-pool", "create", "roots-gpu", "--type", "process", "--overwrite")
    assert created.returncode == 0, created.stdout + created.stderr
    deployed = prefect(server, "--no-prompt", "deploy", "--all")   # reads prefect.yaml at the project root
    assert deployed.returncode == 0, deployed.stdout[-3000:] + deployed.stderr[-3000:]
    assert "regenerate/gpu" in deployed.stdout
    log = tmp_path / "worker.log"
    worker = start([str(BIN / "prefect"), "worker", "start", "--pool", "roots-gpu"],
                   {**server["env"], "ROOTS_DIR": str(ROOT)}, log, cwd=tmp_path)
    try:
        # the smoke profile on this CPU-only machine: what is tested is the pool, the worker and the pull step
        result = prefect(server, "deployment", "run", "regenerate/gpu",
                         *course_params(course, "profile=smoke", "publish=false"), "--watch")
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:] + log.read_text()[-3000:]
        runs = flow_runs(server, "regenerate/gpu")
        assert [r["state"]["type"] for r in runs][-1:] == ["COMPLETED"]
        assert runs[-1]["work_pool_name"] == "roots-gpu"
        assert (course["artifacts"] / "smoke" / "executed" / "02_optimization.ipynb").is_file()
    finally:
        stop(worker)


def test_the_command_line_runs_regenerate_and_says_where_the_book_is(server, tmp_path):
    course = make_course(tmp_path, chapters=(1,))
    command = [sys.executable, "-m", "pipelines", "run", "--profile", "smoke", "--notebooks-dir",
               str(course["notebooks"]), "--artifacts-dir", str(course["artifacts"]), "--book-dir", str(course["book"])]
    result = subprocess.run(command, cwd=ROOT, env=server["env"], check=False, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    last = result.stdout.strip().splitlines()[-1]
    assert last == f"The built book: {course['book'] / '_build' / 'html' / 'index.html'}"

    bad = subprocess.run([*command[:4], "--profile", "laptop"], cwd=ROOT, env=server["env"], check=False,
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2
    assert "error: parameter 'profile': unknown profile 'laptop'; allowed profiles: smoke, cpu, gpu" in bad.stderr
