"""Tuning of the local fallback server: instances, ONNXRuntime threads, queue delay, batch padding.

Starts :class:`~framework.server.LocalTritonServer` on the bundled models (``data/models``: ParT AK4 and
DeepMET) once per candidate setting and drives it with 1, 4 and 8 concurrent clients (one thread each, each
with its own bare ``tritonclient.grpc.InferenceServerClient``, synchronous ``infer``). One client "event" is
what the job sends per event: the ParT AK4 request of a real event of ``data/samples/sample.root`` (inputs
from the producer's feature builder: every jet padded to the event's largest candidate count, so shapes
differ from event to event), then its DeepMET request ([1, 4500, 8] + three [1, 4500, 1]). Events without
jets send no ParT request.

Per cell: events/s, p50 / p99 event latency, CPU per event (client: ``time.process_time`` of this process,
all client threads; server: ``utime + stime`` from ``/proc/<pid>/stat`` of every process of the server's
process group, i.e. ``tritonserver`` and its Python-backend stubs) and how many requests the server merged
(inference statistics: requests per model execution, ParT and DeepMET). Results: ``--out`` (JSON) and a
Markdown table next to it.

    python benchmarks/bench_fallback_tuning.py --out benchmarks/results/fallback_tuning.json

A setting is ``INSTANCES:THREADS:DELAY_US:PADDING``; THREADS 0 = cores / instances (the launcher's rule when
instances are given), PADDING ``zero`` or ``none`` (the models' ``batch_padding`` parameter).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

log = logging.getLogger("bench_fallback_tuning")

PART = "particletransformer_AK4"
DEEPMET = "deepmet"
CONCURRENCY = (1, 4, 8)
SETTINGS = (
    "1:0:0:zero", "1:1:0:zero", "2:0:0:zero", "2:2:0:zero",  # instances x threads, no queue delay
    "1:0:500:zero", "2:0:100:zero", "2:0:500:zero", "2:0:2000:zero",  # queue delay
    "1:0:0:none", "2:0:0:none", "2:0:500:none",  # batch padding off
)


@dataclass(frozen=True)
class Setting:
    instances: int
    threads: int
    delay_us: int
    padding: str

    @classmethod
    def parse(cls, text: str) -> Setting:
        instances, threads, delay, padding = text.split(":")
        if padding not in ("zero", "none"):
            raise ValueError(f"padding must be 'zero' or 'none', not {padding!r}")
        return cls(int(instances), int(threads), int(delay), padding)

    @property
    def label(self) -> str:
        return f"{self.instances}:{self.threads}:{self.delay_us}:{self.padding}"


# ----------------------------------------------------------------------------- workload
def load_events(sample: Path, max_events: int) -> list[dict[str, dict[str, np.ndarray]]]:
    """Per event: {model: feeds} with the producers' feature builders (ParT only for events with jets)."""
    import uproot

    from producers.deepmet import features as deepmet_features
    from producers.particle_transformer_ak4 import features as part_features

    branches = sorted(set(part_features.INPUT_BRANCHES) | set(deepmet_features.INPUT_BRANCHES))
    from framework.io.chunk import columns_of

    with uproot.open(sample) as f:
        arrays = f["Events"].arrays(branches, library="ak", entry_stop=max_events)
    columns = columns_of(arrays, branches)
    part_batch = part_features.build_part_inputs(columns)
    deepmet_batch = deepmet_features.build_deepmet_inputs(columns)
    events = []
    for i in range(len(arrays)):
        part, _ = part_batch.event(i)
        deepmet = deepmet_batch.event(i).inputs
        feeds = {DEEPMET: deepmet}
        if len(part["input_1"]):
            feeds[PART] = part
        events.append(feeds)
    return events


def _infer_inputs(feeds: dict[str, np.ndarray]) -> list:
    import tritonclient.grpc as grpcclient

    inputs = []
    for name, value in feeds.items():
        tensor = grpcclient.InferInput(name, list(value.shape), "FP32")
        tensor.set_data_from_numpy(np.ascontiguousarray(value, dtype=np.float32))
        inputs.append(tensor)
    return inputs


def deepmet_names(model_dir: Path) -> list[str]:
    from framework.server import read_model_config

    return [i.name for i in read_model_config(model_dir / "config.pbtxt").input]


# ----------------------------------------------------------------------------- CPU accounting
def group_cpu_seconds(pgid: int) -> float:
    """CPU seconds of the live processes of a process group (the server and its stubs)."""
    from framework.server.launcher import process_group_cpu

    return process_group_cpu(pgid)[0]


