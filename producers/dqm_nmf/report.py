"""``python -m framework dqm-report OUTPUT.root --out DIR``: the anomaly score per luminosity section of a DQM job
(the DIALS view): ``report.md`` and ``report.json`` (one row per section: run, lumi, MSE, flag, and the truth when
``--truth`` names the events file that has it) and ``score.png`` (the MSE per section with the threshold line,
flagged sections marked, runs separated).

Exit code 0; 3 when the file lacks the scores (run the job with the dqmNMF module).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from typing import Any

import numpy as np

from framework.exceptions import InputError, did_you_mean

from .cff import DEFAULT_LABEL, DEFAULT_MODEL_DIR
from .model import THRESHOLD_FILE, Threshold

log = logging.getLogger(__name__)


def read_scores(path: str, label: str = DEFAULT_LABEL) -> dict[str, np.ndarray]:
    """``run``, ``luminosityBlock``, ``mse``, ``flag`` of every section in the ``LuminosityBlocks`` tree of *path*."""
    import uproot

    if not os.path.isfile(path):
        raise InputError(f"DQM output not found: {path}")
    with uproot.open(path) as f:
        if "LuminosityBlocks" not in f:
            raise InputError(f"{path} has no LuminosityBlocks tree: not the output of a job with lumi products")
        tree = f["LuminosityBlocks"]
        wanted = [f"{label}_mse", f"{label}_flag"]
        missing = [b for b in wanted if b not in tree]
        if missing:
            raise InputError(f"{path}: the LuminosityBlocks tree has no {', '.join(missing)}."
                             f"{did_you_mean(wanted[0], tree.keys())} Branches: {', '.join(tree.keys())}. Run the job "
                             f"with the NMF scorer (configs/dqm_cfg.py) or give its label with --label.")
        data = tree.arrays(["run", "luminosityBlock", *wanted], library="np")
    return {"run": data["run"].astype(np.int64), "luminosityBlock": data["luminosityBlock"].astype(np.int64),
            "mse": data[wanted[0]].astype(np.float64), "flag": data[wanted[1]].astype(bool)}


def read_truth(path: str) -> dict[tuple[int, int], int]:
    """``{(run, lumi): anomalies bits}`` from an events file written by ``framework generate --lumis-per-run``."""
    import uproot

    with uproot.open(path) as f:
        if "LuminosityBlocks" not in f or "anomalies" not in f["LuminosityBlocks"]:
            raise InputError(f"{path} has no LuminosityBlocks tree with the truth (anomalies): give the events file "
                             "written by python -m framework generate --lumis-per-run")
        t = f["LuminosityBlocks"].arrays(["run", "luminosityBlock", "anomalies"], library="np")
    return {(int(r), int(lumi)): int(a) for r, lumi, a in zip(t["run"], t["luminosityBlock"], t["anomalies"])}


def plot(scores: dict[str, np.ndarray], threshold: float, path: str, title: str = "") -> str:
    """MSE per section (log scale), the threshold line, flagged sections in red, runs separated."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = scores["mse"].size
    x = np.arange(n)
    fig, ax = plt.subplots(figsize=(max(8.0, min(24.0, 0.12 * n + 4)), 4.5))
    flag = scores["flag"]
    ax.plot(x, scores["mse"], color="0.6", linewidth=0.8, zorder=1)
    ax.scatter(x[~flag], scores["mse"][~flag], s=14, color="tab:blue", label="good", zorder=2)
    ax.scatter(x[flag], scores["mse"][flag], s=22, color="tab:red", label="flagged", zorder=3)
    ax.axhline(threshold, color="black", linestyle="--", linewidth=1, label=f"threshold {threshold:.3g}")
    runs = scores["run"]
    starts = [0, *np.flatnonzero(np.diff(runs)) + 1]
    for s in starts[1:]:
        ax.axvline(s - 0.5, color="0.8", linewidth=1)
    ax.set_xticks(starts, [f"run {runs[s]}" for s in starts], fontsize=8)
    ax.set_xlim(-1, n)
    ax.set_yscale("log")
    ax.set_xlabel("luminosity section")
    ax.set_ylabel("NMF reconstruction MSE")
    ax.set_title(title or "anomaly score per luminosity section", fontsize=10)
    ax.legend(fontsize=8, loc="upper left")
    fig.savefig(path, dpi=90, bbox_inches="tight")
    plt.close(fig)
    return path


