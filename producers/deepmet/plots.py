"""What ``compare`` draws for DeepMET: its pt, phi, px, py (range from the data), and its response and resolution
against GenMET with PF MET (``MET_pt``) beside it as the reference."""

from __future__ import annotations

import re

import numpy as np

from framework.report.plotspec import Events, PlotSpec, ProductPlots

SPECS = [
    PlotSpec(r"(?i).*deepmet\w*_pt", "DeepMET p_T", unit="GeV", per="events"),
    PlotSpec(r"(?i).*deepmet\w*_phi", "DeepMET phi", unit="rad", per="events", range=(-np.pi, np.pi)),
    PlotSpec(r"(?i).*deepmet\w*_p(?P<c>[xy])", "DeepMET p_{c}", unit="GeV", per="events"),
]


def physics(direct: Events, sonic: Events) -> list[tuple[object, str]]:
    """Median response (MET / GenMET) and resolution (half the 16-84% width of MET - GenMET) in bins of GenMET,
    DeepMET direct and SONIC, PF MET beside."""
    from framework.report.plots import profile, pyplot

    if not direct.has("GenMET_pt"):
        return []
    gen = direct.flat("GenMET_pt")
    made = []
    for name in direct.keys():
        m = re.fullmatch(r"(?i)(.*deepmet\w*)_pt", name)
        if not m:
            continue
        edges = np.quantile(gen, np.linspace(0, 1, 9))
        edges = np.unique(edges)
        rows = [("DeepMET direct", direct.flat(name), "o-", "black"),
                ("DeepMET SONIC", sonic.flat(name), "s--", "tab:orange")]
        if direct.has("MET_pt"):
            rows.append(("PF MET", direct.flat("MET_pt"), "^:", "tab:blue"))
        plt = pyplot()
        fig, (resp, reso) = plt.subplots(1, 2, figsize=(10, 4.2))
        for label, reco, style, colour in rows:
            ok = gen > 0
            x, med, _ = profile(gen[ok], reco[ok] / gen[ok], edges)
            resp.plot(x, med, style, color=colour, label=label)
            x, _, width = profile(gen, reco - gen, edges)
            reso.plot(x, width, style, color=colour, label=label)
        resp.axhline(1.0, color="grey", linewidth=0.8)
        resp.set_xlabel("GenMET p_T [GeV]")
        resp.set_ylabel("median MET / GenMET")
        reso.set_xlabel("GenMET p_T [GeV]")
        reso.set_ylabel("resolution of MET - GenMET [GeV]")
        for ax in (resp, reso):
            ax.grid(alpha=0.3)
            ax.legend(fontsize=9)
        made.append((fig, f"{m.group(1)}: response and resolution against GenMET, in GenMET bins of equal "
                          "population; PF MET as the reference"))
    return made


PLOTS = ProductPlots(specs=SPECS, physics=physics)
