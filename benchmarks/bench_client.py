"""Benchmark of the SONIC client itself (issue 7, "SONIC must cost less than it saves"): goals P2, P3 and P6.

    python benchmarks/bench_client.py --out benchmarks/results/client.json
    python benchmarks/bench_client.py --out benchmarks/results/client_cms_models.json --models ../shared/models

One local tritonserver (:class:`~framework.server.LocalTritonServer`, device cpu, 1 instance per ONNX model) is
started on a temporary repository with the ParT AK4 (``particletransformer_AK4``) and DeepMET (``deepmet``) models
of ``--models`` (default: the bundled ``data/models``; input names and shapes are read from the server's model
metadata), two 16 MB models (``sum_16MB``: FP32 [4M] -> ReduceSum -> [1]; ``identity_16MB``: FP32 [4M] -> [4M])
and a Python-backend model that sleeps 20 ms per request (``sleep_20ms``: 8 instances, no dynamic batching, so
that the server runs 8 requests at once and is not the bottleneck of P6).

Goals (every ratio is measured side by side in one run: the variants of a goal run interleaved, round after
round; each cell is repeated ``--repeat`` times (default 3) and the best of them is kept):

P2  our client's CPU per request vs a bare synchronous ``tritonclient.grpc`` call with the same tensors (one ParT
    event of 8 jets padded to 25 charged, 25 neutral, 5 SV; one DeepMET event 1x4500x8 + 3 x 1x4500x1):
    <= 1.2x, and <= 0.5 ms for the ParT request. CPU = the PROCESS CPU time (``time.process_time``, all threads:
    the client's event-loop thread ``sonic-io`` included) over >= 1000 requests, divided by the requests.
    Variants: (a) ``bare-grpc`` sync ``infer``, InferInputs built per request, tensors in the message;
    (b) ``bare-http`` sync ``infer``, binary tensors; (c) ``sonic-sync-grpc-shm`` our TritonClient, Sync mode,
    system shared memory (the default for a loopback server); (d) ``sonic-sync-grpc`` the same without shared
    memory; (e) ``sonic-async-grpc-shm`` Async mode, ``dispatch(holder)`` and wait (one request in flight, like
    one stream); (f) ``sonic-sync-http-shm`` / ``sonic-async-http-shm`` over HTTP. Per request our client does
    reset, toServer for every input, evaluate (Sync) or dispatch (Async), fromServer, as SonicEDProducer does.
    Measured: (our best gRPC variant, c/d/e) / (a).
P3  16 MB input through system shared memory vs gRPC, small output: >= 10x faster and >= 2 GB/s (input bytes /
    wall time per request); also reported with 16 MB out. Variants: ``bare-grpc`` (tensors in the message),
    ``sonic-shm`` (our TritonClient, Sync, shared memory) and, for information, ``sonic-grpc`` (ours without
    shared memory). >= 20 requests per cell.
P6  latency hiding: a job (the real framework: EmptySource and a SONIC producer in Async mode on ``sleep_20ms``)
    with 8 streams on 2 threads vs 1 stream on 1 thread: >= 6x events/s. The 1-stream job processes fewer events
    (``--p6-events-1``, default 200) than the 8-stream one (``--p6-events``, default 1000) to keep the run short;
    the output says so.

Every goal is reported met or not with what bounds it (the floor set by the bare client, the server's own time
per request from Triton's statistics, the ideal of 8 overlapping 20 ms requests). Results: ``--out`` (JSON) and a
Markdown table next to it. ``--only P2,P3`` runs a subset; ``--requests`` etc. shrink a smoke run.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
for _p in (ROOT, ROOT / "benchmarks"):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

log = logging.getLogger("bench_client")

PART_MODEL = "particletransformer_AK4"
DEEPMET_MODEL = "deepmet"
SUM_MODEL = "sum_16MB"
IDENTITY_MODEL = "identity_16MB"
SLEEP_MODEL = "sleep_20ms"
BIG_N = 1 << 22
"""Floats of the 16 MB tensors (4M FP32)."""
SLEEP_S = 0.020
SLEEP_INSTANCES = 8
PART_JETS = 8
PART_SLOTS = (25, 25, 5)
"""Charged, neutral, SV slots of a ParT jet (the features inputs 1-3, then the 4-vector inputs 4-6)."""
DEEPMET_CANDIDATES = 1500
"""Filled DeepMET candidates (the rest of the 4500 slots zero padding, as in a real event)."""

P2_VARIANTS = ("bare-grpc", "bare-http", "sonic-sync-grpc-shm", "sonic-sync-grpc", "sonic-async-grpc-shm",
               "sonic-sync-http-shm", "sonic-async-http-shm")
P2_OURS_GRPC = ("sonic-sync-grpc-shm", "sonic-sync-grpc", "sonic-async-grpc-shm")
P3_VARIANTS = ("bare-grpc", "sonic-shm", "sonic-grpc")

GOAL_P2_RATIO = 1.2
GOAL_P2_PART_MS = 0.5
GOAL_P3_SPEEDUP = 10.0
GOAL_P3_GBPS = 2.0
GOAL_P6_RATIO = 6.0


# ----------------------------------------------------------------------------- models
_SLEEP_MODEL_PY = textwrap.dedent('''\
    """Benchmark model: sleeps `delay_s` (config parameter) per request, then returns its input."""
    import json
    import time

    import triton_python_backend_utils as pb_utils


    class TritonPythonModel:
        def initialize(self, args):
            config = json.loads(args["model_config"])
            self.delay = float(config["parameters"]["delay_s"]["string_value"])

        def execute(self, requests):
            responses = []
            for request in requests:
                time.sleep(self.delay)
                x = pb_utils.get_input_tensor_by_name(request, "INPUT").as_numpy()
                responses.append(pb_utils.InferenceResponse([pb_utils.Tensor("OUTPUT", x.copy())]))
            return responses
    ''')


def make_sum_model(repo: Path, name: str, n: int) -> None:
    """``OUTPUT [1] = ReduceSum(INPUT [n])``, FP32, no batching: a big input with a small output."""
    from bench_sonic import make_vector_model

    make_vector_model(repo, name, "ReduceSum", n, 1, keepdims=1)


def make_sleep_model(repo: Path, name: str, delay_s: float, instances: int) -> None:
    """Python-backend model sleeping *delay_s* per request; FP32 [4] -> [4], no batching, *instances* instances."""
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2 as mc

    from tests.onnx_models import TensorSpec, write_config

    f32 = np.dtype("float32")
    model_dir = repo / name
    config = write_config(model_dir, name, [TensorSpec("INPUT", [4], f32)], [TensorSpec("OUTPUT", [4], f32)],
                          max_batch_size=0, platform="", backend="python", dynamic_batching=False,
                          parameters={"delay_s": str(delay_s)})
    config.instance_group.add(count=instances, kind=mc.ModelInstanceGroup.KIND_CPU)
    (model_dir / "config.pbtxt").write_text(text_format.MessageToString(config))
    (model_dir / "1").mkdir(parents=True, exist_ok=True)
    (model_dir / "1" / "model.py").write_text(_SLEEP_MODEL_PY)


def build_repository(repo: Path, models_dir: Path, parts: set[str]) -> list[str]:
    """The benchmark repository; returns the model names."""
    from bench_sonic import make_identity_model

    repo.mkdir(parents=True)
    names = []
    if "P2" in parts:
        for name in (PART_MODEL, DEEPMET_MODEL):
            source = (models_dir / name).resolve()
            if not (source / "config.pbtxt").is_file():
                raise SystemExit(f"--models {models_dir}: no {name}/config.pbtxt there")
            os.symlink(source, repo / name, target_is_directory=True)
            names.append(name)
    if "P3" in parts:
        make_sum_model(repo, SUM_MODEL, BIG_N)
        make_identity_model(repo, IDENTITY_MODEL, BIG_N)
        names += [SUM_MODEL, IDENTITY_MODEL]
    if "P6" in parts:
        make_sleep_model(repo, SLEEP_MODEL, SLEEP_S, SLEEP_INSTANCES)
        names.append(SLEEP_MODEL)
    return names


# ----------------------------------------------------------------------------- tensors
def model_inputs(address: str, model: str) -> tuple[list[tuple[str, np.dtype, list[int]]], list[str]]:
    """``[(name, numpy dtype, shape with the batch dim)]`` of the inputs and the output names, from the server."""
    import tritonclient.grpc as grpcclient
    from tritonclient.utils import triton_to_np_dtype

    client = grpcclient.InferenceServerClient(address)
    try:
        md = client.get_model_metadata(model)
    finally:
        client.close()
    inputs = [(t.name, np.dtype(triton_to_np_dtype(t.datatype)), [int(d) for d in t.shape]) for t in md.inputs]
    return inputs, [t.name for t in md.outputs]


def part_event(inputs: list[tuple[str, np.dtype, list[int]]], jets: int = PART_JETS,
               seed: int = 1) -> dict[str, np.ndarray]:
    """One ParT AK4 event: *jets* jets, every jet padded to 25 charged / 25 neutral / 5 SV slots; features
    random, 4-vectors (px, py, pz, E) of real, non-zero momenta. Inputs in the server's order: the three feature
    inputs, then the three 4-vector inputs."""
    rng = np.random.default_rng(seed)
    if len(inputs) != 6:
        raise SystemExit(f"{PART_MODEL}: expected 6 inputs, the server lists {[i[0] for i in inputs]}")
    event = {}
    for k, (name, dtype, shape) in enumerate(inputs):
        slots = PART_SLOTS[k % 3]
        width = shape[-1]
        if k < 3:
            array = rng.normal(size=(jets, slots, width))
        else:
            pt = rng.exponential(8.0, size=(jets, slots)) + 1.0
            eta = rng.uniform(-2.5, 2.5, size=(jets, slots))
            phi = rng.uniform(-np.pi, np.pi, size=(jets, slots))
            mass = rng.uniform(0.0, 0.5, size=(jets, slots))
            px, py, pz = pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)
            array = np.stack([px, py, pz, np.sqrt(px * px + py * py + pz * pz + mass * mass)], axis=-1)
            if width != 4:
                raise SystemExit(f"{PART_MODEL}: input {name} should be a 4-vector, has width {width}")
        event[name] = np.ascontiguousarray(array.astype(dtype))
    return event


def deepmet_event(inputs: list[tuple[str, np.dtype, list[int]]], seed: int = 2) -> dict[str, np.ndarray]:
    """One DeepMET event (batch 1): 1x4500x8 candidate features and 3 x 1x4500x1 embeddings (charge, pdgId,
    fromPV), :data:`DEEPMET_CANDIDATES` candidates filled, the rest zero padding."""
    rng = np.random.default_rng(seed)
    event = {}
    categories = iter((3, 11, 4))
    for name, dtype, shape in inputs:
        dims = [1 if d < 0 else d for d in shape]  # batch 1
        array = np.zeros(dims, dtype=dtype)
        filled = min(DEEPMET_CANDIDATES, dims[1])
        if dims[-1] > 1:
            array[0, :filled] = rng.normal(size=(filled, dims[-1]))
        else:
            array[0, :filled, 0] = rng.integers(0, next(categories), size=filled)
        event[name] = array
    return event


# ----------------------------------------------------------------------------- request makers
class _Holder:
    """The framework's WaitingTaskHolder as far as ``dispatch`` needs it."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.error: BaseException | None = None

    def doneWaiting(self, exc: BaseException | None) -> None:  # noqa: N802 - CMSSW's name
        self.error = exc
        self.event.set()


