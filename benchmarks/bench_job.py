"""Benchmark of the main job (configs/miniaod_cfg.py) for issue 7 ("SONIC must cost less than it saves"):
goals P1, P8 and P9, plus the direct job's time shares.

    python benchmarks/bench_job.py --out benchmarks/results/job.json
    python benchmarks/bench_job.py --out benchmarks/results/job_cms_models.json \\
        --part-model ../shared/models/particletransformer_AK4 --deepmet-model ../shared/models/deepmet

Options: [--events 1000] [--input FILE] [--streams 1 2 4 8] [--repeat 3] [--modes direct sonic-grpc sonic-http]
[--cpu-streams 4] [--cpu (P8 only) | --no-cpu (no P8)]. Without ``--input`` a sample of ``--events`` events is
generated (``framework.samples``, seed 1) into a temporary directory.

Goals (all runs of one invocation are measured side by side on the same machine, interleaved round after round:
for each of ``--repeat`` rounds, every stream count and every mode; the best of the rounds is kept per cell):

P1  the full job, SONIC on the local fallback server (``sonic=1``; the better of HTTP, the fallback's default, and
    gRPC) vs direct (ONNXRuntime in the job), each at its best stream count: events/s >= 0.9x (with the bundled and
    with the real CMS models).
P9  the same job over HTTP (``sonic=1 protocol=http``) vs gRPC, each at its best stream count: reported.
P8  the CPU of the job process per event, SONIC vs direct (with the real CMS models): <= 0.35x, i.e. what SONIC
    frees for other work. ONE LocalTritonServer is started here (tritonserver runs in its own processes) on the
    two models, and the job runs in this process with ``sonic=1 address=127.0.0.1 port=<its HTTP port>
    protocol=http`` (and the same over gRPC, reported) vs direct, at ``--cpu-streams``. CPU = ``resource.getrusage(RUSAGE_SELF)`` user + sys of this process (every
    thread; not the server's processes) over the event loop, per event; the same delta around the whole
    ``run_config`` (construction, beginJob, endJob included) is reported next to it.

Every run also records the job process's CPU per event and, for SONIC, the CPU of the server's process group
(tritonserver and its Python-backend stubs, from /proc) over the event loop: on a machine with C cores a job
cannot exceed C / (CPU seconds per event) events/s, which is what bounds the goals on the 2-core machine.
Compare ratios, not absolute numbers, across machines. Writes JSON and a Markdown table next to it.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import resource
import shutil
import sys
import tempfile
import time
from contextlib import contextmanager
from typing import Any

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

MODES = ("direct", "sonic-grpc", "sonic-http")
MODE_ARGS = {"direct": [], "sonic-grpc": ["sonic=1", "protocol=grpc"], "sonic-http": ["sonic=1", "protocol=http"]}
GOAL_P1 = 0.9
GOAL_P8 = 0.35
GOAL_SHARE = 0.25


# ----------------------------------------------------------------------------- CPU probes
def self_cpu() -> float:
    """User + system CPU seconds of this process (all its threads)."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def group_cpu(pgid: int) -> tuple[float, int]:
    """CPU seconds of the local tritonserver's process group (server and stubs), and how many processes."""
    from framework.server.launcher import process_group_cpu

    return process_group_cpu(pgid)


class LoopProbe:
    """Measures the event loop of the next job: this process's CPU and the server's process group CPU (the
    fallback server of the job's TritonService, or ``server_pid``), by wrapping ``EventProcessor._loop``."""

    def __init__(self) -> None:
        self.server_pid: int | None = None
        self.result: dict[str, Any] = {}

    @contextmanager
    def installed(self):
        from framework.core.processor import EventProcessor

        original = EventProcessor._loop
        probe = self

        def _loop(processor, report):
            pid = probe.server_pid or _fallback_pid()
            s0 = group_cpu(pid) if pid else None
            c0 = self_cpu()
            try:
                return original(processor, report)
            finally:
                probe.result = {"loop_cpu_s": self_cpu() - c0}
                if pid and s0 is not None:
                    s1 = group_cpu(pid)
                    probe.result.update(server_cpu_s=s1[0] - s0[0], server_processes=s1[1])

        EventProcessor._loop = _loop
        try:
            yield self
        finally:
            EventProcessor._loop = original


