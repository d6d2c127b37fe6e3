"""The plots and the HTML page of ``python -m framework compare``: the verdict per product (max abs / rel
difference against the tolerance), the timing of both runs, each product drawn as its spec says (direct vs SONIC
with a difference panel), and the algorithms' physics plots."""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uproot

from .html import Page, figure_png
from .plotspec import Events, installed, spec_for

log = logging.getLogger(__name__)


@dataclass
class Plot:
    """One drawn plot: its PNG, where it was saved, its caption, and what the table says of it."""

    png: bytes
    path: str
    caption: str
    info: dict[str, Any] = field(default_factory=dict)


def _safe(name: str) -> str:
    return re.sub(r"[^\w.-]+", "_", name)


def draw(direct: str, sonic: str, branches: list[str], out_dir: str) -> list[Plot]:
    """Every compared ``Events`` branch as its spec says, then the physics plots of the installed packages; each
    saved as ``out_dir/<branch>.png`` (physics: ``physics_<n>.png``)."""
    from .plots import overlay

    specs = installed()
    made: list[Plot] = []
    with uproot.open(direct) as fd, uproot.open(sonic) as fs:
        ed, es = Events(fd["Events"], "direct"), Events(fs["Events"], "SONIC")
        for name in branches:
            if "/" in name or not ed.has(name) or not es.has(name):
                continue
            spec = spec_for(name, specs)
            fig, info = overlay(name, ed.flat(name), es.flat(name), spec)
            made.append(Plot(figure_png(fig), os.path.join(out_dir, f"{_safe(name)}.png"),
                             f"{spec.axis_label(name)}: direct (solid) and SONIC (dashed); lower panel SONIC - direct",
                             {"branch": name, **info}))
        n = 0
        for p in specs:
            if p.physics is None:
                continue
            try:
                figures = p.physics(ed, es)
            except Exception as err:  # a plug-in's physics plot must not cost the report
                log.warning("a physics plot failed: %s", err)
                continue
            for fig, caption in figures:
                n += 1
                made.append(Plot(figure_png(fig), os.path.join(out_dir, f"physics_{n}.png"), caption))
    for plot in made:
        Path(plot.path).write_bytes(plot.png)
    return made


def write_page(out_dir: str, diffs: list[Any], runs: dict[str, Any], plots: list[Plot], title_detail: str) -> Path:
    """``out_dir/index.html``: verdict, products table, defaults left out of the plots, timing, plots."""
    ok = all(d.ok for d in diffs)
    page = Page("Direct vs SONIC", title_detail)
    verdict = page.section("Verdict", "verdict")
    bad = [d.branch for d in diffs if not d.ok]
    verdict.verdict(ok, "every product agrees within tolerance" if ok else f"{len(bad)} products disagree: "
                    + ", ".join(bad))
    verdict.text("A value passes when |direct - SONIC| <= atol + rtol x |direct|.")
    verdict.table(["product", "values", "max abs diff", "max rel diff", "atol", "rtol", "outside", "ok"],
                  [[d.branch, d.n_values, f"{d.max_abs:.3g}", f"{d.max_rel:.3g}", f"{d.atol:g}", f"{d.rtol:g}",
                    d.n_bad, "yes" if d.ok else "NO"] for d in diffs],
                  ["" if d.ok else "bad" for d in diffs])
    defaults = [p.info for p in plots if p.info.get("defaults_direct") or p.info.get("defaults_sonic")]
    if defaults:
        page.section("Defaults left out of the plots", "defaults").table(
            ["product", "direct", "SONIC"],
            [[i["branch"], i["defaults_direct"], i["defaults_sonic"]] for i in defaults])
    if runs:
        timing = page.section("Timing", "timing")
        timing.table(["run", "events", "wall s", "events/s"],
                     [[name, r["timing"]["events"], f"{r['timing']['wall_s']:.3f}", f"{r['timing']['events_per_s']:.1f}"]
                      for name, r in runs.items()])
        per_module = timing.details("Per-module timing (ms, summed over streams)")
        per_module.table(["run", "module", "type", "calls", "acquire", "produce", "wait"],
                         [[name, label, m["type"], m["calls"], f"{m['acquire_s'] * 1e3:.1f}",
                           f"{m['produce_s'] * 1e3:.1f}", f"{m['wait_s'] * 1e3:.1f}"]
                          for name, r in runs.items() for label, m in r["timing"]["modules"].items()])
    if plots:
        figures = page.section("Plots", "plots")
        for p in plots:
            figures.figure(p.png, p.caption, alt=p.caption)
    return page.write(out_dir)
