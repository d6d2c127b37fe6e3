"""Per-request timing of each SONIC model, as CMSSW's verbose SonicTriton splits it, kept for every job: the
client's round trip (p50 / p99 / mean, from :class:`~framework.sonic.stats.LatencyHistogram`) and the server's
queue / compute input / infer / compute output per request (Triton's statistics read at beginJob and at the end,
as CMSSW does); the rest of the round trip (network, serialisation, the client's own work) is the difference.

The server's statistics count every client of the server: where other jobs share it, its parts are theirs too
(the report says how many requests the server counted beside the job's own).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from .stats import ClientStats, ServerStats

__all__ = ["ModelTiming", "model_timing", "write_timing_file"]


@dataclass
class ModelTiming:
    """One model's timing of this job; times in milliseconds, per request."""

    model: str
    servers: list[str]
    modules: list[str]
    requests: int
    """Requests the job's clients sent (retries included)."""
    round_trips: int
    """Dispatches timed (one per event, or per merged request); the round-trip figures are over these."""
    round_trip_p50_ms: float
    round_trip_p99_ms: float
    round_trip_mean_ms: float
    server_requests: int | None = None
    """Requests the server(s) counted as successful for this model in the job's time (None: no statistics, e.g.
    MLServer)."""
    server_executions: int | None = None
    queue_ms: float | None = None
    compute_input_ms: float | None = None
    compute_infer_ms: float | None = None
    compute_output_ms: float | None = None
    rest_ms: float | None = None
    """Mean round trip minus the server's time per request: network, serialisation, the client's own work."""

    def summary(self) -> str:
        """The SonicReport line."""
        text = (f"SonicReport: model '{self.model}': {self.round_trips} round trips ({self.requests} requests), "
                f"p50 {self.round_trip_p50_ms:.3f} ms, p99 {self.round_trip_p99_ms:.3f} ms, mean "
                f"{self.round_trip_mean_ms:.3f} ms")
        if self.queue_ms is None:
            return text + "; no server statistics"
        return (text + f"; server per request: queue {self.queue_ms:.3f} ms, compute input "
                f"{self.compute_input_ms:.3f} ms, infer {self.compute_infer_ms:.3f} ms, compute output "
                f"{self.compute_output_ms:.3f} ms; rest (network, serialisation) {self.rest_ms:.3f} ms")


def model_timing(model: str, servers: list[str], modules: list[str], client: ClientStats,
                 server: ServerStats | None) -> ModelTiming:
    """The timing of *model* from its clients' merged stats and the server(s)' statistics over the job."""
    rt = client.round_trips
    timing = ModelTiming(model, servers, modules, client.requests, rt.count, 1e3 * rt.quantile(0.5),
                         1e3 * rt.quantile(0.99), 1e3 * rt.mean)
    if server is not None and server.success > 0:
        n = server.success
        timing.server_requests = n
        timing.server_executions = server.executions
        timing.queue_ms = 1e3 * server.queue / n
        timing.compute_input_ms = 1e3 * server.compute_input / n
        timing.compute_infer_ms = 1e3 * server.compute_infer / n
        timing.compute_output_ms = 1e3 * server.compute_output / n
        # a round trip may hold several requests (ragged batches): the server's time per round trip is its time
        # per request times the requests per round trip
        per_trip = client.requests / rt.count if rt.count else 1.0
        server_ms = timing.queue_ms + timing.compute_input_ms + timing.compute_infer_ms + timing.compute_output_ms
        timing.rest_ms = timing.round_trip_mean_ms - per_trip * server_ms
    return timing


def write_timing_file(path: str | Path, timings: list[ModelTiming], job: dict) -> None:
    """``timingFile=``: the timings as JSON, written atomically (complete or absent)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    doc = {"job": job, "models": {t.model: asdict(t) for t in timings}}
    try:
        with open(tmp, "w") as f:
            json.dump(doc, f, indent=1)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
