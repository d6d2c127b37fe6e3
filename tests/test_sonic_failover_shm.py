"""The one given server dies mid-job and the local fallback takes over: no event is lost, whatever the transport.

A request moved to another server carries its tensors in a form that server has: the client's shared memory
regions are registered with each server before a request names them there (or the tensors go in the message), so
the fallback never sees a region of the dead server. Every message names the server that actually failed. A server
that comes back on its port gets traffic again after its probe, its regions registered anew, and nothing leaks
(regions, ``/dev/shm`` files, sockets, server processes) over many down/up cycles.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import threading
import time

import numpy as np
import pytest

import framework.config as cms
from framework.core.registry import register
from framework.server import LocalTritonServer, free_port
from framework.sonic.shm import live_regions
from tests.onnx_models import pid_alive
from tests.sonic_fixtures import *  # noqa: F403
from tests.sonic_fixtures import client_shm_segments, config_path, make_process, needs_server, run
from tests.test_sonic_failures import SonicTestKillProducer

pytestmark = [*needs_server, pytest.mark.slow]


@register("SonicTestPacedProducer")
class SonicTestPacedProducer(SonicTestKillProducer):
    """:class:`SonicTestKillProducer` that spends ``pace`` seconds in each acquire (a job that lasts a while)."""

    parameters = {"hookAt": -1, "pace": 0.0}

    def acquire(self, event, input):
        if self.params.pace:
            time.sleep(self.params.pace)
        super().acquire(event, input)


def producer(spec, hook_at: int, pace: float = 0.0, **client) -> cms.EDProducer:
    return cms.EDProducer("SonicTestPacedProducer", hookAt=cms.int32(hook_at), pace=cms.double(pace),
                          Client=cms.PSet(modelName="affine4", modelConfigPath=config_path(spec), **client))


@pytest.fixture
def given_server(sonic_models):
    """The job's one given server (it gets killed), on fixed ports so that a restart comes back on them."""
    repo = sonic_models["affine4"].path.parent
    with LocalTritonServer([repo], device="cpu", grpc_port=free_port(), http_port=free_port(),
                           models=["affine4"]) as server:
        yield server


