"""Benchmark of executor=dask (issue 11, item 2): events/s of the main job over several generated files with 1, 2
and 4 Dask workers against the single process, direct and SONIC, side by side.

    python benchmarks/bench_dask.py --out benchmarks/results/dask.json [--files 8] [--events 250] [--repeat 3]
                                    [--workers 1 2 4] [--modes direct sonic]

Each cell runs ``python -m framework run configs/miniaod_cfg.py`` as a command (``sonic=1`` for SONIC: the local
fallback server, started by the job, or once by the driver for all workers), over ``--files`` files of
``--events`` generated events (seeds 1..N), the config's threads and streams (2 x 4) in every process; rounds are
interleaved (every cell once per round), best of ``--repeat``. Events/s is end to end: the command's wall-clock
time, start-up (imports, model loading, cluster and server start) and merge included, as a user waits for it;
the executor's own phases (cluster start, work items, merge) are recorded too. Every dask output is checked
against the single process's: the same events in the same order.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
CONFIG = REPO_ROOT / "configs" / "miniaod_cfg.py"


def run_cell(files: list[str], out: Path, mode: str, workers: int | None) -> dict:
    """One run of the main job; its wall time and report."""
    report = out.with_suffix(".json")
    cmd = [sys.executable, "-m", "framework", "-q", "run", str(CONFIG), f"inputFiles={','.join(files)}",
           f"outputFile={out}", "wantSummary=0", f"--report={report}"]
    if mode == "sonic":
        cmd.append("sonic=1")
    if workers:
        cmd += ["executor=dask", f"workers={workers}"]
    t0 = time.perf_counter()
    r = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({r.returncode}):\n{r.stderr[-3000:]}")
    data = json.loads(report.read_text())
    return {"wall_s": wall, "processed": data["processed"], "executor": data.get("executor")}


def event_ids(path: Path) -> list:
    import uproot

    with uproot.open(path) as f:
        a = f["Events"].arrays(["run", "luminosityBlock", "event"], library="np")
    return list(zip(a["run"].tolist(), a["luminosityBlock"].tolist(), a["event"].tolist()))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="benchmarks/results/dask.json")
    ap.add_argument("--files", type=int, default=8)
    ap.add_argument("--events", type=int, default=250)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--modes", nargs="+", default=["direct", "sonic"], choices=["direct", "sonic"])
    args = ap.parse_args()

    from framework.samples import generate

    cells = [(mode, w) for mode in args.modes for w in [None, *args.workers]]
    best: dict[tuple[str, int | None], dict] = {}
    load = {"start": os.getloadavg()}
    with tempfile.TemporaryDirectory() as tmp:
        files = [str(Path(tmp) / f"in{i}.root") for i in range(args.files)]
        for seed, path in enumerate(files, 1):
            generate(path, args.events, seed, first_event=1 + (seed - 1) * args.events)  # distinct event IDs
        total = args.files * args.events
        for rnd in range(args.repeat):
            for mode, w in cells:
                out = Path(tmp) / f"{mode}-{w or 0}.root"
                res = run_cell(files, out, mode, w)
                assert res["processed"] == total, res
                if w and rnd == 0:  # the same events in the same order as the single process
                    assert event_ids(out) == event_ids(Path(tmp) / f"{mode}-0.root"), (mode, w)
                name = "single process" if w is None else f"dask, {w} worker{'s' if w > 1 else ''}"
                print(f"round {rnd + 1}: {mode:6s} {name:18s} {total / res['wall_s']:7.1f} events/s "
                      f"({res['wall_s']:.1f} s)", flush=True)
                if (mode, w) not in best or res["wall_s"] < best[(mode, w)]["wall_s"]:
                    best[(mode, w)] = res
    load["end"] = os.getloadavg()

    results = {"machine": {"cores": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                           "load_average_1_5_15": load},
               "files": args.files, "events_per_file": args.events, "events": total, "repeat": args.repeat,
               "cells": []}
    for mode in args.modes:
        single = best[(mode, None)]["wall_s"]
        for w in [None, *args.workers]:
            b = best[(mode, w)]
            ex = b["executor"] or {}
            secs = ex.get("seconds", {})
            results["cells"].append({
                "mode": mode, "workers": w or 0, "wall_s": b["wall_s"], "events_per_s": total / b["wall_s"],
                "vs_single": single / b["wall_s"],
                "cluster_start_s": secs.get("cluster start"), "work_items_s": secs.get("work items"),
                "merge_s": secs.get("merge"), "workers_used": len(ex.get("workers", [])) if ex else None,
                "items": ex.get("items"),
            })
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2))
    Path(args.out).with_suffix(".md").write_text(markdown(results))
    print(markdown(results))
    return 0


def markdown(r: dict) -> str:
    m = r["machine"]
    la = m["load_average_1_5_15"]
    lines = [f"Main job (configs/miniaod_cfg.py, bundled models) over {r['files']} generated files x "
             f"{r['events_per_file']} events = {r['events']} events; {m['cores']} cores; best of {r['repeat']}, "
             "interleaved rounds; events/s end to end (the command's wall time: start-up, cluster, server and merge "
             "included). Load average at start / end: "
             f"{la['start'][0]:.1f} / {la['end'][0]:.1f} (the machine is shared).", "",
             "| mode | run | events/s | vs single process | cluster start s | work items s | merge s | workers that did work |",
             "|---|---|---|---|---|---|---|---|"]
    for c in r["cells"]:
        run = "single process" if not c["workers"] else f"dask, {c['workers']} worker{'s' if c['workers'] > 1 else ''}"

        def f(x):
            return "-" if x is None else f"{x:.2f}"

        lines.append(f"| {c['mode']} | {run} | {c['events_per_s']:.1f} | {c['vs_single']:.2f}x | {f(c['cluster_start_s'])} "
                     f"| {f(c['work_items_s'])} | {f(c['merge_s'])} | {c['workers_used'] if c['workers_used'] else '-'} |")
    lines += ["", f"Bound by: the {m['cores']} cores. One process of the main job already keeps them busy (2 threads, "
              "4 streams; with SONIC the local server shares them), so more worker processes cannot add CPU; each "
              "work item adds loading the config and the models and the drain of its streams at its end, the driver "
              "adds the cluster start (more workers: longer) and the merge. Two workers overlap one item's loading "
              "with another's events, hence 2 > 1 worker. Dask pays where there are more cores or machines than one "
              "job uses."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
