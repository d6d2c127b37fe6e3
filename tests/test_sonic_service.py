"""TritonService: models mapped to servers from their repository indexes, preferred servers, the local fallback
server (started for models served nowhere, gone after the job), and the errors before the first event when a
model cannot be served. Also ``apply_server_option`` and the ``enableSonicTriton`` modifier (no server needed)."""

from __future__ import annotations

import logging
import os

import numpy as np
import pytest

import framework.config as cms
from framework.core import services
from framework.core.registry import register
from framework.exceptions import FrameworkError, ServerError
from framework.server import LocalTritonServer, free_port
from framework.sonic import SonicEDProducer, apply_server_option
from framework.sonic.shm import live_regions
from tests.onnx_models import make_fixed_model, pid_alive, process_group
from tests.sonic_fixtures import *  # noqa: F403
from tests.sonic_fixtures import (
    SERVER_OK,
    SERVER_REASON,
    assert_same,
    client_shm_segments,
    config_path,
    make_process,
    run,
    server_pset,
)


@register("SonicTestServiceProducer")
class SonicTestServiceProducer(SonicEDProducer):
    """affine4 with inputs from the event number; records which server and fallback pid it saw."""

    parameters = {"failAt": -1}
    seen: list = []
    acquired = 0

    def acquire(self, event, input):
        SonicTestServiceProducer.acquired += 1
        service = services.get("TritonService")
        fallback = service.fallbackServer
        SonicTestServiceProducer.seen.append((self.client.serverName, self.client.serverAddress,
                                              fallback.pid if fallback is not None else None))
        ev = event.id.event
        input["INPUT"].toServer(np.full((1 + ev % 3, 4), ev, dtype=np.float32))

    def produce(self, event, output):
        if event.id.event == self.params.failAt:
            raise RuntimeError("producer failed on purpose")
        event.put(np.array(output["OUTPUT"].fromServer()))


@register("SonicTestFixedProducer")
class SonicTestFixedProducer(SonicEDProducer):
    """'fixed' (no batching); records the server it was given."""

    def acquire(self, event, input):
        SonicTestServiceProducer.seen.append(self.client.serverName)
        input["INPUT"].toServer(np.ones((5, 3), dtype=np.float32))

    def produce(self, event, output):
        event.put(np.array(output["OUTPUT"].fromServer()))


def producer(model: str = "affine4", path: str = "", fail_at: int = -1, **client) -> cms.EDProducer:
    settings = {"modelName": model, "mode": "Async", **client}
    if path:
        settings["modelConfigPath"] = path
    return cms.EDProducer("SonicTestServiceProducer", failAt=cms.int32(fail_at), Client=cms.PSet(**settings))


def reset_probe() -> None:
    SonicTestServiceProducer.seen = []
    SonicTestServiceProducer.acquired = 0


def check_affine4(products, label: str, events: int) -> None:
    for ev in range(1, events + 1):
        x = np.full((1 + ev % 3, 4), ev, dtype=np.float32)
        assert_same(products[(label, ev)][""], x * 3.0 - 1.0, f"event {ev}")


@pytest.fixture(scope="module")
def other_server(tmp_path_factory):
    """A second server that serves only 'fixed'."""
    if not SERVER_OK:
        pytest.skip(SERVER_REASON)
    repo = tmp_path_factory.mktemp("other") / "repo"
    make_fixed_model(repo, "fixed")
    with LocalTritonServer([repo], device="cpu") as server:
        yield server


# ----------------------------------------------------------------------------- mapping
@pytest.mark.triton
@pytest.mark.skipif(not SERVER_OK, reason=SERVER_REASON)
def test_model_goes_to_the_server_that_serves_it(sonic_server, other_server):
    reset_probe()
    servers = [server_pset("other", other_server.grpc_port), server_pset("default", sonic_server.grpc_port)]
    _, products = run(make_process({"m": producer()}, events=3, servers=servers))
    check_affine4(products, "m", 3)
    assert {s[:2] for s in SonicTestServiceProducer.seen} == {("default", sonic_server.grpc_address)}


