"""``DQMHistogrammer``: per-luminosity-section DQM monitoring elements (MEs) filled from input branches.

Each ME of the ``monitorElements`` VPSet is a 1-D or 2-D histogram (``hist.Hist``, Double storage, with
under- and overflow):

- 1-D: ``name``, ``expression``, ``bins``, ``low``, ``high``;
- 2-D: ``name``, ``xExpression``, ``xBins``, ``xLow``, ``xHigh``, ``yExpression``, ``yBins``, ``yLow``,
  ``yHigh`` (``Jet_eta`` / ``Jet_phi``: one entry per jet).

``name`` is the DQM path (``JetMET/MET/pfMETT1/Cleaned/METSig``: subsystem, folders, histogram); expressions
are branch names or small formulas (:mod:`.expression`). Binning is ROOT's: bins are ``[low, high)``, values
below ``low`` go to the underflow, values ``>= high`` and NaN to the overflow.

The module is an analyzer (one instance, called one event at a time, whatever the number of streams): it
notes each event's place in its input batch and fills the histograms at ``endLuminosityBlock``, vectorised
over the lumi's events, then puts each one as a lumi product under its ``name``
(``lumi.get("label:JetMET/MET/pfMETT1/Cleaned/METSig")``) and starts the next lumi empty. Only events that
reach the module on its Path are counted (a filter before it selects them).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from framework import extras
from framework.core.module import EDAnalyzer
from framework.core.params import Required
from framework.core.registry import register
from framework.exceptions import ConfigurationError

from .expression import Expression, ExpressionError, Values, broadcast

hist = extras.hist("the DQM histograms (DQMHistogrammer)")

__all__ = ["DQMHistogrammer", "MonitorElementSpec", "ME_PARAMETERS"]

#: the parameters of one monitoring element (an entry of ``monitorElements``)
ME_PARAMETERS: dict[str, Any] = {
    "name": Required(str, "DQM path, e.g. 'JetMET/MET/pfMETT1/Cleaned/METSig'"),
    "title": "",
    "note": "",  # shown when the input cannot fill this ME (e.g. the config option that leaves it out)
    "expression": "", "bins": 0, "low": 0.0, "high": 0.0,
    "xExpression": "", "xBins": 0, "xLow": 0.0, "xHigh": 0.0,
    "yExpression": "", "yBins": 0, "yLow": 0.0, "yHigh": 0.0,
}
_NAME = re.compile(r"[A-Za-z0-9_.+\-]+(?: [A-Za-z0-9_.+\-]+)*")


@dataclass(frozen=True)
class _Axis:
    expression: Expression
    bins: int
    low: float
    high: float

    def make(self, name: str) -> hist.axis.Regular:
        return hist.axis.Regular(self.bins, self.low, self.high, name=name, label=self.expression.text)


class MonitorElementSpec:
    """One checked monitoring element: its DQM path and its axes (1 or 2)."""

    def __init__(self, params: dict[str, Any], where: str):
        self.name = str(params["name"])
        where = f"{where} '{self.name}'"
        parts = self.name.split("/")
        if len(parts) < 2 or not all(_NAME.fullmatch(p) for p in parts):
            raise ConfigurationError(
                f"{where}: name must be a DQM path 'Subsystem/.../histogram' of at least two parts, each of "
                "letters, digits, '_', '.', '+', '-' or inner spaces (e.g. 'JetMET/MET/pfMETT1/Cleaned/METSig')")
        self.title = params["title"] or parts[-1]
        self.note = str(params["note"])
        one_d = {k: params[k] for k in ("expression", "bins", "low", "high")}
        two_d = {k: params[k] for k in ME_PARAMETERS if k[0] in "xy" and k[1].isupper()}
        given_1d = [k for k, v in one_d.items() if v]
        given_2d = [k for k, v in two_d.items() if v]
        if params["expression"] and given_2d:
            raise ConfigurationError(f"{where}: give either expression/bins/low/high (1-D) or xExpression/xBins/... "
                                     f"and yExpression/yBins/... (2-D), not both (got {', '.join(given_1d + given_2d)})")
        if params["expression"]:
            self.axes = (self._axis(params, "", where),)
        elif params["xExpression"] or params["yExpression"]:
            if given_1d:
                raise ConfigurationError(f"{where}: a 2-D ME takes xBins/xLow/xHigh and yBins/yLow/yHigh, not "
                                         f"{', '.join(given_1d)}")
            self.axes = (self._axis(params, "x", where), self._axis(params, "y", where))
        else:
            raise ConfigurationError(f"{where}: no expression: give expression (1-D) or xExpression and yExpression "
                                     "(2-D), e.g. expression='MET_significance', bins=51, low=0, high=51")
        self.branches = tuple(dict.fromkeys(b for a in self.axes for b in a.expression.branches))

    @staticmethod
    def _axis(params: dict[str, Any], prefix: str, where: str) -> _Axis:
        def key(k: str) -> str:
            return prefix + k[0].upper() + k[1:] if prefix else k

        text = params[key("expression")]
        if not text:
            raise ConfigurationError(f"{where}: {key('expression')} is missing (a 2-D ME needs xExpression and "
                                     "yExpression)")
        bins, low, high = params[key("bins")], params[key("low")], params[key("high")]
        if not isinstance(bins, int) or bins < 1:
            raise ConfigurationError(f"{where}: {key('bins')} must be a positive number of bins, got {bins!r}")
        if not (math.isfinite(low) and math.isfinite(high) and low < high):
            raise ConfigurationError(f"{where}: the range {key('low')}={low!r}, {key('high')}={high!r} is empty or "
                                     f"not finite: give {key('low')} < {key('high')}")
        return _Axis(Expression(text, f"{where} {key('expression')}"), bins, float(low), float(high))

    def book(self) -> hist.Hist:
        """An empty histogram of this ME."""
        axes = [a.make(n) for a, n in zip(self.axes, ("x", "y"))]
        return hist.Hist(*axes, storage=hist.storage.Double(), name=self.name.rsplit("/", 1)[-1], label=self.title)

    def fill(self, h: hist.Hist, columns: dict[str, Values]) -> None:
        """Fill *h* with the values of these events (*columns*: ``{branch: Values}``)."""
        values = [a.expression.evaluate(columns) for a in self.axes]  # >= 1 branch each: 1-d arrays
        if len(values) == 1:
            h.fill(values[0].values)
            return
        x, y, _ = broadcast(values[0], values[1], f"{self.axes[0].expression.text}, {self.axes[1].expression.text}")
        h.fill(x, y)


def gather(column: Any, idx: np.ndarray) -> Values:
    """The values of the entries *idx* (sorted) of a batch column (:class:`framework.io.chunk.Column`)."""
    if column.offsets is None:
        return Values(column.content[idx])
    offsets = column.offsets
    starts = offsets[idx]
    counts = offsets[idx + 1] - starts
    if len(idx) and idx[-1] - idx[0] + 1 == len(idx):  # consecutive entries: one slice
        return Values(column.content[starts[0]:offsets[idx[-1] + 1]], counts)
    total = int(counts.sum())
    shift = np.repeat(starts - (np.cumsum(counts) - counts), counts)
    return Values(column.content[shift + np.arange(total)], counts)


@register("DQMHistogrammer")
class DQMHistogrammer(EDAnalyzer):
    """Fills the ``monitorElements`` per luminosity section and puts them as lumi products (see the module
    docstring)."""

    parameters = {"monitorElements": [ME_PARAMETERS]}

    def __init__(self, label, params, globalCache=None):
        super().__init__(label, params, globalCache)
        where = f"module '{label}' (DQMHistogrammer)"
        if not params.monitorElements:
            raise ConfigurationError(f"{where}: monitorElements is empty; give a cms.VPSet of cms.PSet(name=..., "
                                     "expression=..., bins=..., low=..., high=...)")
        self.elements = [MonitorElementSpec(me, f"{where}: monitorElements[{i}]")
                         for i, me in enumerate(params.monitorElements)]
        seen: set[str] = set()
        for me in self.elements:
            if me.name in seen:
                raise ConfigurationError(f"{where}: monitoring element '{me.name}' is defined twice")
            seen.add(me.name)
        self._branches = tuple(dict.fromkeys(b for me in self.elements for b in me.branches))
        self._pending: dict[int, tuple[Any, list[int]]] = {}
        self.n_lumis = 0

    def inputBranches(self) -> tuple[str, ...]:
        return self._branches

    def branchNote(self, branch: str) -> str:
        """The monitoring elements that read *branch*, with their notes (for a missing-branch error)."""
        return "; ".join(f"monitoring element '{me.name}'" + (f": {me.note}" if me.note else "")
                         for me in self.elements if branch in me.branches)

    def beginLuminosityBlock(self, lumi) -> None:
        self._pending = {}

    def analyze(self, event) -> None:
        batch = event.batch
        entry = self._pending.get(id(batch))
        if entry is None:
            entry = self._pending[id(batch)] = (batch, [])
        entry[1].append(event.batchIndex)

    def endLuminosityBlock(self, lumi) -> None:
        with self.timed("fill"):
            hists = [me.book() for me in self.elements]
            for batch, indices in self._pending.values():
                idx = np.sort(np.asarray(indices, dtype=np.int64))
                columns = {b: gather(batch.column(b), idx) for b in self._branches}
                for me, h in zip(self.elements, hists):
                    try:
                        me.fill(h, columns)
                    except ExpressionError as e:
                        raise ExpressionError(f"monitoring element '{me.name}': {e}") from None
        self._pending = {}
        for me, h in zip(self.elements, hists):
            lumi.put(h, me.name)
        self.n_lumis += 1
