"""Generic modules that any config can use."""

from __future__ import annotations

import numpy as np

from .module import EDAnalyzer, EDFilter
from .registry import register


@register("BranchCountFilter")
class BranchCountFilter(EDFilter):
    """Passes events with at least ``minNumber`` values of the jagged input branch ``src`` above
    ``minValue`` (e.g. at least 2 jets with ``Jet_pt`` > 30)."""

    parameters = {"src": "Jet_pt", "minValue": 0.0, "minNumber": 1}

    def inputBranches(self):
        return [self.params.src]

    def filter(self, event) -> bool:
        values = np.asarray(event.getBranch(self.params.src))
        return int(np.count_nonzero(values > self.params.minValue)) >= self.params.minNumber


@register("EventContentAnalyzer")
class EventContentAnalyzer(EDAnalyzer):
    """Logs the products of each event (CMSSW's EventContentAnalyzer), for debugging."""

    parameters = {"maxEvents": 10}

    def beginJob(self) -> None:
        self._n = 0

    def analyze(self, event) -> None:
        import logging

        if self._n < self.params.maxEvents:
            items = ", ".join(
                f"{lab}:{ins} {type(v).__name__}{getattr(v, 'shape', '')}" for (lab, ins), v in sorted(event.products().items())
            )
            logging.getLogger("EventContent").info("%s: %s", event.id, items or "(no products)")
        self._n += 1
