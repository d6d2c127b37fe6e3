"""What ``compare`` draws for the ParT AK4 tagger: each class score (the -1 of a jet without constituents left
out and counted), and ROC curves per true flavour (``Jet_hadronFlavour``: b vs light, b vs c) of the b
discriminant, direct and SONIC, with the AUC of each."""

from __future__ import annotations

import re

import numpy as np

from framework.report.plotspec import Events, PlotSpec, ProductPlots

CLASSES = {"b": "b", "bb": "bb", "lepb": "leptonic b", "c": "c", "uds": "uds", "g": "gluon"}
SCORE = PlotSpec(r".*_prob(?P<cls>b|bb|lepb|c|uds|g)", "ParT AK4 P({cls})", per="jets", bins=40,
                 range=(0.0, 1.0), logy=True, defaults=(-1.0,))
B_CLASSES = ("probb", "probbb", "problepb")


def _b_discriminant(events: Events, prefix: str) -> np.ndarray:
    return sum(events.flat(f"{prefix}_{c}") for c in B_CLASSES)


def physics(direct: Events, sonic: Events) -> list[tuple[object, str]]:
    """ROC curves of P(b) + P(bb) + P(lepb) per true flavour, for every ParT product in the file."""
    from framework.report.plots import roc_figure

    if not direct.has("Jet_hadronFlavour"):
        return []
    flavour = direct.flat("Jet_hadronFlavour")
    made = []
    for name in direct.keys():
        m = re.fullmatch(r"(.*)_probb", name)
        if not m or not all(direct.has(f"{m.group(1)}_{c}") for c in B_CLASSES):
            continue
        prefix = m.group(1)
        curves = []
        for run, events, style in (("direct", direct, "-"), ("SONIC", sonic, "--")):
            score = _b_discriminant(events, prefix)
            if score.size != flavour.size:
                continue
            valid = score >= 0  # -1: no constituents, no score
            b, c, light = (valid & (flavour == 5)), (valid & (flavour == 4)), (valid & (flavour == 0))
            curves.append((f"b vs light, {run}", score[b], score[light], style))
            curves.append((f"b vs c, {run}", score[b], score[c], style))
        if curves:
            fig = roc_figure(curves, "b-jet efficiency (true flavour: hadronFlavour 5)",
                             "mis-tag efficiency (true light 0 / c 4)")
            made.append((fig, f"{prefix}: ROC of P(b)+P(bb)+P(lepb) per true flavour (jets without constituents "
                              "left out); solid direct, dashed SONIC"))
    return made


PLOTS = ProductPlots(specs=[SCORE], physics=physics)
