"""``python -m framework dqm-report OUTPUT.root --out DIR``: the data-quality verdict per luminosity section of a DQM
job (the DIALS view), for every scorer in the file (``<label>_mse`` / ``<label>_flag`` in its ``LuminosityBlocks``
tree), each against its own model's threshold (``threshold.json`` of the model folder of its label, see
:func:`producers.dqm_nmf.cff.model_dir_for`), and the combined flag: a section is flagged bad when any scorer flags
it. With ``--truth`` (the generated events file) a confusion table per scorer and anomaly type.

Writes ``report.json``, ``report.md``, ``index.html`` (one self-contained page: the verdict, the score of each
scorer per section with its threshold line and the truth marked, the monitoring elements of the flagged sections
beside a good reference section) and the plots as PNG (``score.png``, ``elements_<label>.png``).

Exit code 0; an input error (no scores, unknown label, no threshold) is one paragraph and a non-zero exit.
"""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from framework.exceptions import InputError, did_you_mean

from .cff import model_dir_for
from .detection import ANOMALY_TYPES, COMBINED, confusion, read_lumi_scores, read_truth
from .model import THRESHOLD_FILE, Threshold

__all__ = ["Scorer", "main", "write_report", "truth_name"]


@dataclass
class Scorer:
    """One scorer of the file: its label, model folder, threshold (and its rule), the element it scores, and its
    per-section ``mse`` and ``flag`` as the job wrote them."""

    label: str
    model_dir: str
    threshold: float
    rule: str
    element: str
    mse: np.ndarray
    flag: np.ndarray


def truth_name(bits: int) -> str:
    """``good``, ``met-tail``, ``dead-region``, ``both`` (``unknown`` for a section the truth lacks)."""
    if bits < 0:
        return "unknown"
    return "good" if bits == 0 else next((n for n, b in ANOMALY_TYPES.items() if b == bits), f"bits {bits}")


def _pairs(items: list[str], what: str) -> dict[str, str]:
    out = {}
    for item in items:
        label, sep, value = item.partition("=")
        if not sep or not label or not value:
            raise InputError(f"{what} {item!r}: write LABEL=VALUE, e.g. {what} dqmNMFJetOcc="
                             f"{'data/models/dqmNMFJetOcc' if what == '--model' else '0.5'}")
        out[label] = value
    return out


def load_scorers(path: str, labels: list[str], models: dict[str, str], thresholds: dict[str, str]
                 ) -> tuple[dict[str, np.ndarray], list[Scorer]]:
    """The section keys of *path* and its scorers (all, or *labels*), each with its model's threshold."""
    from framework.paths import locate

    keys, found = read_lumi_scores(path)
    for label in [*labels, *models, *thresholds]:
        if label not in found:
            raise InputError(f"{path}: no scorer {label!r} in its LuminosityBlocks tree (no {label}_mse, {label}_flag)."
                             f"{did_you_mean(label, found)} Scorers in the file: {', '.join(found)}.")
    scorers = []
    for label in labels or list(found):
        model_dir = models.get(label, model_dir_for(label))
        try:
            info = Threshold.read(locate(os.path.join(model_dir, THRESHOLD_FILE)))
        except (FileNotFoundError, KeyError, ValueError) as exc:
            raise InputError(f"scorer {label!r}: no threshold in its model folder {model_dir} ({exc}). Give its "
                             f"folder with --model {label}=DIR or the threshold with --threshold {label}=X.") from None
        threshold = info.threshold
        rule = info.rule or f"the {info.quantile} quantile of the training sections' MSE x {info.margin}"
        if label in thresholds:
            try:
                threshold = float(thresholds[label])
            except ValueError:
                raise InputError(f"--threshold {label}={thresholds[label]}: not a number") from None
            rule = "given with --threshold"
        scorers.append(Scorer(label, model_dir, threshold, rule, info.element, found[label]["mse"],
                              found[label]["flag"]))
    return keys, scorers