@pytest.mark.triton
@pytest.mark.skipif(not SERVER_OK, reason=SERVER_REASON)
@pytest.mark.parametrize("preferred, reason", [("other", "does not serve it"),
                                               ("nosuchserver", "is not a configured server")])
def test_preferred_server_missing_warns_and_uses_the_serving_one(sonic_server, other_server, caplog, preferred, reason):
    reset_probe()
    caplog.set_level(logging.WARNING, logger="framework.sonic")
    servers = [server_pset("other", other_server.grpc_port), server_pset("default", sonic_server.grpc_port)]
    _, products = run(make_process({"m": producer(preferredServer=preferred)}, events=2, servers=servers))
    check_affine4(products, "m", 2)
    assert {s[0] for s in SonicTestServiceProducer.seen} == {"default"}
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(f"preferred server '{preferred}' {reason}" in w and "'default'" in w for w in warnings), warnings


@pytest.mark.triton
@pytest.mark.skipif(not SERVER_OK, reason=SERVER_REASON)
def test_preferred_server_is_honoured(sonic_server, other_server, sonic_models, tmp_path):
    """Both servers serve 'fixed'; the client's preferredServer picks the second one."""
    reset_probe()

    servers = [server_pset("default", sonic_server.grpc_port), server_pset("other", other_server.grpc_port)]
    decl = cms.EDProducer("SonicTestFixedProducer", Client=cms.PSet(modelName="fixed", preferredServer="other"))
    run(make_process({"f": decl}, events=2, servers=servers))
    assert SonicTestServiceProducer.seen == ["other", "other"]
    decl = cms.EDProducer("SonicTestFixedProducer", Client=cms.PSet(modelName="fixed"))
    SonicTestServiceProducer.seen = []
    run(make_process({"f": decl}, events=1, servers=servers))
    assert SonicTestServiceProducer.seen == ["default"]


# ----------------------------------------------------------------------------- failures before the first event
@pytest.mark.triton
@pytest.mark.skipif(not SERVER_OK, reason=SERVER_REASON)
def test_model_served_nowhere_without_fallback(sonic_server, other_server):
    reset_probe()
    servers = [server_pset("default", sonic_server.grpc_port), server_pset("other", other_server.grpc_port)]
    process = make_process({"m": producer("nosuchmodel")}, events=2, servers=servers)
    with pytest.raises(ServerError) as info:
        run(process)
    message = str(info.value)
    for part in ("'nosuchmodel'", "served by none of the servers", f"'default' (127.0.0.1:{sonic_server.grpc_port})",
                 f"'other' (127.0.0.1:{other_server.grpc_port}): serves fixed", "fallback.enable"):
        assert part in message, message
    assert SonicTestServiceProducer.acquired == 0


def test_unreachable_server_fails_before_the_first_event():
    reset_probe()
    port = free_port()  # nothing listens there
    process = make_process({"m": producer()}, events=2, servers=[server_pset("default", port)])
    with pytest.raises(ServerError) as info:
        run(process)
    message = str(info.value)
    for part in ("'affine4'", f"'default' (127.0.0.1:{port}): unreachable", "UNAVAILABLE", "How to fix"):
        assert part in message, message
    assert SonicTestServiceProducer.acquired == 0


def test_no_servers_and_no_fallback():
    reset_probe()
    with pytest.raises(ServerError, match=r"'affine4' served by none of the servers asked:\n    \(no servers configured\)"):
        run(make_process({"m": producer()}, events=1))


# ----------------------------------------------------------------------------- the fallback server
@pytest.mark.triton
@pytest.mark.skipif(not SERVER_OK, reason=SERVER_REASON)
def test_fallback_serves_unserved_models_and_is_gone_after_the_job(sonic_models, other_server):
    reset_probe()
    process = make_process({"m": producer(path=config_path(sonic_models["affine4"]))}, events=4, streams=2,
                           servers=[server_pset("other", other_server.grpc_port)],
                           fallback={"enable": True, "device": "cpu"})
    _, products = run(process)
    check_affine4(products, "m", 4)
    names = {s[0] for s in SonicTestServiceProducer.seen}
    pids = {s[2] for s in SonicTestServiceProducer.seen}
    assert names == {"fallback"} and len(pids) == 1
    pid = pids.pop()
    assert pid is not None and not pid_alive(pid) and process_group(pid) == []
    assert other_server.is_running()  # the external server is left alone
    assert client_shm_segments() == [] and live_regions() == []


