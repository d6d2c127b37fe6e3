"""SONIC transports against the real bundled server and the real ``tritonclient``, no mocks:

1. Async requests all run on the one ``sonic-io`` event loop: the number of threads stays flat over 2000 Async
   requests (gRPC and HTTP), and every event's outputs are right.
2. HTTP and gRPC give bit-identical outputs (every model, mode, with and without shared memory, ragged entries),
   and so do the main job's twins (``protocol=grpc`` vs ``protocol=http``).
3. A KServe-V2-only server (the bundled Triton behind :mod:`tests.v2_proxy`: no model configuration endpoint, no
   shared memory, no statistics; optionally no binary tensors) is recognised and used correctly, by a client
   and by a job through the ``TritonService``.
4. The ``protocol=`` option on the command line.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator
from typing import Any

import awkward as ak
import numpy as np
import pytest

import framework.config as cms
from framework.core.registry import register
from framework.server import LocalTritonServer
from framework.sonic import SonicEDProducer, TritonClient
from tests.main_fixtures import CONFIG, MET_BRANCHES, MODELS, SAMPLE, SCORE_BRANCHES, read_output, run_main
from tests.sonic_fixtures import *  # noqa: F403
from tests.sonic_fixtures import (
    assert_same,
    client_shm_segments,
    config_path,
    make_process,
    needs_server,
    run,
)
from tests.v2_proxy import GrpcV2Proxy, HttpV2Proxy

pytestmark = needs_server

MODES = ["Sync", "Async", "PseudoAsync"]
PROTOCOLS = ["grpc", "http"]
KINDS = ["affine", "affine4", "multi_io", "fixed", "ragged"]
MODEL_OF = {"affine": "affine", "affine4": "affine4", "multi_io": "multi_io", "fixed": "fixed", "ragged": "affine"}
NO_CONFIG = "has no model configuration endpoint"
REFUSED_BINARY = "refused binary tensors"


# ----------------------------------------------------------------------------- helpers
def server_pset(protocol: str, port: int, name: str = "default") -> cms.PSet:
    """A ``TritonService.servers`` entry on the loopback address with *protocol*."""
    return cms.PSet(name=cms.string(name), address=cms.string("127.0.0.1"), port=cms.uint32(port),
                    protocol=cms.string(protocol))


def address_of(server: LocalTritonServer, protocol: str) -> str:
    return server.http_address if protocol == "http" else server.grpc_address


def port_of(server: LocalTritonServer, protocol: str) -> int:
    return server.http_port if protocol == "http" else server.grpc_port


def affine4_input(ev: int) -> np.ndarray:
    """Event *ev*'s affine4 input: 1..5 entries of half-integers, so that ``3x - 1`` is exact in float32."""
    n = 1 + ev % 5
    return (np.arange(n * 4, dtype=np.float32).reshape(n, 4) - 2 * ev) * np.float32(0.5)


def affine4_output(ev: int) -> np.ndarray:
    """affine4 is ``y = 3x - 1`` elementwise (tests/sonic_fixtures.build_models)."""
    return affine4_input(ev) * np.float32(3.0) + np.float32(-1.0)


def feeds_for(kind: str, round_: int) -> dict[str, Any]:
    """Inputs of *kind* for the *round_*-th request of a client (round 1 is larger: shared memory regions grow)."""
    rng = np.random.default_rng(100 * KINDS.index(kind) + round_)
    n = 2 + 3 * round_
    if kind == "affine":
        return {"INPUT": rng.normal(size=(n, 3 + round_, 4)).astype(np.float32)}
    if kind == "affine4":
        return {"INPUT": rng.normal(size=(n, 4)).astype(np.float32)}
    if kind == "multi_io":
        return {"x:0": rng.normal(size=(n, 3)).astype(np.float32),
                "y/in:0": rng.normal(size=(n, 3)).astype(np.float32),
                "n:0": rng.integers(-2**40, 2**40, size=(n, 2), dtype=np.int64)}
    if kind == "fixed":
        return {"INPUT": rng.normal(size=(5, 3)).astype(np.float32)}
    if kind == "ragged":  # entries of different lengths (affine: dims [-1, 4])
        return {"INPUT": [rng.normal(size=(1 + (2 * i + round_) % 5, 4)).astype(np.float32) for i in range(n)]}
    raise ValueError(kind)