def build(keys: dict[str, np.ndarray], scorers: list[Scorer], source: str,
          truth: dict[tuple[int, int], int] | None) -> dict[str, Any]:
    """The report's content (``report.json``)."""
    n = keys["run"].size
    combined = np.logical_or.reduce([s.flag for s in scorers]) if scorers else np.zeros(n, dtype=bool)
    anomalies = (np.array([truth.get((int(r), int(lumi)), -1) for r, lumi in zip(keys["run"], keys["luminosityBlock"])])
                 if truth is not None else None)
    rows = []
    for i in range(n):
        row: dict[str, Any] = {"run": int(keys["run"][i]), "luminosityBlock": int(keys["luminosityBlock"][i])}
        for s in scorers:
            row[f"{s.label}_mse"] = float(s.mse[i])
            row[f"{s.label}_flag"] = bool(s.flag[i])
        row["flag"] = bool(combined[i])
        if anomalies is not None:
            row["anomalies"] = int(anomalies[i])
            row["truth"] = truth_name(int(anomalies[i]))
        rows.append(row)
    summary: dict[str, Any] = {
        "source": source, "sections": n, "flagged": int(combined.sum()),
        "scorers": {s.label: {"model": s.model_dir, "element": s.element, "threshold": s.threshold, "rule": s.rule,
                              "flagged": int(s.flag.sum())} for s in scorers}}
    if anomalies is not None:
        known = anomalies >= 0
        table = confusion(anomalies[known], {s.label: {"mse": s.mse[known], "flag": s.flag[known],
                                                        "ratio": s.mse[known] / s.threshold} for s in scorers})
        summary["confusion"] = table
        key = COMBINED if COMBINED in table else scorers[0].label
        bad = [t for name, t in table[key].items() if name != "good"]
        summary["bad_in_truth"] = sum(t["n"] for t in bad)
        summary["bad_flagged"] = sum(t["caught"] for t in bad)
        summary["good_in_truth"] = table[key]["good"]["n"]
        summary["good_flagged"] = table[key]["good"]["false"]
    return {"summary": summary, "sections": rows}


def verdict(summary: dict[str, Any]) -> tuple[bool, str]:
    """(ok, sentence): without truth, ok when no section is flagged; with it, ok when every bad section is flagged
    and at most 2% of the good ones."""
    s = summary
    text = (f"{s['flagged']} of {s['sections']} sections flagged bad by at least one of {len(s['scorers'])} "
            f"scorer{'s' if len(s['scorers']) != 1 else ''} ({', '.join(s['scorers'])})")
    if "bad_in_truth" not in s:
        return s["flagged"] == 0, text + "."
    ok = s["bad_flagged"] == s["bad_in_truth"] and s["good_flagged"] <= 0.02 * max(s["good_in_truth"], 1)
    return ok, (text + f"; truth: {s['bad_flagged']} of {s['bad_in_truth']} bad sections flagged, "
                f"{s['good_flagged']} of {s['good_in_truth']} good sections flagged.")


def markdown(data: dict[str, Any], plots: list[str]) -> str:
    """``report.md``."""
    s = data["summary"]
    labels = list(s["scorers"])
    lines = [f"# DQM anomaly report: {os.path.basename(s['source'])}", "", f"Source: `{s['source']}`", "",
             ("PASS" if verdict(s)[0] else "ATTENTION") + ": " + verdict(s)[1], "", "## Scorers", "",
             "| scorer | element | model | threshold | rule | flagged |", "|---|---|---|---|---|---|"]
    for label, sc in s["scorers"].items():
        lines.append(f"| {label} | {sc['element']} | {sc['model']} | {sc['threshold']:.4g} | {sc['rule']} | "
                     f"{sc['flagged']} |")
    for table in confusion_tables(s):
        lines += ["", f"## Truth: {table['title']}", "", "| " + " | ".join(table["headers"]) + " |",
                  "|---" * len(table["headers"]) + "|"]
        lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in table["rows"]]
    lines += ["", *[f"![{p}]({p})" for p in plots], "", "## Sections", ""]
    head = ["run", "lumi", *[f"{x} MSE" for x in labels], "flag"] + (["truth"] if "confusion" in s else [])
    lines += ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    for r in data["sections"]:
        cells = [r["run"], r["luminosityBlock"]]
        cells += [f"{r[f'{x}_mse']:.4g}{' (flagged)' if r[f'{x}_flag'] else ''}" for x in labels]
        cells.append("**FLAGGED**" if r["flag"] else "not flagged")
        if "truth" in r:
            cells.append(r["truth"])
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"


