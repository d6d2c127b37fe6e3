"""The observer interface the event processor calls (module phases, SONIC requests, events)."""

from __future__ import annotations


class JobObserver:
    """Receives the job's timing events; the default methods do nothing."""

    def module_phase(self, module: str, phase: str, stream: int, t0: float, t1: float) -> None:
        """A module ``phase`` (acquire / wait / produce) on ``stream`` from ``t0`` to ``t1`` (perf_counter s)."""

    def sonic_request(self, model: str, server: str, protocol: str, t0: float, t1: float, ok: bool) -> None:
        """One SONIC request's round trip."""

    def event_done(self) -> None:
        """One event committed."""

    def close(self) -> None:
        """The job ended: release what the observer holds."""
