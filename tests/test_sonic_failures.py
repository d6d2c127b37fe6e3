"""SONIC failure behaviour with a real server: a server killed in the middle of a job (recovered through retries
while it restarts on the same port, or a clean failure naming the model, the server and the event), request
timeouts on a slow model, and no shared-memory segment left behind in any case."""

from __future__ import annotations

import glob
import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import framework.config as cms
from framework.core.registry import register
from framework.exceptions import FrameworkError
from framework.server import LocalTritonServer, free_port
from framework.sonic import SonicEDProducer, TritonServerError
from framework.sonic.shm import live_regions
from tests.onnx_models import pid_alive
from tests.sonic_fixtures import *  # noqa: F403
from tests.sonic_fixtures import (
    SLOW_DELAY,
    assert_same,
    client_shm_segments,
    make_process,
    needs_server,
    run,
    server_pset,
)

pytestmark = needs_server


@register("SonicTestKillProducer")
class SonicTestKillProducer(SonicEDProducer):
    """affine4 / slow inputs from the event number; runs ``hook`` once, in acquire of event ``hookAt``."""

    parameters = {"hookAt": -1}
    hook = None

    def acquire(self, event, input):
        ev = event.id.event
        if ev == self.params.hookAt and SonicTestKillProducer.hook is not None:
            hook, SonicTestKillProducer.hook = SonicTestKillProducer.hook, None
            hook()
        input["INPUT"].toServer(np.full((1 + ev % 4, 4), ev, dtype=np.float32))

    def produce(self, event, output):
        event.put(np.array(output["OUTPUT"].fromServer()))


def producer(model: str = "affine4", hook_at: int = -1, **client) -> cms.EDProducer:
    return cms.EDProducer("SonicTestKillProducer", hookAt=cms.int32(hook_at),
                          Client=cms.PSet(modelName=model, **client))


@pytest.fixture
def own_server(sonic_models):
    """A server of its own (it gets killed), on a fixed port so that a restart comes back on it."""
    repo = sonic_models["affine4"].path.parent
    with LocalTritonServer([repo], device="cpu", grpc_port=free_port(), http_port=free_port(),
                           models=["affine4"]) as server:
        yield server


