"""Run a benchmark on two source trees side by side: rounds interleaved, best of the rounds per cell.

Used to check that a change is "not worse" than the main it replaces (issue 16, item 8)::

    git worktree add /tmp/base d720ee4
    python benchmarks/ab_compare.py job --base /tmp/base --out benchmarks/results/ab_job.json
    python benchmarks/ab_compare.py client --base /tmp/base --out benchmarks/results/ab_client.json

Arguments after ``--`` go to both benchmark runs.

Each round runs the benchmark once (``--repeat 1``) in the base tree, then once in this tree (the order
alternates between rounds), so both see the same machine load. The cells of each side are the best over
its rounds; the report gives each cell's new/base ratio. Both trees run with this interpreter.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent

# bench -> extra arguments for one round
BENCH_ARGS: dict[str, list[str]] = {
    "job": ["--repeat", "1"],
    "client": ["--repeat", "1"],
}


def job_cells(d: dict[str, Any]) -> dict[str, tuple[float, bool]]:
    """(value, higher_is_better) per cell of a bench_job result."""
    cells: dict[str, tuple[float, bool]] = {}
    for r in d["runs"]:
        key = f"{r['mode']} {r['streams']} streams"
        cells[f"{key}: events/s"] = (r["events_per_s"], True)
        cells[f"{key}: job CPU ms/event"] = (r["cpu_ms_per_event"], False)
    for per in (d.get("cpu") or {}).get("per_streams", []):
        for side in ("direct", "sonic", "sonic_grpc"):
            if side in per:
                cells[f"P8 {per[side]['mode']} {per['streams']} streams: job CPU ms/event"] = (
                    per[side]["cpu_ms_per_event"], False)
    return cells


def client_cells(d: dict[str, Any]) -> dict[str, tuple[float, bool]]:
    """(value, higher_is_better) per cell of a bench_client result."""
    cells: dict[str, tuple[float, bool]] = {}
    for goal in ("P2", "P3"):
        for model, v in d.get(goal, {}).items():
            for name, c in v["cells"].items():
                cells[f"{goal} {model} {name}: client CPU ms/request"] = (c["cpu_ms"], False)
    for name, c in d.get("P6", {}).get("cells", {}).items():
        cells[f"P6 {name}: events/s"] = (c["events_per_s"], True)
        cells[f"P6 {name}: job CPU ms/event"] = (c["cpu_ms_per_event"], False)
    return cells


CELLS: dict[str, Callable[[dict[str, Any]], dict[str, tuple[float, bool]]]] = {
    "job": job_cells, "client": client_cells}


def run_once(bench: str, tree: Path, out: Path, extra: list[str]) -> float:
    """Run ``benchmarks/bench_<bench>.py`` in ``tree``; returns its wall seconds."""
    cmd = [sys.executable, str(tree / "benchmarks" / f"bench_{bench}.py"), "--out", str(out),
           *BENCH_ARGS[bench], *extra]
    env = dict(os.environ, PYTHONPATH=str(tree))
    t0 = time.perf_counter()
    subprocess.run(cmd, cwd=tree, env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def best(results: list[dict[str, Any]], cells: Callable) -> dict[str, tuple[float, bool]]:
    """Best value per cell over rounds."""
    merged: dict[str, tuple[float, bool]] = {}
    for d in results:
        for k, (v, hib) in cells(d).items():
            if k not in merged:
                merged[k] = (v, hib)
            else:
                old = merged[k][0]
                merged[k] = ((max if hib else min)(old, v), hib)
    return merged


def git_head(tree: Path) -> str:
    """Short commit of a tree."""
    return subprocess.run(["git", "-C", str(tree), "rev-parse", "--short", "HEAD"],
                          capture_output=True, text=True, check=True).stdout.strip()


def main(argv: list[str] | None = None) -> int:
    """Command line entry."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bench", choices=sorted(BENCH_ARGS))
    ap.add_argument("--base", required=True, type=Path, help="the other source tree (a git worktree)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", type=Path, required=True)
    ns, extra = ap.parse_known_args(argv)
    ns.extra = [a for a in extra if a != "--"]  # the rest goes to both benchmark runs
    trees = {"base": ns.base.resolve(), "new": REPO}
    results: dict[str, list[dict[str, Any]]] = {"base": [], "new": []}
    walls: dict[str, list[float]] = {"base": [], "new": []}
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for rnd in range(ns.rounds):
            order = ["base", "new"] if rnd % 2 == 0 else ["new", "base"]
            for side in order:
                out = Path(tmp) / f"{side}-{rnd}.json"
                walls[side].append(run_once(ns.bench, trees[side], out, ns.extra))
                results[side].append(json.loads(out.read_text()))
                print(f"round {rnd + 1}/{ns.rounds} {side}: {walls[side][-1]:.0f} s", flush=True)
    cells = CELLS[ns.bench]
    b, n = best(results["base"], cells), best(results["new"], cells)
    rows = []
    for k in sorted(set(b) & set(n)):
        (bv, hib), (nv, _) = b[k], n[k]
        ratio = nv / bv if bv else float("nan")
        better = ratio >= 1 if hib else ratio <= 1
        rows.append({"cell": k, "base": bv, "new": nv, "new_over_base": ratio,
                     "higher_is_better": hib, "new_not_worse": better})
    report = {"bench": ns.bench, "rounds": ns.rounds, "base": {"tree": str(trees["base"]),
              "commit": git_head(trees["base"])}, "new": {"tree": str(REPO), "commit": git_head(REPO)},
              "command": " ".join(["python", "benchmarks/ab_compare.py", *(argv or sys.argv[1:])]),
              "total_seconds": time.perf_counter() - t0, "cells": rows}
    ns.out.parent.mkdir(parents=True, exist_ok=True)
    ns.out.write_text(json.dumps(report, indent=1))
    md = [f"# {ns.bench}: {report['new']['commit']} (new) against {report['base']['commit']} (base)", "",
          f"`{report['command']}`; {ns.rounds} interleaved rounds, best per cell; "
          f"{report['total_seconds']:.0f} s.", "",
          "| cell | base | new | new/base | better is |", "|---|---|---|---|---|"]
    for r in rows:
        md.append(f"| {r['cell']} | {r['base']:.3f} | {r['new']:.3f} | {r['new_over_base']:.3f} | "
                  f"{'higher' if r['higher_is_better'] else 'lower'} |")
    ns.out.with_suffix(".md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
