"""NuGraph3 events/s: direct vs SONIC with and without the server's batching of events into one ``execute``.

Runs ``configs/nugraph3_cfg.py`` in this process on generated events (``generate-nugraph``), once per mode and
stream count (2 threads):

- ``direct``: preprocessing and network in the job (1 torch thread per call, as the config's default);
- ``sonic-batched``: the project's Triton model (``max_batch_size`` 32, ragged inputs, dynamic batching: the
  requests waiting while the instance runs go to the next ``execute`` together, as one graph);
- ``sonic-unbatched``: the same network in the reference server's layout (``max_batch_size`` 0: one event per
  ``execute``);
- ``sonic-batched-2inst``: as ``sonic-batched`` with two model instances.

The SONIC runs use the job's local fallback server (its start is not timed: events/s is over the event loop),
over HTTP (the fallback's default). Requests per execution come from the server's statistics (logged by the
TritonService at the end of the job). ``--repeat`` interleaved rounds (the machine's load drifts), the best
reported with all rounds. Results: ``--out`` (JSON) and a Markdown table next to it.

    python benchmarks/bench_nugraph3_batching.py --events 200 --streams 4 8 --model ../shared/models/nugraph3 \\
        --out benchmarks/results/nugraph3_batching.json
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import re
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MODES = ("direct", "sonic-batched", "sonic-unbatched", "sonic-batched-2inst")


def model_dirs(model: Path, tmp: Path) -> dict[str, Path]:
    """One model directory per SONIC mode: the checkpoint linked, the config written for the mode."""
    from framework.server.repository import write_model_config
    from producers.nugraph3.model_repo import check_model_dir, model_config

    source = check_model_dir(model)
    dirs = {}
    for mode, batch, instances in (("sonic-batched", 32, 0), ("sonic-unbatched", 0, 0),
                                   ("sonic-batched-2inst", 32, 2)):
        path = tmp / mode / "nugraph3"
        path.mkdir(parents=True)
        (path / "1").symlink_to(source / "1", target_is_directory=True)
        config = model_config(max_batch_size=batch)
        if instances:
            group = config.instance_group.add()
            group.count = instances
            group.kind = group.KIND_CPU
        write_model_config(config, path / "config.pbtxt")
        dirs[mode] = path
    return dirs


class _Keep(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def run(mode: str, streams: int, events: Path, model: Path, output: Path) -> dict:
    from framework.runner import run_config

    args = [f"inputFiles={events}", f"nugraphModel={model}", f"numStreams={streams}", "numThreads=2",
            f"outputFile={output}", "wantSummary=0"]
    if mode != "direct":
        args.append("sonic=1")

    def verbose(process):
        if "TritonService" in process.services_():
            process.TritonService.verbose = True

    keep = _Keep()
    logger = logging.getLogger("framework")
    logger.addHandler(keep)
    old = logger.level
    logger.setLevel(logging.INFO)
    try:
        cwd = os.getcwd()
        os.chdir(ROOT)
        try:
            report, _ = run_config(str(ROOT / "configs" / "nugraph3_cfg.py"), args, progress=False,
                                   customise=[verbose])
        finally:
            os.chdir(cwd)
    finally:
        logger.removeHandler(keep)
        logger.setLevel(old)
    timing = report.timing.to_dict()
    row = {"mode": mode, "streams": streams, "events": timing.get("events", report.processed),
           "wall_s": timing["wall_s"], "events_per_s": timing["events_per_s"]}
    for message in keep.messages:
        m = re.search(r"model 'nugraph3': (\d+) inferences in (\d+) executions", message)
        if m:
            row["requests"], row["executions"] = int(m.group(1)), int(m.group(2))
            row["requests_per_execution"] = int(m.group(1)) / max(1, int(m.group(2)))
    return row


def markdown(result: dict) -> str:
    lines = ["# NuGraph3: events/s with and without the server's batching of events\n",
             f"{result['events']} generated events (seed {result['seed']}), model {result['model']}, "
             f"{result['machine']}, 2 threads; SONIC over HTTP to the job's local fallback server. Command:\n",
             f"    {result['command']}\n",
             "| mode | streams | events/s (best) | all rounds | requests per execution |", "|---|---|---|---|---|"]
    for r in result["rows"]:
        per = f"{r['requests_per_execution']:.2f}" if "requests_per_execution" in r else "-"
        rounds = ", ".join(f"{v:.2f}" for v in r["all_events_per_s"])
        lines.append(f"| {r['mode']} | {r['streams']} | {r['events_per_s']:.2f} | {rounds} | {per} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--streams", type=int, nargs="+", default=[4, 8])
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
    parser.add_argument("--repeat", type=int, default=2, help="interleaved rounds; the best is reported")
    parser.add_argument("--model", default="data/models/nugraph3", help="NuGraph3 model directory")
    parser.add_argument("--out", default="benchmarks/results/nugraph3_batching.json")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")

    from framework.samples import generate_nugraph

    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-nugraph3-") as tmp:
        tmp = Path(tmp)
        events = generate_nugraph(tmp / "events.h5", args.events, args.seed)
        dirs = model_dirs(Path(args.model) if Path(args.model).is_absolute() else ROOT / args.model, tmp)
        for streams in args.streams:
            runs: dict[str, list[dict]] = {mode: [] for mode in args.modes}
            for _ in range(args.repeat):  # interleaved rounds: the machine's load drifts
                for mode in args.modes:
                    model = dirs.get(mode, Path(args.model))
                    row = run(mode, streams, events, model, tmp / f"{mode}_{streams}.root")
                    print(json.dumps(row), flush=True)
                    runs[mode].append(row)
            for tries in runs.values():
                best = dict(max(tries, key=lambda r: r["events_per_s"]))
                best["all_events_per_s"] = [round(r["events_per_s"], 3) for r in tries]
                rows.append(best)
    result = {"events": args.events, "seed": args.seed, "model": args.model, "rows": rows,
              "machine": f"{platform.machine()}, {os.cpu_count()} cores", "date": time.strftime("%Y-%m-%d"),
              "command": "python " + " ".join([os.path.relpath(__file__, ROOT), *(argv or sys.argv[1:])])}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    out.with_suffix(".md").write_text(markdown(result))
    print(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
