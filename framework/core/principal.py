"""``EventPrincipal``: the framework's state of one event in flight (CMSSW's ``edm::EventPrincipal``).

The processor owns it: the event's place in the input, its products, which modules already ran, and
the filter and path results. Modules never see it; they get an :class:`~framework.core.event.Event`,
a view of the principal for one module, which puts products under that module's label and asks the
principal's :class:`ProductResolver` to run an on-demand producer when a product is not there yet.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from .event import Event, EventID

if TYPE_CHECKING:
    from ..io.chunk import SourceEvent


class ProductResolver(Protocol):
    """What an event needs from whoever schedules its modules (the processor)."""

    def resolve(self, principal: EventPrincipal, label: str) -> bool:
        """Run module *label* for this event now if it runs on demand and has not run; False if it cannot."""

    def explain_missing(self, label: str) -> str:
        """Why module *label* made no product (for the error message)."""


class EventPrincipal:
    """One event in flight. ``index``: its position in this job (0-based, after skipEvents);
    ``source``: where its input lives (a chunk of the input and the entry in it)."""

    __slots__ = ("index", "stream", "source", "id", "products", "done", "filterResults", "pathResults", "resolver")

    def __init__(self, index: int, source: SourceEvent, resolver: ProductResolver | None = None, stream: int = 0):
        self.index = index
        self.stream = stream
        self.source = source
        self.id = EventID(*source.event_id())
        self.products: dict[tuple[str, str], Any] = {}
        self.done: set[str] = set()
        self.filterResults: dict[str, bool] = {}
        self.pathResults: dict[str, bool] = {}
        self.resolver = resolver

    def view(self, label: str | None = None) -> Event:
        """The :class:`Event` module *label* sees (``None``: a read-only view that cannot put)."""
        return Event(self, label)