def _fallback_pid() -> int | None:
    from framework.core import services

    svc = services.get("TritonService", None)
    server = getattr(svc, "fallbackServer", None)
    return server.pid if server is not None else None


# ----------------------------------------------------------------------------- one job
def one_run(config: str, args: list[str], probe: LoopProbe) -> dict:
    from framework.runner import run_config

    c0 = self_cpu()
    with probe.installed():
        report, _ = run_config(config, args, progress=False)
    run_cpu = self_cpu() - c0
    t = report.timing.to_dict()
    parts: dict[str, float] = {}
    for m in t["modules"].values():
        for k, v in m.get("parts_s", {}).items():
            parts[k] = parts.get(k, 0.0) + v
    n = max(1, report.processed)
    row = {"events": report.processed, "wall_s": t["wall_s"], "events_per_s": t["events_per_s"], "parts_s": parts,
           "cpu_ms_per_event": 1e3 * probe.result.get("loop_cpu_s", run_cpu) / n,
           "run_cpu_ms_per_event": 1e3 * run_cpu / n, "modules": t["modules"]}
    if "server_cpu_s" in probe.result:
        row["server_cpu_ms_per_event"] = 1e3 * probe.result["server_cpu_s"] / n
        row["server_processes"] = probe.result["server_processes"]
    return row


def job_args(ns: argparse.Namespace, streams: int, threads: int, out: str) -> list[str]:
    return [f"maxEvents={ns.events}", f"inputFiles={ns.input}", f"numStreams={streams}", f"numThreads={threads}",
            f"partModel={ns.part_model}", f"deepmetModel={ns.deepmet_model}", "wantSummary=0", f"outputFile={out}"]


def _describe(row: dict) -> str:
    text = (f"{row['mode']:>10} streams={row['streams']} threads={row['threads']}: {row['events_per_s']:7.1f} events/s, "
            f"job CPU {row['cpu_ms_per_event']:.2f} ms/event")
    if "server_cpu_ms_per_event" in row:
        text += f", server CPU {row['server_cpu_ms_per_event']:.2f} ms/event"
    return text


# ----------------------------------------------------------------------------- P1, P9
def run_throughput(ns: argparse.Namespace, config: str, tmp: str, cores: int) -> list[dict]:
    probe = LoopProbe()
    best: dict[tuple[str, int], dict] = {}
    for r in range(ns.repeat):
        for streams in ns.streams:
            threads = min(streams, cores)
            for mode in ns.modes:
                out = os.path.join(tmp, f"out_{mode}_{streams}_{r}.root")
                res = one_run(config, job_args(ns, streams, threads, out) + MODE_ARGS[mode], probe)
                if os.path.exists(out):
                    os.unlink(out)
                res.update(mode=mode, streams=streams, threads=threads, round=r)
                print(f"[round {r + 1}/{ns.repeat}] {_describe(res)}", flush=True)
                key = (mode, streams)
                if key not in best or res["events_per_s"] > best[key]["events_per_s"]:
                    best[key] = res
    return [best[(m, s)] for s in ns.streams for m in ns.modes if (m, s) in best]


