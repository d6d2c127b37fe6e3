"""How well the DQM scorers flag bad luminosity sections: the scores of every scorer in a DQM output
(``<label>_mse`` / ``<label>_flag`` in its ``LuminosityBlocks`` tree), the truth of a generated events file
(``anomalies`` bits, :data:`framework.io.anomalies.ANOMALIES`), and per scorer and for the combined flag (a section
is bad when any scorer flags it) the confusion per anomaly type: caught of the bad sections of each type, the AUC of
the score against the good sections, false flags of the good ones. Shared by ``dqm-report`` and
``benchmarks/bench_dqm_detection.py``; numpy and uproot only.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from framework.exceptions import InputError

#: anomaly types of the truth (bits of ``anomalies``): name -> value of the section's ``anomalies``
ANOMALY_TYPES: dict[str, int] = {"met-tail": 1, "dead-region": 2, "both": 3}
COMBINED = "combined"

__all__ = ["ANOMALY_TYPES", "COMBINED", "auc", "confusion", "read_truth", "read_lumi_scores", "scorer_labels"]


def scorer_labels(branches: list[str]) -> list[str]:
    """The labels of the scorers whose ``<label>_mse`` and ``<label>_flag`` are both in *branches*, in order."""
    return [b[:-4] for b in branches if b.endswith("_mse") and b[:-4] + "_flag" in branches]


def read_lumi_scores(path: str) -> tuple[dict[str, np.ndarray], dict[str, dict[str, np.ndarray]]]:
    """``({"run", "luminosityBlock"}, {label: {"mse", "flag"}})`` of every scorer in the ``LuminosityBlocks``
    tree of the DQM output *path*."""
    import uproot

    if not os.path.isfile(path):
        raise InputError(f"DQM output not found: {path}")
    with uproot.open(path) as f:
        if "LuminosityBlocks" not in f:
            raise InputError(f"{path} has no LuminosityBlocks tree: not the output of a job with lumi products")
        tree = f["LuminosityBlocks"]
        branches = list(tree.keys())
        labels = scorer_labels(branches)
        if not labels:
            raise InputError(f"{path}: the LuminosityBlocks tree has no scorer (no <label>_mse with <label>_flag); "
                             f"branches: {', '.join(branches)}. Run the job with the NMF scorers "
                             "(configs/dqm_cfg.py).")
        data = tree.arrays(["run", "luminosityBlock", *[f"{x}_{k}" for x in labels for k in ("mse", "flag")]],
                           library="np")
    keys = {"run": data["run"].astype(np.int64), "luminosityBlock": data["luminosityBlock"].astype(np.int64)}
    return keys, {x: {"mse": data[f"{x}_mse"].astype(np.float64), "flag": data[f"{x}_flag"].astype(bool)}
                  for x in labels}


def read_truth(path: str) -> dict[tuple[int, int], int]:
    """``{(run, lumi): anomalies bits}`` from an events file written by ``framework generate --lumis-per-run``."""
    import uproot

    if not os.path.isfile(path):
        raise InputError(f"truth file not found: {path} (give the events file written by python -m framework "
                         "generate --lumis-per-run)")
    with uproot.open(path) as f:
        if "LuminosityBlocks" not in f or "anomalies" not in f["LuminosityBlocks"]:
            raise InputError(f"{path} has no LuminosityBlocks tree with the truth (anomalies): give the events file "
                             "written by python -m framework generate --lumis-per-run")
        t = f["LuminosityBlocks"].arrays(["run", "luminosityBlock", "anomalies"], library="np")
    return {(int(r), int(lumi)): int(a) for r, lumi, a in zip(t["run"], t["luminosityBlock"], t["anomalies"])}


def auc(good: np.ndarray, bad: np.ndarray) -> float:
    """The ROC AUC of a score that should be higher for *bad* than for *good* (the Mann-Whitney statistic, ties
    counted half); NaN when either is empty."""
    good, bad = np.asarray(good, dtype=np.float64), np.asarray(bad, dtype=np.float64)
    if good.size == 0 or bad.size == 0:
        return float("nan")
    greater = (bad[:, None] > good[None, :]).sum()
    ties = (bad[:, None] == good[None, :]).sum()
    return float((greater + 0.5 * ties) / (good.size * bad.size))


def confusion(anomalies: np.ndarray, scorers: dict[str, dict[str, np.ndarray]]) -> dict[str, dict[str, Any]]:
    """Per scorer and for the combined flag (any scorer): ``{"good": {"n", "false"}, <type>: {"n", "caught",
    "auc"}}`` for each anomaly type of :data:`ANOMALY_TYPES` present (``anomalies``: the truth bits per section,
    0 good; the combined score for its AUC is each section's largest MSE / threshold ratio when given as
    ``ratio``, else no AUC)."""
    anomalies = np.asarray(anomalies)
    good = anomalies == 0
    out: dict[str, dict[str, Any]] = {}
    rows = dict(scorers)
    if len(scorers) > 1:
        rows[COMBINED] = {"flag": np.logical_or.reduce([s["flag"] for s in scorers.values()]),
                          "mse": (np.max([s["ratio"] for s in scorers.values()], axis=0)
                                  if all("ratio" in s for s in scorers.values()) else None)}
    for label, s in rows.items():
        flag, mse = np.asarray(s["flag"], dtype=bool), s.get("mse")
        table: dict[str, Any] = {"good": {"n": int(good.sum()), "false": int(flag[good].sum())}}
        for name, bits in ANOMALY_TYPES.items():
            sel = anomalies == bits
            if sel.any():
                table[name] = {"n": int(sel.sum()), "caught": int(flag[sel].sum()),
                               "auc": auc(mse[good], mse[sel]) if mse is not None else float("nan")}
        out[label] = table
    return out