def _np_to_triton(dtype: np.dtype) -> str:
    from tritonclient.utils import np_to_triton_dtype

    return np_to_triton_dtype(dtype)


def make_caller(variant: str, server: Any, model: str, tensors: dict[str, np.ndarray],
                output: str) -> tuple[Callable[[], None], Callable[[], None]]:
    """``(call, close)``: one request of *variant* with *tensors*, reading *output*."""
    if variant == "bare-grpc":
        import tritonclient.grpc as grpcclient

        client = grpcclient.InferenceServerClient(server.grpc_address)
        dtypes = {name: _np_to_triton(a.dtype) for name, a in tensors.items()}

        def call() -> None:
            inputs = []
            for name, array in tensors.items():
                inp = grpcclient.InferInput(name, list(array.shape), dtypes[name])
                inp.set_data_from_numpy(array)
                inputs.append(inp)
            client.infer(model, inputs).as_numpy(output)

        return call, client.close
    if variant == "bare-http":
        import tritonclient.http as httpclient

        client = httpclient.InferenceServerClient(server.http_address)
        dtypes = {name: _np_to_triton(a.dtype) for name, a in tensors.items()}

        def call() -> None:
            inputs = []
            for name, array in tensors.items():
                inp = httpclient.InferInput(name, list(array.shape), dtypes[name])
                inp.set_data_from_numpy(array, binary_data=True)
                inputs.append(inp)
            outputs = [httpclient.InferRequestedOutput(output, binary_data=True)]
            client.infer(model, inputs, outputs=outputs).as_numpy(output)

        return call, client.close
    # our client: sonic-{sync,async}-{grpc,http}[-shm] (P2) or sonic-shm / sonic-grpc (P3: Sync over gRPC)
    from framework.sonic import TritonClient

    parts = variant.split("-")
    mode = "Async" if "async" in parts else "Sync"
    protocol = "http" if "http" in parts else "grpc"
    shm = parts[-1] == "shm"
    address = server.http_address if protocol == "http" else server.grpc_address
    client = TritonClient({"modelName": model, "mode": mode, "useSharedMemory": shm}, server=address,
                          protocol=protocol)
    client.connect()
    if shm and client._shm is None:
        raise RuntimeError(f"{variant}: the client did not set up shared memory with the server")
    items = [(client.input[name], array) for name, array in tensors.items()]
    out = client.output[output]
    if mode == "Sync":
        def call() -> None:
            client.reset()
            for inp, array in items:
                inp.toServer(array)
            client.evaluate()
            out.fromServer()
    else:
        holder = _Holder()

        def call() -> None:
            client.reset()
            for inp, array in items:
                inp.toServer(array)
            holder.event.clear()
            client.dispatch(holder)
            holder.event.wait()
            if holder.error is not None:
                raise holder.error
            out.fromServer()

    return call, client.close