# ----------------------------------------------------------------------------- P8
def run_cpu(ns: argparse.Namespace, config: str, tmp: str, cores: int) -> dict:
    from framework.server import LocalTritonServer

    repo = os.path.join(tmp, "p8_repository")
    os.makedirs(repo)
    names = []
    for model_dir in (ns.part_model, ns.deepmet_model):
        source = os.path.abspath(model_dir)
        name = os.path.basename(os.path.normpath(source))
        os.symlink(source, os.path.join(repo, name), target_is_directory=True)
        names.append(name)
    probe = LoopProbe()
    best: dict[tuple[str, int], dict] = {}
    with LocalTritonServer([repo], device="cpu", models=names) as server:
        print(f"P8: server pid {server.pid} on {server.grpc_address} (instances {server.instances} x threads "
              f"{server.threads}), started in {server.start_seconds:.1f} s", flush=True)
        sonic_modes = (("sonic-server", ["sonic=1", "address=127.0.0.1", f"port={server.http_port}", "protocol=http"]),
                       ("sonic-server-grpc", ["sonic=1", "address=127.0.0.1", f"port={server.grpc_port}",
                                              "protocol=grpc"]))
        for r in range(ns.repeat):
            for streams in ns.cpu_streams:
                threads = min(streams, cores)
                for mode, extra in (("direct", []), *sonic_modes):
                    out = os.path.join(tmp, f"cpu_{mode}_{streams}_{r}.root")
                    probe.server_pid = server.pid if mode != "direct" else None
                    res = one_run(config, job_args(ns, streams, threads, out) + extra, probe)
                    if os.path.exists(out):
                        os.unlink(out)
                    res.update(mode=mode, streams=streams, threads=threads, round=r)
                    res.pop("modules")
                    print(f"[P8 round {r + 1}/{ns.repeat}] {_describe(res)} (whole run "
                          f"{res['run_cpu_ms_per_event']:.2f})", flush=True)
                    key = (mode, streams)
                    if key not in best or res["cpu_ms_per_event"] < best[key]["cpu_ms_per_event"]:
                        best[key] = res
        instances, threads_per = server.instances, server.threads
    per_streams = []
    for streams in ns.cpu_streams:
        d, s = best[("direct", streams)], best[("sonic-server", streams)]
        g = best[("sonic-server-grpc", streams)]
        feat = s["parts_s"].get("features", 0.0) / max(1, s["events"])
        per_streams.append({"streams": streams, "direct": d, "sonic": s, "sonic_grpc": g,
                            "ratio": s["cpu_ms_per_event"] / d["cpu_ms_per_event"],
                            "ratio_grpc": g["cpu_ms_per_event"] / d["cpu_ms_per_event"],
                            "ratio_whole_run": s["run_cpu_ms_per_event"] / d["run_cpu_ms_per_event"],
                            "sonic_features_ms_per_event": 1e3 * feat})
    worst = max(per_streams, key=lambda p: p["ratio"])
    return {"server": {"instances": instances, "threads": threads_per, "models": names}, "per_streams": per_streams,
            "worst_ratio": worst["ratio"], "goal_met": worst["ratio"] <= GOAL_P8}


# ----------------------------------------------------------------------------- summary
def _bound(row: dict, cores: int) -> str:
    cpu = row["cpu_ms_per_event"] + row.get("server_cpu_ms_per_event", 0.0)
    text = f"job {row['cpu_ms_per_event']:.2f}"
    if "server_cpu_ms_per_event" in row:
        text += f" + server {row['server_cpu_ms_per_event']:.2f}"
    return f"{text} = {cpu:.2f} CPU ms/event, so <= {1e3 * cores / cpu:.0f} events/s on {cores} cores"


