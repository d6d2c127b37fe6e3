"""``Event``: what a module sees of one event — input branches and products."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, NamedTuple

from ..exceptions import ProductNotFoundError, did_you_mean

if TYPE_CHECKING:
    from .processor import EventProcessor


class EventID(NamedTuple):
    run: int
    luminosityBlock: int
    event: int

    def __str__(self) -> str:
        return f"run {self.run}, lumi {self.luminosityBlock}, event {self.event}"


def split_tag(tag: str) -> tuple[str, str]:
    """``"label:instance"`` -> ``(label, instance)``."""
    label, _, instance = str(tag).partition(":")
    return label, instance


class Event:
    """One event in flight. ``index`` is its position in this job (0-based, after skipEvents),
    ``entry`` its entry in its input file."""

    __slots__ = (
        "index", "entry", "id", "fileName", "_src", "_products", "_current", "_processor", "_stream",
        "_done", "filterResults", "pathResults",
    )

    def __init__(self, index: int, src: Any, processor: EventProcessor | None = None, stream: int = 0):
        self.index = index
        self._src = src
        self.entry = src.entry
        self.id = EventID(*src.event_id())
        self.fileName = src.file_name
        self._products: dict[tuple[str, str], Any] = {}
        self._current: str | None = None
        self._processor = processor
        self._stream = stream
        self._done: set[str] = set()
        self.filterResults: dict[str, bool] = {}
        self.pathResults: dict[str, bool] = {}

    # ------------------------------------------------------------------ input
    def getBranch(self, name: str) -> Any:
        """This event's value of input branch *name*: a numpy array for a jagged branch
        (``Jet_pt``), a numpy scalar for a flat one (``nJet``, ``MET_pt``)."""
        return self._src.branch(name)

    def getBranches(self, names: Iterable[str]) -> dict[str, Any]:
        """Several branches at once, as a dict."""
        return {n: self._src.branch(n) for n in names}

    # ------------------------------------------------------------------ products
    def put(self, value: Any, instance: str = "") -> None:
        """Store a product of the running module under (its label, *instance*)."""
        if self._current is None:
            raise RuntimeError("Event.put called outside a module's produce/filter")
        key = (self._current, instance)
        if key in self._products:
            raise RuntimeError(f"product '{self._current}:{instance}' was already put for this event")
        self._products[key] = value

    def get(self, tag: str, instance: str | None = None) -> Any:
        """The product ``"label"`` or ``"label:instance"``. A producer in a Task runs now if it has
        not yet run for this event."""
        label, inst = split_tag(tag)
        if instance is not None:
            inst = instance
        key = (label, inst)
        try:
            return self._products[key]
        except KeyError:
            pass
        if self._processor is not None and label not in self._done and self._processor.can_run_on_demand(label):
            current = self._current
            try:
                self._processor.run_on_demand(self, label)
            finally:
                self._current = current
            if key in self._products:
                return self._products[key]
        raise ProductNotFoundError(self._not_found_message(label, inst))

    getByLabel = get

    def has(self, tag: str) -> bool:
        return split_tag(tag) in self._products

    def products(self) -> dict[tuple[str, str], Any]:
        return self._products

    def _not_found_message(self, label: str, instance: str) -> str:
        made = sorted({f"{lab}:{ins}" if ins else lab for lab, ins in self._products})
        tag = f"{label}:{instance}" if instance else label
        msg = f"no product '{tag}' in {self.where()}."
        same_label = [m for m in made if m.split(":", 1)[0] == label]
        if same_label:
            msg += f" Module '{label}' made: {', '.join(same_label)}."
        elif self._processor is not None:
            msg += self._processor.explain_missing(label)
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
