"""``Event``: what a module sees of one event — input branches, the input batch, products.

An ``Event`` is a view of the framework's :class:`~framework.core.principal.EventPrincipal` for one
module (CMSSW's ``edm::Event``): ``put`` stores under that module's label, ``get`` reads any product and
runs an on-demand producer that has not run yet. ``batch`` gives the block of consecutive input events
this event was read with, so a producer can compute something once for all of them (vectorised) and
take this event's share with ``batchIndex``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from ..exceptions import ProductNotFoundError, did_you_mean

if TYPE_CHECKING:
    from ..io.chunk import Chunk, SourceEvent


class EventID(NamedTuple):
    run: int
    luminosityBlock: int
    event: int

    def __str__(self) -> str:
        return f"run {self.run}, lumi {self.luminosityBlock}, event {self.event}"


class EventPrincipal(Protocol):
    """What an :class:`Event` reads of the framework's event (``framework.core.principal.EventPrincipal``);
    declared here so that this file does not import principal.py (which builds Events)."""

    index: int
    source: SourceEvent
    id: EventID
    products: dict[tuple[str, str], Any]
    resolver: Any


def split_tag(tag: str) -> tuple[str, str]:
    """``"label:instance"`` -> ``(label, instance)``."""
    label, _, instance = str(tag).partition(":")
    return label, instance


class Event:
    """One event as module ``label`` sees it."""

    __slots__ = ("_principal", "_label")

    def __init__(self, principal: EventPrincipal, label: str | None = None):
        self._principal = principal
        self._label = label

    # ------------------------------------------------------------------ identity
    @property
    def index(self) -> int:
        """Position of the event in this job (0-based, after skipEvents)."""
        return self._principal.index

    @property
    def entry(self) -> int:
        """Entry of the event in its input file."""
        return self._principal.source.entry

    @property
    def id(self) -> EventID:
        return self._principal.id

    @property
    def fileName(self) -> str:
        return self._principal.source.file_name

    # ------------------------------------------------------------------ input
    def getBranch(self, name: str) -> Any:
        """This event's value of input branch *name*: a numpy array for a jagged branch
        (``Jet_pt``), a numpy scalar for a flat one (``nJet``, ``MET_pt``)."""
        return self._principal.source.branch(name)

    def getBranches(self, names: Iterable[str]) -> dict[str, Any]:
        """Several branches at once, as a dict."""
        src = self._principal.source
        return {n: src.branch(n) for n in names}

    @property
    def batch(self) -> Chunk:
        """The block of consecutive input events this event was read with (``len(batch)`` events):
        ``batch.column(name)`` gives a branch over all of them (flat ``content`` + ``offsets``),
        ``batch.cached(key, factory)`` computes a value once for the whole batch, shared by all streams.
        This event is number :attr:`batchIndex` in it."""
        return self._principal.source.batch

    @property
    def batchIndex(self) -> int:
        """Position of this event in :attr:`batch`."""
        return self._principal.source.local

    # ------------------------------------------------------------------ products
    def put(self, value: Any, instance: str = "") -> None:
        """Store a product of this module under (its label, *instance*)."""
        if self._label is None:
            raise RuntimeError("Event.put called outside a module's produce/filter")
        key = (self._label, instance)
        products = self._principal.products
        if key in products:
            raise RuntimeError(f"product '{self._label}:{instance}' was already put for this event")
        products[key] = value

    def get(self, tag: Any, instance: str | None = None) -> Any:
        """The product ``"label"`` or ``"label:instance"`` (or a ``cms.InputTag``). A producer in a
        Task runs now if it has not yet run for this event."""
        label, inst = split_tag(tag)
        if instance is not None:
            inst = instance
        key = (label, inst)
        principal = self._principal
        try:
            return principal.products[key]
        except KeyError:
            pass
        resolver = principal.resolver
        if resolver is not None and label not in principal.done and resolver.resolve(principal, label):
            if key in principal.products:
                return principal.products[key]
        raise ProductNotFoundError(self._not_found_message(label, inst))

    getByLabel = get

    def has(self, tag: Any) -> bool:
        """Whether the product is already there (runs nothing)."""
        return split_tag(tag) in self._principal.products

    def products(self) -> Mapping[tuple[str, str], Any]:
        """Every product of the event so far, by (label, instance); read-only."""
        return MappingProxyType(self._principal.products)

    def _not_found_message(self, label: str, instance: str) -> str:
        made = sorted({f"{lab}:{ins}" if ins else lab for lab, ins in self._principal.products})
        tag = f"{label}:{instance}" if instance else label
        msg = f"no product '{tag}' in {self.where()}."
        same_label = [m for m in made if m.split(":", 1)[0] == label]
        if same_label:
            msg += f" Module '{label}' made: {', '.join(same_label)}."
        elif self._principal.resolver is not None:
            msg += self._principal.resolver.explain_missing(label)
        else:
            msg += did_you_mean(label, [m.split(":", 1)[0] for m in made])
        if made and not same_label:
            msg += f" Products of this event: {', '.join(made)}."
        return msg

    def where(self) -> str:
        """A description of this event for messages: IDs, entry and file."""
        loc = f"entry {self.entry}"
        if self.fileName:
            loc += f" of {self.fileName}"
        return f"{self.id} ({loc})"

    def __repr__(self) -> str:
        return f"<Event {self.where()}>"