def summarize(rows: list[dict], p8: dict | None, cores: int) -> dict:
    by_mode: dict[str, list[dict]] = {}
    for r in rows:
        by_mode.setdefault(r["mode"], []).append(r)
    best = {m: max(rs, key=lambda r: r["events_per_s"]) for m, rs in by_mode.items()}
    goals: list[dict] = []
    summary: dict[str, Any] = {"best": {m: {"streams": r["streams"], "events_per_s": r["events_per_s"]}
                                        for m, r in best.items()}}
    sonic_modes = [m for m in ("sonic-http", "sonic-grpc") if m in best]
    if "direct" in best and sonic_modes:
        d = best["direct"]
        mode = max(sonic_modes, key=lambda m: best[m]["events_per_s"])
        s = best[mode]
        ratio = s["events_per_s"] / d["events_per_s"]
        summary["P1_sonic_over_direct"] = ratio
        summary["P1_protocol"] = mode
        goals.append({"id": "P1", "goal": f"full job, SONIC ({mode}, local fallback) / direct at their best stream counts "
                      f">= {GOAL_P1}x", "measured": f"{ratio:.2f}x ({s['events_per_s']:.1f} events/s at {s['streams']} "
                      f"streams vs {d['events_per_s']:.1f} at {d['streams']})", "met": ratio >= GOAL_P1,
                      "bound": f"SONIC: {_bound(s, cores)}; direct: {_bound(d, cores)}"})
    if "sonic-http" in best and "sonic-grpc" in best:
        h, g = best["sonic-http"], best["sonic-grpc"]
        ratio = h["events_per_s"] / g["events_per_s"]
        summary["P9_http_over_grpc"] = ratio
        goals.append({"id": "P9", "goal": "HTTP / gRPC events/s at their best stream counts (report)",
                      "measured": f"{ratio:.2f}x ({h['events_per_s']:.1f} events/s at {h['streams']} streams vs "
                      f"{g['events_per_s']:.1f} at {g['streams']})", "met": None,
                      "bound": f"HTTP: {_bound(h, cores)}; gRPC: {_bound(g, cores)}"})
    if p8 is not None:
        summary["P8_cpu_sonic_over_direct"] = p8["worst_ratio"]
        measured = "; ".join(f"HTTP {p['ratio']:.2f}x at {p['streams']} streams ({p['sonic']['cpu_ms_per_event']:.2f} "
                             f"vs {p['direct']['cpu_ms_per_event']:.2f} ms/event; whole run {p['ratio_whole_run']:.2f}x); "
                             f"gRPC {p['ratio_grpc']:.2f}x ({p['sonic_grpc']['cpu_ms_per_event']:.2f} ms/event)"
                             for p in p8["per_streams"])
        bound = "; ".join(f"SONIC job at {p['streams']} streams: features {p['sonic_features_ms_per_event']:.2f} "
                          f"ms/event (built in the job by design), the rest "
                          f"{p['sonic']['cpu_ms_per_event'] - p['sonic_features_ms_per_event']:.2f} ms (framework, "
                          f"reading, output, client); server {p['sonic'].get('server_cpu_ms_per_event', 0):.2f} ms/event"
                          for p in p8["per_streams"])
        goals.append({"id": "P8", "goal": f"job-process CPU per event, SONIC / direct <= {GOAL_P8}x",
                      "measured": measured, "met": p8["goal_met"], "bound": bound})
    direct = {r["streams"]: r for r in by_mode.get("direct", [])}
    if direct:
        one = direct.get(1) or min(direct.values(), key=lambda r: r["streams"])
        feat = one["parts_s"].get("features", 0.0)
        inf = one["parts_s"].get("inference", 0.0)
        fw = max(0.0, one["wall_s"] * one["threads"] - feat - inf)
        total = max(1e-12, feat + inf + fw)
        share = {"features": feat / total, "inference": inf / total, "framework": fw / total}
        summary["direct_share"] = {"streams": one["streams"], **share}
        goals.append({"id": "-", "goal": f"direct job at {one['streams']} stream(s): features + framework "
                      f"<= {100 * GOAL_SHARE:.0f}% of the time", "measured":
                      f"features {100 * share['features']:.1f}%, inference {100 * share['inference']:.1f}%, framework "
                      f"{100 * share['framework']:.1f}%", "met": (feat + fw) / total <= GOAL_SHARE,
                      "bound": "module parts timed in the job (features, inference); the rest is framework"})
    summary["goals"] = goals
    return summary


def _met(m: bool | None) -> str:
    return "report" if m is None else ("**met**" if m else "**not met**")


