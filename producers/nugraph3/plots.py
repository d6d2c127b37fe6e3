"""What ``compare`` draws for NuGraph3: the per-hit filter and semantic scores (hits, [0, 1]), the per-event
class scores (events, [0, 1]) and the vertex (cm, range from the data, linear)."""

from __future__ import annotations

from framework.report.plotspec import PlotSpec, ProductPlots

SPECS = [
    PlotSpec(r".*_filter_(?P<plane>[uvy])", "NuGraph3 filter score, plane {plane}", per="hits", range=(0.0, 1.0),
             logy=True),
    PlotSpec(r".*_semantic_(?P<plane>[uvy])_(?P<cls>\w+)", "NuGraph3 P({cls}), plane {plane}", per="hits",
             range=(0.0, 1.0), logy=True),
    PlotSpec(r".*_event_(?P<cls>\w+)", "NuGraph3 P({cls})", per="events", range=(0.0, 1.0)),
    PlotSpec(r".*_vertex_(?P<c>[xyz])", "NuGraph3 vertex {c}", unit="cm", per="events"),
]

PLOTS = ProductPlots(specs=SPECS)
