"""The observer interface the event processor calls (module phases, SONIC requests, events)."""

from __future__ import annotations


class JobObserver:
    """Receives the job's timing events; the default methods do nothing."""

    def module_phase(self, module: str, phase: str, stream: int, t0: float, t1: float) -> None:
        """A module ``phase`` (acquire / wait / produce) on ``stream`` from ``t0`` to ``t1`` (perf_counter s)."""

    def sonic_request(self, model: str, server: str, protocol: str, t0: float, t1: float, ok: bool) -> None:
        """One SONIC request's round trip."""

    def sonic_retry(self, model: str, server: str, kind: str) -> None:
        """A SONIC request of ``model`` to ``server`` failed and is sent again: ``kind`` is ``retry`` (the same
        route, one of allowedTries) or ``failover`` (another server)."""

    def server_state(self, server: str, address: str, up: bool) -> None:
        """A SONIC server was seen going down (``up`` False) or answering again / started (``up`` True)."""

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


def sonic_retry(model: str, server: str, kind: str) -> None:
    """Report a retry or failover (``kind``) of a request of ``model`` to ``server`` to the active observer."""
    obs = _active
    if obs is not None:
        obs.sonic_retry(model, server, kind)


def server_state(server: str, address: str, up: bool) -> None:
    """Report a server going down or coming up to the active observer, if any."""
    obs = _active
    if obs is not None:
        obs.server_state(server, address, up)
