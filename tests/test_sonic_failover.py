"""Several servers per model: health-aware routing with failover, on real local Triton servers.

Two servers, one killed mid-job: every request after the kill goes to the other one (no request is lost, even
with allowedTries=1), the job's outputs are complete and right, and the summary shows the switch. Both servers
killed with the fallback enabled: the local fallback server is started and takes over. The main job on two
servers with ``address=a,b port=p1,p2``, one killed mid-job, equals the direct run within the twins' tolerance.
No server process or shared-memory region is left behind.
"""

from __future__ import annotations

import os
import re
import signal
import time

import numpy as np
import pytest

import framework.config as cms
from framework.core.module import EDAnalyzer
from framework.core.registry import register
from framework.exceptions import ConfigurationError
from framework.server import LocalTritonServer
from framework.sonic.shm import live_regions
from tests.onnx_models import pid_alive
from tests.sonic_fixtures import *  # noqa: F403
from tests.sonic_fixtures import client_shm_segments, config_path, make_process, needs_server, run
from tests.test_sonic_failures import SonicTestKillProducer, producer

pytestmark = [*needs_server, pytest.mark.slow]


def _kill(server: LocalTritonServer) -> None:
    pid = server.pid
    os.killpg(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not pid_alive(pid)


@pytest.fixture
def two_servers(sonic_models):
    repo = sonic_models["affine4"].path.parent
    with LocalTritonServer([repo], device="cpu", models=["affine4"]) as a, \
            LocalTritonServer([repo], device="cpu", models=["affine4"]) as b:
        yield a, b
        pids = [a.pid, b.pid]
    assert not any(pid and pid_alive(pid) for pid in pids)


def _pset(name: str, server: LocalTritonServer, protocol: str) -> cms.PSet:
    port = server.http_port if protocol == "http" else server.grpc_port
    return cms.PSet(name=cms.string(name), address=cms.string("127.0.0.1"), port=cms.uint32(port),
                    protocol=cms.string(protocol))


def _check_products(products, n):
    for ev in range(1, n + 1):
        x = np.full((1 + ev % 4, 4), ev, dtype=np.float32)
        np.testing.assert_array_equal(products[("m", ev)][""], x * 3.0 - 1.0, err_msg=f"event {ev}")


def _server_lines(report) -> dict[str, str]:
    return {line.split("'")[1]: line for line in report.services if line.startswith("SonicReport: server")}


def _requests(line: str) -> int:
    return int(re.search(r"(\d+) requests", line).group(1))


def _failed(line: str) -> int:
    found = re.search(r"(\d+) failed", line)
    return int(found.group(1)) if found else 0


@pytest.mark.parametrize("mode, protocol", [("Async", "grpc"), ("Sync", "http"), ("Async", "http")])
def test_one_of_two_servers_killed_mid_job_the_other_takes_every_request(two_servers, mode, protocol):
    a, b = two_servers
    SonicTestKillProducer.hook = lambda: _kill(a)
    process = make_process({"m": producer(hook_at=12, mode=mode, allowedTries=1)}, events=40, streams=4,
                           servers=[_pset("a", a, protocol), _pset("b", b, protocol)])
    report, products = run(process)
    assert report.processed == 40
    _check_products(products, 40)
    lines = _server_lines(report)
    assert set(lines) == {"a", "b"}, report.services  # no fallback was needed
    assert "went down 1 time" in lines["a"] and "went down" not in lines["b"], lines
    requests = {name: int(line.split(": ")[-1].split(" requests")[0]) for name, line in lines.items()}
    assert requests["a"] >= 2 and requests["b"] >= 20, lines  # both served before the kill; b took the rest
    assert client_shm_segments() == [] and live_regions() == []


def test_every_server_killed_the_fallback_takes_over(two_servers, sonic_models):
    a, b = two_servers
    spec = sonic_models["affine4"]

    def kill_both():
        _kill(a)
        _kill(b)

    SonicTestKillProducer.hook = kill_both
    process = make_process({"m": producer(hook_at=8, mode="Async", allowedTries=1, modelConfigPath=config_path(spec))},
                           events=60, streams=4, servers=[_pset("a", a, "grpc"), _pset("b", b, "grpc")],
                           fallback={"enable": True, "protocol": "http"})
    report, products = run(process)
    assert report.processed == 60
    _check_products(products, 60)
    lines = _server_lines(report)
    assert set(lines) == {"a", "b", "fallback"}, report.services
    assert "went down" in lines["a"] and "went down" in lines["b"]
    served = {name: _requests(line) - _failed(line) for name, line in lines.items()}
    assert sum(served.values()) == 60, lines  # every event answered once, by some server
    # the streams run ahead of the kill by a few events (up to ~20 seen on a loaded 2-core machine): the fallback
    # takes the rest
    assert served["fallback"] >= 20, lines
    assert client_shm_segments() == [] and live_regions() == []


# ---------------------------------------------------------------------------------------------- the main job
@register("FailoverTestKiller")
class FailoverTestKiller(EDAnalyzer):
    """Kills the server process group ``pgid`` when it sees event ``atEvent`` (once)."""

    parameters = {"pgid": 0, "atEvent": 1}

    def analyze(self, event) -> None:
        if int(event.id.event) == self.params.atEvent and self.params.pgid and pid_alive(self.params.pgid):
            os.killpg(self.params.pgid, signal.SIGKILL)


def test_main_job_on_two_servers_one_killed_equals_the_direct_run(tmp_path):
    """``sonic=1 address=127.0.0.1,127.0.0.1 port=P1,P2 protocol=http`` with 4 streams; the first server is killed
    at event 30 of 120: every event has its products, equal to the direct run within the twins' tolerance."""
    from framework.paths import DATA_MODELS
    from tests.main_fixtures import assert_same_events, assert_twins_agree, run_main

    job = ["maxEvents=120", "wantSummary=0", "numStreams=4"]
    direct = run_main(tmp_path / "direct.root", *job).arrays()
    models = ["particletransformer_AK4", "deepmet"]
    with LocalTritonServer([DATA_MODELS], device="cpu", models=models) as a, \
            LocalTritonServer([DATA_MODELS], device="cpu", models=models) as b:

        def killer(process):
            process.killer = cms.EDAnalyzer("FailoverTestKiller", pgid=cms.int32(a.pid), atEvent=cms.int32(30))
            process.killpath = cms.Path(process.killer)

        from framework.runner import run_config
        from tests.main_fixtures import CONFIG, in_repo

        out = tmp_path / "sonic.root"
        with in_repo():
            report, _ = run_config(str(CONFIG), [*job, "sonic=1", "protocol=http", "address=127.0.0.1,127.0.0.1",
                                                 f"port={a.http_port},{b.http_port}", f"outputFile={out}"],
                                   progress=False, customise=[killer])
        assert not pid_alive(a.pid)
    from tests.main_fixtures import read_output

    sonic = read_output(out)
    assert report.processed == 120
    assert_same_events(direct, sonic, "two servers, one killed")
    assert_twins_agree(direct, sonic, "two servers, one killed")
    lines = _server_lines(report)
    assert "went down" in lines["default"] and "default2" in lines and "fallback" not in lines, report.services
    assert "SonicReport: server 'default2'" in report.summary()


def test_address_and_port_lists_must_match():
    from framework.config import varparsing
    from framework.configloader import apply_standard_options

    process = cms.Process("X")
    process.TritonService = cms.Service("TritonService")
    opts = varparsing.reset(["address=127.0.0.1,127.0.0.2,127.0.0.3", "port=8001,8101"])
    opts.parseArguments()
    with pytest.raises(ConfigurationError, match="3 servers but port= 2 ports"):
        apply_standard_options(process, opts)
    opts = varparsing.reset(["address=127.0.0.1,127.0.0.2", "port=8001"])
    opts.parseArguments()
    apply_standard_options(process, opts)
    servers = process.TritonService.servers
    from framework.config.types import plain

    assert [(plain(s.name), plain(s.address), plain(s.port)) for s in servers] == [
        ("default", "127.0.0.1", 8001), ("default2", "127.0.0.2", 8001)]