def expected_for(spec, kind: str, feeds: dict[str, Any]) -> dict[str, Any]:
    """ONNXRuntime on the model file (per entry in ragged mode)."""
    if kind == "ragged":
        return {"OUTPUT": [spec.expected({"INPUT": entry[None]})["OUTPUT"][0] for entry in feeds["INPUT"]]}
    return spec.expected(feeds)


class _Holder:
    """A ``WaitingTaskHolder`` stand-in for :meth:`TritonClient.dispatch` (so that each mode runs its own way:
    ``evaluate()`` would block, and run Async requests as blocking ones)."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.error: BaseException | None = None

    def doneWaiting(self, error: BaseException | None = None) -> None:
        self.error = error
        self.done.set()


def infer(client: TritonClient, feeds: dict[str, Any]) -> dict[str, Any]:
    """One request in the client's mode; the outputs, copied (a list of arrays for ragged entries)."""
    client.reset()
    for name, value in feeds.items():
        client.input[name].toServer(value)
    holder = _Holder()
    client.dispatch(holder)
    assert holder.done.wait(30), f"{client!r}: no answer within 30 s"
    if holder.error is not None:
        raise holder.error
    out: dict[str, Any] = {}
    for name, value in client.output.arrays().items():
        out[name] = [np.array(v) for v in value] if isinstance(value, list) else np.array(value)
    return out


def assert_identical(got: dict[str, Any], ref: dict[str, Any], what: str) -> None:
    """Same outputs, same dtypes, same values bit for bit."""
    assert sorted(got) == sorted(ref), f"{what}: outputs {sorted(got)} != {sorted(ref)}"
    for name in ref:
        g, r = got[name], ref[name]
        if isinstance(r, list):
            assert isinstance(g, list) and len(g) == len(r), f"{what}: {name}: {len(g)} entries, expected {len(r)}"
            pairs = list(zip(g, r))
        else:
            pairs = [(g, r)]
        for i, (a, b) in enumerate(pairs):
            assert a.dtype == b.dtype, f"{what}: {name}[{i}]: dtype {a.dtype} != {b.dtype}"
            assert np.array_equal(a, b), f"{what}: {name}[{i}] differs:\n{a}\n{b}"


def assert_expected(got: dict[str, Any], expected: dict[str, Any], what: str) -> None:
    for name, value in expected.items():
        if isinstance(value, list):
            assert len(got[name]) == len(value), what
            for i, (a, b) in enumerate(zip(got[name], value)):
                assert_same(a, b, f"{what}: {name}[{i}]")
        else:
            assert_same(got[name], value, f"{what}: {name}")


def no_config_lines(caplog) -> int:
    return sum(NO_CONFIG in r.getMessage() for r in caplog.records if r.name == "framework.sonic")


def refused_binary_lines(caplog) -> int:
    return sum(REFUSED_BINARY in r.getMessage() for r in caplog.records if r.name == "framework.sonic")


@register("TransportTestProducer")
class TransportTestProducer(SonicEDProducer):
    """affine4 inputs from the event number; puts every output under its name; counts the events produced and
    notes whether this process had SONIC shared-memory segments meanwhile."""

    parameters: dict[str, Any] = {}
    done = 0
    segments_seen = False
    _lock = threading.Lock()

    @classmethod
    def reset_counts(cls) -> None:
        cls.done, cls.segments_seen = 0, False

    def acquire(self, event, input):
        input["INPUT"].toServer(affine4_input(event.id.event))

    def produce(self, event, output):
        for name in output:
            event.put(np.array(output[name].fromServer()), name)
        with TransportTestProducer._lock:
            TransportTestProducer.done += 1
            TransportTestProducer.segments_seen |= bool(client_shm_segments())


def affine4_module(**client: Any) -> cms.EDProducer:
    return cms.EDProducer("TransportTestProducer", Client=cms.PSet(**{"modelName": "affine4", "mode": "Async", **client}))


