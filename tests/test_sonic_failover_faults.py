"""Faults a SIGKILL does not make, injected by a loopback TCP proxy (:mod:`tests.faultproxy`) between the real
client and the one given real server: connections reset, a connection that stalls until the client's timeout,
new connections dropped. In each case the local fallback takes over, the job completes with every event once and
right, and the messages name the server that failed (the proxy's address, the job's ``default``)."""

from __future__ import annotations

import logging

import pytest

import framework.config as cms
from framework.server import LocalTritonServer, free_port
from framework.sonic.shm import live_regions
from tests.faultproxy import FaultProxy
from tests.onnx_models import pid_alive
from tests.sonic_fixtures import *  # noqa: F403
from tests.sonic_fixtures import client_shm_segments, make_process, needs_server, run
from tests.test_sonic_failover_shm import (
    check_every_event_once,
    fallback_pids,
    producer,
    server_lines,
)
from tests.test_sonic_failures import SonicTestKillProducer

pytestmark = [*needs_server, pytest.mark.slow]


@pytest.fixture
def given_server(sonic_models):
    repo = sonic_models["affine4"].path.parent
    with LocalTritonServer([repo], device="cpu", grpc_port=free_port(), http_port=free_port(),
                           models=["affine4"]) as server:
        yield server


CASES = [
    # fault, protocol, mode, shared memory
    ("reset", "grpc", "Async", True),
    ("reset", "http", "PseudoAsync", True),
    ("stall", "grpc", "Async", True),
    ("stall", "http", "Sync", False),
    ("drop", "grpc", "PseudoAsync", False),
    ("drop", "http", "Async", True),
]


@pytest.mark.parametrize("fault, protocol, mode, shm", CASES)
def test_fault_on_the_given_server_the_fallback_takes_over(given_server, sonic_models, caplog, fault, protocol,
                                                           mode, shm):
    spec = sonic_models["affine4"]
    target = given_server.http_port if protocol == "http" else given_server.grpc_port
    with FaultProxy(("127.0.0.1", target)) as proxy:
        def inject() -> None:
            if fault == "reset":
                proxy.drop()  # refuse reconnections too, or a reset costs only the requests in flight
                proxy.reset()
            elif fault == "stall":
                proxy.stall()
            else:
                proxy.drop()
                proxy.reset()

        SonicTestKillProducer.hook = inject
        n = 40
        server = cms.PSet(name=cms.string("default"), address=cms.string("127.0.0.1"),
                          port=cms.uint32(proxy.listen_port), protocol=cms.string(protocol))
        process = make_process({"m": producer(spec, 10, mode=mode, useSharedMemory=shm, allowedTries=1,
                                               timeout=1.0)},
                               events=n, streams=4, servers=[server], fallback={"enable": True, "protocol": protocol})
        with caplog.at_level(logging.INFO, logger="framework"):
            report, products = run(process)
        proxy.pass_through()
    assert report.processed == n
    check_every_event_once(products, n)
    lines = server_lines(report)
    assert set(lines) == {"default", "fallback"}, report.services
    assert "went down" in lines["default"] and " 0 failed" in lines["fallback"], lines
    messages = [r.getMessage() for r in caplog.records]
    for m in messages:
        if "did not answer" in m or " is down (" in m:
            assert f"'default' (127.0.0.1:{proxy.listen_port})" in m, m
    if fault == "stall":
        assert any("DEADLINE_EXCEEDED" in m or "Deadline" in m or "timed out" in m.lower() for m in messages), messages
        # the probes of the stalled server (their shared-memory registration included) give up within the
        # client's 1 s timeout, not the control calls' 30 s: the job does not wait on the stalled server
        assert report.timing.wall < 25, report.timing.wall
    assert client_shm_segments() == [] and live_regions() == []
    pids = fallback_pids(messages)
    assert len(pids) == 1 and not pid_alive(pids[0]), pids