def kill(server: LocalTritonServer) -> int:
    """SIGKILL the server's whole process group (no clean shutdown) and wait until it is gone."""
    pid = server.pid
    os.killpg(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not pid_alive(pid)
    return pid


def _server(server: LocalTritonServer, protocol: str) -> cms.PSet:
    port = server.http_port if protocol == "http" else server.grpc_port
    return cms.PSet(name=cms.string("default"), address=cms.string("127.0.0.1"), port=cms.uint32(port),
                    protocol=cms.string(protocol))


@pytest.mark.parametrize("mode, shm, protocol", [("Async", True, "grpc"), ("PseudoAsync", True, "grpc"),
                                                 ("Sync", False, "grpc"), ("Async", True, "http"),
                                                 ("Sync", False, "http")])
def test_server_killed_mid_run_recovers_through_retries(own_server, mode, shm, protocol):
    port = own_server.grpc_port
    restarted = threading.Event()

    def kill_and_restart() -> None:
        kill(own_server)

        def restart() -> None:
            time.sleep(0.3)
            own_server.restart()
            restarted.set()

        threading.Thread(target=restart, daemon=True).start()

    SonicTestKillProducer.hook = kill_and_restart
    process = make_process({"m": producer(hook_at=4, mode=mode, useSharedMemory=shm, allowedTries=8,
                                          retryDelay=0.25)}, events=10, streams=2,
                           servers=[_server(own_server, protocol)])
    report, products = run(process)
    # the job may finish while restart() still polls for readiness: wait for it before looking at the ports
    assert restarted.wait(60) and own_server.grpc_port == port
    assert report.processed == 10
    for ev in range(1, 11):
        x = np.full((1 + ev % 4, 4), ev, dtype=np.float32)
        assert_same(products[("m", ev)][""], x * 3.0 - 1.0, f"event {ev}")
    assert client_shm_segments() == [] and live_regions() == []


@pytest.mark.parametrize("mode, protocol", [("Async", "grpc"), ("Sync", "grpc"), ("Async", "http"), ("Sync", "http")])
def test_server_killed_with_one_try_fails_cleanly(own_server, mode, protocol):
    port = own_server.http_port if protocol == "http" else own_server.grpc_port
    SonicTestKillProducer.hook = lambda: kill(own_server)
    process = make_process({"m": producer(hook_at=3, mode=mode, allowedTries=1)}, events=6,
                           servers=[_server(own_server, protocol)])
    with pytest.raises(FrameworkError) as info:
        run(process)
    message = str(info.value)
    for part in ("model 'affine4'", f"server 'default' (127.0.0.1:{port})", "run 1, lumi 1, event 3", "after 1 try",
                 "UNAVAILABLE", "Client.allowedTries", "module 'm'"):
        assert part in message, message
    assert isinstance(info.value.cause, TritonServerError)
    assert info.value.cause.event.startswith("run 1, lumi 1, event 3")
    assert client_shm_segments() == [] and live_regions() == []


def test_retries_are_counted_and_exhausted(own_server):
    """allowedTries=3 against a server that stays dead: three attempts, then the error says so."""
    SonicTestKillProducer.hook = lambda: kill(own_server)
    process = make_process({"m": producer(hook_at=2, allowedTries=3, retryDelay=0.05)}, events=4,
                           servers=[server_pset("default", own_server.grpc_port)])
    with pytest.raises(FrameworkError, match=r"event 2 .*after 3 tries"):
        run(process)


@pytest.mark.parametrize("mode", ["Async", "PseudoAsync", "Sync"])
def test_timeout_on_a_slow_model(sonic_server, mode):
    process = make_process({"s": producer("slow", mode=mode, timeout=300, timeoutUnit="milliseconds",
                                          allowedTries=2, retryDelay=0)}, events=2,
                           servers=[server_pset("default", sonic_server.grpc_port)])
    t0 = time.monotonic()
    with pytest.raises(FrameworkError) as info:
        run(process)
    elapsed = time.monotonic() - t0
    message = str(info.value)
    for part in ("model 'slow'", f"(127.0.0.1:{sonic_server.grpc_port})", "event 1", "DEADLINE_EXCEEDED",
                 "after 2 tries", "Client.timeout (0.3 s)"):
        assert part in message, message
    assert elapsed < 2 * SLOW_DELAY + 10  # the client gave up; it did not wait for the model


def test_timeout_longer_than_the_model_passes(sonic_server):
    process = make_process({"s": producer("slow", timeout=30)}, events=1,
                           servers=[server_pset("default", sonic_server.grpc_port)])
    _, products = run(process)
    assert_same(products[("s", 1)][""], np.full((2, 4), 1, dtype=np.float32))


_DIE = """
import os, sys
import numpy as np
from framework.sonic import TritonClient
client = TritonClient({"modelName": "affine4", "mode": "Sync"}, server=sys.argv[1])
client.connect()
client.input["INPUT"].toServer(np.ones((2, 4), np.float32))
client.evaluate()
print(len([f for f in os.listdir("/dev/shm") if f.startswith(f"cmsfw_sonic_{os.getpid()}_")]), flush=True)
os.kill(os.getpid(), 9)
"""


def test_killed_client_process_leaves_no_shared_memory(sonic_server, tmp_path):
    """Even a job killed with SIGKILL (no endJob) leaves no /dev/shm segment: the regions are tracked by
    multiprocessing's resource tracker, which unlinks them when the job dies."""
    import subprocess
    import sys

    script = tmp_path / "die.py"
    script.write_text(_DIE)
    root = str(Path(__file__).resolve().parents[1])
    proc = subprocess.Popen([sys.executable, str(script), sonic_server.grpc_address], stdout=subprocess.PIPE,
                            text=True, env={**os.environ, "PYTHONPATH": root})
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == -signal.SIGKILL and out.split() == ["2"], out  # it had an input and an output region
    deadline = time.monotonic() + 10
    while glob.glob(f"/dev/shm/cmsfw_sonic_{proc.pid}_*") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert glob.glob(f"/dev/shm/cmsfw_sonic_{proc.pid}_*") == []