# ----------------------------------------------------------------------------- measuring
def server_stats(address: str, model: str) -> Any:
    """The model's Triton statistics now (:class:`~framework.sonic.service.ServerStats`)."""
    import tritonclient.grpc as grpcclient

    from framework.sonic.service import server_statistics

    client = grpcclient.InferenceServerClient(address)
    try:
        return server_statistics(client.get_inference_statistics(model, as_json=True).get("model_stats", []))
    finally:
        client.close()


def measure(variant: str, server: Any, model: str, tensors: dict[str, np.ndarray], output: str, requests: int,
            warmup: int) -> dict:
    """One cell: *warmup* requests, then *requests* timed: process CPU and wall time per request, and the
    server's own time per request (Triton's statistics over the timed requests)."""
    call, close = make_caller(variant, server, model, tensors, output)
    try:
        for _ in range(warmup):
            call()
        before = server_stats(server.grpc_address, model)
        c0, t0 = time.process_time(), time.perf_counter()
        for _ in range(requests):
            call()
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        s = server_stats(server.grpc_address, model) - before
    finally:
        close()
    n = max(1, s.success)
    return {"variant": variant, "model": model, "requests": requests, "cpu_ms": 1e3 * cpu / requests,
            "wall_ms": 1e3 * wall / requests,
            "server_ms": 1e3 * (s.queue + s.compute_input + s.compute_infer + s.compute_output) / n,
            "server_queue_ms": 1e3 * s.queue / n, "server_compute_input_ms": 1e3 * s.compute_input / n,
            "server_compute_infer_ms": 1e3 * s.compute_infer / n,
            "server_compute_output_ms": 1e3 * s.compute_output / n}


