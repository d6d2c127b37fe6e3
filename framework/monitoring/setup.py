"""Build the job's observer from its options (``metricsPort=``, ``metricsAddress=``)."""

from __future__ import annotations

from typing import Any

from .job import JobObserver


def job_observer(opts: Any) -> JobObserver | None:
    """The observer the options ask for, or None (no hook cost) when none is."""
    port = int(opts.metricsPort or 0)
    if port == 0:
        return None
    from .metrics import MetricsObserver

    return MetricsObserver(port, str(opts.metricsAddress or "127.0.0.1"))
