"""``TritonClient``: CMSSW's SonicTriton client for one module (one instance per stream).

It registers its model with the :class:`~framework.sonic.service.TritonService` when constructed, connects in
``beginJob`` (reads the model's metadata and configuration from the server and checks them against the local
``config.pbtxt``), and per event turns the inputs a producer filled (:mod:`framework.sonic.data`) into
requests, sent in one of three modes:

``Sync``
    the request runs in the calling thread; ``acquire`` returns when the answer is there.
``Async``
    the request runs on the process's one SONIC event loop (:class:`~framework.sonic.transport.EventLoopThread`);
    its completion callback completes the ExternalWork (``holder.doneWaiting``), and the framework thread
    serves other events meanwhile. No thread is started per request.
``PseudoAsync``
    a blocking request on a thread of a small fixed pool; the framework thread is free as in ``Async``.

The client owns the request: the data objects hold one tensor each, the client derives and checks the batch
size, lays out shared memory, and hands the request to its :class:`~framework.sonic.transport.Transport`
(``grpc`` or ``http``, chosen per server). A server that speaks only the core KServe V2 protocol (no model
configuration endpoint, e.g. MLServer) is recognised when connecting: shapes, dtypes and batching then come from
the model metadata (and the local ``config.pbtxt`` when given), without shared memory or statistics.

A recoverable error (unavailable, deadline exceeded, a reset connection) is retried until ``allowedTries``
attempts in total were made, ``retryDelay`` seconds after the first failure and twice as long after each further
one; then the module fails with a message naming the model, the server and the event. System shared memory
carries inputs (and outputs of known shape) when the server is on this machine and ``useSharedMemory`` is set.
At ``endJob`` the client hands its statistics to the service.

The client is layered as CMSSW's SonicCore/SonicTriton: this file keeps the connection, the model description
and the per-event interface; the parameters and their constraints are in :mod:`framework.sonic.parameters`,
reading and checking the model's description in :mod:`framework.sonic.model`, building requests and collecting
answers in :mod:`framework.sonic.request`, choosing servers and failover in
:mod:`framework.sonic.routing`, modes and retries in :mod:`framework.sonic.dispatch`, the statistics in
:mod:`framework.sonic.stats` and the connections in :mod:`framework.sonic.transport`.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..core.params import Params, check_constraints, check_parameters
from ..exceptions import ConfigurationError
from ..server.endpoints import check_protocol
from .data import (
    RAGGED,
    RECTANGULAR,
    TensorInfo,
    TritonInputs,
    TritonOutputs,
)
from .dispatch import MAX_RETRY_DELAY, Dispatcher
from .errors import TritonDataError, TritonServerError
from .model import ModelSetup
from .parameters import BATCH_MODES, CLIENT_CONSTRAINTS, CLIENT_PARAMETERS, COMPRESSIONS, MODES, TIMEOUT_UNITS
from .request import RequestLayout
from .routing import MAX_FAILOVERS, Route, Router
from .shm import ShmPair
from .stats import ClientStats  # also re-exported: producers and tests import it from here
from .transport import (
    EventLoopThread,
    ServerAddress,
    SslOptions,
    Transport,
    grpc_client,
    grpc_url,
    is_local_address,
    is_recoverable,
    make_transport,
    parse_server,
)

if TYPE_CHECKING:
    from .service import TritonService

log = logging.getLogger("framework.sonic")


class TritonClient(ModelSetup, RequestLayout, Router, Dispatcher):
    """The SONIC client of one module instance.

    In a job, a :class:`~framework.sonic.producer.SonicEDProducer` makes it from its ``Client`` PSet; the
    producer only sees ``client.input`` / ``client.output`` and, where needed, :meth:`setBatchSize` and
    :meth:`setBatchMode`. Outside a job (benchmarks, notebooks) give ``server="host:port"`` (and
    ``protocol="http"`` for an HTTP port)::

        with TritonClient({"modelName": "affine", "mode": "Sync"}, server="127.0.0.1:8001") as client:
            client.input["INPUT"].toServer(x)
            client.evaluate()
            y = client.output["OUTPUT"].fromServer()
    """

    parameters = CLIENT_PARAMETERS
    constraints = CLIENT_CONSTRAINTS

    def __init__(self, params: Mapping[str, Any] | Params, *, label: str = "", service: TritonService | None = None,
                 server: str | ServerAddress | None = None, protocol: str = "grpc"):
        where = f"module '{label}': Client" if label else "SONIC client"
        if not isinstance(params, Params):
            params = Params(check_parameters(CLIENT_PARAMETERS, dict(params), where))
        if "modelName" not in params:
            raise ConfigurationError(f"{where}: missing required parameter 'modelName' (the model's name on the server)")
        self.params = params
        self.label = label
        self.modelName: str = params.modelName
        self.modelVersion: str = str(params.modelVersion)
        self.modelConfigPath: str = params.modelConfigPath
        check_constraints(CLIENT_CONSTRAINTS, params, where)
        self.mode: str = params.mode
        self.defaultBatchMode: str = params.batchMode
        self.compression: str = params.compression
        self.timeout: float | None = params.timeout * TIMEOUT_UNITS[params.timeoutUnit] or None
        self.allowedTries = int(params.allowedTries)
        self.retryDelay = float(params.retryDelay)
        self.verbose = bool(params.verbose)
        self.useSharedMemory = bool(params.useSharedMemory)
        self.requestedOutputs = [str(o) for o in params.outputs]
        self.mergeEvents = int(params.mergeEvents)
        self._merger: Any = None
        self._merger_key: tuple[Any, ...] | None = None
        if self.modelConfigPath:
            from ..paths import locate

            self.modelConfigPath = locate(self.modelConfigPath)  # FileInPath-like: relative to the repository too
        if self.modelConfigPath and not os.path.isfile(self.modelConfigPath):
            raise ConfigurationError(
                f"{where}: modelConfigPath {self.modelConfigPath!r} does not exist. Give the model's config.pbtxt "
                "(<repository>/<model>/config.pbtxt) or leave it empty.")

        self.stats = ClientStats()
        self.serverName = ""
        self.serverAddress = ""
        self.protocol = ""
        self.isLocal = False
        self.v2only = False
        """True when the server has no model-configuration endpoint (core KServe V2 protocol only)."""
        self.maxBatchSize = 0
        """The model's ``max_batch_size`` (0: the model does not batch, or, V2-only, no limit is known)."""
        self.batched = False
        self.inputInfo: dict[str, TensorInfo] = {}
        self.outputInfo: dict[str, TensorInfo] = {}
        self.input = TritonInputs({}, self._describe())
        self.output = TritonOutputs({}, self._describe())
        self._transport: Transport | None = None
        self._transports: dict[str, Transport] = {}  # server name -> connection (several servers: failover)
        self._transports_lock = threading.Lock()
        self._route: list[str] = []
        self._shm: ShmPair | None = None
        self._shm_lock = threading.Lock()
        self._stats_lock = threading.Lock()
        self._connected = False
        self._where = ""
        self._batch_explicit: int | None = None
        self._ragged_explicit = False
        self._dispatch_start = 0.0
        self.lastDispatchTime = 0.0
        self.lastTries = 0

        check_protocol(protocol, where)
        self._server_override = parse_server(server, protocol) if server is not None else None
        self._service = None
        if self._server_override is None:
            if service is None:
                from ..core import services

                service = services.get("TritonService")
            service.addModel(self.modelName, self.modelConfigPath, params.preferredServer, verbose=self.verbose)
            self._service = service

    def connect(self) -> None:
        """Find the model's server, read the model's metadata and configuration, check them against the local
        ``config.pbtxt`` and prepare the inputs and outputs (``beginJob``)."""
        if self._connected:
            return
        if self._service is not None:
            server = self._service.serverFor(self.modelName)
            self.serverName = self._service.serverName(self.modelName)
            self._route = self._service.route(self.modelName)
        else:
            server = self._server_override
            self.serverName = "direct"
        assert server is not None
        self.serverAddress, self.isLocal, self.protocol = server.address, server.isLocal, server.protocol
        self._transport = make_transport(server, self.compression)
        self._transports = {self.serverName: self._transport}
        try:
            self._setup_model()
        except BaseException:
            self._transport.close()
            self._transport = None
            raise
        self._connected = True
        self._setup_merger()
        log.debug("%s: server '%s' (%s, %s%s), mode %s, %s, max_batch_size %d", self._describe(), self.serverName,
                  self.serverAddress, self.protocol, ", V2 only" if self.v2only else "", self.mode,
                  "shared memory" if self._shm is not None else "tensors in the messages", self.maxBatchSize)

    def _setup_merger(self) -> None:
        if self.mergeEvents <= 1:
            return
        why = ("the mode is not Async" if self.mode != "Async" else
               "the model does not batch" if not self.batched else
               "the client is in ragged batch mode" if self.defaultBatchMode == RAGGED else
               "an output has a -1 dim" if any(o.variableDims for o in self.output.values()) else "")
        if why:
            log.warning("%s: Client.mergeEvents = %d ignored: %s", self._describe(), self.mergeEvents, why)
            return
        from .merge import merger_for

        self._merger_key = (id(self._service) if self._service is not None else self.serverAddress, self.label,
                            self.modelName, self.modelVersion)
        self._merger = merger_for(self._merger_key, self.mergeEvents)

    @property
    def transport(self) -> Transport:
        """The connection to the server (after :meth:`connect`)."""
        if self._transport is None:
            raise TritonServerError(f"{self._describe()}: not connected", model=self.modelName)
        return self._transport

    def close(self) -> None:
        """Unregister and unlink the shared memory regions, close the connection and hand the statistics to the
        service (``endJob``); idempotent."""
        if self._merger_key is not None:
            from .merge import forget

            forget(self._merger_key)
            self._merger = self._merger_key = None
        if self._shm is not None:
            self._shm.destroy(timeout=5.0)
        for transport in {id(t): t for t in [*self._transports.values(), self._transport] if t is not None}.values():
            transport.close()
        self._transport = None
        self._transports = {}
        if self._connected:
            if self._service is not None:
                self._service.reportStats(self.label or self.modelName, self.stats, self.modelName)
            elif self.verbose:
                log.info("%s: %s", self._describe(), self.stats.summary())
        self._connected = False

    def __enter__(self) -> TritonClient:
        self.connect()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @property
    def noBatch(self) -> bool:
        """True when the model does not batch (``max_batch_size: 0``): inputs have the model's dims exactly."""
        return not self.batched

    @property
    def batchMode(self) -> str:
        """``Ragged`` when chosen (``Client.batchMode``, :meth:`setBatchMode`) or when an input was given entries
        of different shapes; ``Rectangular`` otherwise."""
        if self._ragged_explicit or any(i.isRagged for i in self.input._items.values()):
            return RAGGED
        return RECTANGULAR

    @property
    def batchSize(self) -> int:
        """The batch size of this event: :meth:`setBatchSize`'s, else the entries of the first input given."""
        if self._batch_explicit is not None:
            return self._batch_explicit
        for i in self.input._items.values():
            if i.isSet:
                return i.entryCount
        return 0

    def setBatchSize(self, n: int) -> None:
        """Set the batch size of this event (0: no server call; outputs are then empty)."""
        n = int(n)
        if n < 0:
            raise TritonDataError(f"{self._describe()}: batch size must be >= 0, got {n}{self._where_suffix()}")
        self._check_batch(n, ragged=self.batchMode == RAGGED)
        self._batch_explicit = n

    def setBatchMode(self, mode: str) -> None:
        """``Rectangular`` (one request, all entries of one shape) or ``Ragged`` (one request per entry) for
        this event; :meth:`reset` goes back to ``Client.batchMode``."""
        mode = CLIENT_CONSTRAINTS["batchMode"].check("batch mode", mode, self._describe(), error=TritonDataError)
        if mode == RECTANGULAR and any(i.isRagged for i in self.input._items.values()):
            raise TritonDataError(f"{self._describe()}: inputs with entries of different shapes were given; "
                                  "set the batch mode before giving inputs")
        self._ragged_explicit = mode == RAGGED

    def reset(self) -> None:
        """Forget the previous event's inputs, outputs, batch size and batch mode."""
        for i in self.input._items.values():
            i.reset()
        for o in self.output._items.values():
            o.reset()
        self._batch_explicit = None
        self._ragged_explicit = self.defaultBatchMode == RAGGED
        self.setEvent("")

    def setEvent(self, where: str) -> None:
        """Describe the current event in messages (``event.where()``)."""
        self._where = where
        for i in self.input._items.values():
            i.setContext(where)
        for o in self.output._items.values():
            o.setContext(where)

    def _describe(self) -> str:
        return f"model '{self.modelName}'" + (f" (module '{self.label}')" if self.label else "")

    def _where_suffix(self) -> str:
        return f" on {self._where}" if self._where else ""

    def __repr__(self) -> str:
        state = (f"server '{self.serverName}' ({self.serverAddress}, {self.protocol})" if self._connected
                 else "not connected")
        return f"<TritonClient {self._describe()} mode={self.mode} {state}>"



__all__ = [
    "BATCH_MODES",
    "CLIENT_CONSTRAINTS",
    "CLIENT_PARAMETERS",
    "COMPRESSIONS",
    "ClientStats",
    "MAX_FAILOVERS",
    "MAX_RETRY_DELAY",
    "MODES",
    "Route",
    "EventLoopThread",
    "ServerAddress",
    "SslOptions",
    "TIMEOUT_UNITS",
    "TritonClient",
    "grpc_client",
    "grpc_url",
    "is_local_address",
    "is_recoverable",
]