def phases(server: Any, model: str, tensors: dict[str, np.ndarray], output: str, requests: int,
           warmup: int) -> dict:
    """Where the process CPU of ``sonic-sync-grpc-shm`` goes (not part of the ranking): reset + toServer
    (copies into shared memory happen in evaluate), evaluate (request, wait, copy out), fromServer."""
    from framework.sonic import TritonClient

    client = TritonClient({"modelName": model, "mode": "Sync"}, server=server.grpc_address)
    client.connect()
    try:
        items = [(client.input[name], array) for name, array in tensors.items()]
        out = client.output[output]
        acc = np.zeros(3)
        for i in range(warmup + requests):
            c0 = time.process_time()
            client.reset()
            for inp, array in items:
                inp.toServer(array)
            c1 = time.process_time()
            client.evaluate()
            c2 = time.process_time()
            out.fromServer()
            c3 = time.process_time()
            if i >= warmup:
                acc += (c1 - c0, c2 - c1, c3 - c2)
    finally:
        client.close()
    fill, evaluate, read = (1e3 * acc / requests).tolist()
    return {"fill_ms": fill, "evaluate_ms": evaluate, "fromServer_ms": read}


def interleaved(variants: tuple[str, ...], repeat: int, run: Callable[[str], dict],
                better: Callable[[dict, dict], bool]) -> dict[str, dict]:
    """Run every variant *repeat* times, round after round (side by side); keep each variant's best cell."""
    best: dict[str, dict] = {}
    for r in range(repeat):
        for variant in variants:
            cell = run(variant)
            cell["round"] = r
            if variant not in best or better(cell, best[variant]):
                best[variant] = cell
    return best


