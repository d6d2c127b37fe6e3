"""Base classes of modules: producers, ExternalWork producers, filters, analyzers, outputs,
sources and services.

A module type declares the parameters it accepts in ``parameters`` (defaults, or
:class:`~framework.core.params.Required`) and is registered with
:func:`~framework.core.registry.register`.

Producers and filters are *stream modules*: the framework makes one instance per stream, so an
instance sees one event at a time. Data that all instances share (a loaded model) is made once per
module label by ``initializeGlobalCache`` and available as ``self.globalCache``. Analyzers and
output modules have a single instance, called one event at a time.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, ClassVar

from .params import Params

if TYPE_CHECKING:
    from .event import Event
    from .runlumi import LuminosityBlock, Run


class Module:
    """Common base: label, checked parameters, lifecycle hooks."""

    kind: ClassVar[str] = "module"
    typeName: ClassVar[str] = ""
    parameters: ClassVar[dict[str, Any]] = {}

    def __init__(self, label: str, params: Params, globalCache: Any = None):
        self.label = label
        self.params = params
        self.globalCache = globalCache
        self.timeParts: dict[str, float] = {}

    @contextmanager
    def timed(self, part: str) -> Iterator[None]:
        """Accumulate the time of a block under *part* (shown per module in the timing report,
        e.g. "features" vs "inference")."""
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.timeParts[part] = self.timeParts.get(part, 0.0) + time.perf_counter() - t0

    @classmethod
    def initializeGlobalCache(cls, params: Params) -> Any:
        """Made once per module label and shared by its stream instances (e.g. an ONNX session)."""
        return None

    def inputBranches(self) -> Iterable[str]:
        """Input-file branches this module reads (read ahead in chunks; others are read on demand)."""
        return ()

    def branchNote(self, branch: str) -> str:
        """What this module reads the input branch *branch* for, and how to do without it: added to the
        error when an input file lacks it (e.g. ``"monitoring element 'X': puppiMET=0 leaves it out"``)."""
        return ""

    def beginJob(self) -> None:
        """Called once before the first event."""

    def endJob(self) -> None:
        """Called once after the last event (also after a failure)."""

    # global transitions (once per module label, on its first instance; see framework.core.runlumi)
    def beginRun(self, run: Run) -> None:
        """Before the first event of a run."""

    def beginLuminosityBlock(self, lumi: LuminosityBlock) -> None:
        """Before the first event of a luminosity block."""

    def endLuminosityBlock(self, lumi: LuminosityBlock) -> None:
        """After the last event of a luminosity block: may ``lumi.put`` lumi products."""

    def endRun(self, run: Run) -> None:
        """After the last luminosity block of a run: may ``run.put`` run products."""


class EDProducer(Module):
    """Makes products: ``produce(event)`` reads with ``event.get`` / ``event.getBranch`` and writes
    with ``event.put(value, instance)``."""

    kind = "producer"

    def produce(self, event: Event) -> None:
        raise NotImplementedError


class WaitingTaskHolder:
    """Handed to ``acquire``: call :meth:`doneWaiting` (from any thread) when the external work
    is finished, with the exception if it failed. The framework then schedules ``produce``."""

    __slots__ = ("_lock", "_done", "_exception", "_callbacks", "_event", "t_done")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._done = False
        self._exception: BaseException | None = None
        self._callbacks: list[Callable[[], None]] = []
        self._event: threading.Event | None = None
        self.t_done = 0.0

    def doneWaiting(self, exception: BaseException | None = None) -> None:
        import time

        with self._lock:
            if self._done:
                return
            self._done = True
            self._exception = exception
            self.t_done = time.perf_counter()
            callbacks, self._callbacks = self._callbacks, []
            ev = self._event
        if ev is not None:
            ev.set()
        for cb in callbacks:
            cb()

    @property
    def done(self) -> bool:
        return self._done

    @property
    def exception(self) -> BaseException | None:
        return self._exception

    def add_callback(self, cb: Callable[[], None]) -> bool:
        """Register *cb* to run when done; False (and *cb* not registered) if already done."""
        with self._lock:
            if self._done:
                return False
            self._callbacks.append(cb)
            return True

    def wait(self, timeout: float | None = None) -> bool:
        """Block until done (used only where a thread has nothing else to do)."""
        with self._lock:
            if self._done:
                return True
            if self._event is None:
                self._event = threading.Event()
            ev = self._event
        return ev.wait(timeout)


class ExternalWorkProducer(EDProducer):
    """CMSSW's ``edm::ExternalWork``: ``acquire(event, holder)`` starts asynchronous work and returns
    at once; ``produce(event)`` runs after ``holder.doneWaiting()``. While the work runs, the thread
    serves other events. An exception given to ``doneWaiting`` is raised for this module and event.
    """

    def acquire(self, event: Event, holder: WaitingTaskHolder) -> None:
        raise NotImplementedError

    # The framework calls these two; a base class (SonicEDProducer) may route them to methods of
    # another signature, as CMSSW's SonicEDProducer does with acquire(event, input).
    def externalAcquire(self, event: Event, holder: WaitingTaskHolder) -> None:
        self.acquire(event, holder)

    def externalProduce(self, event: Event) -> None:
        self.produce(event)


class EDFilter(Module):
    """``filter(event) -> bool``: False stops the Path for this event. A filter may also put products."""

    kind = "filter"

    def filter(self, event: Event) -> bool:
        raise NotImplementedError


class EDAnalyzer(Module):
    """Reads events, makes no products (single instance; called one event at a time)."""

    kind = "analyzer"

    def analyze(self, event: Event) -> None:
        raise NotImplementedError


class OutputModule(Module):
    """Writes events, in input order. ``write(event)`` is called for each selected event;
    ``endJob`` completes the file, ``abort`` discards it."""

    kind = "output"

    def selectBranches(self, available: list[str]) -> list[str]:
        """Given the input branches, the ones to read for pass-through."""
        return []

    def consumesLabels(self, labels: list[str]) -> list[str]:
        """Of the on-demand producers *labels*, those whose products this output writes."""
        return []

    def selectedPaths(self) -> list[str]:
        """Paths whose acceptance selects events for this output (empty: all events)."""
        return []

    def write(self, event: Event) -> None:
        raise NotImplementedError

    def writeLuminosityBlock(self, lumi: LuminosityBlock) -> None:
        """A luminosity block ended (after its events were written): write its products."""

    def writeRun(self, run: Run) -> None:
        """A run ended (after its luminosity blocks): write its products."""

    def abort(self) -> None:
        """The job failed: leave no partial output behind."""


class Service(Module):
    """A job-wide service (``cms.Service``). Created before the modules, so that modules can find
    it with ``framework.core.services.get(name)``; ``beginJob`` runs before the modules' and
    ``endJob`` after theirs, also when the job fails."""

    kind = "service"

    def summary(self) -> list[str]:
        """Lines for the job summary (printed after the TrigReport), asked before ``endJob``."""
        return []


class Source(Module):
    """Gives events in order; see :mod:`framework.io.source`."""

    kind = "source"
