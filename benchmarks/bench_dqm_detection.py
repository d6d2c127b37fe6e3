"""DQM detection on runs the models never saw (issue 19): per scorer and anomaly type (met-tail, dead-region,
both) the AUC of the score against the good sections, the bad sections caught and the good ones flagged, and the
same for the combined flag (a section is bad when any scorer flags it), over generated seeds the training and the
threshold never used (training: seed 11, threshold: seed 12, bundled sample: seed 10).

    python benchmarks/bench_dqm_detection.py --out benchmarks/results/dqm_detection.json
    python benchmarks/bench_dqm_detection.py --seeds 301 302 --baseline-ref 43ec755   # + the models of a git ref

Each seed: ``--runs`` runs of ``--lumis`` sections of ``--events-per-lumi`` events (100, as the bundled sample),
``--per-type`` sections of each anomaly type at random places (drawn from the seed), generated with
``python -m framework generate`` and scored by the DQM job (``configs/dqm_cfg.py``, the bundled models, direct).
``--baseline-ref`` also scores the same histograms with the models of another commit, side by side. Goals: the
combined flag catches every bad section and flags at most 2% of the good ones (over all seeds), reported met or not.
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
from typing import Any

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from producers.dqm_nmf.detection import ANOMALY_TYPES, COMBINED, confusion, read_lumi_scores, read_truth  # noqa: E402

DEFAULT_SEEDS = (301, 302, 303, 304, 305)
MAX_FALSE = 0.02


def bad_lumis_spec(seed: int, runs: int, lumis: int, per_type: int) -> str:
    """``--bad-lumis`` of a seed: *per_type* sections of each anomaly type at random (run, lumi), drawn from *seed*."""
    rng = np.random.default_rng(seed)
    picks = rng.choice(runs * lumis, size=per_type * len(ANOMALY_TYPES), replace=False)
    names = [n.replace("both", "met-tail+dead-region") for n in ANOMALY_TYPES for _ in range(per_type)]
    return ",".join(f"{1 + int(p) // lumis}:{1 + int(p) % lumis}={n}" for p, n in zip(picks, names))


def framework_cli(*args: str, cwd: str = REPO) -> None:
    done = subprocess.run([sys.executable, "-m", "framework", *args], cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"python -m framework {' '.join(args)} failed ({done.returncode}):\n{done.stderr[-2000:]}")


def run_seed(seed: int, workdir: str, *, runs: int = 2, lumis: int = 20, events_per_lumi: int = 100,
             per_type: int = 3, job_args: tuple[str, ...] = ()) -> tuple[str, str, str]:
    """Generate the seed's events and run the DQM job on them; returns (events file, DQM output, --bad-lumis)."""
    spec = bad_lumis_spec(seed, runs, lumis, per_type)
    events = os.path.join(workdir, f"events_{seed}.root")
    dqm = os.path.join(workdir, f"dqm_{seed}.root")
    framework_cli("generate", "--events", str(runs * lumis * events_per_lumi), "--seed", str(seed), "--run", "1",
               "--events-per-lumi", str(events_per_lumi), "--lumis-per-run", str(lumis), "--bad-lumis", spec,
               "--branches", "MET_*,PuppiMET_*,Jet_eta,Jet_phi,Jet_pt", events)
    framework_cli("run", "configs/dqm_cfg.py", f"inputFiles={events}", f"outputFile={dqm}", *job_args)
    return events, dqm, spec


def scores_of(events: str, dqm: str) -> tuple[np.ndarray, dict[str, dict[str, np.ndarray]]]:
    """The truth bits per section and the scorers of the DQM output (with ``ratio`` = MSE / threshold)."""
    from framework.paths import locate
    from producers.dqm_nmf.cff import model_dir_for
    from producers.dqm_nmf.model import Threshold

    keys, scorers = read_lumi_scores(dqm)
    truth = read_truth(events)
    anomalies = np.array([truth[(int(r), int(lumi))] for r, lumi in zip(keys["run"], keys["luminosityBlock"])])
    for label, s in scorers.items():
        s["ratio"] = s["mse"] / Threshold.read(locate(model_dir_for(label))).threshold
    return anomalies, scorers


def rescore(dqm: str, model_dirs: dict[str, str]) -> dict[str, dict[str, np.ndarray]]:
    """The sections' elements of a DQM output scored again by other models (one section per call, as the job)."""
    from producers.dqm.read import me_matrix, read_lumi_histograms
    from producers.dqm_nmf.model import Threshold, as_model_input, load, score

    hists = read_lumi_histograms(dqm)
    out = {}
    for label, d in model_dirs.items():
        info = Threshold.read(d)
        model = load(os.path.join(d, "model.joblib"))
        _, rows = me_matrix(hists, info.element, flow=info.flow)
        mse = np.array([score(model, as_model_input(r))[1][0] for r in rows])
        out[label] = {"mse": mse, "flag": ~(mse <= info.threshold), "ratio": mse / info.threshold}
    return out


def models_at(ref: str, labels: list[str], workdir: str) -> dict[str, str]:
    """The model folders of *labels* as committed at the git *ref*, extracted under *workdir* (a label without a
    model at *ref* is left out: the baseline's combined flag is that of the scorers it had)."""
    from producers.dqm_nmf.cff import model_dir_for

    out = {}
    for label in labels:
        if subprocess.run(["git", "cat-file", "-e", f"{ref}:{model_dir_for(label)}/model.joblib"], cwd=REPO,
                          capture_output=True).returncode != 0:
            continue
        d = os.path.join(workdir, f"{ref}_{label}")
        os.makedirs(d, exist_ok=True)
        for name in ("model.joblib", "threshold.json"):
            blob = subprocess.run(["git", "show", f"{ref}:{model_dir_for(label)}/{name}"], cwd=REPO,
                                  capture_output=True, check=True).stdout
            with open(os.path.join(d, name), "wb") as f:
                f.write(blob)
        out[label] = d
    return out