def check_affine4_products(products: dict, label: str, events: int) -> None:
    for ev in range(1, events + 1):
        got, want = products[(label, ev)]["OUTPUT"], affine4_output(ev)
        assert got.dtype == want.dtype and np.array_equal(got, want), f"event {ev}: {got} != 3 x - 1 = {want}"


# ----------------------------------------------------------------------------- 1. threads flat
WARMUP = 100
JOB_EVENTS = 2000


@pytest.mark.slow
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_thread_count_flat_over_2000_async_requests(sonic_server, protocol):
    """A 4-stream, 2-thread job of 2000 Async events: after the first 100 events no thread is started per
    request. Python threads are sampled every 20 ms (count, names, native ids, which unlike ``ident`` are not
    reused) and so are the OS threads of the process (``/proc/self/task``, which also sees grpc's C threads).
    Every event's output is checked (``3x - 1``, exact)."""
    TransportTestProducer.reset_counts()
    samples: list[tuple[int, dict[int, str], set[str]]] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            done = TransportTestProducer.done
            threads = {t.native_id: t.name for t in threading.enumerate()}
            samples.append((done, threads, set(os.listdir("/proc/self/task"))))
            stop.wait(0.02)

    process = make_process({"m": affine4_module()}, events=JOB_EVENTS, streams=4, threads=2,
                           servers=[server_pset(protocol, port_of(sonic_server, protocol))])
    before_run = {t.native_id for t in threading.enumerate()}  # e.g. a PseudoAsync pool of an earlier test
    sampler = threading.Thread(target=sample, name="thread-sampler", daemon=True)
    sampler.start()
    try:
        report, products = run(process)
    finally:
        stop.set()
        sampler.join(5)
    assert report.processed == JOB_EVENTS
    check_affine4_products(products, "m", JOB_EVENTS)

    after = [s for s in samples if WARMUP <= s[0] < JOB_EVENTS]
    assert len(after) >= 3, f"only {len(after)} samples after warm-up: the sampler did not run"
    _, base_threads, base_tasks = after[0]
    most = max(len(s[1]) for s in after)
    seen = {tid: name for s in after for tid, name in s[1].items()}
    tasks = set().union(*(s[2] for s in after))
    names = sorted(set(seen.values()))
    assert most - len(base_threads) <= 2, f"threads grew from {len(base_threads)} to {most}: {names}"
    assert len(seen) <= len(base_threads) + 4, (
        f"{len(seen)} distinct threads after warm-up (baseline {len(base_threads)}): a thread per request? "
        f"{names[:12]}")
    assert len(tasks) <= len(base_tasks) + 8, (
        f"{len(tasks)} distinct OS threads after warm-up (baseline {len(base_tasks)}): a thread per request?")
    # completions come on the SONIC thread(s) made once per process (the event loop "sonic-io", ...), never on
    # grpc's channel spin threads or on the PseudoAsync pool
    assert any(n.startswith("sonic-") for n in names), names
    for _, threads, _ in after:
        sonic = [n for n in threads.values() if n.startswith("sonic-")]
        assert len(sonic) == len(set(sonic)), f"a SONIC thread twice: {sorted(threads.values())}"
    new = sorted(name for tid, name in seen.items() if tid not in before_run)
    assert not any("channel_spin" in n or n.startswith("sonic-pseudoasync") for n in new), new


