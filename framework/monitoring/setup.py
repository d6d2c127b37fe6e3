"""Build the job's observer from its options (``metricsPort=``, ``metricsAddress=``, ``traceFile=``)."""

from __future__ import annotations

from typing import Any

from .job import JobObserver


class ObserverGroup(JobObserver):
    """Several observers as one (e.g. metricsPort= and traceFile= together)."""

    def __init__(self, observers: list[JobObserver]):
        self.observers = observers

    def module_phase(self, *args: Any) -> None:
        for o in self.observers:
            o.module_phase(*args)

    def sonic_request(self, *args: Any) -> None:
        for o in self.observers:
            o.sonic_request(*args)

    def sonic_retry(self, *args: Any) -> None:
        for o in self.observers:
            o.sonic_retry(*args)

    def server_state(self, *args: Any) -> None:
        for o in self.observers:
            o.server_state(*args)

    def event_done(self) -> None:
        for o in self.observers:
            o.event_done()

    def close(self) -> None:
        for o in self.observers:
            o.close()


def job_observer(opts: Any) -> JobObserver | None:
    """The observer the options ask for, or None (no hook cost) when none is."""
    observers: list[JobObserver] = []
    if str(opts.traceFile or ""):
        from .trace import TraceObserver

        observers.append(TraceObserver(str(opts.traceFile)))
    port = int(opts.metricsPort or 0)
    if port:
        from .metrics import MetricsObserver

        observers.append(MetricsObserver(port, str(opts.metricsAddress or "127.0.0.1")))
    if not observers:
        return None
    return observers[0] if len(observers) == 1 else ObserverGroup(observers)