# ----------------------------------------------------------------------------- one cell
def run_cell(address: str, pgid: int, events: list, concurrency: int, seconds: float, warmup: int) -> dict:
    """``concurrency`` threads, each with its own client, send events until ``seconds`` have passed."""
    import tritonclient.grpc as grpcclient

    clients = [grpcclient.InferenceServerClient(address) for _ in range(concurrency)]
    stats_client = grpcclient.InferenceServerClient(address)
    latencies: list[list[float]] = [[] for _ in range(concurrency)]
    requests = [0] * concurrency
    errors: list[BaseException] = []
    warm = threading.Barrier(concurrency + 1)  # warm-up done: the main thread takes its snapshots
    go = threading.Barrier(concurrency + 1)  # deadline set
    deadline = [0.0]

    def send(client, k: int) -> int:
        sent = 0
        for model, feeds in events[k % len(events)].items():
            client.infer(model, _infer_inputs(feeds))
            sent += 1
        return sent

    def worker(t: int) -> None:
        client = clients[t]
        k = t * 37  # each client starts elsewhere in the sample
        try:
            for _ in range(warmup):
                send(client, k)
                k += 1
            warm.wait()
            go.wait()
            while time.perf_counter() < deadline[0]:
                begin = time.perf_counter()
                requests[t] += send(client, k)
                latencies[t].append(time.perf_counter() - begin)
                k += 1
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
            warm.abort()
            go.abort()

    def model_stats() -> dict[str, tuple[int, int]]:
        stats = {}
        for model in (PART, DEEPMET):
            s = stats_client.get_inference_statistics(model).model_stats[0]
            stats[model] = (int(s.inference_stats.success.count), int(s.execution_count))
        return stats

    threads = [threading.Thread(target=worker, args=(t,), daemon=True) for t in range(concurrency)]
    for th in threads:
        th.start()
    try:
        warm.wait()
    except threading.BrokenBarrierError:
        pass
    before = model_stats()
    cpu_client, cpu_server, wall = time.process_time(), group_cpu_seconds(pgid), time.perf_counter()
    deadline[0] = wall + seconds
    try:
        go.wait()
    except threading.BrokenBarrierError:
        pass
    for th in threads:
        th.join()
    wall = time.perf_counter() - wall
    cpu_client = time.process_time() - cpu_client
    cpu_server = group_cpu_seconds(pgid) - cpu_server
    after = model_stats()
    for client in [*clients, stats_client]:
        client.close()
    if errors:
        raise RuntimeError(f"a client failed: {errors[0]!r}") from errors[0]
    lat = np.array([x for per in latencies for x in per]) * 1e3
    n = len(lat)
    merged = {}
    for model, key in ((PART, "part"), (DEEPMET, "deepmet")):
        done, runs = after[model][0] - before[model][0], after[model][1] - before[model][1]
        merged.update({f"{key}_requests": done, f"{key}_executions": runs,
                       f"{key}_requests_per_execution": done / max(runs, 1)})
    return {
        "concurrency": concurrency, "events": n, "requests": sum(requests), "seconds": wall,
        "events_per_s": n / wall,
        "p50_ms": float(np.percentile(lat, 50)) if n else float("nan"),
        "p99_ms": float(np.percentile(lat, 99)) if n else float("nan"),
        "client_cpu_ms_per_event": 1e3 * cpu_client / max(n, 1),
        "server_cpu_ms_per_event": 1e3 * cpu_server / max(n, 1),
        "cpu_ms_per_event": 1e3 * (cpu_client + cpu_server) / max(n, 1),
        "cpu_ms_per_request": 1e3 * (cpu_client + cpu_server) / max(sum(requests), 1),
        **merged,
    }


def repository_for(models: Path, padding: str, tmp: Path) -> Path:
    """``models`` itself for ``zero`` (the translation's default); else a copy of its configs whose ONNX
    models set ``batch_padding`` (other files symlinked)."""
    if padding == "zero":
        return models
    from framework.server import read_model_config, write_model_config

    repo = tmp / f"repo-{padding}"
    if repo.exists():
        return repo
    for model_dir in sorted(p for p in models.iterdir() if (p / "config.pbtxt").is_file()):
        target = repo / model_dir.name
        target.mkdir(parents=True)
        for entry in model_dir.iterdir():
            if entry.name != "config.pbtxt":
                (target / entry.name).symlink_to(entry.resolve(), target_is_directory=entry.is_dir())
        config = read_model_config(model_dir / "config.pbtxt")
        config.parameters["batch_padding"].string_value = padding
        write_model_config(config, target / "config.pbtxt")
    return repo


