"""Statistics of SONIC clients: :class:`ClientStats` (counters and times of one client, or of several merged).

The service (:mod:`framework.sonic.service`) merges the stats of its clients; it imports them from here, not from
the client."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class ClientStats:
    """Counters and times (seconds) of one client, or of several merged."""

    events: int = 0
    """Events dispatched (including batch 0)."""
    skipped: int = 0
    """Events with batch size 0: no server call."""
    requests: int = 0
    """Requests sent, retries included (ragged: one per entry)."""
    retries: int = 0
    failures: int = 0
    failovers: int = 0
    """Requests sent again to another server because theirs did not answer."""
    entries: int = 0
    """Batch entries sent."""
    acquire: float = 0.0
    """Time in the producer's acquire (filling the inputs)."""
    dispatch: float = 0.0
    """From dispatch to the server's answer (request preparation, network, queue and compute)."""
    produce: float = 0.0
    """Time in the producer's produce (reading the outputs)."""
    latencies: list[float] = field(default_factory=list, repr=False)
    """Round-trip times (with ``verbose``; the first :data:`MAX_LATENCIES`)."""

    def merge(self, other: ClientStats) -> None:
        for name in ("events", "skipped", "requests", "retries", "failures", "failovers", "entries", "acquire",
                     "dispatch", "produce"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.latencies.extend(other.latencies)

    def summary(self) -> str:
        called = max(1, self.events - self.skipped)
        n = max(1, self.events)
        text = (f"{self.events} events ({self.skipped} with batch 0), {self.requests} requests, "
                f"{self.retries} retries, {self.failures} failures; per event: acquire "
                f"{1e3 * self.acquire / n:.3f} ms, dispatch {1e3 * self.dispatch / called:.3f} ms, "
                f"produce {1e3 * self.produce / n:.3f} ms")
        if self.latencies:
            p50, p99 = np.percentile(self.latencies, [50, 99])
            text += f"; round trip p50 {1e3 * p50:.3f} ms, p99 {1e3 * p99:.3f} ms"
        return text
