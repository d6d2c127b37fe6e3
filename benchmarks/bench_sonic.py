"""Benchmark of the SONIC client against ONNXRuntime in-process and a bare ``tritonclient`` loop.

For an identity model (FP32, fixed dims, no batching) and fixed tensors of 1 KB to 16 MB, with 1, 2 and 4
concurrent requests (threads, each with its own client, like the framework's streams), it measures requests/s and
the p50 / p99 latency of

  (a) ``onnxruntime``   ONNXRuntime in-process (``InferenceSession.run``)
  (b) ``bare-grpc`` / ``bare-shm``   a bare ``tritonclient.grpc`` loop, tensors in the gRPC message or in system
      shared memory (regions made and registered once; inputs copied in, outputs copied out per request)
  (c) ``sonic-grpc`` / ``sonic-shm``  our :class:`~framework.sonic.TritonClient` (reset, toServer, evaluate,
      fromServer per request; ``mode=Sync``, as a stream does it)

against the bundled tritonserver started locally (Python backend running ONNXRuntime). Every cell is bounded in
requests and time, so that the whole run stays within a few minutes on two cores. Results: ``--out`` (JSON) and
a Markdown table next to it.

    python benchmarks/bench_sonic.py --out benchmarks/results/sonic.json
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import secrets
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

log = logging.getLogger("bench_sonic")

SIZES = {"1KB": 1 << 10, "16KB": 1 << 14, "256KB": 1 << 18, "1MB": 1 << 20, "4MB": 1 << 22, "16MB": 1 << 24}
CONCURRENCY = (1, 2, 4)
VARIANTS = ("onnxruntime", "bare-grpc", "bare-shm", "sonic-grpc", "sonic-shm")


# ----------------------------------------------------------------------------- model
def make_vector_model(repo: Path, name: str, op: str, n: int, n_out: int, **attrs: int) -> Path:
    """``OUTPUT [n_out] = op(INPUT [n])`` (one ONNX node), FP32, no batching; returns the ONNX file."""
    import onnx
    from onnx import TensorProto, helper

    from tests.onnx_models import IR_VERSION, OPSET, TensorSpec, write_config

    graph = helper.make_graph([helper.make_node(op, ["INPUT"], ["OUTPUT"], **attrs)], name,
                              [helper.make_tensor_value_info("INPUT", TensorProto.FLOAT, [n])],
                              [helper.make_tensor_value_info("OUTPUT", TensorProto.FLOAT, [n_out])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = IR_VERSION
    path = repo / name / "1" / "model.onnx"
    path.parent.mkdir(parents=True)
    onnx.save(model, str(path))
    f32 = np.dtype("float32")
    write_config(repo / name, name, [TensorSpec("INPUT", [n], f32)], [TensorSpec("OUTPUT", [n_out], f32)],
                 max_batch_size=0, dynamic_batching=False)
    return path


def make_identity_model(repo: Path, name: str, n: int) -> Path:
    """``OUTPUT = Identity(INPUT)``, FP32 [n], no batching; returns the ONNX file."""
    return make_vector_model(repo, name, "Identity", n, n)


# ----------------------------------------------------------------------------- runners
def _run_threads(make_worker: Callable[[int], tuple[Callable[[], None], Callable[[], None]]], concurrency: int,
                 max_requests: int, min_requests: int, budget: float, warmup: int) -> dict:
    """Each of *concurrency* threads: set up, ``warmup`` calls, then calls until ``max_requests`` or ``budget``
    seconds (but at least ``min_requests``). Returns the latencies, the wall time and the threads' CPU time."""
    latencies: list[list[float]] = [[] for _ in range(concurrency)]
    cpu = [0.0] * concurrency
    errors: list[BaseException] = []
    barrier = threading.Barrier(concurrency + 1)
    stop_at = [0.0]

    def worker(i: int) -> None:
        call, close = None, None
        try:
            call, close = make_worker(i)
            for _ in range(warmup):
                call()
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)
        barrier.wait()
        try:
            if call is not None and not errors:
                lat = latencies[i]
                c0 = time.thread_time()
                while len(lat) < max_requests and (len(lat) < min_requests or time.perf_counter() < stop_at[0]):
                    t0 = time.perf_counter()
                    call()
                    lat.append(time.perf_counter() - t0)
                cpu[i] = time.thread_time() - c0
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)
        finally:
            if close is not None:
                try:
                    close()
                except BaseException as exc:  # noqa: BLE001
                    errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(concurrency)]
    for t in threads:
        t.start()
    stop_at[0] = time.perf_counter() + 3600
    barrier.wait()
    t0 = time.perf_counter()
    stop_at[0] = t0 + budget
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    if errors:
        raise errors[0]
    return {"latencies": [x for lat in latencies for x in lat], "wall": wall, "cpu": sum(cpu)}


