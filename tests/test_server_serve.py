"""``serve`` (python -m framework serve) as a subprocess: prints its address, serves, stops on SIGINT/SIGTERM."""

from __future__ import annotations

import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as grpcclient

from framework.server import bundled_server_available
from tests.onnx_models import make_affine_model, make_multi_io_model, pid_alive, process_group

AVAILABLE, REASON = bundled_server_available()
pytestmark = [pytest.mark.triton, pytest.mark.skipif(not AVAILABLE, reason=REASON)]
ROOT = Path(__file__).resolve().parents[1]
SERVE = "import sys; from framework.server.serve import main; sys.exit(main(sys.argv[1:]))"


class Serve:
    """``serve`` in a subprocess, with its stdout read line by line in a thread."""

    def __init__(self, *args: str) -> None:
        self.process = subprocess.Popen([sys.executable, "-c", SERVE, *args], cwd=ROOT, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True)
        self.lines: queue.Queue = queue.Queue()
        self.output: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.output.append(line)
            self.lines.put(line)
        self.lines.put(None)

    def wait_for(self, pattern: str, timeout: float = 120.0) -> re.Match:
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                line = ""
            if line is None or time.monotonic() > deadline:
                self.process.kill()
                raise AssertionError(f"no line matching {pattern!r}; output:\n{''.join(self.output)}\n"
                                     f"stderr:\n{self.process.stderr.read()}")
            match = re.search(pattern, line)
            if match:
                return match


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_serve_until_signal(tmp_path, sig):
    spec = make_affine_model(tmp_path / "repo", "affine")
    make_multi_io_model(tmp_path / "repo", "multi_io")
    serve = Serve("--models", str(tmp_path / "repo"), "--device", "cpu", "--threads", "1")
    try:
        pid = int(serve.wait_for(r"ready in .* \(pid (\d+)\)").group(1))
        address = serve.wait_for(r"gRPC:\s+(\S+)").group(1)
        serve.wait_for(r"^Press Ctrl-C")
        assert address.startswith("127.0.0.1:")
        assert re.search(r"models: affine, multi_io", "".join(serve.output))
        group = process_group(pid)
        assert pid in group

        client = grpcclient.InferenceServerClient(address)
        feeds = spec.random_inputs(3)
        tensor = grpcclient.InferInput("INPUT", list(feeds["INPUT"].shape), "FP32")
        tensor.set_data_from_numpy(feeds["INPUT"])
        np.testing.assert_array_equal(client.infer("affine", [tensor]).as_numpy("OUTPUT"),
                                      spec.expected(feeds)["OUTPUT"])

        serve.process.send_signal(sig)
        assert serve.process.wait(timeout=60) == 0
    finally:
        if serve.process.poll() is None:
            serve.process.kill()
            serve.process.wait()
    assert not any(pid_alive(p) for p in group)


def test_serve_reports_a_bad_repository(tmp_path):
    result = subprocess.run([sys.executable, "-c", SERVE, "--models", str(tmp_path / "missing")], cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "does not exist" in result.stderr


@pytest.mark.parametrize("server", ["triton", "mlserver"])
def test_serve_refuses_a_bad_port_in_one_paragraph(server):
    result = subprocess.run([sys.executable, "-c", SERVE, "--server", server, "--grpc-port", "70000"], cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "grpc_port: port = 70000 is out of range: port must be 1 to 65535 or -1 (pick a free port)." in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_help():
    result = subprocess.run([sys.executable, "-c", SERVE, "--help"], cwd=ROOT, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0
    for option in ("--models", "--grpc-port", "--http-port", "--device", "--instances", "--threads", "--verbose"):
        assert option in result.stdout
