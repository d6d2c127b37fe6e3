"""NuGraph3 timing study (issue 9), the NuGraph team's, repeated on this machine: milliseconds per event for the
preprocessing and for the network, in-process, on the two real events (``../shared``) and on ``--events``
generated ones; and the whole job's milliseconds per event direct vs SONIC (gRPC, HTTP) at 1 and 4 streams.

    python benchmarks/bench_nugraph3_timing.py --out benchmarks/results/nugraph3_timing.json
        [--model data/models/nugraph3 | ../shared/models/nugraph3] [--events 1000] [--job-events 100] [--repeat 3]

In-process: per event, ``build_graph`` and ``run_network`` timed separately (1 torch thread), best of
``--repeat`` passes over the same events. Job: ``configs/nugraph3_cfg.py`` on the first ``--job-events`` generated
events, ms per event = event-loop wall time / events (the SONIC server's start not included), best of
``--repeat``, the variants interleaved. The NuGraph team's write-up: 0.39-0.51 s per event on CPU, server and
client sharing the CPU; preprocessing 18-24 ms and forward 46-126 ms measured here with their code (DESIGN §11).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared" / "data" / "nugraph"


def read_events(path: Path, n: int | None = None) -> list[dict]:
    """The 10 server inputs of each event of *path*, through the framework's NuMLSource."""
    from framework.core.params import Params, check_parameters
    from framework.io.hdf5source import SERVER_INPUTS, NuMLSource

    params = Params(check_parameters(NuMLSource.parameters, {"fileNames": [str(path)]}, "source"))
    source = NuMLSource("source", params)
    source.open(max_events=-1 if n is None else n)
    source.require(list(SERVER_INPUTS))
    events = []
    while (ev := source.next()) is not None:
        events.append({name: ev.branch(name) for name in SERVER_INPUTS})
    source.close()
    return events


def time_in_process(net, events: list[dict], repeat: int) -> dict:
    from producers.nugraph3.network import run_network
    from producers.nugraph3.preprocess import build_graph

    best_pre = best_net = float("inf")
    for _ in range(repeat):
        pre = net_t = 0.0
        for ev in events:
            t0 = time.perf_counter()
            graph = build_graph(ev)
            t1 = time.perf_counter()
            run_network(net, graph)
            net_t += time.perf_counter() - t1
            pre += t1 - t0
        best_pre, best_net = min(best_pre, pre), min(best_net, net_t)
    n = max(1, len(events))
    hits = sum(len(ev["hit_table_hit_id"]) for ev in events) / n
    return {"events": len(events), "hits_per_event": hits, "preprocess_ms": 1e3 * best_pre / n,
            "network_ms": 1e3 * best_net / n}


def time_job(events_file: Path, model: str, mode: str, streams: int, tmp: Path) -> float:
    from framework.runner import run_config

    args = [f"inputFiles={events_file}", f"nugraphModel={model}", f"numStreams={streams}", "numThreads=2",
            f"outputFile={tmp / f'{mode}_{streams}.root'}", "wantSummary=0"]
    if mode != "direct":
        args += ["sonic=1", f"protocol={mode.split('-')[1]}"]
    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        report, _ = run_config(str(ROOT / "configs" / "nugraph3_cfg.py"), args, progress=False)
    finally:
        os.chdir(cwd)
    t = report.timing.to_dict()
    return 1e3 * t["wall_s"] / max(1, t["events"])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="benchmarks/results/nugraph3_timing.json")
    ap.add_argument("--model", default="data/models/nugraph3")
    ap.add_argument("--events", type=int, default=1000)
    ap.add_argument("--job-events", type=int, default=100)
    ap.add_argument("--streams", type=int, nargs="+", default=[1, 4])
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    import torch

    from framework.samples import generate_nugraph
    from producers.nugraph3.network import load_network

    torch.set_num_threads(1)
    model = args.model if os.path.isabs(args.model) else str(ROOT / args.model)
    net = load_network(os.path.join(model, "1", "hierarchical.ckpt"))
    result: dict = {"model": args.model, "machine": f"{platform.machine()}, {os.cpu_count()} cores",
                    "date": time.strftime("%Y-%m-%d"), "in_process": {}, "job_ms_per_event": []}
    for name in ("NeutrinoML_rishi.h5", "nugraph3_raw_event.h5"):
        if (SHARED / name).is_file():
            result["in_process"][name] = time_in_process(net, read_events(SHARED / name), max(args.repeat, 10))
    with tempfile.TemporaryDirectory(prefix="bench-nugraph3-timing-") as tmp:
        tmp = Path(tmp)
        generated = generate_nugraph(tmp / "events.h5", args.events, 1)
        result["in_process"][f"{args.events} generated"] = time_in_process(net, read_events(generated), args.repeat)
        job_file = generate_nugraph(tmp / "job.h5", args.job_events, 2)
        modes = ("direct", "sonic-grpc", "sonic-http")
        for streams in args.streams:
            best = {m: float("inf") for m in modes}
            for _ in range(args.repeat):
                for mode in modes:
                    best[mode] = min(best[mode], time_job(job_file, model, mode, streams, tmp))
            for mode in modes:
                result["job_ms_per_event"].append({"mode": mode, "streams": streams, "ms_per_event": best[mode]})
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    lines = [f"# NuGraph3 timing study (model {args.model}; {result['machine']})", "",
             "| events | hits/event | preprocessing ms/event | network ms/event |", "|---|---|---|---|"]
    for name, r in result["in_process"].items():
        lines.append(f"| {name} | {r['hits_per_event']:.0f} | {r['preprocess_ms']:.2f} | {r['network_ms']:.1f} |")
    lines += ["", f"Whole job, {args.job_events} generated events (ms per event; the NuGraph team: 390-510 ms on CPU):",
              "", "| mode | streams | ms/event |", "|---|---|---|"]
    lines += [f"| {r['mode']} | {r['streams']} | {r['ms_per_event']:.1f} |" for r in result["job_ms_per_event"]]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
