"""Benchmark of the feature builders (issue 8): the batch builders the inputs producers use vs the per-event
builders they replaced (kept as test oracles in tests/), side by side on the same events.

    python benchmarks/bench_features.py --out benchmarks/results/features.json [--events 1000] [--chunk 1000]

For each algorithm (ParT AK4, DeepMET), on a generated sample of ``--events`` events (seed 1): the time per
event to build every event's model inputs with the per-event builder, and with the batch builder over chunks of
``--chunk`` events (the RootSource default) including taking each event's share (``batch.event(i)``: views for
ParT, the padded [1, 4500, ...] arrays for DeepMET). Best of ``--repeat`` rounds, both variants in each round.
Goal (issue 8): DeepMET's features were 0.25-0.5 ms per event; report the batch builder's and the ratio.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="benchmarks/results/features.json")
    ap.add_argument("--events", type=int, default=1000)
    ap.add_argument("--chunk", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    import uproot

    from framework.io.chunk import columns_of
    from framework.samples import generate
    from producers.deepmet import features as deepmet
    from producers.particle_transformer_ak4 import features as part
    from tests import deepmet_oracle, part_oracle

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "sample.root"
        generate(path, args.events, 1)
        names = sorted(set(part.INPUT_BRANCHES) | set(deepmet.INPUT_BRANCHES))
        with uproot.open(path) as f:
            arrays = f["Events"].arrays(names, library="ak")
    chunks = [columns_of(arrays[i : i + args.chunk], names) for i in range(0, len(arrays), args.chunk)]
    events = [{n: c[n].value(i) for n in names} for c in chunks for i in range(len(c[names[0]].offsets) - 1)]
    n = len(events)

    def per_event(build):
        def run():
            for ev in events:
                build(ev)
        return run

    def batched(build):
        def run():
            for c in chunks:
                batch = build(c)
                for i in range(len(batch)):
                    batch.event(i)
        return run

    variants = {
        "part": {"per_event": per_event(part_oracle.build_part_inputs), "batch": batched(part.build_part_inputs)},
        "deepmet": {"per_event": per_event(deepmet_oracle.build_event_inputs),
                    "batch": batched(deepmet.build_deepmet_inputs)},
    }
    best = {a: {v: float("inf") for v in vs} for a, vs in variants.items()}
    for _ in range(args.repeat):
        for algo, vs in variants.items():
            for name, fn in vs.items():
                t0 = time.perf_counter()
                fn()
                best[algo][name] = min(best[algo][name], time.perf_counter() - t0)
    results = {
        algo: {
            "per_event_ms": 1e3 * b["per_event"] / n,
            "batch_ms": 1e3 * b["batch"] / n,
            "speedup": b["per_event"] / b["batch"],
        }
        for algo, b in best.items()
    }
    doc = {"events": n, "chunk": args.chunk, "repeat": args.repeat, "machine": platform.machine(),
           "python": platform.python_version(), "results": results,
           "goal": "DeepMET features below the 0.25-0.5 ms/event of the per-event builder"}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=2) + "\n")
    lines = ["| algorithm | per-event builder ms/event | batch builder ms/event | speed-up |", "|---|---|---|---|"]
    lines += [f"| {a} | {r['per_event_ms']:.3f} | {r['batch_ms']:.3f} | {r['speedup']:.1f}x |" for a, r in results.items()]
    out.with_suffix(".md").write_text(f"{n} generated events, chunks of {args.chunk}, best of {args.repeat}\n\n"
                                      + "\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
