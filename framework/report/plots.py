"""Drawing: direct against SONIC overlaid with a difference panel, and the helpers the algorithms' physics plots
share (ROC curves, a median/width profile). matplotlib is imported when a plot is drawn."""

from __future__ import annotations

from typing import Any

import numpy as np

from .plotspec import PlotSpec, binning, roc_auc, split_defaults

DIRECT_STYLE = {"color": "black", "linewidth": 1.8, "label": "direct"}
SONIC_STYLE = {"color": "tab:orange", "linewidth": 1.6, "linestyle": "--", "label": "SONIC"}


def pyplot() -> Any:
    """matplotlib's pyplot on the Agg backend (no display needed)."""
    from .. import extras

    return extras.pyplot("compare's plots")


def overlay(branch: str, direct: np.ndarray, sonic: np.ndarray, spec: PlotSpec) -> tuple[Any, dict[str, Any]]:
    """The distribution of *branch* direct vs SONIC, with a lower panel of SONIC - direct per bin; and what the
    table says of it (the binning, the defaults left out of each run)."""
    plt = pyplot()
    d, nd = split_defaults(direct, spec)
    s, ns = split_defaults(sonic, spec)
    bins, lo, hi = binning(spec, d, s)
    edges = np.linspace(lo, hi, bins + 1)
    hd, _ = np.histogram(np.clip(d, lo, hi), edges)
    hs, _ = np.histogram(np.clip(s, lo, hi), edges)
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(6.4, 5.2), sharex=True,
                                      gridspec_kw={"height_ratios": [3, 1], "hspace": 0.05})
    top.stairs(hd, edges, **DIRECT_STYLE)
    top.stairs(hs, edges, **SONIC_STYLE)
    top.set_ylabel(f"{spec.per} / bin")
    if spec.logy and (hd > 0).any():
        top.set_yscale("log")
    top.legend(title=f"{len(d)} {spec.per}" + (f", {nd} defaults left out" if nd else ""), fontsize=9)
    centres = 0.5 * (edges[1:] + edges[:-1])
    bottom.axhline(0, color="grey", linewidth=0.8)
    bottom.step(centres, hs - hd, where="mid", color="tab:orange")
    bottom.set_ylabel("SONIC - direct")
    bottom.set_xlabel(spec.axis_label(branch))
    span = max(1, int(np.abs(hs - hd).max()))
    bottom.set_ylim(-1.2 * span, 1.2 * span)
    top.set_xlim(lo, hi)
    return fig, {"range": (lo, hi), "bins": bins, "defaults_direct": nd, "defaults_sonic": ns}


def roc_figure(curves: list[tuple[str, np.ndarray, np.ndarray, str]], xlabel: str, ylabel: str) -> Any:
    """ROC curves ``(name, signal scores, background scores, line style)``: background efficiency (log) against
    signal efficiency, the AUC of each in the legend."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 5.2))
    for name, sig, bkg, style in curves:
        eff_b, eff_s, auc = roc_auc(sig, bkg)
        keep = eff_b > 0
        ax.plot(eff_s[keep], eff_b[keep], style, label=f"{name} (AUC {auc:.3f})")
    ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_xlim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=9)
    return fig


def profile(x: np.ndarray, y: np.ndarray, edges: np.ndarray, *, min_entries: int = 5) -> tuple[np.ndarray, ...]:
    """Per bin of *x*: the centre, the median of *y* and half the 16-84% width of *y* (bins with fewer than
    *min_entries* entries are left out)."""
    centres, medians, widths = [], [], []
    which = np.digitize(x, edges) - 1
    for i in range(len(edges) - 1):
        sel = y[which == i]
        if sel.size >= min_entries:
            q16, q50, q84 = np.quantile(sel, [0.16, 0.5, 0.84])
            centres.append(0.5 * (edges[i] + edges[i + 1]))
            medians.append(q50)
            widths.append(0.5 * (q84 - q16))
    return np.array(centres), np.array(medians), np.array(widths)
