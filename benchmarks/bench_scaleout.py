"""Scale-out simulation (issue 11): N jobs against M local Triton servers on loopback, on this machine.

    python benchmarks/bench_scaleout.py --out benchmarks/results/scaleout.json [--jobs 1 2 4 8] [--servers 1 2 3]
        [--events 1000] [--repeat 3]

Each cell runs N concurrent ``python -m framework run configs/miniaod_cfg.py sonic=1 protocol=http`` processes
(2 streams, 1 thread each) with ``address=`` / ``port=`` listing all M servers (the jobs' clients route
requests between them: fewest outstanding, then fewest failures, then queue time), over ``--events`` generated
events in total (split between the jobs, each its own entry range; at least 1000 events per cell). The M servers (``LocalTritonServer`` on
``data/models``, 1 instance each) are started once per M and pinned to CPU ``m % cores`` where the OS allows
(``sched_setaffinity`` on the server's process group). Per cell: aggregate events/s (events of all jobs / wall
time from the first start to the last end), the servers' CPU per event, and requests per
server (from the jobs' ``SonicReport`` lines). Best of ``--repeat`` rounds, all cells of a round side by side.
Writes JSON and a Markdown table next to it, and where throughput saturates: the smallest N whose events/s is
within 10% of the best for that M.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))


def _pin(pgid: int, cpu: int) -> bool:
    """Pin every process of the group to *cpu* (where the OS allows)."""
    ok = False
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            if os.getpgid(int(pid)) == pgid:
                os.sched_setaffinity(int(pid), {cpu})
                ok = True
        except (OSError, ProcessLookupError):
            continue
    return ok


def _cell(servers, n_jobs: int, events: int, tmp: str, sample: str) -> dict:
    from framework.server.launcher import process_group_cpu

    per_job = max(1, events // n_jobs)
    addresses = ",".join("127.0.0.1" for _ in servers)
    ports = ",".join(str(s.http_port) for s in servers)
    cpu0 = [process_group_cpu(s.pid)[0] for s in servers]
    t0 = time.perf_counter()
    procs = []
    for j in range(n_jobs):
        out = os.path.join(tmp, f"job{j}.root")
        args = [sys.executable, "-m", "framework", "-q", "run", "configs/miniaod_cfg.py", "sonic=1", "protocol=http",
                f"address={addresses}", f"port={ports}", f"inputFiles={sample}", f"maxEvents={per_job}", f"skipEvents={j * per_job}",
                "numThreads=1", "numStreams=2", "wantSummary=0", f"outputFile={out}",
                f"--report={os.path.join(tmp, f'job{j}.json')}"]
        procs.append(subprocess.Popen(args, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outputs = [p.communicate() for p in procs]
    wall = time.perf_counter() - t0
    for p, (_, err) in zip(procs, outputs):
        if p.returncode != 0:
            raise RuntimeError(f"a job failed ({p.returncode}):\n{err[-2000:]}")
    processed = 0
    requests: dict[str, int] = {}
    for j, (stdout, _) in enumerate(outputs):
        report = json.loads(Path(tmp, f"job{j}.json").read_text())
        processed += report["processed"]
        for name, n in re.findall(r"SonicReport: server '([^']+)' .*?: (\d+) requests", stdout):
            requests[name] = requests.get(name, 0) + int(n)
    server_cpu = sum(process_group_cpu(s.pid)[0] - c for s, c in zip(servers, cpu0))
    return {"jobs": n_jobs, "servers": len(servers), "events": processed, "wall_s": wall,
            "events_per_s": processed / wall, "server_cpu_ms_per_event": 1e3 * server_cpu / max(1, processed),
            "requests_per_server": requests}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="benchmarks/results/scaleout.json")
    ap.add_argument("--jobs", type=int, nargs="+", default=[1, 2, 4, 8])
    ap.add_argument("--servers", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--events", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    from framework.paths import DATA_MODELS
    from framework.server import LocalTritonServer

    cores = os.cpu_count() or 1
    best: dict[tuple[int, int], dict] = {}
    pinned = {}
    with tempfile.TemporaryDirectory() as tmp:
        from framework.samples import generate

        sample = os.path.join(tmp, "sample.root")
        generate(sample, max(1000, args.events), 1)
        for m in args.servers:
            servers = [LocalTritonServer([DATA_MODELS], device="cpu", instances=1, threads=1,
                                         models=["particletransformer_AK4", "deepmet"]) for _ in range(m)]
            try:
                for k, s in enumerate(servers):
                    s.start()
                    pinned[(m, k)] = _pin(s.pid, k % cores)
                for _ in range(args.repeat):
                    for n in args.jobs:
                        row = _cell(servers, n, max(1000, args.events), tmp, sample)
                        key = (m, n)
                        if key not in best or row["events_per_s"] > best[key]["events_per_s"]:
                            best[key] = row
                        print(f"M={m} N={n}: {row['events_per_s']:.1f} events/s, requests {row['requests_per_server']}",
                              flush=True)
            finally:
                for s in servers:
                    s.stop()
    rows = [best[k] for k in sorted(best)]
    saturation = {}
    for m in args.servers:
        cells = [r for r in rows if r["servers"] == m]
        top = max(r["events_per_s"] for r in cells)
        saturation[m] = min(r["jobs"] for r in cells if r["events_per_s"] >= 0.9 * top)
    result = {"machine": {"cores": cores, "python": platform.python_version()}, "repeat": args.repeat,
              "events_per_cell": max(1000, args.events), "pinned": all(pinned.values()), "rows": rows,
              "saturates_at_jobs": saturation}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    lines = ["| servers M | jobs N | events/s | server CPU ms/event | requests per server |", "|---|---|---|---|---|"]
    for r in rows:
        req = ", ".join(f"{k} {v}" for k, v in sorted(r["requests_per_server"].items()))
        lines.append(f"| {r['servers']} | {r['jobs']} | {r['events_per_s']:.1f} | {r['server_cpu_ms_per_event']:.2f} | "
                     f"{req} |")
    lines.append("")
    lines.append("Saturation (smallest N within 10% of the best events/s): " +
                 ", ".join(f"M={m}: N={n}" for m, n in saturation.items()))
    out.with_suffix(".md").write_text(f"{cores} cores, best of {args.repeat}, {max(1000, args.events)} events per "
                                      f"cell, servers pinned: {result['pinned']}\n\n" + "\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
