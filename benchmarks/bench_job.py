"""Benchmark of the main job (configs/miniaod_cfg.py): events/s direct vs SONIC (local fallback
server) for 1, 2 and 4 streams, and the share of the direct job's time spent in feature building,
inference and the framework (everything else: reading, scheduling, output).

    python benchmarks/bench_job.py --out benchmarks/results/job.json [--events 200] [--streams 1 2 4]
        [--part-model DIR] [--deepmet-model DIR] [--repeat 1]

All runs of one invocation are measured side by side on the same machine; compare ratios, not
absolute numbers, across machines. Writes JSON and a Markdown table next to it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)


def one_run(config: str, args: list[str], sonic: bool) -> dict:
    from configs.modifiers import allSonicTriton
    from framework.config import process as process_module
    from framework.runner import run_config

    process_module._extra_modifiers[:] = [allSonicTriton] if sonic else []
    try:
        report, _ = run_config(config, args, progress=False)
    finally:
        process_module._extra_modifiers[:] = []
    t = report.timing.to_dict()
    parts: dict[str, float] = {}
    for m in t["modules"].values():
        for k, v in m.get("parts_s", {}).items():
            parts[k] = parts.get(k, 0.0) + v
    return {"events": report.processed, "wall_s": t["wall_s"], "events_per_s": t["events_per_s"], "parts_s": parts,
            "modules": t["modules"]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=os.path.join(REPO, "benchmarks", "results", "job.json"))
    ap.add_argument("--events", type=int, default=200)
    ap.add_argument("--streams", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--input", default=os.path.join(REPO, "data", "samples", "sample.root"))
    ap.add_argument("--part-model", default="data/models/particletransformer_AK4")
    ap.add_argument("--deepmet-model", default="data/models/deepmet")
    ap.add_argument("--repeat", type=int, default=1, help="runs per point; the best is kept")
    ns = ap.parse_args(argv)
    import logging

    from framework.logsetup import setup_logging

    setup_logging(-1)
    logging.getLogger("framework").setLevel(logging.WARNING)
    config = os.path.join(REPO, "configs", "miniaod_cfg.py")
    cores = os.cpu_count() or 1
    tmp = tempfile.mkdtemp(prefix="bench_job_")
    rows = []
    for streams in ns.streams:
        threads = min(streams, cores)
        for sonic in (False, True):
            best = None
            for r in range(ns.repeat):
                args = [f"maxEvents={ns.events}", f"inputFiles={ns.input}", f"numStreams={streams}", f"numThreads={threads}",
                        f"partModel={ns.part_model}", f"deepmetModel={ns.deepmet_model}", "wantSummary=0",
                        f"outputFile={os.path.join(tmp, f'out_{streams}_{int(sonic)}_{r}.root')}"]
                res = one_run(config, args, sonic)
                if best is None or res["events_per_s"] > best["events_per_s"]:
                    best = res
            best.update(mode="sonic" if sonic else "direct", streams=streams, threads=threads)
            rows.append(best)
            print(f"{best['mode']:>6} streams={streams} threads={threads}: {best['events_per_s']:.1f} events/s", flush=True)
    direct = {r["streams"]: r for r in rows if r["mode"] == "direct"}
    sonic = {r["streams"]: r for r in rows if r["mode"] == "sonic"}
    best_direct = max(direct.values(), key=lambda r: r["events_per_s"])
    best_sonic = max(sonic.values(), key=lambda r: r["events_per_s"])
    one = direct.get(1) or min(direct.values(), key=lambda r: r["streams"])
    feat = one["parts_s"].get("features", 0.0)
    inf = one["parts_s"].get("inference", 0.0)
    fw = max(0.0, one["wall_s"] * one["threads"] - feat - inf)
    total = feat + inf + fw
    summary = {
        "sonic_over_direct_at_best": best_sonic["events_per_s"] / best_direct["events_per_s"],
        "best_direct": {"streams": best_direct["streams"], "events_per_s": best_direct["events_per_s"]},
        "best_sonic": {"streams": best_sonic["streams"], "events_per_s": best_sonic["events_per_s"]},
        "direct_share_at_1_stream": {"features": feat / total, "inference": inf / total, "framework": fw / total},
        "goal_sonic_ge_0.9_direct": best_sonic["events_per_s"] >= 0.9 * best_direct["events_per_s"],
        "goal_features_plus_framework_le_25pct": (feat + fw) / total <= 0.25,
    }
    result = {"machine": {"cores": cores, "platform": platform.platform(), "python": platform.python_version()},
              "events": ns.events, "models": {"part": ns.part_model, "deepmet": ns.deepmet_model},
              "time": time.strftime("%Y-%m-%d %H:%M:%S"), "runs": rows, "summary": summary}
    os.makedirs(os.path.dirname(os.path.abspath(ns.out)), exist_ok=True)
    with open(ns.out, "w") as f:
        json.dump(result, f, indent=2)
    md = [f"# Job benchmark ({ns.events} events, {cores} cores, models: {ns.part_model}, {ns.deepmet_model})", "",
          "| mode | streams | threads | events/s | features s | inference s | wall s |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        md.append(f"| {r['mode']} | {r['streams']} | {r['threads']} | {r['events_per_s']:.1f} | "
                  f"{r['parts_s'].get('features', 0):.2f} | {r['parts_s'].get('inference', 0):.2f} | {r['wall_s']:.2f} |")
    s = summary
    md += ["", f"- SONIC / direct at their best stream counts: **{s['sonic_over_direct_at_best']:.2f}** (goal >= 0.9: "
           f"{'met' if s['goal_sonic_ge_0.9_direct'] else 'not met'})",
           f"- direct job at 1 stream: features {100 * s['direct_share_at_1_stream']['features']:.1f}%, inference "
           f"{100 * s['direct_share_at_1_stream']['inference']:.1f}%, framework {100 * s['direct_share_at_1_stream']['framework']:.1f}% "
           f"(goal features + framework <= 25%: {'met' if s['goal_features_plus_framework_le_25pct'] else 'not met'})"]
    with open(os.path.splitext(ns.out)[0] + ".md", "w") as f:
        f.write("\n".join(md) + "\n")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