def markdown(result: dict) -> str:
    s = result["settings"]
    md = [f"# Job benchmark (issue 7: P1, P8, P9): {result['events']} events, {result['machine']['cores']} cores, "
          f"models {s['models']['part']}, {s['models']['deepmet']}", "",
          f"`{s['command']}`; input {s['input']}; best of {s['repeat']} interleaved rounds per cell. Whole run "
          f"{result['total_seconds']:.0f} s.", "",
          "| # | goal | measured | met? | bound by |", "|---|---|---|---|---|"]
    for g in result["summary"]["goals"]:
        md.append(f"| {g['id']} | {g['goal']} | {g['measured']} | {_met(g['met'])} | {g['bound']} |")
    if result["runs"]:
        md += ["", "## Throughput (P1, P9)", "",
               "| mode | streams | threads | events/s | job CPU ms/event | server CPU ms/event | features s | "
               "inference s | wall s |", "|---|---|---|---|---|---|---|---|---|"]
        for r in result["runs"]:
            server = f"{r['server_cpu_ms_per_event']:.2f}" if "server_cpu_ms_per_event" in r else "-"
            md.append(f"| {r['mode']} | {r['streams']} | {r['threads']} | {r['events_per_s']:.1f} | "
                      f"{r['cpu_ms_per_event']:.2f} | {server} | {r['parts_s'].get('features', 0):.2f} | "
                      f"{r['parts_s'].get('inference', 0):.2f} | {r['wall_s']:.2f} |")
    p8 = result.get("cpu")
    if p8:
        md += ["", f"## Job-process CPU per event (P8; one server: {p8['server']['instances']} instances x "
               f"{p8['server']['threads']} threads, in its own processes)", "",
               "| mode | streams | job CPU ms/event (event loop) | whole run | server CPU ms/event | events/s |",
               "|---|---|---|---|---|---|"]
        for p in p8["per_streams"]:
            for r in (p["direct"], p["sonic"]):
                server = f"{r['server_cpu_ms_per_event']:.2f}" if "server_cpu_ms_per_event" in r else "-"
                md.append(f"| {r['mode']} | {r['streams']} | {r['cpu_ms_per_event']:.2f} | "
                          f"{r['run_cpu_ms_per_event']:.2f} | {server} | {r['events_per_s']:.1f} |")
    return "\n".join(md)


# ----------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(REPO, "benchmarks", "results", "job.json"))
    ap.add_argument("--events", type=int, default=1000)
    ap.add_argument("--streams", type=int, nargs="+", default=[1, 2, 4, 8])
    ap.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
    ap.add_argument("--input", default="", help="input ROOT file (default: generate --events events, seed 1)")
    ap.add_argument("--part-model", default="data/models/particletransformer_AK4")
    ap.add_argument("--deepmet-model", default="data/models/deepmet")
    ap.add_argument("--repeat", type=int, default=3, help="runs per cell; the best is kept")
    ap.add_argument("--cpu-streams", type=int, nargs="+", default=[4], help="P8: stream counts")
    group = ap.add_mutually_exclusive_group()
    group.add_argument("--cpu", action="store_true", help="only P8 (job-process CPU per event)")
    group.add_argument("--no-cpu", action="store_true", help="skip P8")
    ns = ap.parse_args(argv)
    from framework.logsetup import setup_logging

    setup_logging(-1)
    logging.getLogger("framework").setLevel(logging.WARNING)
    config = os.path.join(REPO, "configs", "miniaod_cfg.py")
    cores = os.cpu_count() or 1
    t_start = time.perf_counter()
    tmp = tempfile.mkdtemp(prefix="bench_job_")
    try:
        if not ns.input:
            from framework.samples import generate

            ns.input = os.path.join(tmp, f"sample_{ns.events}.root")
            t0 = time.perf_counter()
            generate(ns.input, ns.events, 1)
            print(f"generated {ns.events} events (seed 1) in {time.perf_counter() - t0:.1f} s", flush=True)
            input_desc = f"{ns.events} generated events (seed 1)"
        else:
            input_desc = ns.input
        rows = [] if ns.cpu else run_throughput(ns, config, tmp, cores)
        p8 = None if ns.no_cpu else run_cpu(ns, config, tmp, cores)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    command = "python " + " ".join([os.path.relpath(__file__, os.getcwd()), *(argv if argv is not None else sys.argv[1:])])
    result = {"machine": {"cores": cores, "platform": platform.platform(), "python": platform.python_version()},
              "events": ns.events, "time": time.strftime("%Y-%m-%d %H:%M:%S"),
              "settings": {"command": command, "input": input_desc, "repeat": ns.repeat, "streams": ns.streams,
                           "modes": ns.modes, "cpu_streams": ns.cpu_streams,
                           "models": {"part": ns.part_model, "deepmet": ns.deepmet_model}},
              "total_seconds": time.perf_counter() - t_start, "runs": rows, "cpu": p8,
              "summary": summarize(rows, p8, cores)}
    os.makedirs(os.path.dirname(os.path.abspath(ns.out)), exist_ok=True)
    with open(ns.out, "w") as f:
        json.dump(result, f, indent=2)
    md = markdown(result)
    with open(os.path.splitext(ns.out)[0] + ".md", "w") as f:
        f.write(md + "\n")
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