def kill(server: LocalTritonServer) -> None:
    pid = server.pid
    os.killpg(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not pid_alive(pid)


def pset(server: LocalTritonServer, protocol: str) -> cms.PSet:
    port = server.http_port if protocol == "http" else server.grpc_port
    return cms.PSet(name=cms.string("default"), address=cms.string("127.0.0.1"), port=cms.uint32(port),
                    protocol=cms.string(protocol))


def check_every_event_once(products: dict, n: int) -> None:
    assert sorted(ev for label, ev in products if label == "m") == list(range(1, n + 1))
    for ev in range(1, n + 1):
        x = np.full((1 + ev % 4, 4), ev, dtype=np.float32)
        np.testing.assert_allclose(products[("m", ev)][""], x * 3.0 - 1.0, rtol=1e-6, atol=1e-6,
                                   err_msg=f"event {ev}")


def server_lines(report) -> dict[str, str]:
    return {line.split("'")[1]: line for line in report.services if line.startswith("SonicReport: server")}


def requests(line: str) -> int:
    return int(line.split(": ")[-1].split(" requests")[0])


def fallback_pids(messages: list[str]) -> list[int]:
    return [int(m) for text in messages for m in re.findall(r"local Triton server pid (\d+) ready", text)]


CASES = [
    # mode, protocol, shared memory, streams, mergeEvents
    ("Async", "grpc", True, 4, 1),
    ("Async", "http", True, 4, 1),
    ("Sync", "grpc", True, 1, 1),
    ("Sync", "http", False, 2, 1),
    ("PseudoAsync", "grpc", True, 8, 1),
    ("PseudoAsync", "http", False, 8, 1),
    ("Async", "grpc", True, 8, 4),
    ("Async", "http", True, 2, 3),
]


@pytest.mark.parametrize("mode, protocol, shm, streams, merge", CASES)
def test_given_server_killed_mid_job_the_fallback_takes_over(given_server, sonic_models, caplog, mode, protocol,
                                                             shm, streams, merge):
    """The issue's case: one given server, SIGKILLed mid-job; allowedTries=1, so no retry hides a lost request."""
    spec = sonic_models["affine4"]
    SonicTestKillProducer.hook = lambda: kill(given_server)
    n = 60
    process = make_process({"m": producer(spec, 12, mode=mode, useSharedMemory=shm, allowedTries=1,
                                           mergeEvents=merge)},
                           events=n, streams=streams, servers=[pset(given_server, protocol)],
                           fallback={"enable": True, "protocol": protocol})
    with caplog.at_level(logging.INFO, logger="framework"):
        report, products = run(process)
    assert report.processed == n
    check_every_event_once(products, n)
    lines = server_lines(report)
    assert set(lines) == {"default", "fallback"}, report.services
    assert "went down" in lines["default"] and "failed" in lines["fallback"], lines
    assert " 0 failed" in lines["fallback"], lines  # the fallback never saw a region it does not know
    assert requests(lines["fallback"]) >= 10, lines
    messages = [r.getMessage() for r in caplog.records]
    assert not any("Unable to find shared memory region" in m or "[404]" in m for m in messages), messages
    # every failure names the server that failed: the dead one, never the fallback
    port = given_server.http_port if protocol == "http" else given_server.grpc_port
    for m in messages:
        if "did not answer" in m or " is down (" in m:
            assert f"'default' (127.0.0.1:{port})" in m, m
    assert not any("fork_posix" in m for m in messages)
    assert client_shm_segments() == [] and live_regions() == []
    pids = fallback_pids(messages)
    assert len(pids) == 1 and not pid_alive(pids[0]), pids  # the fallback was stopped with the job


def _sockets() -> int:
    """Open sockets of this process."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            count += os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")
        except OSError:  # closed meanwhile (the listing's own descriptor, a closing connection)
            pass
    return count


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_server_back_on_its_port_gets_traffic_again_and_nothing_leaks(given_server, sonic_models, caplog, protocol):
    """Three down/up cycles of the given server in one job (shared memory on): the fallback takes over while it is
    down, the server answers again after its probe (its regions registered anew: a request naming an unknown region
    would fail), and afterwards no region, /dev/shm file, socket or server process is left."""
    spec = sonic_models["affine4"]
    cycles, done = 3, threading.Event()
    back_at: list[float] = []
    given_pids: list[int] = []

    def cycle() -> None:
        for _ in range(cycles):
            kill(given_server)
            time.sleep(0.3)
            given_server.start()  # same ports
            back_at.append(time.monotonic())
            given_pids.append(given_server.pid)
            time.sleep(2.5)  # longer than the probe's back-off: traffic comes back
        done.set()

    SonicTestKillProducer.hook = lambda: threading.Thread(target=cycle, daemon=True).start()
    sockets_before = _sockets()
    n = 1200
    process = make_process({"m": producer(spec, 20, pace=0.012, useSharedMemory=True, allowedTries=1)},
                           events=n, streams=2, servers=[pset(given_server, protocol)],
                           fallback={"enable": True, "protocol": protocol})
    with caplog.at_level(logging.INFO, logger="framework"):
        report, products = run(process)
    assert done.wait(60) and len(back_at) == cycles
    assert report.processed == n
    check_every_event_once(products, n)
    lines = server_lines(report)
    assert set(lines) == {"default", "fallback"}, report.services
    assert " 0 failed" in lines["fallback"], lines
    messages = [r.getMessage() for r in caplog.records]
    again = [m for m in messages if "answers again" in m and "'default'" in m]
    assert len(again) >= cycles - 1, lines  # the last cycle may end with the job
    assert not any("Unable to find shared memory region" in m for m in messages)
    assert client_shm_segments() == [] and live_regions() == []
    pids = [p for p in fallback_pids(messages) if p not in given_pids]
    assert len(pids) == 1 and not pid_alive(pids[0]), pids  # started once, stopped with the job
    assert _sockets() <= sockets_before + 2  # no connection per cycle survives the job


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_main_job_on_one_given_server_killed_equals_the_direct_run(tmp_path, protocol):
    """The issue's case on the main job: ``sonic=1 address=127.0.0.1 port=P numStreams=4`` (shared memory on), the
    server SIGKILLed at event 40 of 150: the fallback takes over, every event is written once, and the outputs equal
    the direct run within the twins' tolerance."""
    from framework.paths import DATA_MODELS
    from framework.runner import run_config
    from tests.main_fixtures import (
        CONFIG,
        assert_same_events,
        assert_twins_agree,
        in_repo,
        read_output,
        run_main,
    )
    from tests.test_sonic_failover import FailoverTestKiller  # noqa: F401 - registers the killer

    job = ["maxEvents=150", "wantSummary=0", "numStreams=4"]
    direct = run_main(tmp_path / "direct.root", *job).arrays()
    out = tmp_path / "sonic.root"
    with LocalTritonServer([DATA_MODELS], device="cpu", models=["particletransformer_AK4", "deepmet"]) as given:
        port = given.http_port if protocol == "http" else given.grpc_port

        def killer(process):
            process.killer = cms.EDAnalyzer("FailoverTestKiller", pgid=cms.int32(given.pid), atEvent=cms.int32(40))
            process.killpath = cms.Path(process.killer)

        with in_repo():
            report, _ = run_config(str(CONFIG), [*job, "sonic=1", f"protocol={protocol}", "address=127.0.0.1",
                                                 f"port={port}", f"outputFile={out}"], progress=False,
                                   customise=[killer])
        assert not pid_alive(given.pid)
    sonic = read_output(out)
    assert report.processed == 150
    assert_same_events(direct, sonic, "one given server, killed")
    assert_twins_agree(direct, sonic, "one given server, killed")
    lines = server_lines(report)
    assert set(lines) == {"default", "fallback"} and "went down" in lines["default"], report.services
    assert " 0 failed" in lines["fallback"], lines
    assert client_shm_segments() == [] and live_regions() == []