@pytest.mark.triton
@pytest.mark.skipif(not SERVER_OK, reason=SERVER_REASON)
def test_fallback_is_stopped_when_the_job_fails(sonic_models):
    reset_probe()
    process = make_process({"m": producer(path=config_path(sonic_models["affine4"]), fail_at=2)}, events=5,
                           fallback={"enable": True, "device": "cpu"})
    with pytest.raises(FrameworkError, match="producer failed on purpose"):
        run(process)
    pid = SonicTestServiceProducer.seen[0][2]
    assert pid is not None and not pid_alive(pid) and process_group(pid) == []
    assert client_shm_segments() == []


def test_fallback_needs_the_config_path():
    with pytest.raises(ServerError, match=r"cannot serve affine4: it finds a model from its client's Client.modelConfigPath"):
        run(make_process({"m": producer()}, events=1, fallback={"enable": True, "device": "cpu"}))


# ----------------------------------------------------------------------------- configuration
def test_apply_server_option_adds_or_replaces_default():
    service = cms.Service("TritonService", servers=cms.VPSet(
        cms.PSet(name=cms.string("site"), address=cms.string("10.0.0.1"), port=cms.uint32(8001)),
        cms.PSet(name=cms.string("default"), address=cms.string("old"), port=cms.uint32(1))))
    apply_server_option(service, "myhost", 9001)
    servers = service.servers.value()
    assert [s["name"] for s in servers] == ["default", "site"]
    assert servers[0]["address"] == "myhost" and servers[0]["port"] == 9001
    bare = cms.Service("TritonService")
    apply_server_option(bare, "127.0.0.1", 8001)
    assert bare.servers.value()[0]["name"] == "default"
    with pytest.raises(FrameworkError, match="port=0"):
        apply_server_option(bare, "127.0.0.1", 0)


def test_apply_server_option_result_is_accepted_by_the_service():
    from framework.core.processor import EventProcessor

    process = make_process({"m": producer()}, events=1)
    apply_server_option(process.services_()["TritonService"], "localhost", 8001)
    EventProcessor(process)  # parameters check out


def test_enable_sonic_triton_modifier():
    from framework.modifiers import enableSonicTriton, enableSonicTritonProcess

    plain = cms.Process("A")
    plain.enableSonicTritonProcess = enableSonicTritonProcess
    assert "TritonService" not in plain.services_()
    process = cms.Process("B", enableSonicTriton)
    process.enableSonicTritonProcess = enableSonicTritonProcess
    service = process.services_()["TritonService"]
    assert service.fallback.enable.value() is True
    # an existing service gets its fallback enabled
    process = cms.Process("C", enableSonicTriton)
    process.TritonService = cms.Service("TritonService", fallback=cms.PSet(enable=cms.bool(False)))
    process.enableSonicTritonProcess = enableSonicTritonProcess
    assert process.services_()["TritonService"].fallback.enable.value() is True


def test_service_rejects_bad_server_lists():
    from framework.exceptions import ConfigurationError

    for servers, match in (([server_pset("a", 1), server_pset("a", 2)], "two servers are named 'a'"),
                           ([server_pset("fallback", 1)], "reserved"),
                           ([cms.PSet(name="a", address="h")], "missing required parameter 'port'")):
        with pytest.raises(ConfigurationError, match=match):
            run(make_process({"m": producer()}, events=1, servers=servers))
    ssl = cms.PSet(name="s", address="h", port=1, useSsl=True, rootCertificates="/no/such/ca.pem")
    with pytest.raises(ConfigurationError, match="rootCertificates file '/no/such/ca.pem' does not exist"):
        run(make_process({"m": producer()}, events=1, servers=[ssl]))
    assert not os.path.exists("/no/such/ca.pem")