# ----------------------------------------------------------------------------- 2. HTTP == gRPC
@pytest.mark.parametrize("shm", [False, True], ids=["messages", "shm"])
@pytest.mark.parametrize("mode", MODES)
def test_http_and_grpc_bit_identical(sonic_server, sonic_models, mode, shm):
    """The same inputs through HTTP and gRPC give the same outputs, dtypes and bits, for every test model
    (variable dims, known-shape outputs, names with ':' and '/' and an INT64 input, no batching, ragged entries),
    in each mode, with tensors in the messages and in shared memory; both within 1e-6 of ONNXRuntime."""
    for kind in KINDS:
        spec = sonic_models[MODEL_OF[kind]]
        results: dict[str, list[dict[str, Any]]] = {}
        for protocol in PROTOCOLS:
            params = {"modelName": MODEL_OF[kind], "mode": mode, "useSharedMemory": shm}
            with TritonClient(params, server=address_of(sonic_server, protocol), protocol=protocol) as client:
                assert client.protocol == protocol and not client.v2only
                assert (client._shm is not None) == shm, f"{kind} over {protocol}: shared memory used: {not shm}"
                results[protocol] = [infer(client, feeds_for(kind, r)) for r in range(2)]
        for r in range(2):
            what = f"{kind} ({mode}, {'shm' if shm else 'messages'}) request {r}"
            assert_identical(results["http"][r], results["grpc"][r], f"{what}: http vs grpc")
            assert_expected(results["grpc"][r], expected_for(spec, kind, feeds_for(kind, r)), what)
    assert client_shm_segments() == []


@pytest.mark.slow
def test_main_job_http_and_grpc_bit_identical(tmp_path):
    """The main job (ParT AK4 and DeepMET via SONIC, 30 events) with ``protocol=grpc`` and ``protocol=http``:
    every branch of the two output files is identical, products included. Both runs use ONE already-running
    bundled server (``address=``/``port=``), so the protocol is the only difference, and 1 stream, so that the
    server's dynamic batching cannot merge requests differently in the two runs (which would change the float32
    rounding of the batched computations)."""
    job = [f"inputFiles={SAMPLE}", "maxEvents=30", "sonic=1", "numStreams=1", "address=127.0.0.1"]
    runs = {}
    with LocalTritonServer([MODELS], device="cpu", models=["particletransformer_AK4", "deepmet"]) as server:
        for protocol in PROTOCOLS:
            port = port_of(server, protocol)
            runs[protocol] = run_main(tmp_path / f"{protocol}.root", *job, f"port={port}", f"protocol={protocol}")
            over = " over http" if protocol == "http" else ""
            for model in ("particletransformer_AK4", "deepmet"):
                line = f"model '{model}' -> server 'default' (127.0.0.1:{port}){over}"
                assert any(m.endswith(line) for m in runs[protocol].log), (line, runs[protocol].log)
            assert not runs[protocol].fallback_started()
    assert runs["grpc"].report.processed == runs["http"].report.processed == 30
    g, h = read_output(runs["grpc"].output), read_output(runs["http"].output)
    assert sorted(g) == sorted(h)
    assert set(SCORE_BRANCHES) | set(MET_BRANCHES) <= set(g)
    for name in g:
        assert str(ak.type(g[name])) == str(ak.type(h[name])), f"{name}: {ak.type(g[name])} != {ak.type(h[name])}"
        assert ak.to_list(g[name]) == ak.to_list(h[name]), f"branch {name} differs between grpc and http"
    assert len(ak.flatten(g[SCORE_BRANCHES[0]])) > 0


# ----------------------------------------------------------------------------- 3. V2-only servers
@pytest.fixture(scope="module")
def grpc_proxy(sonic_server) -> Iterator[GrpcV2Proxy]:
    with GrpcV2Proxy(upstream=sonic_server.grpc_address) as proxy:
        yield proxy


@pytest.fixture(scope="module")
def http_proxy(sonic_server) -> Iterator[HttpV2Proxy]:
    with HttpV2Proxy(upstream=sonic_server.http_address) as proxy:
        yield proxy


@pytest.fixture(scope="module")
def strict_http_proxy(sonic_server) -> Iterator[HttpV2Proxy]:
    """A V2 server that also refuses Triton's binary tensor extension (JSON tensors only)."""
    with HttpV2Proxy(upstream=sonic_server.http_address, reject_binary=True) as proxy:
        yield proxy


@pytest.fixture(params=PROTOCOLS)
def v2(request) -> tuple[str, GrpcV2Proxy | HttpV2Proxy]:
    """(protocol, its V2-only proxy), counters reset."""
    proxy = request.getfixturevalue(f"{request.param}_proxy")
    proxy.reset_counts()
    return request.param, proxy


