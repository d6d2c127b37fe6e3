"""The figures of ``dqm-report`` (matplotlib, imported here only): the score of every scorer per section with its
threshold line and the truth marked, and the monitoring element of flagged sections beside a good reference."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["element_figures", "reference_section", "score_figure"]

MAX_SHOWN = 4  # flagged sections drawn per scorer (the highest scores)
_TRUTH_MARKERS = {"met-tail": "o", "dead-region": "s", "both": "D"}  # the types of detection.ANOMALY_TYPES


def _pyplot() -> Any:
    from framework import extras

    return extras.pyplot("dqm-report's plots")


def score_figure(keys: dict[str, np.ndarray], scorers: list[Any], data: dict[str, Any]) -> Any:
    """One panel per scorer: MSE per section (log scale), its threshold line, flagged sections in red, sections
    bad in the truth ringed (a marker per anomaly type), runs separated."""
    plt = _pyplot()
    n = keys["run"].size
    x = np.arange(n)
    rows = data["sections"]
    truth = [r.get("truth") for r in rows]
    fig, axes = plt.subplots(len(scorers), 1, figsize=(max(8.0, min(24.0, 0.12 * n + 4)), 3.2 * len(scorers)),
                             squeeze=False, sharex=True)
    runs = keys["run"]
    starts = [0, *np.flatnonzero(np.diff(runs)) + 1]
    for ax, s in zip(axes[:, 0], scorers):
        ax.plot(x, s.mse, color="0.7", linewidth=0.7, zorder=1)
        ax.scatter(x[~s.flag], s.mse[~s.flag], s=14, color="tab:blue", label="not flagged", zorder=2)
        ax.scatter(x[s.flag], s.mse[s.flag], s=22, color="tab:red", label="flagged", zorder=3)
        for name, marker in _TRUTH_MARKERS.items():
            sel = np.array([t == name for t in truth])
            if sel.any():
                ax.scatter(x[sel], s.mse[sel], s=90, marker=marker, facecolors="none", edgecolors="black",
                           linewidths=1.2, label=f"truth: {name}", zorder=4)
        ax.axhline(s.threshold, color="black", linestyle="--", linewidth=1, label=f"threshold {s.threshold:.3g}")
        for start in starts[1:]:
            ax.axvline(start - 0.5, color="0.85", linewidth=1)
        ax.set_yscale("log")
        ax.set_ylabel("NMF MSE")
        ax.set_title(f"{s.label}: {s.element}", fontsize=9)
        ax.legend(fontsize=7, loc="upper left", ncol=3)
    axes[-1, 0].set_xticks(starts, [f"run {runs[i]}" for i in starts], fontsize=8)
    axes[-1, 0].set_xlim(-1, n)
    axes[-1, 0].set_xlabel("luminosity section")
    fig.tight_layout()
    return fig


def reference_section(scorer: Any, combined: np.ndarray, truth: list[str | None]) -> int | None:
    """The good reference: of the sections no scorer flags (and good in the truth, when known), the one whose
    score is the median."""
    ok = ~combined & np.array([t in (None, "good") for t in truth])
    idx = np.flatnonzero(ok)
    if idx.size == 0:
        return None
    return int(idx[np.argsort(scorer.mse[idx])[idx.size // 2]])


def element_figures(source: str, keys: dict[str, np.ndarray], scorers: list[Any], data: dict[str, Any]
                    ) -> dict[str, Any]:
    """Per scorer with flagged sections: its element in the (up to :data:`MAX_SHOWN`) highest-scored flagged
    sections beside the good reference section (1-D: both normalised to unit area, overlaid; 2-D: side by side)."""
    from producers.dqm.read import read_lumi_histograms

    plt = _pyplot()
    hists = read_lumi_histograms(source)
    combined = np.array([r["flag"] for r in data["sections"]])
    truth = [r.get("truth") for r in data["sections"]]
    out = {}
    for s in scorers:
        flagged = [int(i) for i in np.flatnonzero(s.flag)[np.argsort(-s.mse[s.flag])][:MAX_SHOWN]]
        ref = reference_section(s, combined, truth)
        key = [(int(r), int(lumi)) for r, lumi in zip(keys["run"], keys["luminosityBlock"])]
        if not flagged or ref is None or not s.element or s.element not in hists.get(key[ref], {}):
            continue
        shown = [i for i in flagged if s.element in hists.get(key[i], {})]
        ref_h = hists[key[ref]][s.element]
        two_d = ref_h.ndim == 2
        cols = 2 if two_d else 1
        fig, axes = plt.subplots(len(shown), cols, figsize=(9 if two_d else 7, 2.8 * len(shown)), squeeze=False)
        for row, i in enumerate(shown):
            h = hists[key[i]][s.element]
            label = f"run {key[i][0]} lumi {key[i][1]} (MSE {s.mse[i]:.3g}; truth {truth[i] or 'n/a'})"
            ref_label = f"reference run {key[ref][0]} lumi {key[ref][1]} (MSE {s.mse[ref]:.3g})"
            if two_d:
                for ax, hh, title in ((axes[row, 0], h, label), (axes[row, 1], ref_h, ref_label)):
                    (xe, ye) = (a.edges for a in hh.axes)
                    mesh = ax.pcolormesh(xe, ye, hh.values().T, cmap="viridis")
                    fig.colorbar(mesh, ax=ax, fraction=0.04)
                    ax.set_title(title, fontsize=7)
                    ax.set_xlabel(hh.axes[0].label or "x", fontsize=7)
                    ax.set_ylabel(hh.axes[1].label or "y", fontsize=7)
            else:
                ax = axes[row, 0]
                edges = h.axes[0].edges
                for hh, color, text in ((h, "tab:red", label), (ref_h, "black", ref_label)):
                    v = hh.values()
                    total = hh.values(flow=True).sum()
                    over = hh.values(flow=True)[-1] / total if total else 0.0
                    ax.stairs(v / total if total else v, edges, color=color, label=f"{text}; overflow {over:.0%}")
                ax.set_yscale("log")
                ax.set_xlabel(h.axes[0].label or s.element.rsplit("/", 1)[-1], fontsize=8)
                ax.set_ylabel("fraction of entries", fontsize=8)
                ax.legend(fontsize=7)
        fig.suptitle(f"{s.label}: {s.element}", fontsize=9)
        fig.tight_layout()
        out[s.label] = fig
    return out