def detect(seeds: list[int], workdir: str, *, baseline_ref: str = "", **kw: Any) -> dict[str, Any]:
    """The detection over *seeds*: per variant (``current``, and the baseline's when asked), per seed and over
    all, the confusion of :func:`producers.dqm_nmf.detection.confusion`."""
    variants: dict[str, list[tuple[np.ndarray, dict]]] = {"current": []}
    specs = {}
    baseline = None
    for seed in seeds:
        events, dqm, specs[seed] = run_seed(seed, workdir, **kw)
        anomalies, scorers = scores_of(events, dqm)
        variants["current"].append((anomalies, scorers))
        if baseline_ref:
            baseline = baseline or models_at(baseline_ref, list(scorers), workdir)
            variants.setdefault(f"models of {baseline_ref}", []).append((anomalies, rescore(dqm, baseline)))
    result: dict[str, Any] = {"seeds": list(seeds), "bad_lumis": specs, "variants": {}}
    for name, per_seed in variants.items():
        allA = np.concatenate([a for a, _ in per_seed])
        labels = list(per_seed[0][1])
        merged = {x: {k: np.concatenate([s[x][k] for _, s in per_seed]) for k in ("mse", "flag", "ratio")}
                  for x in labels}
        result["variants"][name] = {"all": confusion(allA, merged),
                                    "per_seed": {str(seed): confusion(a, s) for seed, (a, s) in zip(seeds, per_seed)}}
    return result


def goals(variant: dict[str, Any]) -> list[dict[str, Any]]:
    """The goals of the combined flag over all seeds, each met or not."""
    c = variant["all"].get(COMBINED) or next(iter(variant["all"].values()))
    bad_n = sum(v["n"] for k, v in c.items() if k != "good")
    caught = sum(v["caught"] for k, v in c.items() if k != "good")
    worst = max(v[COMBINED]["good"]["false"] / max(v[COMBINED]["good"]["n"], 1) for v in variant["per_seed"].values())
    return [{"goal": "combined flag catches every bad section", "value": f"{caught} of {bad_n}", "met": caught == bad_n},
            {"goal": f"combined flag flags at most {MAX_FALSE:.0%} of the good sections (all seeds)",
             "value": f"{c['good']['false']} of {c['good']['n']}",
             "met": c["good"]["false"] <= MAX_FALSE * c["good"]["n"]},
            {"goal": "(informative) worst single seed's false-flag rate", "value": f"{worst:.1%}",
             "met": worst <= MAX_FALSE}]


def markdown(result: dict[str, Any], command: str) -> str:
    lines = ["# DQM detection on held-out seeds", "", f"`{command}`", "",
             f"Seeds {', '.join(map(str, result['seeds']))}; {result['setup']}. "
             f"{result['machine']}; {result['seconds']:.0f} s.", ""]
    for name, v in result["variants"].items():
        lines += [f"## {name}", "", "| scorer | " + " | ".join(f"{t}: AUC, caught" for t in ANOMALY_TYPES) +
                  " | good: false flags |", "|---" * (len(ANOMALY_TYPES) + 2) + "|"]
        for label, t in v["all"].items():
            cells = [f"{t[n]['auc']:.3f}, {t[n]['caught']} of {t[n]['n']}" if n in t else "-" for n in ANOMALY_TYPES]
            lines.append(f"| {label} | " + " | ".join(cells) + f" | {t['good']['false']} of {t['good']['n']} |")
        lines += ["", "Per seed, combined: " + "; ".join(
            f"{seed}: caught {sum(x['caught'] for k, x in c[COMBINED].items() if k != 'good')} of "
            f"{sum(x['n'] for k, x in c[COMBINED].items() if k != 'good')}, false {c[COMBINED]['good']['false']} of "
            f"{c[COMBINED]['good']['n']}" for seed, c in v["per_seed"].items()), "",
            "| goal | value | met |", "|---|---|---|"]
        lines += [f"| {g['goal']} | {g['value']} | {'yes' if g['met'] else 'NO'} |" for g in goals(v)]
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=list(DEFAULT_SEEDS))
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--lumis", type=int, default=20)
    parser.add_argument("--events-per-lumi", type=int, default=100)
    parser.add_argument("--per-type", type=int, default=3, help="bad sections of each anomaly type per seed [3]")
    parser.add_argument("--baseline-ref", default="", help="also score with the models of this git ref")
    parser.add_argument("--out", default="", help="results JSON (a Markdown table beside it)")
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="dqm_detection_") as tmp:
        result = detect(args.seeds, tmp, baseline_ref=args.baseline_ref, runs=args.runs, lumis=args.lumis,
                        events_per_lumi=args.events_per_lumi, per_type=args.per_type)
    result["setup"] = (f"{args.runs} runs x {args.lumis} sections x {args.events_per_lumi} events per seed, "
                       f"{args.per_type} sections of each anomaly type per seed at random")
    result["machine"] = f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    result["seconds"] = time.perf_counter() - t0
    result["goals"] = {name: goals(v) for name, v in result["variants"].items()}
    command = "python benchmarks/bench_dqm_detection.py " + " ".join(argv if argv is not None else sys.argv[1:])
    text = markdown(result, command.strip())
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=1)
        with open(os.path.splitext(args.out)[0] + ".md", "w") as f:
            f.write(text)
    return 0 if all(g["met"] for g in result["goals"]["current"][:2]) else 1


if __name__ == "__main__":
    sys.exit(main())