# ----------------------------------------------------------------------------- report
def markdown(report: dict) -> str:
    rows = report["results"]
    concs = sorted({r["concurrency"] for r in rows})
    m, s = report["machine"], report["settings"]
    load = report["load_average"]
    lines = [
        "# Local fallback server tuning",
        "",
        f"`python benchmarks/bench_fallback_tuning.py` on {m['platform']}, Python {m['python']}, "
        f"{m['cores']} cores; bundled tritonserver (nvidia-pytriton), Python backend running ONNXRuntime on "
        f"the CPU, models {s['models']} ({PART} and {DEEPMET}). An event = the ParT AK4 request of a real "
        f"event of {s['sample']} ({s['events']} events, {s['part_events']} with jets; jets padded to the "
        f"event's largest candidate count) + its DeepMET request; c = concurrent clients (a thread each, own "
        f"bare tritonclient.grpc client, sync infer). Each cell: {s['rounds']} rounds (passes over all "
        f"settings, a server start each), each {s['warmup']} warm-up events per client, then "
        f"{s['seconds']:.1f} s; values are means over the rounds, ± half their events/s range. CPU = client "
        f"process + every process of the server's process group (tritonserver and its Python-backend stubs). "
        f"Setting = instances : intra-op threads (0 = cores / instances) : max_queue_delay_microseconds : "
        f"batch_padding. Whole run: {report['total_seconds']:.0f} s; 1-minute load average before "
        f"{load['before'][0]:.2f}, after {load['after'][0]:.2f} (this benchmark alone makes about 2; more "
        f"means other work on the machine disturbed the numbers).",
        "",
        "Events/s (p50 event latency ms) [CPU ms per event: total = client + server] {requests per model "
        "execution: ParT, DeepMET}:",
        "",
        "| setting | " + " | ".join(f"c={c}" for c in concs) + " |",
        "| --- | " + " | ".join("---" for _ in concs) + " |",
    ]
    cells = {(r["setting"], r["concurrency"]): r for r in rows}
    for setting in dict.fromkeys(r["setting"] for r in rows):
        row = [f"`{setting}`"]
        for c in concs:
            r = cells.get((setting, c))
            row.append(f"{r['events_per_s']:.0f} ±{(r['events_per_s_max'] - r['events_per_s_min']) / 2:.0f} "
                       f"({r['p50_ms']:.1f}) [{r['cpu_ms_per_event']:.1f} = "
                       f"{r['client_cpu_ms_per_event']:.1f} + {r['server_cpu_ms_per_event']:.1f}] "
                       f"{{{r['part_requests_per_execution']:.2f}, "
                       f"{r['deepmet_requests_per_execution']:.2f}}}"
                       if r else "")
        lines.append("| " + " | ".join(row) + " |")
    lines += ["", "## Ranking", "", "Mean over the concurrencies of events/s relative to the best setting "
              "of each concurrency:", ""]
    for entry in report["ranking"]:
        lines.append(f"- `{entry['setting']}`: {entry['relative_throughput']:.3f} "
                     f"(CPU {entry['cpu_ms_per_event']:.1f} ms per event, mean)")
    auto = report["auto"]
    lines += ["", f"Auto settings of the launcher for {m['cores']} cores: {auto['instances']} instance(s), "
              f"{auto['threads']} thread(s), queue delay {auto['queue_delay_us']} us."]
    return "\n".join(lines)


def aggregate(raw: list[dict]) -> list[dict]:
    """One row per (setting, concurrency): the sums of counts, the means of the rates over the rounds, and
    the spread of events/s (``events_per_s_min`` / ``_max``)."""
    cells: dict[tuple, list[dict]] = {}
    for r in raw:
        cells.setdefault((r["setting"], r["concurrency"]), []).append(r)
    rows = []
    for rs in cells.values():
        row = dict(rs[0])
        for key, value in rs[0].items():
            if key in ("concurrency", "instances", "threads", "queue_delay_us"):
                continue
            if isinstance(value, int) and not isinstance(value, bool):
                row[key] = sum(r[key] for r in rs)
            elif isinstance(value, float):
                row[key] = float(np.mean([r[key] for r in rs]))
        for model in ("part", "deepmet"):
            runs = max(row[f"{model}_executions"], 1)
            row[f"{model}_requests_per_execution"] = row[f"{model}_requests"] / runs
        row["events_per_s_min"] = min(r["events_per_s"] for r in rs)
        row["events_per_s_max"] = max(r["events_per_s"] for r in rs)
        row["rounds"] = len(rs)
        rows.append(row)
    return rows