def confusion_tables(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """The confusion per scorer and anomaly type as tables (title, headers, rows) for the Markdown and the page."""
    table = summary.get("confusion")
    if not table:
        return []
    types = [t for t in ANOMALY_TYPES if any(t in v for v in table.values())]
    headers = ["scorer", *[f"{t}: caught (AUC)" for t in types], "good: flagged"]
    rows = []
    for label, t in table.items():
        cells = [label]
        for name in types:
            c = t.get(name)
            cells.append("-" if c is None else f"{c['caught']} of {c['n']}" +
                         ("" if np.isnan(c["auc"]) else f" ({c['auc']:.3f})"))
        cells.append(f"{t['good']['false']} of {t['good']['n']}")
        rows.append(cells)
    return [{"title": "sections flagged per anomaly type", "headers": headers, "rows": rows}]


def write_report(keys: dict[str, np.ndarray], scorers: list[Scorer], out_dir: str, *, source: str,
                 truth: dict[tuple[int, int], int] | None = None, plot_it: bool = True) -> dict[str, Any]:
    """``report.json``, ``report.md``, the plots and ``index.html`` in *out_dir*; returns the JSON content."""
    os.makedirs(out_dir, exist_ok=True)
    data = build(keys, scorers, source, truth)
    figures: list[tuple[str, Any, str]] = []
    if plot_it:
        from .report_plots import element_figures, score_figure

        figures.append(("score.png", score_figure(keys, scorers, data), "The score of each scorer per section"))
        for label, fig in element_figures(source, keys, scorers, data).items():
            figures.append((f"elements_{label}.png", fig, f"{label}: flagged sections beside a good reference"))
        for name, fig, _ in figures:
            fig.savefig(os.path.join(out_dir, name), dpi=90, bbox_inches="tight")
    with open(os.path.join(out_dir, "report.json"), "w") as f:
        json.dump(data, f, indent=1)
    with open(os.path.join(out_dir, "report.md"), "w") as f:
        f.write(markdown(data, [name for name, _, _ in figures]))
    from .report_page import write_page

    write_page(data, figures, out_dir, verdict=verdict(data["summary"]), tables=confusion_tables(data["summary"]))
    return data


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m framework dqm-report", description=__doc__.split("\n\n")[0])
    parser.add_argument("output", help="the DQM job's output (LuminosityBlocks tree with <label>_mse, <label>_flag)")
    parser.add_argument("--out", default="out/dqm-report", help="report directory [out/dqm-report]")
    parser.add_argument("--label", action="append", default=[],
                        help="report only this scorer (repeatable) [every scorer in the file]")
    parser.add_argument("--model", action="append", default=[], metavar="LABEL=DIR",
                        help="the model folder of a scorer (its threshold.json) [data/models/<label>]")
    parser.add_argument("--threshold", action="append", default=[], metavar="LABEL=X",
                        help="the threshold line of a scorer [its model's]")
    parser.add_argument("--truth", default="", help="events file with the truth per section (generate --lumis-per-run)")
    parser.add_argument("--no-plot", action="store_true")
    ns = parser.parse_args(argv)
    keys, scorers = load_scorers(ns.output, ns.label, _pairs(ns.model, "--model"),
                                 _pairs(ns.threshold, "--threshold"))
    truth = read_truth(ns.truth) if ns.truth else None
    data = write_report(keys, scorers, ns.out, source=ns.output, truth=truth, plot_it=not ns.no_plot)
    print(verdict(data["summary"])[1] + "\n" + "\n".join(
        f"  {x}: {s['flagged']} flagged (threshold {s['threshold']:.4g}, {s['model']})"
        for x, s in data["summary"]["scorers"].items()) +
        f"\nreport: {os.path.join(ns.out, 'report.md')}, {os.path.join(ns.out, 'index.html')}")
    return 0
