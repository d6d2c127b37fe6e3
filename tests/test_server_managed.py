"""The shared server life cycle (framework.server.managed), protocol/port checks and the fallback-kind choice.

The life-cycle tests run a real server process: Python's own ``http.server`` on loopback, launched by a small
:class:`ManagedServer` subclass (the same base the Triton and MLServer launchers use), so that start, readiness,
stop, atexit and the reaper are checked in seconds without a model server.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.request
from pathlib import Path

import pytest

from framework.exceptions import ConfigurationError
from framework.server.endpoints import check_port, check_protocol
from framework.server.kind import MLSERVER, TRITON, server_kind
from framework.server.managed import REGISTRY_FILE, ManagedServer, ServerStartError, running_servers
from tests.onnx_models import pid_alive, process_group

ROOT = Path(__file__).resolve().parents[1]


class HttpServer(ManagedServer):
    """``python -m http.server`` on the HTTP port of the work directory; *script* replaces it when given."""

    title = "local test HTTP server"
    program = "httpserver"
    tag = "test-managed"

    def __init__(self, script: str | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.script = script

    def _prepare(self, workdir: Path) -> None:
        (workdir / "index.html").write_text("managed\n")

    def command(self) -> list[str]:
        if self.script is not None:
            return [sys.executable, "-c", self.script]
        return [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(self.http_port),
                "--directory", str(self.workdir)]

    def _probe(self) -> tuple[bool, str]:
        try:
            with urllib.request.urlopen(f"http://{self.http_address}/index.html", timeout=1.0) as response:
                return response.status == 200, ""
        except OSError:
            return False, "http.server not answering"


def _wait(condition, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.05)
    return condition()


def test_start_serve_stop_leaves_nothing_behind():
    with HttpServer(wait=30) as server:
        assert server.is_running() and server in running_servers()
        with urllib.request.urlopen(f"http://{server.http_address}/index.html", timeout=5) as response:
            assert response.read() == b"managed\n"
        pid, workdir, log_dir = server.pid, server.workdir, server.log_path.parent
        registry = json.loads((workdir / REGISTRY_FILE).read_text())
        assert registry == {"job_pid": os.getpid(), "pgid": pid, "shm_prefix": "",
                            "remove": [str(workdir), str(log_dir)]}
        assert pid in process_group(pid)  # its own process group
    assert not pid_alive(pid) and process_group(pid) == []
    assert not workdir.exists() and not log_dir.exists()
    assert server not in running_servers() and server.pid is None


def test_failed_start_names_exit_code_and_log_tail():
    server = HttpServer("import sys; print('no such model: foo', flush=True); sys.exit(3)", wait=30)
    with pytest.raises(ServerStartError) as info:
        server.start()
    message = str(info.value)
    assert "httpserver exited with code 3 while starting" in message
    assert "no such model: foo" in message and "how to fix" in message
    assert f"full log: {server.log_path}" in message
    server.stop()
    assert server.log_path.is_file(), "the log of a failed start is kept: the error names it"
    os.unlink(server.log_path)
    os.rmdir(server.log_path.parent)


def test_readiness_deadline_stops_the_server():
    server = HttpServer("import time; print('loading', flush=True); time.sleep(60)", wait=1.0)
    begin = time.monotonic()
    with pytest.raises(ServerStartError, match=r"was not ready after 1 s \(http.server not answering\)") as info:
        server.start()
    assert time.monotonic() - begin < 15
    assert "loading" in str(info.value)
    assert server.pid is None and server not in running_servers()
    server.stop()
    log_path = server.log_path
    os.unlink(log_path)
    os.rmdir(log_path.parent)


def _job(body: str) -> subprocess.Popen:
    script = textwrap.dedent(f"""
        import sys, time
        from tests.test_server_managed import HttpServer
        server = HttpServer(wait=30).start()
        print(server.pid, server.workdir, server.log_path.parent, flush=True)
        {body}
    """)
    return subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, stdout=subprocess.PIPE, text=True)


def test_sigkilled_job_reaper_removes_exactly_what_the_registry_names():
    # a directory whose name the old reaper matched on ("cmsfw-triton-..."): not named in any registry, kept
    bystander = Path(tempfile.mkdtemp(prefix="cmsfw-triton-bystander-"))
    job = _job("time.sleep(120)")
    try:
        pid, workdir, log_dir = job.stdout.readline().split()
        pid, workdir, log_dir = int(pid), Path(workdir), Path(log_dir)
        assert pid_alive(pid) and workdir.is_dir()
    finally:
        job.send_signal(signal.SIGKILL)  # no atexit, no stop(): the parent-death signal and the reaper
        job.wait()
    try:
        assert _wait(lambda: not pid_alive(pid) and not workdir.exists() and not log_dir.exists()), \
            "the server or its directories outlived the SIGKILLed job"
        assert process_group(pid) == []
        assert bystander.is_dir(), "the reaper removed a directory no registry named"
    finally:
        bystander.rmdir()


def test_job_that_exits_without_stop_stops_its_server_at_exit():
    job = _job("sys.exit(0)")  # no stop(): the atexit registry
    pid, workdir, log_dir = job.stdout.readline().split()
    assert job.wait(timeout=30) == 0
    pid, workdir, log_dir = int(pid), Path(workdir), Path(log_dir)
    assert _wait(lambda: not pid_alive(pid))
    assert not workdir.exists() and not log_dir.exists()


def test_bad_port_is_refused_before_any_work():
    with pytest.raises(ConfigurationError, match=r"local test HTTP server: http_port: port = 70000 is out of range: "
                                                 r"port must be 1 to 65535 or -1 \(pick a free port\)\."):
        HttpServer(http_port=70000)


# ----------------------------------------------------------------------------- endpoints
def test_check_protocol():
    assert check_protocol("grpc") == "grpc" and check_protocol("http") == "http"
    with pytest.raises(ConfigurationError) as info:
        check_protocol("grcp", "service TritonService: fallback.protocol")
    assert str(info.value).startswith("service TritonService: fallback.protocol: protocol must be one of 'grpc', "
                                      "'http', got 'grcp'.")
    assert "grpc" in str(info.value).split("got 'grcp'.")[1]  # the nearest name


@pytest.mark.parametrize("port", [0, 65536, -1, "abc", None, True])
def test_check_port_refuses(port):
    with pytest.raises(ConfigurationError, match=r"the port= option: (a port must be an integer, 1 to 65535; got "
                                                 r"|port = -?\d+ is out of range: port must be 1 to 65535\.)"):
        check_port(port, "the port= option")


def test_check_port_accepts():
    assert check_port(1) == 1 and check_port("8001") == 8001 and check_port(65535) == 65535
    assert check_port(-1, pick_free=True) == -1


# ----------------------------------------------------------------------------- which fallback serves a model
def test_server_kind_from_the_repository(tmp_path):
    triton = tmp_path / "repo" / "onnx_model"
    triton.mkdir(parents=True)
    (triton / "config.pbtxt").write_text('name: "onnx_model"\n')
    ml = tmp_path / "repo" / "nmf"
    ml.mkdir()
    (ml / "model-settings.json").write_text('{"name": "nmf", "implementation": "h.M"}')
    assert server_kind(triton / "config.pbtxt") == TRITON
    assert server_kind(triton) == TRITON
    assert server_kind(ml / "model-settings.json") == MLSERVER
    assert server_kind(ml) == MLSERVER
    assert server_kind("") == TRITON and server_kind(None) == TRITON
    (ml / "config.pbtxt").write_text('name: "nmf"\n')  # both: Triton's config wins for a folder
    assert server_kind(ml) == TRITON