def ranking(rows: list[dict]) -> list[dict]:
    best = {}
    for r in rows:
        best[r["concurrency"]] = max(best.get(r["concurrency"], 1e-9), r["events_per_s"])
    by_setting: dict[str, list[dict]] = {}
    for r in rows:
        by_setting.setdefault(r["setting"], []).append(r)
    ranked = [{"setting": s, "relative_throughput": float(np.mean([r["events_per_s"] / best[r["concurrency"]]
                                                                    for r in rs])),
               "cpu_ms_per_event": float(np.mean([r["cpu_ms_per_event"] for r in rs]))}
              for s, rs in by_setting.items()]
    return sorted(ranked, key=lambda e: -e["relative_throughput"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="benchmarks/results/fallback_tuning.json",
                        help="JSON results (a .md table next to it)")
    parser.add_argument("--models", type=Path, default=ROOT / "data" / "models",
                        help=f"model repository with {PART} and {DEEPMET}")
    parser.add_argument("--sample", type=Path, default=ROOT / "data" / "samples" / "sample.root")
    parser.add_argument("--events", type=int, default=200, help="events of the sample to cycle through")
    parser.add_argument("--settings", default=",".join(SETTINGS),
                        help="INSTANCES:THREADS:DELAY_US:PADDING,...")
    parser.add_argument("--concurrency", default=",".join(map(str, CONCURRENCY)))
    parser.add_argument("--seconds", type=float, default=2.5, help="measured seconds per cell and round")
    parser.add_argument("--warmup", type=int, default=3, help="warm-up events per client and cell")
    parser.add_argument("--rounds", type=int, default=2,
                        help="passes over the settings (a server start each)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("framework.server").setLevel(logging.WARNING)

    from framework.server import LocalTritonServer, bundled_server_available
    from framework.server.launcher import _cpu_count, auto_settings

    ok, reason = bundled_server_available()
    if not ok:
        log.error("cannot run: %s", reason)
        return 1
    settings = [Setting.parse(s) for s in args.settings.split(",") if s]
    concurrency = [int(c) for c in args.concurrency.split(",")]
    t_start = time.perf_counter()
    load_before = os.getloadavg()
    events = load_events(args.sample, args.events)
    log.info("%d events (%d with jets) from %s", len(events), sum(PART in e for e in events), args.sample)
    names = deepmet_names(args.models / DEEPMET)
    for e in events:  # the producer's names ("input") -> the config's ("input:0")
        e[DEEPMET] = {n: e[DEEPMET][n.split(":")[0]] for n in names}

    raw: list[dict] = []
    tmp = Path(tempfile.mkdtemp(prefix="bench-fallback-"))
    try:
        # rounds: load from elsewhere on the machine hits every setting alike
        for setting in [s for _ in range(args.rounds) for s in settings]:
            repo = repository_for(args.models, setting.padding, tmp)
            with LocalTritonServer([repo], device="cpu", instances=setting.instances, threads=setting.threads,
                                   queue_delay_us=setting.delay_us, models=[PART, DEEPMET]) as server:
                for conc in concurrency:
                    cell = run_cell(server.grpc_address, server.pid, events, conc, args.seconds, args.warmup)
                    cell.update(setting=setting.label, instances=server.instances, threads=server.threads,
                                queue_delay_us=server.queue_delay_us, padding=setting.padding)
                    raw.append(cell)
                    log.info("%-14s c=%d: %6.1f events/s  p50 %6.1f ms  CPU %5.1f ms/event (client %5.1f, "
                             "server %5.1f)  requests/execution ParT %.2f DeepMET %.2f", setting.label, conc,
                             cell["events_per_s"], cell["p50_ms"], cell["cpu_ms_per_event"],
                             cell["client_cpu_ms_per_event"],
                             cell["server_cpu_ms_per_event"], cell["part_requests_per_execution"],
                             cell["deepmet_requests_per_execution"])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    total = time.perf_counter() - t_start
    results = aggregate(raw)
    instances, threads, delay = auto_settings(_cpu_count(), "cpu")
    models = args.models.resolve()
    models_label = str(models.relative_to(ROOT)) if models.is_relative_to(ROOT) else str(models)
    report = {
        "benchmark": "bench_fallback_tuning",
        "machine": {"platform": platform.platform(), "python": platform.python_version(),
                    "cores": _cpu_count()},
        "settings": {"models": models_label, "sample": args.sample.name, "events": len(events),
                     "part_events": sum(PART in e for e in events), "seconds": args.seconds,
                     "warmup": args.warmup, "rounds": args.rounds, "concurrency": concurrency,
                     "grid": [s.label for s in settings]},
        "auto": {"instances": instances, "threads": threads, "queue_delay_us": delay},
        "total_seconds": total,
        "load_average": {"before": list(load_before), "after": list(os.getloadavg())},
        "results": results,
        "ranking": ranking(results),
        "rounds": raw,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    out.with_suffix(".md").write_text(markdown(report) + "\n")
    log.info("wrote %s and %s in %.0f s", out, out.with_suffix(".md"), total)
    for entry in report["ranking"]:
        log.info("%-14s relative throughput %.3f, CPU %.1f ms/event", entry["setting"],
                 entry["relative_throughput"], entry["cpu_ms_per_event"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
