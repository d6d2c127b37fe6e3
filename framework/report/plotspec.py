"""What to draw for a product, declared beside its producer (``producers/<algo>/plots.py``) and found by entry
point (group ``framework.plots``: any name, value ``package.module:OBJECT`` of type :class:`ProductPlots`).

A :class:`PlotSpec` says how one kind of branch is histogrammed (axis label and unit, what is counted, binning,
log scale, sentinel values left out of the plot and counted instead); ``physics`` draws what only the algorithm
knows (ROC curves of a tagger per true flavour, DeepMET's response against GenMET, ...). A branch no spec
matches gets a generic plot, its range from the data."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

GROUP = "framework.plots"


@dataclass(frozen=True)
class PlotSpec:
    """How branches whose name fully matches ``pattern`` are drawn. ``label`` may use the pattern's named groups
    (``{cls}``); ``range`` None takes the 0.1%-99.9% quantiles of the data (both runs); ``defaults`` are values a
    producer writes where it has no answer (ParT's -1 for a jet without constituents), left out and counted."""

    pattern: str
    label: str
    unit: str = ""
    per: str = "entries"
    bins: int = 40
    range: tuple[float, float] | None = None
    logy: bool = False
    defaults: tuple[float, ...] = ()

    def matches(self, branch: str) -> re.Match | None:
        return re.fullmatch(self.pattern, branch)

    def axis_label(self, branch: str) -> str:
        m = self.matches(branch)
        text = self.label.format(**(m.groupdict() if m else {}))
        return f"{text} [{self.unit}]" if self.unit else text


@dataclass
class ProductPlots:
    """The plots of one algorithm's products: a spec per kind of branch, and its physics plots
    (``physics(direct, sonic)``: each a :class:`Events` of one run; returns ``[(figure, caption), ...]``)."""

    specs: list[PlotSpec] = field(default_factory=list)
    physics: Callable[[Events, Events], list[tuple[Any, str]]] | None = None


class Events:
    """The ``Events`` tree of one output, read once per branch: ``has(name)``, ``flat(name)`` (float64, all
    entries), ``jagged(name)`` (awkward), ``keys()``."""

    def __init__(self, tree: Any, label: str) -> None:
        self.tree, self.label = tree, label
        self._cache: dict[str, Any] = {}

    def keys(self) -> list[str]:
        return list(self.tree.keys())

    def has(self, name: str) -> bool:
        return name in self.tree

    def jagged(self, name: str) -> Any:
        if name not in self._cache:
            self._cache[name] = self.tree[name].array()
        return self._cache[name]

    def flat(self, name: str) -> np.ndarray:
        import awkward as ak

        a = self.jagged(name)
        if isinstance(a, ak.Array) and a.ndim > 1:
            a = ak.flatten(a, axis=None)
        return np.asarray(a, dtype=np.float64)


def installed() -> list[ProductPlots]:
    """The :class:`ProductPlots` of every installed package (entry-point group ``framework.plots``)."""
    found = []
    for ep in sorted(metadata.entry_points(group=GROUP), key=lambda e: e.name):
        try:
            obj = ep.load()
        except Exception as err:  # a broken plug-in loses its plots, not the report
            log.warning("plots of %s not loaded: %s", ep.name, err)
            continue
        if isinstance(obj, ProductPlots):
            found.append(obj)
        else:
            log.warning("entry point %s (%s) is not a ProductPlots: %r", ep.name, GROUP, obj)
    return found


def spec_for(branch: str, plots: list[ProductPlots]) -> PlotSpec:
    """The first declared spec matching *branch*, else a generic one (range from the data)."""
    for p in plots:
        for s in p.specs:
            if s.matches(branch):
                return s
    return PlotSpec(re.escape(branch), branch)


def binning(spec: PlotSpec, *values: np.ndarray) -> tuple[int, float, float]:
    """(bins, low, high): the spec's range, else the 0.1%-99.9% quantiles of the finite *values* (widened a little
    when they coincide); a count-like product (integers in a small range) gets a bin per integer."""
    if spec.range is not None:
        return spec.bins, float(spec.range[0]), float(spec.range[1])
    data = np.concatenate([v[np.isfinite(v)] for v in values]) if values else np.zeros(0)
    if data.size == 0:
        return spec.bins, 0.0, 1.0
    if np.all(data == np.round(data)) and data.max() - data.min() <= 60:
        lo, hi = float(data.min()), float(data.max())
        return int(hi - lo) + 1, lo - 0.5, hi + 0.5
    lo, hi = (float(x) for x in np.quantile(data, [0.001, 0.999]))
    if hi <= lo:
        pad = max(abs(lo) * 0.05, 1e-6)
        lo, hi = lo - pad, hi + pad
    return spec.bins, lo, hi


def split_defaults(values: np.ndarray, spec: PlotSpec) -> tuple[np.ndarray, int]:
    """(*values* without the spec's default values, how many were left out)."""
    if not spec.defaults:
        return values, 0
    mask = np.isin(values, np.asarray(spec.defaults, dtype=values.dtype))
    return values[~mask], int(mask.sum())


def roc_auc(signal: np.ndarray, background: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """ROC curve of a score (efficiency of *signal* vs of *background* above each cut, cuts from high to low) and
    its area: the probability that a signal entry scores above a background one (ties count one half)."""
    s, b = np.asarray(signal, np.float64), np.asarray(background, np.float64)
    if s.size == 0 or b.size == 0:
        return np.array([0.0, 1.0]), np.array([0.0, 1.0]), float("nan")
    cuts = np.unique(np.concatenate([s, b]))[::-1]
    s_sorted, b_sorted = np.sort(s), np.sort(b)
    eff_s = 1.0 - np.searchsorted(s_sorted, cuts, side="left") / s.size
    eff_b = 1.0 - np.searchsorted(b_sorted, cuts, side="left") / b.size
    eff_s, eff_b = np.concatenate([[0.0], eff_s]), np.concatenate([[0.0], eff_b])
    # AUC from ranks (Mann-Whitney U), exact with ties
    both = np.concatenate([s, b])
    order = both.argsort(kind="mergesort")
    ranks = np.empty(both.size, np.float64)
    sorted_vals = both[order]
    _, first, counts = np.unique(sorted_vals, return_index=True, return_counts=True)
    avg = first + (counts - 1) / 2.0 + 1.0
    ranks[order] = np.repeat(avg, counts)
    auc = (ranks[: s.size].sum() - s.size * (s.size + 1) / 2.0) / (s.size * b.size)
    return eff_b, eff_s, float(auc)
