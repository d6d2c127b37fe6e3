"""The routing layer of the SONIC client: which server each try of a request goes to, and failover.

With one server (or outside a job) every try goes to the client's server. With several servers of a model, or
the local fallback enabled, each try asks the :class:`~framework.sonic.service.TritonService` for its best live
server (:meth:`Router.route`), hands the try back when it ended (:meth:`Router.release`: the service's health
bookkeeping), and a request whose server did not answer is sent at once to another live server
(:data:`MAX_FAILOVERS` times at most). :class:`Router` is a part of :class:`~framework.sonic.client.TritonClient`
(a mixin); one connection (:class:`~framework.sonic.transport.Transport`) is kept per server.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any

from ..monitoring import job as monitoring_job
from .request import Request
from .stats import ClientStats
from .transport import Transport, is_recoverable, make_transport, message_of, shm_lost, status_of

log = logging.getLogger("framework.sonic")

MAX_FAILOVERS = 8
"""Servers a request is sent to at most after its own did not answer (besides the allowedTries retries)."""


@dataclass
class Route:
    """Where one try of a request goes: the server's name in the service, its connection, and whether the
    service counts the try as outstanding there (hand it back with :meth:`TritonClient.release`)."""

    server: str
    transport: Any
    counted: bool = False


def server_down(exc: BaseException) -> bool:
    """The server did not answer (unreachable, connection refused or reset): another server may. A timeout is
    not: the server may just be busy."""
    return is_recoverable(exc) and status_of(exc) != "DEADLINE_EXCEEDED" and not shm_lost(exc)


class Router:
    """Choosing the server of each try, and failover (part of ``TritonClient``).

    What it uses of the client (set by ``TritonClient.__init__`` / ``connect``) is declared here."""

    modelName: str
    serverName: str
    serverAddress: str
    compression: str
    v2only: bool
    stats: ClientStats
    _service: Any
    _route: list[str]
    _transport: Transport | None
    _transports: dict[str, Transport]
    _transports_lock: threading.Lock
    _stats_lock: threading.Lock
    _shm: Any  # a framework.sonic.shm.ShmPair, or None

    def _routed(self) -> bool:
        return self._service is not None and (len(self._route) > 1 or bool(self._service.fallbackParams.enable))

    def route(self, avoid: set[str] | frozenset[str] = frozenset(), last: str = "") -> Route:
        """The server for the next try of a request (the service's best live server of the model not in *avoid*;
        the one server without a service) and its connection. With several servers, hand it back with
        :meth:`release` when the try ended."""
        if not self._routed():
            return Route(self.serverName, self._transport)
        name = self._service.pick(self.modelName, avoid)
        counted = name is not None
        name = name or (last or self.serverName)  # none live: the last one (its error is reported)
        return Route(name, self._transport_for(name), counted)

    def release(self, route: Route, error: BaseException | None) -> None:
        """A try sent along *route* ended (with *error*, or None): the service's health bookkeeping."""
        if route.counted:
            route.counted = False
            down = error is not None and self._unresponsive(error)
            if down and self._shm is not None:  # it may come back without our regions (registered again then),
                self._shm.forget(route.server)  # and is not asked to unregister them at the end of the job
            self._service.requestDone(route.server, error, server_down=down)

    def _unresponsive(self, exc: BaseException) -> bool:
        """The server did not answer (down, reset) or, where another server can take the request, not in time."""
        return server_down(exc) or (status_of(exc) == "DEADLINE_EXCEEDED" and self._routed())

    def _assign(self, req: Request) -> None:
        """Choose the server of this try and its connection."""
        route = self.route(req.avoid, req.server)
        if route.server != req.server:
            req.built = None  # built for another server's transport
        req.server, req.transport, req.counted = route.server, route.transport, route.counted

    def _transport_for(self, server: str) -> Transport:
        transport = self._transports.get(server)
        if transport is None:
            with self._transports_lock:
                transport = self._transports.get(server)
                if transport is None:
                    transport = self._transports[server] = make_transport(self._service.endpoint(server),
                                                                          self.compression)
                    self._v2_json(transport)
        return transport

    def _v2_json(self, transport: Transport | None) -> None:
        """KServe-V2-only servers (MLServer) refuse Triton's binary tensors over HTTP (a 400, or a 500 when the
        bytes are not UTF-8): JSON tensors from the first request on, on every server of this client."""
        if transport is not None and self.v2only and transport.protocol == "http":
            transport.json = True

    def _done(self, req: Request, error: BaseException | None) -> None:
        if req.counted:
            req.counted = False
            self.release(Route(req.server, req.transport, True), error)

    def _fail_over(self, req: Request, exc: BaseException) -> bool:
        """The server did not answer (or not in time): send the request at once to another live server (or the
        fallback)."""
        if not self._routed() or not self._unresponsive(exc) or req.failovers >= MAX_FAILOVERS:
            return False
        req.avoid.add(req.server)
        if not self._service.canServe(self.modelName, req.avoid):
            return False
        req.failovers += 1
        self._record_failover()
        name, address = self._server_of(req)
        monitoring_job.sonic_retry(self.modelName, address, "failover")
        log.warning("%s: server '%s' (%s) did not answer%s (%s); sending the request to another server",
                    self._describe(), name, address, self._where_suffix(), message_of(exc))
        return True

    def _server_of(self, req: Request | None = None) -> tuple[str, str]:
        """Name and address of the server of *req*'s last try (the client's server without one)."""
        name = (req.server if req is not None else "") or self.serverName
        if name != self.serverName and self._service is not None:
            try:
                return name, self._service.endpoint(name).address
            except KeyError:
                return name, "?"
        return name, self.serverAddress

    def _record_failover(self) -> None:
        """One request sent again to another server (thread-safe)."""
        with self._stats_lock:
            self.stats.failovers += 1


__all__ = ["MAX_FAILOVERS", "Route", "Router", "server_down"]
