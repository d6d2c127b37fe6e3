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


_active: JobObserver | None = None


def set_active(observer: JobObserver | None) -> None:
    """Make ``observer`` the one SONIC clients report their requests to (None: no reporting)."""
    global _active
    _active = observer


def sonic_request(client: object, elapsed: float, ok: bool) -> None:
    """Report one SONIC round trip of ``client`` (a TritonClient) to the active observer, if any."""
    obs = _active
    if obs is not None:
        import time

        t1 = time.perf_counter()
        obs.sonic_request(str(getattr(client, "modelName", "")), str(getattr(client, "serverAddress", "")),
                          str(getattr(client, "protocol", "")), t1 - elapsed, t1, ok)