def write_report(scores: dict[str, np.ndarray], threshold: float, out_dir: str, *, source: str,
                 truth: dict[tuple[int, int], int] | None = None, plot_it: bool = True) -> dict[str, Any]:
    """``report.json``, ``report.md`` and ``score.png`` in *out_dir*; returns the JSON content."""
    os.makedirs(out_dir, exist_ok=True)
    rows = []
    for i in range(scores["mse"].size):
        row = {"run": int(scores["run"][i]), "luminosityBlock": int(scores["luminosityBlock"][i]),
               "mse": float(scores["mse"][i]), "flag": bool(scores["flag"][i])}
        if truth is not None:
            row["anomalies"] = truth.get((row["run"], row["luminosityBlock"]), -1)
        rows.append(row)
    summary: dict[str, Any] = {"sections": len(rows), "flagged": int(scores["flag"].sum()), "threshold": threshold,
                               "source": source}
    if truth is not None:
        bad = np.array([r["anomalies"] > 0 for r in rows])
        summary["bad_in_truth"] = int(bad.sum())
        summary["bad_flagged"] = int((bad & scores["flag"]).sum())
        summary["good_flagged"] = int((~bad & scores["flag"]).sum())
    data = {"summary": summary, "sections": rows}
    with open(os.path.join(out_dir, "report.json"), "w") as f:
        json.dump(data, f, indent=1)
    head = "| run | lumi | MSE | flag |" + (" truth (anomaly bits) |" if truth is not None else "")
    lines = [f"# DQM anomaly score per luminosity section: {source}", "",
             f"{summary['flagged']} of {summary['sections']} sections above the threshold {threshold:.4g}" +
             (f"; truth: {summary['bad_in_truth']} bad, {summary['bad_flagged']} of them flagged, "
              f"{summary['good_flagged']} good sections flagged" if truth is not None else "") + ".", "",
             "![score](score.png)" if plot_it else "", "", head, "|---" * (head.count("|") - 1) + "|"]
    for r in rows:
        lines.append(f"| {r['run']} | {r['luminosityBlock']} | {r['mse']:.4g} | {'**BAD**' if r['flag'] else 'ok'} |"
                     + (f" {r['anomalies']} |" if truth is not None else ""))
    with open(os.path.join(out_dir, "report.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    if plot_it:
        plot(scores, threshold, os.path.join(out_dir, "score.png"), title=os.path.basename(source))
    return data


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m framework dqm-report", description=__doc__.split("\n\n")[0])
    parser.add_argument("output", help="the DQM job's output (LuminosityBlocks tree with <label>_mse, <label>_flag)")
    parser.add_argument("--out", default="out/dqm-report", help="report directory [out/dqm-report]")
    parser.add_argument("--label", default=DEFAULT_LABEL, help="the scorer's module label [dqmNMF]")
    parser.add_argument("--model", default=DEFAULT_MODEL_DIR, help="model folder with threshold.json (the line)")
    parser.add_argument("--threshold", type=float, default=-1.0, help="the threshold line (default: the model's)")
    parser.add_argument("--truth", default="", help="events file with the truth per section (generate --lumis-per-run)")
    parser.add_argument("--no-plot", action="store_true")
    ns = parser.parse_args(argv)
    scores = read_scores(ns.output, ns.label)
    threshold = ns.threshold
    if threshold < 0:
        from framework.paths import locate

        try:
            threshold = Threshold.read(locate(os.path.join(ns.model, THRESHOLD_FILE))).threshold
        except FileNotFoundError as exc:
            raise InputError(f"{exc}; or give --threshold") from None
    truth = read_truth(ns.truth) if ns.truth else None
    data = write_report(scores, threshold, ns.out, source=ns.output, truth=truth, plot_it=not ns.no_plot)
    s = data["summary"]
    print(f"{s['flagged']} of {s['sections']} luminosity sections flagged (threshold {threshold:.4g})" +
          (f"; truth: {s['bad_flagged']} of {s['bad_in_truth']} bad flagged, {s['good_flagged']} good flagged"
           if truth is not None else "") + f"\nreport: {os.path.join(ns.out, 'report.md')}")
    return 0
