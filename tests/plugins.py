"""Test modules, registered under names starting with ``Test``.

Configs written by tests ``import tests.plugins`` (the repository root is on ``sys.path``; CLI
subprocesses get it through ``PYTHONPATH``). Shared records (calls, acquire/produce order) live in
module-level thread-safe logs; :func:`reset` clears them (the autouse fixture of conftest does).
"""

from __future__ import annotations

import threading
import time
from collections import Counter

import numpy as np

# RootSource, EmptySource and RootOutputModule are registered without walking every plugin package
import framework.io.output  # noqa: F401
import framework.io.source  # noqa: F401
from framework.core import services
from framework.core.module import EDAnalyzer, EDFilter, EDProducer, ExternalWorkProducer, Service
from framework.core.params import Required
from framework.core.registry import register


class EventLog:
    """A thread-safe list of ``(label, event number, what, thread name, time)`` records."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: list[tuple[str, int, str, str, float]] = []

    def record(self, label: str, event: int, what: str) -> None:
        with self._lock:
            self._records.append((label, int(event), what, threading.current_thread().name, time.perf_counter()))

    def records(self, label: str | None = None) -> list[tuple[str, int, str, str, float]]:
        with self._lock:
            return [r for r in self._records if label is None or r[0] == label]

    def clear(self) -> None:
        with self._lock:
            self._records.clear()


LOG = EventLog()
"""acquire / done / produce / call records of the modules below."""

CALLS: Counter = Counter()
"""``(label, event number) -> number of calls`` of the on-demand producer and the counting analyzer."""
_calls_lock = threading.Lock()

SEEN: dict[str, list] = {}
"""Per analyzer label: what it saw, one item per event (in call order)."""

IDS: dict[str, list[tuple[int, int, int]]] = {}
"""Per counting-analyzer label: the (run, lumi, event) IDs it saw, in call order."""


def reset() -> None:
    LOG.clear()
    with _calls_lock:
        CALLS.clear()
    SEEN.clear()
    IDS.clear()


def _count(label: str, event: int) -> None:
    with _calls_lock:
        CALLS[(label, int(event))] += 1


def calls_of(label: str) -> dict[int, int]:
    """Event number -> calls of the module *label*."""
    with _calls_lock:
        return {ev: n for (lab, ev), n in CALLS.items() if lab == label}


def event_array(event_number: int, seed: int, size: int) -> np.ndarray:
    """The per-event array of :class:`TestEventNumberProducer` (1 to *size* values)."""
    rng = np.random.default_rng([int(seed), int(event_number)])
    n = 1 + int(event_number) % size
    return rng.normal(size=n).astype(np.float32)


@register("TestEventNumberProducer")
class TestEventNumberProducer(EDProducer):
    """Puts ``number`` (the event number, int64) and ``values`` (a float32 array of 1..size values)."""

    parameters = {"size": 4, "seed": 0}

    def produce(self, event) -> None:
        n = int(event.id.event)
        event.put(np.int64(n), "number")
        event.put(event_array(n, self.params.seed, self.params.size), "values")


@register("TestBranchSumProducer")
class TestBranchSumProducer(EDProducer):
    """Reads the input branch ``src`` (declared in ``inputBranches``) and puts its sum (float64)."""

    parameters = {"src": "Jet_pt"}

    def inputBranches(self):
        return [self.params.src]

    def produce(self, event) -> None:
        event.put(np.float64(np.sum(np.asarray(event.getBranch(self.params.src), dtype=np.float64))))


@register("TestTimerExternalProducer")
class TestTimerExternalProducer(ExternalWorkProducer):
    """ExternalWork on a ``threading.Timer``: a seeded delay per event (0..maxDelay s), after which
    the 'result' (event number * 10) is ready and ``holder.doneWaiting()`` is called. Records
    acquire, done and produce in :data:`LOG`."""

    parameters = {"maxDelay": 0.01, "seed": 7}

    def __init__(self, label, params, globalCache=None):
        super().__init__(label, params, globalCache)
        self._results: dict[int, int] = {}

    def acquire(self, event, holder) -> None:
        n = int(event.id.event)
        LOG.record(self.label, n, "acquire")
        delay = float(np.random.default_rng([self.params.seed, n]).uniform(0.0, self.params.maxDelay))

        def work() -> None:
            self._results[n] = n * 10
            LOG.record(self.label, n, "done")
            holder.doneWaiting()

        timer = threading.Timer(delay, work)
        timer.daemon = True
        timer.start()

    def produce(self, event) -> None:
        n = int(event.id.event)
        LOG.record(self.label, n, "produce")
        event.put(np.int64(self._results.pop(n)))


class ExternalWorkFailure(RuntimeError):
    pass


@register("TestFailingExternalProducer")
class TestFailingExternalProducer(ExternalWorkProducer):
    """Its external work (on a timer) fails for event number ``failOnEvent`` (every event if -1):
    the exception is given to ``holder.doneWaiting``."""

    parameters = {"failOnEvent": -1, "delay": 0.002}

    def acquire(self, event, holder) -> None:
        n = int(event.id.event)
        LOG.record(self.label, n, "acquire")
        fail = self.params.failOnEvent in (-1, n)

        def work() -> None:
            if fail:
                holder.doneWaiting(ExternalWorkFailure(f"remote inference server refused event {n}"))
            else:
                holder.doneWaiting()

        timer = threading.Timer(self.params.delay, work)
        timer.daemon = True
        timer.start()

    def produce(self, event) -> None:
        LOG.record(self.label, int(event.id.event), "produce")
        event.put(np.int64(1))


@register("TestEvenFilter")
class TestEvenFilter(EDFilter):
    """Passes events with an even event number."""

    parameters = {}

    def filter(self, event) -> bool:
        return int(event.id.event) % 2 == 0


@register("TestCountingAnalyzer")
class TestCountingAnalyzer(EDAnalyzer):
    """Counts its calls per event and records the event numbers (in :data:`SEEN`) and IDs (in
    :data:`IDS`) it sees."""

    parameters = {}

    def analyze(self, event) -> None:
        _count(self.label, event.id.event)
        SEEN.setdefault(self.label, []).append(int(event.id.event))
        IDS.setdefault(self.label, []).append(tuple(int(x) for x in event.id))


@register("TestOnDemandProducer")
class TestOnDemandProducer(EDProducer):
    """Meant for a Task: counts its calls per event; puts the event number * 2."""

    parameters = {}

    def produce(self, event) -> None:
        _count(self.label, event.id.event)
        event.put(np.int64(int(event.id.event) * 2))


@register("TestTagConsumer")
class TestTagConsumer(EDProducer):
    """Reads the product ``src`` (a ``cms.InputTag``, so the framework knows the dependency) and
    puts its value + 1."""

    parameters = {"src": ""}

    def produce(self, event) -> None:
        event.put(np.int64(event.get(self.params.src) + 1))


@register("TestStringConsumer")
class TestStringConsumer(EDProducer):
    """Reads the product named by the plain string ``product`` (a dependency the framework only
    learns of when ``event.get`` asks) and puts its value + 1."""

    parameters = {"product": ""}

    def produce(self, event) -> None:
        event.put(np.int64(event.get(self.params.product) + 1))


class ModuleFailure(ValueError):
    pass


@register("TestRaisingProducer")
class TestRaisingProducer(EDProducer):
    """Raises in ``produce`` for event number ``failOnEvent`` (every event if -1)."""

    parameters = {"failOnEvent": -1}

    def produce(self, event) -> None:
        n = int(event.id.event)
        if self.params.failOnEvent in (-1, n):
            raise ModuleFailure(f"deliberate failure at event {n}")
        event.put(np.int64(n))


@register("TestBranchSpy")
class TestBranchSpy(EDAnalyzer):
    """Records, per event, the input columns already read for its chunk and the chunk's entry range
    (in :data:`SEEN`): what the source read ahead, not what this module asked for (it asks nothing)."""

    parameters = {}

    def analyze(self, event) -> None:
        chunk = event.batch
        SEEN.setdefault(self.label, []).append(
            (int(event.id.event), chunk.loaded, (chunk.file_name, chunk.start, chunk.stop))
        )


@register("TestRequiredParamProducer")
class TestRequiredParamProducer(EDProducer):
    """Has a required parameter ``src`` (str) and typed ones, to test the configuration checks."""

    parameters = {"src": Required(str, "the product to read"), "threshold": 1.5, "count": 3, "enabled": True,
                  "nested": {"depth": 2}}

    def produce(self, event) -> None:
        event.put(np.int64(0))


@register("TestRecordingService")
class TestRecordingService(Service):
    """Records its beginJob and endJob in :data:`LOG` (label = the service name, event 0)."""

    parameters = {"verbose": False}

    def beginJob(self) -> None:
        LOG.record(self.label, 0, "beginJob")

    def endJob(self) -> None:
        LOG.record(self.label, 0, "endJob")


@register("TestServiceUser")
class TestServiceUser(EDProducer):
    """Finds ``TestRecordingService`` through the service registry and puts 1 if it is there."""

    parameters = {}

    def produce(self, event) -> None:
        event.put(np.int64(services.get("TestRecordingService", None) is not None))