def direct_results(sonic_server, kind: str, rounds: int = 2) -> list[dict[str, Any]]:
    """What the server itself answers (gRPC, tensors in the messages)."""
    params = {"modelName": MODEL_OF[kind], "mode": "Sync", "useSharedMemory": False}
    with TritonClient(params, server=sonic_server.grpc_address) as client:
        return [infer(client, feeds_for(kind, r)) for r in range(rounds)]


def _triton_only_calls(protocol: str, proxy) -> list[str]:
    """The Triton-only endpoints the clients asked the proxy for, other than the model configuration."""
    if protocol == "grpc":
        return [k for k in proxy.counts if k != "ModelConfig" and k not in proxy.forwarded]
    return [k for k in proxy.counts if not k.endswith("/config") and k not in proxy.forwarded]


@pytest.mark.parametrize("mode", MODES)
def test_v2_only_client(v2, sonic_server, sonic_models, caplog, mode):
    """Through a V2-only proxy: ``v2only`` is recognised (one info line per client), no shared memory is tried
    even on a loopback address with useSharedMemory, batching comes from the metadata (and max_batch_size from
    Client.modelConfigPath when given), and the results are bit-identical to the server's own answers for the
    affine model, the multi_io model (names with ':' and '/', INT64), the unbatched model and ragged entries."""
    protocol, proxy = v2
    caplog.set_level(logging.INFO, logger="framework.sonic")
    clients = 0
    for kind, config in [("affine", ""), ("affine", config_path(sonic_models["affine"])), ("multi_io", ""),
                         ("fixed", ""), ("ragged", "")]:
        params = {"modelName": MODEL_OF[kind], "mode": mode, "useSharedMemory": True, "modelConfigPath": config}
        with TritonClient(params, server=proxy.address, protocol=protocol) as client:
            clients += 1
            what = f"{kind} via the V2 {protocol} proxy ({mode}{', modelConfigPath' if config else ''})"
            assert client.v2only and client.protocol == protocol and client.isLocal, what
            assert no_config_lines(caplog) == clients, f"{what}: not one '{NO_CONFIG}' line per client"
            assert client._shm is None, what
            assert client.batched == (kind != "fixed"), what
            assert client.maxBatchSize == (sonic_models["affine"].max_batch_size if config else 0), what
            got = [infer(client, feeds_for(kind, r)) for r in range(2)]
            assert client_shm_segments() == [], what
        for r, ref in enumerate(direct_results(sonic_server, kind)):
            assert_identical(got[r], ref, f"{what}, request {r}: proxy vs server")
    assert sonic_models["affine"].max_batch_size == 8
    assert not _triton_only_calls(protocol, proxy), f"shared memory or statistics asked for: {proxy.counts}"
    config_asks = sum(n for k, n in proxy.refused.items() if k == "ModelConfig" or k.endswith("/config"))
    assert config_asks == clients, proxy.refused  # once per client


@pytest.mark.parametrize("mode", MODES)
def test_v2_http_sends_json_tensors_from_the_first_request(strict_http_proxy, sonic_server, caplog, mode):
    """A V2-only HTTP server (no Triton extensions, so no binary tensor extension either: MLServer answers binary
    tensors with a 400, or a 500 when the bytes are not UTF-8): the client sends JSON tensors from its first
    request on, rectangular and ragged, so no request is ever refused. Results are bit-identical to the server's
    own (floats and INT64 survive JSON)."""
    proxy = strict_http_proxy
    caplog.set_level(logging.INFO, logger="framework.sonic")
    for kind in ["affine", "multi_io"]:
        proxy.reset_counts()
        infer_key = f"POST /v2/models/{MODEL_OF[kind]}/infer"
        with TritonClient({"modelName": MODEL_OF[kind], "mode": mode}, server=proxy.address,
                          protocol="http") as client:
            assert client.v2only and client._transport.json
            got = [infer(client, feeds_for(kind, r)) for r in range(2)]
            if kind == "affine":
                ragged = infer(client, feeds_for("ragged", 1))
                assert_identical(ragged, direct_results(sonic_server, "ragged")[1], "ragged entries as JSON")
        for r, ref in enumerate(direct_results(sonic_server, kind)):
            assert_identical(got[r], ref, f"{kind} ({mode}) request {r} as JSON vs the server")
        entries = 2 + len(feeds_for("ragged", 1)["INPUT"]) if kind == "affine" else 2
        assert {key: n for key, n in proxy.refused.items() if key.endswith("/infer")} == {}, proxy.refused
        assert proxy.forwarded.get(infer_key) == entries, proxy.forwarded
    assert refused_binary_lines(caplog) == 0