def _stats(rounds: list[dict]) -> dict:
    flat = np.array([x for r in rounds for x in r["latencies"]])
    wall = sum(r["wall"] for r in rounds)
    cpu = sum(r["cpu"] for r in rounds)
    return {"requests": int(flat.size), "seconds": wall, "rps": flat.size / wall if wall > 0 else 0.0,
            "p50_ms": float(np.percentile(flat, 50) * 1e3), "p99_ms": float(np.percentile(flat, 99) * 1e3),
            "mean_ms": float(flat.mean() * 1e3), "client_cpu_us": float(cpu / max(1, flat.size) * 1e6)}


def onnxruntime_worker(onnx_path: Path, x: np.ndarray, threads: int):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])

    def make(_i: int):
        def call() -> None:
            out = session.run(["OUTPUT"], {"INPUT": x})[0]
            assert out.shape == x.shape

        return call, lambda: None

    return make


def bare_worker(address: str, model: str, x: np.ndarray, shm: bool):
    import tritonclient.grpc as grpcclient
    import tritonclient.utils.shared_memory as shmlib

    def make(i: int):
        client = grpcclient.InferenceServerClient(address)
        if not shm:
            def call() -> None:
                inp = grpcclient.InferInput("INPUT", list(x.shape), "FP32")
                inp.set_data_from_numpy(x)
                out = client.infer(model, [inp]).as_numpy("OUTPUT")
                assert out.shape == x.shape

            return call, client.close
        tag = f"bench_bare_{os.getpid()}_{secrets.token_hex(4)}_{i}"
        regions = {}
        for kind in ("in", "out"):
            name = f"{tag}_{kind}"
            regions[kind] = (name, shmlib.create_shared_memory_region(name, "/" + name, x.nbytes))
            client.register_system_shared_memory(name, "/" + name, x.nbytes)

        def call() -> None:
            shmlib.set_shared_memory_region(regions["in"][1], [x])
            inp = grpcclient.InferInput("INPUT", list(x.shape), "FP32")
            inp.set_shared_memory(regions["in"][0], x.nbytes)
            out = grpcclient.InferRequestedOutput("OUTPUT")
            out.set_shared_memory(regions["out"][0], x.nbytes)
            client.infer(model, [inp], outputs=[out])
            view = shmlib.get_contents_as_numpy(regions["out"][1], np.float32, list(x.shape))
            result = view.copy()
            del view
            assert result.shape == x.shape

        def close() -> None:
            for name, handle in regions.values():
                client.unregister_system_shared_memory(name)
                shmlib.destroy_shared_memory_region(handle)
            client.close()

        return call, close

    return make


def sonic_worker(address: str, model: str, x: np.ndarray, shm: bool):
    from framework.sonic import TritonClient

    def make(_i: int):
        client = TritonClient({"modelName": model, "mode": "Sync", "useSharedMemory": shm}, server=address)
        client.connect()
        inp = client.input["INPUT"]
        out = client.output["OUTPUT"]

        def call() -> None:
            client.reset()
            inp.toServer(x)
            client.evaluate()
            assert out.fromServer().shape == x.shape

        return call, client.close

    return make


