"""What ``compare`` draws for NuGraph3: the per-hit filter and semantic scores (hits, [0, 1]), the per-event
class scores (events, [0, 1]) and the vertex (cm, range from the data, linear); and, where the output keeps the
truth (``configs/nugraph3_cfg.py keepTruth=1``: ``hit_table_{local_plane,filter_label,semantic_label}``,
``event_table_nu_vtx_{x,y,z}``), the filter score by truth label, the per-class efficiency and purity of the
semantic head, and the vertex residuals."""

from __future__ import annotations

import numpy as np

from framework.report.plotspec import Events, PlotSpec, ProductPlots

from .common import SEMANTIC_CLASSES

PLANES = "uvy"
LABEL = "nuGraph3"
SPECS = [
    PlotSpec(r".*_filter_(?P<plane>[uvy])", "NuGraph3 filter score, plane {plane}", per="hits", range=(0.0, 1.0),
             logy=True),
    PlotSpec(r".*_semantic_(?P<plane>[uvy])_(?P<cls>\w+)", "NuGraph3 P({cls}), plane {plane}", per="hits",
             range=(0.0, 1.0), logy=True),
    PlotSpec(r".*_event_(?P<cls>\w+)", "NuGraph3 P({cls})", per="events", range=(0.0, 1.0)),
    PlotSpec(r".*_vertex_(?P<c>[xyz])", "NuGraph3 vertex {c}", unit="cm", per="events"),
]
TRUTH = ("hit_table_local_plane", "hit_table_filter_label", "hit_table_semantic_label")


def _truth_by_plane(events: Events) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """(filter label, semantic label) of each plane's hits in the plane's input order (the outputs' order)."""
    import awkward as ak

    plane = events.jagged("hit_table_local_plane")
    filt, sem = events.jagged("hit_table_filter_label"), events.jagged("hit_table_semantic_label")
    return {p: (np.asarray(ak.flatten(filt[plane == i]), np.int64), np.asarray(ak.flatten(sem[plane == i]), np.int64))
            for i, p in enumerate(PLANES)}


def _semantic_prediction(events: Events, p: str) -> np.ndarray:
    scores = np.stack([events.flat(f"{LABEL}_semantic_{p}_{c}") for c in SEMANTIC_CLASSES], axis=1)
    return scores.argmax(axis=1)


def physics(direct: Events, sonic: Events) -> list[tuple[object, str]]:
    from framework.report.plots import pyplot

    if not all(direct.has(n) for n in TRUTH) or not direct.has(f"{LABEL}_filter_u"):
        return []
    truth = _truth_by_plane(direct)
    plt = pyplot()
    made = []
    # the filter score by truth label
    fig, ax = plt.subplots(figsize=(6.4, 4.6))
    edges = np.linspace(0, 1, 41)
    for run, events, style in (("direct", direct, "-"), ("SONIC", sonic, "--")):
        score = np.concatenate([events.flat(f"{LABEL}_filter_{p}") for p in PLANES])
        label = np.concatenate([truth[p][0] for p in PLANES])
        for value, name, colour in ((1, "signal hits", "tab:red"), (0, "noise hits", "tab:blue")):
            h, _ = np.histogram(score[label == value], edges)
            ax.stairs(h, edges, color=colour, linestyle=style, label=f"{name} (truth), {run}")
    ax.set_yscale("log")
    ax.set_xlabel("NuGraph3 filter score")
    ax.set_ylabel("hits / bin")
    ax.legend(fontsize=8)
    made.append((fig, "NuGraph3 filter score by truth label (all planes); solid direct, dashed SONIC"))
    # per-class efficiency and purity of the semantic head on true signal hits
    fig, (eff_ax, pur_ax) = plt.subplots(1, 2, figsize=(10, 4.2), sharey=True)
    x = np.arange(len(SEMANTIC_CLASSES))
    for k, (run, events) in enumerate((("direct", direct), ("SONIC", sonic))):
        pred = np.concatenate([_semantic_prediction(events, p) for p in PLANES])
        filt = np.concatenate([truth[p][0] for p in PLANES])
        true = np.concatenate([truth[p][1] for p in PLANES])
        sel = (filt == 1) & (true >= 0)
        pred, true = pred[sel], true[sel]
        eff = [np.mean(pred[true == c] == c) if np.any(true == c) else np.nan for c in range(len(SEMANTIC_CLASSES))]
        pur = [np.mean(true[pred == c] == c) if np.any(pred == c) else np.nan for c in range(len(SEMANTIC_CLASSES))]
        eff_ax.bar(x + (k - 0.5) * 0.38, eff, 0.38, label=run)
        pur_ax.bar(x + (k - 0.5) * 0.38, pur, 0.38, label=run)
    for ax, name in ((eff_ax, "efficiency"), (pur_ax, "purity")):
        ax.set_xticks(x, SEMANTIC_CLASSES, rotation=30)
        ax.set_ylabel(f"semantic {name}")
        ax.set_ylim(0, 1.05)
        ax.legend(fontsize=9)
    made.append((fig, "NuGraph3 semantic head: per-class efficiency (true class c predicted c) and purity "
                      "(predicted c truly c) on true signal hits; classes without hits are empty"))
    # vertex residuals
    if all(direct.has(f"event_table_nu_vtx_{c}") for c in "xyz"):
        fig, axes = plt.subplots(1, 3, figsize=(12, 3.8))
        for ax, c in zip(axes, "xyz"):
            true_v = direct.flat(f"event_table_nu_vtx_{c}")
            res = {run: events.flat(f"{LABEL}_vertex_{c}") - true_v for run, events in (("direct", direct),
                                                                                         ("SONIC", sonic))}
            lo, hi = np.quantile(np.concatenate(list(res.values())), [0.0, 1.0])
            edges = np.linspace(lo - 1e-3, hi + 1e-3, 21)
            for (run, r), style in zip(res.items(), ("-", "--")):
                h, _ = np.histogram(r, edges)
                ax.stairs(h, edges, linestyle=style, label=f"{run}: RMS {np.sqrt(np.mean(r ** 2)):.1f} cm")
            ax.set_xlabel(f"vertex {c} - true [cm]")
            ax.set_ylabel("events / bin")
            ax.legend(fontsize=8)
        made.append((fig, "NuGraph3 vertex residuals against the true neutrino vertex"))
    return made


PLOTS = ProductPlots(specs=SPECS, physics=physics)