@pytest.mark.parametrize("mode", MODES)
def test_v2_http_ragged_first_event_goes_as_json(strict_http_proxy, sonic_server, mode):
    """Ragged entries of a client's first event go out together, each as JSON at once."""
    proxy = strict_http_proxy
    proxy.reset_counts()
    feeds = feeds_for("ragged", 1)
    with TritonClient({"modelName": "affine", "mode": mode}, server=proxy.address, protocol="http") as client:
        got = infer(client, feeds)
    assert_identical(got, direct_results(sonic_server, "ragged")[1], f"ragged first event ({mode})")
    n = len(feeds["INPUT"])
    assert proxy.refused.get("POST /v2/models/affine/infer", 0) == 0
    assert proxy.forwarded.get("POST /v2/models/affine/infer") == n, (proxy.counts, n)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_v2_job_through_the_service(request, sonic_server, caplog, protocol):
    """A 4-stream Async job of 50 events on a V2-only server declared in TritonService.servers: the service's
    repository index goes through the proxy (gRPC RepositoryIndex; HTTP POST /v2/repository/index), each
    stream's client logs the V2-only line once, no shared memory exists while it runs, the outputs are right,
    and the (verbose) server statistics the V2 server lacks are skipped without failing the job."""
    proxy = request.getfixturevalue(f"{protocol}_proxy")
    proxy.reset_counts()
    caplog.set_level(logging.INFO, logger="framework.sonic")
    TransportTestProducer.reset_counts()
    process = make_process({"m": affine4_module()}, events=50, streams=4,
                           servers=[server_pset(protocol, proxy.port, "v2")], verbose=True)
    report, products = run(process)
    assert report.processed == 50
    check_affine4_products(products, "m", 50)
    assert not TransportTestProducer.segments_seen and client_shm_segments() == []
    over = " over http" if protocol == "http" else ""
    assert f"model 'affine4' -> server 'v2' (127.0.0.1:{proxy.port}){over}" in caplog.text
    assert no_config_lines(caplog) == 4, caplog.text
    index_key = "RepositoryIndex" if protocol == "grpc" else "POST /v2/repository/index"
    assert proxy.forwarded.get(index_key) == 1, proxy.counts
    stats_key = "ModelStatistics" if protocol == "grpc" else "GET /v2/models/affine4/stats"
    assert proxy.refused.get(stats_key, 0) >= 1, proxy.counts  # asked for (verbose) and refused: no failure


# ----------------------------------------------------------------------------- 4. command line
@pytest.mark.slow
def test_command_line_protocol_http(run_framework, tmp_path):
    out = tmp_path / "http.root"
    result = run_framework("run", CONFIG, "maxEvents=10", "sonic=1", "protocol=http", f"outputFile={out}")
    text = result.stdout + result.stderr
    assert result.returncode == 0, text
    assert out.is_file()
    for model in ("particletransformer_AK4", "deepmet"):
        assert any(f"model '{model}' -> server 'fallback' (" in line and line.endswith(") over http")
                   for line in text.splitlines()), text


def test_command_line_bad_protocol(run_framework, tmp_path):
    out = tmp_path / "bad.root"
    result = run_framework("run", CONFIG, "maxEvents=10", "sonic=1", "protocol=htpp", f"outputFile={out}")
    text = result.stdout + result.stderr
    assert result.returncode != 0, text
    assert "Traceback" not in text, text
    lines = [line for line in text.splitlines() if "htpp" in line]
    assert len(lines) == 1, text
    assert "grpc" in lines[0] and "http" in lines[0], lines[0]
    assert not out.exists()
