"""Runs and luminosity blocks: their principals (the processor's state of one run or lumi) and the views
modules get in their transitions (CMSSW's ``edm::Run`` / ``edm::LuminosityBlock``).

The processor begins a run and a luminosity block before the first event of it, and ends the lumi when all
its events are done -- also with several streams: the source is not read past a lumi boundary until every
event of the ending lumi has finished (CMSSW with one concurrent luminosity block). The transitions are
global: each module gets ``beginRun``/``beginLuminosityBlock``/``endLuminosityBlock``/``endRun`` once per
label (on its first instance), in that order, one transition at a time. In ``endLuminosityBlock`` /
``endRun`` a module may ``put`` lumi / run products, which outputs write (``RootOutputModule``: the
``LuminosityBlocks`` and ``Runs`` trees, beside ``run`` and ``luminosityBlock``).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from ..exceptions import ProductNotFoundError, did_you_mean
from .event import split_tag


class BlockPrincipal:
    """The framework's state of one run (``luminosityBlock`` 0) or one luminosity block."""

    __slots__ = ("kind", "run", "luminosityBlock", "products", "events")

    def __init__(self, kind: str, run: int, luminosityBlock: int = 0):
        self.kind = kind  # "run" or "lumi"
        self.run = run
        self.luminosityBlock = luminosityBlock
        self.products: dict[tuple[str, str], Any] = {}
        self.events = 0  # events of this run / lumi processed so far

    @property
    def key(self) -> tuple[int, int]:
        return (self.run, self.luminosityBlock)

    def where(self) -> str:
        return f"run {self.run}" if self.kind == "run" else f"run {self.run}, lumi {self.luminosityBlock}"


class _Block:
    """A module's view of a run or a lumi: its numbers, its products, ``put`` under the module's label."""

    __slots__ = ("_principal", "_label")

    def __init__(self, principal: BlockPrincipal, label: str | None = None):
        self._principal = principal
        self._label = label

    @property
    def run(self) -> int:
        return self._principal.run

    @property
    def events(self) -> int:
        """Events of this run / lumi processed (all of them, in an ``end`` transition)."""
        return self._principal.events

    def put(self, value: Any, instance: str = "") -> None:
        """Store a product of this module under (its label, *instance*)."""
        if self._label is None:
            raise RuntimeError(f"{type(self).__name__}.put called outside a module's transition")
        key = (self._label, instance)
        if key in self._principal.products:
            raise RuntimeError(f"{self._principal.kind} product '{self._label}:{instance}' was already put "
                               f"for {self.where()}")
        self._principal.products[key] = value

    def get(self, tag: Any, instance: str | None = None) -> Any:
        """The product ``"label"`` or ``"label:instance"`` put earlier in this transition (modules run in
        configuration order: put the consumer after the producer)."""
        label, inst = split_tag(tag)
        if instance is not None:
            inst = instance
        try:
            return self._principal.products[(label, inst)]
        except KeyError:
            made = sorted(f"{a}:{b}" if b else a for a, b in self._principal.products)
            raise ProductNotFoundError(
                f"no {self._principal.kind} product '{label}{':' + inst if inst else ''}' in {self.where()}."
                f"{did_you_mean(label, [m.split(':', 1)[0] for m in made])} "
                f"Products: {', '.join(made) or 'none'} (a module that reads them must come after the one that puts "
                "them)") from None

    def has(self, tag: Any) -> bool:
        return split_tag(tag) in self._principal.products

    def products(self) -> Mapping[tuple[str, str], Any]:
        return MappingProxyType(self._principal.products)

    def where(self) -> str:
        return self._principal.where()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.where()}>"


class Run(_Block):
    """A run as a module sees it in ``beginRun`` / ``endRun``."""

    __slots__ = ()


class LuminosityBlock(_Block):
    """A luminosity block as a module sees it in ``beginLuminosityBlock`` / ``endLuminosityBlock``."""

    __slots__ = ()

    @property
    def luminosityBlock(self) -> int:
        return self._principal.luminosityBlock

    @property
    def id(self) -> tuple[int, int]:
        return self._principal.key
