"""Prometheus ``/metrics`` of a running job (``metricsPort=``), on a private registry."""

from __future__ import annotations

import errno
import logging
from typing import Any

from ..exceptions import ConfigurationError
from .job import JobObserver

log = logging.getLogger("framework")


class MetricsObserver(JobObserver):
    """Serves ``framework_events_processed``, ``framework_module_seconds``, ``framework_sonic_request_seconds``
    (and failures), ``framework_sonic_retries`` / ``framework_sonic_failovers``, ``framework_sonic_server_up`` and
    ``framework_sonic_server_downs`` on ``http://address:port/metrics`` while the job runs."""

    def __init__(self, port: int, address: str = "127.0.0.1"):
        import prometheus_client as pc  # optional: imported only when metricsPort= is given

        self.registry = pc.CollectorRegistry()
        self.events = pc.Counter("framework_events_processed", "events processed", registry=self.registry)
        self.module_seconds = pc.Histogram("framework_module_seconds", "module time per call and phase",
                                           ["module", "phase"], registry=self.registry)
        self.sonic_seconds = pc.Histogram("framework_sonic_request_seconds", "SONIC request round trip",
                                          ["model", "server", "protocol"], registry=self.registry)
        self.sonic_failed = pc.Counter("framework_sonic_request_failures", "SONIC requests that failed",
                                       ["model", "server", "protocol"], registry=self.registry)
        self.retries = pc.Counter("framework_sonic_retries", "SONIC requests sent again on their route (allowedTries)",
                                  ["model", "server"], registry=self.registry)
        self.failovers = pc.Counter("framework_sonic_failovers", "SONIC requests moved to another server",
                                    ["model", "server"], registry=self.registry)
        self.server_up = pc.Gauge("framework_sonic_server_up", "1 while a SONIC server answers, 0 while it is down",
                                  ["server", "address"], registry=self.registry)
        self.server_downs = pc.Counter("framework_sonic_server_downs", "times a SONIC server was seen going down",
                                       ["server", "address"], registry=self.registry)
        self._module_children: dict[tuple[str, str], Any] = {}
        self._sonic_children: dict[tuple[str, str, str], Any] = {}
        try:
            self._server: Any = pc.start_http_server(port, addr=address, registry=self.registry)
        except OSError as e:
            why = "is in use" if e.errno == errno.EADDRINUSE else f"cannot be opened ({e.strerror})"
            raise ConfigurationError(
                f"metricsPort={port}: {address}:{port} {why}; give a free port (or metricsPort=0 for no metrics)."
            ) from None
        self.url = f"http://{address if ':' not in address else '[' + address + ']'}:{port}/metrics"
        log.info("job metrics at %s", self.url)

    def module_phase(self, module: str, phase: str, stream: int, t0: float, t1: float) -> None:
        key = (module, phase)
        child = self._module_children.get(key)
        if child is None:  # labels() validates and locks: once per series, not per call
            child = self._module_children[key] = self.module_seconds.labels(module, phase)
        child.observe(max(0.0, t1 - t0))

    def sonic_request(self, model: str, server: str, protocol: str, t0: float, t1: float, ok: bool) -> None:
        key = (model, server, protocol)
        child = self._sonic_children.get(key)
        if child is None:
            child = self._sonic_children[key] = self.sonic_seconds.labels(model, server, protocol)
        child.observe(max(0.0, t1 - t0))
        if not ok:
            self.sonic_failed.labels(model, server, protocol).inc()

    def sonic_retry(self, model: str, server: str, kind: str) -> None:
        (self.failovers if kind == "failover" else self.retries).labels(model, server).inc()

    def server_state(self, server: str, address: str, up: bool) -> None:
        self.server_up.labels(server, address).set(1 if up else 0)
        if not up:
            self.server_downs.labels(server, address).inc()

    def event_done(self) -> None:
        self.events.inc()

    def close(self) -> None:
        server = self._server[0] if isinstance(self._server, tuple) else None
        if server is not None:
            server.shutdown()
            server.server_close()