# ----------------------------------------------------------------------------- P2
def run_p2(server: Any, args: argparse.Namespace) -> dict:
    events = {}
    for model, make in ((PART_MODEL, part_event), (DEEPMET_MODEL, deepmet_event)):
        inputs, outputs = model_inputs(server.grpc_address, model)
        events[model] = (make(inputs), outputs[0])
    results: dict[str, Any] = {}
    for model, (tensors, output) in events.items():
        kb = sum(a.nbytes for a in tensors.values()) / 1024
        log.info("P2 %s: %s (%.0f KB), %d requests per cell, best of %d", model,
                 ", ".join(f"{n} {list(a.shape)}" for n, a in tensors.items()), kb, args.requests, args.repeat)

        def run(variant: str, model: str = model, tensors: dict = tensors, output: str = output) -> dict:
            cell = measure(variant, server, model, tensors, output, args.requests, args.warmup)
            log.info("  %-22s CPU %.3f ms/request, wall %.3f ms (server %.3f ms)", variant, cell["cpu_ms"],
                     cell["wall_ms"], cell["server_ms"])
            return cell

        best = interleaved(P2_VARIANTS, args.repeat, run, lambda a, b: a["cpu_ms"] < b["cpu_ms"])
        bare = best["bare-grpc"]["cpu_ms"]
        ours = min(P2_OURS_GRPC, key=lambda v: best[v]["cpu_ms"])
        ph = phases(server, model, tensors, output, max(1, args.requests // 2), args.warmup)
        log.info("  phases of sonic-sync-grpc-shm (CPU ms/request): %s",
                 ", ".join(f"{k} {v:.3f}" for k, v in ph.items()))
        results[model] = {"input_bytes": int(sum(a.nbytes for a in tensors.values())),
                          "inputs": {n: list(a.shape) for n, a in tensors.items()}, "cells": best,
                          "bare_grpc_cpu_ms": bare, "best_ours_grpc": ours, "best_ours_grpc_cpu_ms": best[ours]["cpu_ms"],
                          "ratio": best[ours]["cpu_ms"] / bare if bare > 0 else float("inf"),
                          "phases_sonic_sync_grpc_shm": ph}
    return results


# ----------------------------------------------------------------------------- P3
def run_p3(server: Any, args: argparse.Namespace) -> dict:
    x = np.random.default_rng(3).normal(size=BIG_N).astype(np.float32)
    results: dict[str, Any] = {}
    for model in (SUM_MODEL, IDENTITY_MODEL):
        log.info("P3 %s: input %.0f MB, %d requests per cell, best of %d", model, x.nbytes / 2**20,
                 args.big_requests, args.repeat)

        def run(variant: str, model: str = model) -> dict:
            cell = measure(variant, server, model, {"INPUT": x}, "OUTPUT", args.big_requests, args.big_warmup)
            cell["input_GBps"] = x.nbytes / (cell["wall_ms"] * 1e-3) / 1e9
            log.info("  %-12s wall %.2f ms/request (%.2f GB/s in), CPU %.2f ms, server %.2f ms", variant,
                     cell["wall_ms"], cell["input_GBps"], cell["cpu_ms"], cell["server_ms"])
            return cell

        best = interleaved(P3_VARIANTS, args.repeat, run, lambda a, b: a["wall_ms"] < b["wall_ms"])
        results[model] = {"input_bytes": x.nbytes, "output_bytes": x.nbytes if model == IDENTITY_MODEL else 4,
                          "cells": best,
                          "speedup": best["bare-grpc"]["wall_ms"] / best["sonic-shm"]["wall_ms"],
                          "input_GBps": best["sonic-shm"]["input_GBps"]}
    return results


# ----------------------------------------------------------------------------- P6
def _register_sleep_producer() -> None:
    from framework.core.registry import register
    from framework.sonic import SonicEDProducer

    @register("BenchSleepSonicProducer")
    class BenchSleepSonicProducer(SonicEDProducer):
        """One [4] request per event on the sleep model; puts the answer."""

        parameters: dict[str, Any] = {}

        def acquire(self, event, input) -> None:
            input["INPUT"].toServer(np.full(4, event.id.event, dtype=np.float32))

        def produce(self, event, output) -> None:
            event.put(np.array(output["OUTPUT"].fromServer()), "out")


def p6_job(server: Any, events: int, streams: int, threads: int) -> dict:
    import framework.config as cms
    import framework.io.source  # noqa: F401 - registers EmptySource
    from framework.core.processor import EventProcessor

    process = cms.Process("BENCHP6")
    process.source = cms.Source("EmptySource")
    process.maxEvents = cms.PSet(input=events)
    process.options = cms.PSet(numberOfThreads=threads, numberOfStreams=streams)
    process.TritonService = cms.Service(
        "TritonService", verbose=False,
        servers=cms.VPSet(cms.PSet(name=cms.string("bench"), address=cms.string("127.0.0.1"),
                                   port=cms.uint32(server.grpc_port))))
    process.sleeper = cms.EDProducer("BenchSleepSonicProducer",
                                     Client=cms.PSet(modelName=cms.string(SLEEP_MODEL), mode=cms.string("Async")))
    process.p = cms.Path(process.sleeper)
    before = server_stats(server.grpc_address, SLEEP_MODEL)
    c0 = time.process_time()
    report = EventProcessor(process).run()
    cpu = time.process_time() - c0
    s = server_stats(server.grpc_address, SLEEP_MODEL) - before
    if report.processed != events or s.success != events:
        raise RuntimeError(f"P6 job: {report.processed} events processed, {s.success} requests served; "
                           f"expected {events} of each")
    wall = report.timing.wall
    return {"streams": streams, "threads": threads, "events": events, "wall_s": wall,
            "events_per_s": events / wall if wall > 0 else 0.0, "cpu_ms_per_event": 1e3 * cpu / events,
            "server_queue_ms": 1e3 * s.queue / max(1, s.success),
            "server_infer_ms": 1e3 * s.compute_infer / max(1, s.success)}


def run_p6(server: Any, args: argparse.Namespace) -> dict:
    _register_sleep_producer()
    configs = {"8 streams": (args.p6_events, 8, 2), "1 stream": (args.p6_events_1, 1, 1)}
    log.info("P6 %s (%.0f ms per request, %d server instances): 8 streams x 2 threads on %d events vs 1 stream x "
             "1 thread on %d events, best of %d", SLEEP_MODEL, 1e3 * SLEEP_S, SLEEP_INSTANCES, args.p6_events,
             args.p6_events_1, args.repeat)

    def run(key: str) -> dict:
        cell = p6_job(server, *configs[key])
        log.info("  %-9s %.1f events/s (server queue %.2f ms, infer %.2f ms per request)", key, cell["events_per_s"],
                 cell["server_queue_ms"], cell["server_infer_ms"])
        return cell

    if args.p6_warmup > 0:  # the first requests of each server instance are slow
        p6_job(server, args.p6_warmup, 8, 2)
    best = interleaved(tuple(configs), args.repeat, run, lambda a, b: a["events_per_s"] > b["events_per_s"])
    one, eight = best["1 stream"], best["8 streams"]
    return {"cells": best, "ratio": eight["events_per_s"] / one["events_per_s"],
            "ideal_events_per_s_8": SLEEP_INSTANCES / SLEEP_S, "ideal_events_per_s_1": 1 / SLEEP_S,
            "overhead_ms_per_event_1": 1e3 / one["events_per_s"] - 1e3 * SLEEP_S,
            "note": f"the 1-stream job ran {one['events']} events, the 8-stream job {eight['events']}"}


# ----------------------------------------------------------------------------- goals and report
def goals(report: dict) -> list[dict]:
    out = []
    p2 = report.get("P2")
    if p2:
        part, met_all, parts = p2.get(PART_MODEL), True, []
        for model, r in p2.items():
            met_all &= r["ratio"] <= GOAL_P2_RATIO
            parts.append(f"{model} {r['ratio']:.2f}x ({r['best_ours_grpc']} {r['best_ours_grpc_cpu_ms']:.3f} ms vs "
                         f"bare-grpc {r['bare_grpc_cpu_ms']:.3f} ms; Async, the twins' default mode: "
                         f"{r['cells']['sonic-async-grpc-shm']['cpu_ms'] / r['bare_grpc_cpu_ms']:.2f}x)")
        ms = part["best_ours_grpc_cpu_ms"] if part else float("nan")
        met_ms = part is not None and ms <= GOAL_P2_PART_MS
        bound = "; ".join(f"{m}: bare gRPC floor {r['bare_grpc_cpu_ms']:.3f} ms, our extra "
                          f"{r['best_ours_grpc_cpu_ms'] - r['bare_grpc_cpu_ms']:+.3f} ms; sync-shm phases "
                          + ", ".join(f"{k.removesuffix('_ms')} {v:.3f} ms"
                                      for k, v in r["phases_sonic_sync_grpc_shm"].items())
                          for m, r in p2.items())
        out.append({"id": "P2", "goal": f"client CPU per request <= {GOAL_P2_RATIO}x bare tritonclient.grpc",
                    "measured": "; ".join(parts), "met": met_all, "bound": bound})
        out.append({"id": "P2", "goal": f"ParT request <= {GOAL_P2_PART_MS} ms client CPU",
                    "measured": f"{ms:.3f} ms", "met": met_ms,
                    "bound": f"bare tritonclient.grpc itself: {part['bare_grpc_cpu_ms']:.3f} ms" if part else ""})
    p3 = report.get("P3")
    if p3 and SUM_MODEL in p3:
        r = p3[SUM_MODEL]
        shm, grpc = r["cells"]["sonic-shm"], r["cells"]["bare-grpc"]
        out.append({"id": "P3", "goal": f"16 MB in, small out: shm >= {GOAL_P3_SPEEDUP:g}x faster than gRPC",
                    "measured": f"{r['speedup']:.2f}x ({shm['wall_ms']:.2f} vs {grpc['wall_ms']:.2f} ms)",
                    "met": r["speedup"] >= GOAL_P3_SPEEDUP,
                    "bound": f"server's own time per shm request {shm['server_ms']:.2f} ms (compute input "
                             f"{shm['server_compute_input_ms']:.2f}, infer {shm['server_compute_infer_ms']:.2f}); "
                             f"client CPU {shm['cpu_ms']:.2f} ms"})
        out.append({"id": "P3", "goal": f"16 MB in, small out: >= {GOAL_P3_GBPS:g} GB/s",
                    "measured": f"{r['input_GBps']:.2f} GB/s", "met": r["input_GBps"] >= GOAL_P3_GBPS,
                    "bound": f"wall {shm['wall_ms']:.2f} ms per request, of which the server {shm['server_ms']:.2f} ms"})
    if p3 and IDENTITY_MODEL in p3:
        r = p3[IDENTITY_MODEL]
        shm, grpc = r["cells"]["sonic-shm"], r["cells"]["bare-grpc"]
        out.append({"id": "P3", "goal": "16 MB in, 16 MB out (report)",
                    "measured": f"{r['speedup']:.2f}x ({shm['wall_ms']:.2f} vs {grpc['wall_ms']:.2f} ms), "
                                f"{r['input_GBps']:.2f} GB/s in", "met": None,
                    "bound": f"server's own time per shm request {shm['server_ms']:.2f} ms (compute output "
                             f"{shm['server_compute_output_ms']:.2f}); client CPU {shm['cpu_ms']:.2f} ms"})
    p6 = report.get("P6")
    if p6:
        one, eight = p6["cells"]["1 stream"], p6["cells"]["8 streams"]
        out.append({"id": "P6", "goal": f"20 ms model, 8 streams >= {GOAL_P6_RATIO:g}x 1 stream events/s",
                    "measured": f"{p6['ratio']:.2f}x ({eight['events_per_s']:.1f} vs {one['events_per_s']:.1f} "
                                f"events/s)", "met": p6["ratio"] >= GOAL_P6_RATIO,
                    "bound": f"ideal 8x ({p6['ideal_events_per_s_8']:.0f} events/s); 1 stream: "
                             f"{p6['overhead_ms_per_event_1']:.2f} ms per event beyond the 20 ms; 8 streams: server "
                             f"queue {eight['server_queue_ms']:.2f} ms per request, job CPU "
                             f"{eight['cpu_ms_per_event']:.2f} ms per event; {p6['note']}"})
    return out


def _met(m: bool | None) -> str:
    return "report" if m is None else ("**met**" if m else "**not met**")


def markdown(report: dict) -> str:
    m, s = report["machine"], report["settings"]
    lines = ["# SONIC client benchmark (issue 7: P2, P3, P6)", "",
             f"`{s['command']}` on {m['platform']}, Python {m['python']}, {m['cores']} cores; {s['server']}. "
             f"Models from `{s['models']}`. Variants of a goal measured side by side (interleaved rounds), best of "
             f"{s['repeat']}. Whole run: {report['total_seconds']:.0f} s.", "",
             "| # | goal | measured | met? | bound by |", "|---|---|---|---|---|"]
    for g in report["goals"]:
        lines.append(f"| {g['id']} | {g['goal']} | {g['measured']} | {_met(g['met'])} | {g['bound']} |")
    if "P2" in report:
        lines += ["", f"## P2: client CPU per request ({s['requests']} requests per cell; process CPU incl. the "
                  "sonic-io thread)", "",
                  "| event | variant | CPU ms/request | / bare-grpc | wall ms/request | server ms/request |",
                  "|---|---|---|---|---|---|"]
        for model, r in report["P2"].items():
            for v, c in r["cells"].items():
                lines.append(f"| {model} | {v} | {c['cpu_ms']:.3f} | {c['cpu_ms'] / r['bare_grpc_cpu_ms']:.2f} | "
                             f"{c['wall_ms']:.3f} | {c['server_ms']:.3f} |")
    if "P3" in report:
        lines += ["", f"## P3: 16 MB input ({s['big_requests']} requests per cell)", "",
                  "| model | variant | wall ms/request | GB/s in | CPU ms/request | server ms/request |",
                  "|---|---|---|---|---|---|"]
        for model, r in report["P3"].items():
            for v, c in r["cells"].items():
                lines.append(f"| {model} | {v} | {c['wall_ms']:.2f} | {c['input_GBps']:.2f} | {c['cpu_ms']:.2f} | "
                             f"{c['server_ms']:.2f} |")
    if "P6" in report:
        lines += ["", f"## P6: latency hiding ({SLEEP_MODEL}: {SLEEP_INSTANCES} server instances, no dynamic "
                  f"batching, so the server is not the bottleneck; {report['P6']['note']})", "",
                  "| job | events | events/s | job CPU ms/event | server queue ms/request |", "|---|---|---|---|---|"]
        for key, c in report["P6"]["cells"].items():
            lines.append(f"| {key} x {c['threads']} thread(s) | {c['events']} | {c['events_per_s']:.1f} | "
                         f"{c['cpu_ms_per_event']:.2f} | {c['server_queue_ms']:.2f} |")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "client.json"),
                        help="JSON results (a .md table next to it)")
    parser.add_argument("--models", default=str(ROOT / "data" / "models"),
                        help=f"repository with {PART_MODEL} and {DEEPMET_MODEL} (e.g. ../shared/models)")
    parser.add_argument("--only", default="P2,P3,P6", help="goals to measure, comma-separated")
    parser.add_argument("--repeat", type=int, default=3, help="runs per cell; the best is kept")
    parser.add_argument("--requests", type=int, default=1000, help="P2: requests per cell")
    parser.add_argument("--warmup", type=int, default=20, help="P2: warm-up requests per cell")
    parser.add_argument("--big-requests", type=int, default=20, help="P3: requests per cell")
    parser.add_argument("--big-warmup", type=int, default=2, help="P3: warm-up requests per cell")
    parser.add_argument("--p6-events", type=int, default=1000, help="P6: events of the 8-stream job")
    parser.add_argument("--p6-events-1", type=int, default=200, help="P6: events of the 1-stream job")
    parser.add_argument("--p6-warmup", type=int, default=64, help="P6: events of a warm-up job (8 streams)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("framework", "framework.server", "framework.sonic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)

    from framework.server import LocalTritonServer, bundled_server_available

    ok, reason = bundled_server_available()
    if not ok:
        log.error("cannot run: %s", reason)
        return 1
    parts = {p.strip().upper() for p in args.only.split(",") if p.strip()}
    unknown = parts - {"P2", "P3", "P6"}
    if unknown:
        parser.error(f"--only: unknown goal(s) {sorted(unknown)}; choose among P2, P3, P6")
    t_start = time.perf_counter()
    report: dict[str, Any] = {
        "benchmark": "bench_client",
        "machine": {"platform": platform.platform(), "python": platform.python_version(), "cores": os.cpu_count()},
        "settings": {"command": "python " + " ".join([os.path.relpath(__file__, os.getcwd()), *(argv or sys.argv[1:])]),
                     "models": args.models, "repeat": args.repeat, "requests": args.requests,
                     "warmup": args.warmup, "big_requests": args.big_requests, "p6_events": args.p6_events,
                     "p6_events_1": args.p6_events_1, "p6_warmup": args.p6_warmup,
                     "server": "bundled tritonserver (nvidia-pytriton), CPU, ONNX models on the Python backend "
                               f"(ONNXRuntime, 1 instance), {SLEEP_MODEL} {SLEEP_INSTANCES} instances"},
    }
    with tempfile.TemporaryDirectory(prefix="bench-client-") as tmp:
        repo = Path(tmp) / "repo"
        build_repository(repo, Path(args.models), parts)
        with LocalTritonServer([repo], device="cpu", instances=1) as server:
            log.info("server ready on %s / %s in %.1f s (%d cores): %s", server.grpc_address, server.http_address,
                     server.start_seconds, os.cpu_count(), ", ".join(server.models))
            if "P2" in parts:
                report["P2"] = run_p2(server, args)
            if "P3" in parts:
                report["P3"] = run_p3(server, args)
            if "P6" in parts:
                report["P6"] = run_p6(server, args)
    report["total_seconds"] = time.perf_counter() - t_start
    report["goals"] = goals(report)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    md = markdown(report)
    out.with_suffix(".md").write_text(md + "\n")
    print(md)
    log.info("wrote %s and %s in %.0f s", out, out.with_suffix(".md"), report["total_seconds"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
