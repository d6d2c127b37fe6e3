"""Statistics of SONIC: :class:`ClientStats` (counters and times of one client, or of several merged) and
:class:`ServerStats` (a model's statistics on a Triton server).

The service (:mod:`framework.sonic.service`) merges the stats of its clients; it imports them from here, not from
the client."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np


class LatencyHistogram:
    """Round-trip times in log-spaced bins (:data:`PER_DECADE` a decade from 1 µs to 1000 s): bounded memory
    whatever the job's length, mergeable, quantiles within half a bin (about 1.2%)."""

    PER_DECADE = 100
    LOW = -6.0  # log10 of the first bin's lower edge (1 µs)
    DECADES = 9

    def __init__(self) -> None:
        self.counts = np.zeros(self.PER_DECADE * self.DECADES + 2, dtype=np.int64)  # [0]: below, [-1]: above
        self.count = 0
        self.total = 0.0

    def record(self, seconds: float) -> None:
        """One round trip of ``seconds``."""
        if seconds > 0:
            i = int((math.log10(seconds) - self.LOW) * self.PER_DECADE) + 1
            i = min(max(i, 0), len(self.counts) - 1)
        else:
            i = 0
        self.counts[i] += 1
        self.count += 1
        self.total += seconds

    def merge(self, other: LatencyHistogram) -> None:
        self.counts += other.counts
        self.count += other.count
        self.total += other.total

    @property
    def mean(self) -> float:
        return self.total / self.count if self.count else 0.0

    def quantile(self, q: float) -> float:
        """The ``q`` quantile (0..1), at the geometric centre of its bin (0.0 when empty)."""
        if not self.count:
            return 0.0
        i = int(np.searchsorted(np.cumsum(self.counts), q * self.count, side="left"))
        i = min(max(i, 1), len(self.counts) - 2)
        return 10.0 ** (self.LOW + (i - 0.5) / self.PER_DECADE)

    def __repr__(self) -> str:
        return f"LatencyHistogram(count={self.count}, mean={self.mean:.6g} s)"


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
    round_trips: LatencyHistogram = field(default_factory=LatencyHistogram, repr=False)
    """Each dispatch's round trip, from dispatch to the server's answer (always kept: bounded)."""

    def record_round_trip(self, seconds: float) -> None:
        """One dispatch answered after ``seconds``."""
        self.dispatch += seconds
        self.round_trips.record(seconds)

    def merge(self, other: ClientStats) -> None:
        for name in self.__dataclass_fields__:
            if name != "round_trips":
                setattr(self, name, getattr(self, name) + getattr(other, name))
        self.round_trips.merge(other.round_trips)

    def summary(self) -> str:
        called = max(1, self.events - self.skipped)
        n = max(1, self.events)
        text = (f"{self.events} events ({self.skipped} with batch 0), {self.requests} requests, "
                f"{self.retries} retries, {self.failures} failures; per event: acquire "
                f"{1e3 * self.acquire / n:.3f} ms, dispatch {1e3 * self.dispatch / called:.3f} ms, "
                f"produce {1e3 * self.produce / n:.3f} ms")
        if self.round_trips.count:
            p50, p99 = self.round_trips.quantile(0.5), self.round_trips.quantile(0.99)
            text += f"; round trip p50 {1e3 * p50:.3f} ms, p99 {1e3 * p99:.3f} ms"
        return text


@dataclass
class ServerStats:
    """Server-side statistics of one model (Triton's ``get_inference_statistics``); times in seconds."""

    inferences: int = 0
    executions: int = 0
    success: int = 0
    failures: int = 0
    queue: float = 0.0
    compute_input: float = 0.0
    compute_infer: float = 0.0
    compute_output: float = 0.0

    def __sub__(self, other: ServerStats) -> ServerStats:
        return ServerStats(*(getattr(self, f) - getattr(other, f) for f in self.__dataclass_fields__))

    def __add__(self, other: ServerStats) -> ServerStats:
        return ServerStats(*(getattr(self, f) + getattr(other, f) for f in self.__dataclass_fields__))

    def summary(self) -> str:
        n = max(1, self.success)
        return (f"{self.inferences} inferences in {self.executions} executions ({self.success} requests ok, "
                f"{self.failures} failed); per request: queue {1e3 * self.queue / n:.3f} ms, compute input "
                f"{1e3 * self.compute_input / n:.3f} ms, infer {1e3 * self.compute_infer / n:.3f} ms, output "
                f"{1e3 * self.compute_output / n:.3f} ms")


def server_statistics(model_stats: list[dict]) -> ServerStats:
    """:class:`ServerStats` from Triton's per-model statistics (``model_stats`` as JSON: all versions)."""
    stats = ServerStats()
    for ms in model_stats:
        s = ms.get("inference_stats", {})

        def ns(key: str, s: dict = s) -> float:
            return int(s.get(key, {}).get("ns", 0)) * 1e-9

        stats.inferences += int(ms.get("inference_count", 0))
        stats.executions += int(ms.get("execution_count", 0))
        stats.success += int(s.get("success", {}).get("count", 0))
        stats.failures += int(s.get("fail", {}).get("count", 0))
        stats.queue += ns("queue")
        stats.compute_input += ns("compute_input")
        stats.compute_infer += ns("compute_infer")
        stats.compute_output += ns("compute_output")
    return stats