# ----------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="benchmarks/results/sonic.json", help="JSON results (a .md table next to it)")
    parser.add_argument("--sizes", default=",".join(SIZES), help=f"payload sizes among {', '.join(SIZES)}")
    parser.add_argument("--concurrency", default=",".join(map(str, CONCURRENCY)))
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--budget", type=float, default=1.5, help="seconds per measurement cell")
    parser.add_argument("--max-requests", type=int, default=200, help="requests per thread and round at most")
    parser.add_argument("--min-requests", type=int, default=2, help="requests per thread and round at least")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds per cell (the budget is split)")
    parser.add_argument("--warmup", type=int, default=2)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("framework.server", "framework.sonic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)

    from framework.server import LocalTritonServer, bundled_server_available

    ok, reason = bundled_server_available()
    if not ok:
        log.error("cannot run: %s", reason)
        return 1
    sizes = {k: SIZES[k] for k in args.sizes.split(",")}
    concurrency = [int(c) for c in args.concurrency.split(",")]
    variants = args.variants.split(",")
    t_start = time.perf_counter()
    results: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="bench-sonic-") as tmp:
        repo = Path(tmp) / "repo"
        onnx_files = {label: make_identity_model(repo, f"identity_{label}", nbytes // 4) for label, nbytes in sizes.items()}
        with LocalTritonServer([repo], device="cpu", instances=1) as server:
            log.info("server ready on %s in %.1f s (%d cores)", server.grpc_address, server.start_seconds, os.cpu_count())
            for label, nbytes in sizes.items():
                model = f"identity_{label}"
                x = np.random.default_rng(0).normal(size=nbytes // 4).astype(np.float32)
                for conc in concurrency:
                    # interleaved rounds: load from elsewhere on the machine hits every variant alike
                    rounds: dict[str, list[dict]] = {v: [] for v in variants}
                    for _ in range(args.rounds):
                        for variant in variants:
                            if variant == "onnxruntime":
                                make = onnxruntime_worker(onnx_files[label], x, threads=1)
                            elif variant.startswith("bare"):
                                make = bare_worker(server.grpc_address, model, x, shm=variant.endswith("shm"))
                            else:
                                make = sonic_worker(server.grpc_address, model, x, shm=variant.endswith("shm"))
                            rounds[variant].append(_run_threads(make, conc, args.max_requests, args.min_requests,
                                                                args.budget / args.rounds, args.warmup))
                    for variant in variants:
                        cell = _stats(rounds[variant])
                        cell.update(size=label, bytes=nbytes, variant=variant, concurrency=conc)
                        results.append(cell)
                        log.info("%-6s %-12s c=%d: %8.1f req/s  p50 %8.3f ms  p99 %8.3f ms  client CPU %7.0f us  "
                                 "(%d requests)", label, variant, conc, cell["rps"], cell["p50_ms"], cell["p99_ms"],
                                 cell["client_cpu_us"], cell["requests"])
    total = time.perf_counter() - t_start
    summary = summarize(results)
    report = {
        "benchmark": "bench_sonic",
        "machine": {"platform": platform.platform(), "python": platform.python_version(), "cores": os.cpu_count()},
        "settings": {"budget_s": args.budget, "max_requests": args.max_requests, "min_requests": args.min_requests,
                     "rounds": args.rounds, "warmup": args.warmup,
                     "server": "bundled tritonserver (nvidia-pytriton), Python backend running ONNXRuntime, CPU, "
                               "1 instance", "model": "Identity, FP32 [n], max_batch_size 0"},
        "total_seconds": total,
        "results": results,
        "goals": summary,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    out.with_suffix(".md").write_text(markdown(report) + "\n")
    log.info("wrote %s and %s in %.0f s", out, out.with_suffix(".md"), total)
    for line in summary["lines"]:
        log.info("%s", line)
    return 0


def summarize(results: list[dict]) -> dict:
    """The goals: (c) within 10 % of (b) in throughput; shared memory at 16 MB at least 3x faster than gRPC."""
    cells = {(r["size"], r["variant"], r["concurrency"]): r for r in results}
    ratios = []
    for (size, variant, conc), r in cells.items():
        if variant.startswith("sonic"):
            bare = cells.get((size, variant.replace("sonic", "bare"), conc))
            if bare and bare["rps"] > 0:
                ratios.append({"size": size, "transport": variant.split("-")[1], "concurrency": conc,
                               "sonic_over_bare_rps": r["rps"] / bare["rps"],
                               "sonic_over_bare_p50": r["p50_ms"] / bare["p50_ms"]})
    worst = min(ratios, key=lambda r: r["sonic_over_bare_rps"]) if ratios else None
    lines = []
    if ratios:
        within = sum(1 for r in ratios if r["sonic_over_bare_rps"] >= 0.9)
        lines.append(f"sonic vs bare tritonclient: {within}/{len(ratios)} cells within 10% in requests/s; worst "
                     f"{worst['sonic_over_bare_rps']:.2f} ({worst['size']}, {worst['transport']}, "
                     f"c={worst['concurrency']})")
    speedups = {}
    for prefix in ("bare", "sonic"):
        for conc in CONCURRENCY:
            g, s = cells.get(("16MB", f"{prefix}-grpc", conc)), cells.get(("16MB", f"{prefix}-shm", conc))
            if g and s and s["p50_ms"] > 0:
                speedups[f"{prefix} c={conc}"] = {"p50": g["p50_ms"] / s["p50_ms"], "rps": s["rps"] / max(g["rps"], 1e-9)}
    for key, v in speedups.items():
        lines.append(f"16 MB shared memory vs gRPC ({key}): {v['p50']:.2f}x lower p50 latency, {v['rps']:.2f}x requests/s "
                     f"({'meets' if v['p50'] >= 3 else 'misses'} the 3x goal)")
    return {"sonic_vs_bare": ratios, "shm_speedup_16MB": speedups, "lines": lines}


def markdown(report: dict) -> str:
    rows = report["results"]
    sizes = list(dict.fromkeys(r["size"] for r in rows))
    variants = list(dict.fromkeys(r["variant"] for r in rows))
    concs = sorted({r["concurrency"] for r in rows})
    cells = {(r["size"], r["variant"], r["concurrency"]): r for r in rows}
    m = report["machine"]
    lines = [
        "# SONIC client benchmark",
        "",
        f"`python benchmarks/bench_sonic.py` on {m['platform']}, Python {m['python']}, {m['cores']} cores; "
        f"{report['settings']['server']}; model {report['settings']['model']}. Each cell: "
        f"{report['settings']['rounds']} rounds interleaved with the other variants, each of up to "
        f"{report['settings']['max_requests']} requests per thread (at least {report['settings']['min_requests']}) "
        f"or {report['settings']['budget_s'] / report['settings']['rounds']:.2f} s, after "
        f"{report['settings']['warmup']} warm-up calls. Client CPU: the calling threads' CPU time per request "
        f"(the client's own cost, independent of the server). Whole run: {report['total_seconds']:.0f} s.",
        "",
        "Requests/s (p50 / p99 latency in ms) [client CPU in us per request], c = concurrent requests (threads, "
        "one client each):",
        "",
        "| payload | variant | " + " | ".join(f"c={c}" for c in concs) + " |",
        "| --- | --- | " + " | ".join("---" for _ in concs) + " |",
    ]
    for size in sizes:
        for v in variants:
            row = [size, v]
            for c in concs:
                r = cells.get((size, v, c))
                row.append(f"{r['rps']:.0f} ({r['p50_ms']:.2f} / {r['p99_ms']:.2f}) [{r['client_cpu_us']:.0f}]"
                           if r else "")
            lines.append("| " + " | ".join(row) + " |")
    lines += ["", "## Goals", ""] + [f"- {line}" for line in report["goals"]["lines"]]
    lines += ["", "sonic / bare requests/s per cell:", "", "| payload | transport | " +
              " | ".join(f"c={c}" for c in concs) + " |", "| --- | --- | " + " | ".join("---" for _ in concs) + " |"]
    ratio = {(r["size"], r["transport"], r["concurrency"]): r["sonic_over_bare_rps"]
             for r in report["goals"]["sonic_vs_bare"]}
    for size in sizes:
        for t in ("grpc", "shm"):
            if any((size, t, c) in ratio for c in concs):
                lines.append(f"| {size} | {t} | " + " | ".join(
                    f"{ratio[(size, t, c)]:.2f}" if (size, t, c) in ratio else "" for c in concs) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
