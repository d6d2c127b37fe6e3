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
building requests and collecting answers in :mod:`framework.sonic.request`, choosing servers and failover in
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
from ..exceptions import ConfigurationError, did_you_mean
from ..server.endpoints import check_protocol
from .data import (
    RAGGED,
    RECTANGULAR,
    TensorInfo,
    TritonInputData,
    TritonInputs,
    TritonOutputData,
    TritonOutputs,
    config_dtype_to_triton,
)
from .dispatch import MAX_RETRY_DELAY, Dispatcher
from .errors import TritonConfigError, TritonDataError, TritonServerError
from .parameters import BATCH_MODES, CLIENT_CONSTRAINTS, CLIENT_PARAMETERS, COMPRESSIONS, MODES, TIMEOUT_UNITS
from .request import RequestLayout
from .routing import MAX_FAILOVERS, Route, Router
from .shm import ShmPair
from .stats import ClientStats  # also re-exported: producers and tests import it from here
from .transport import (
    CONTROL_TIMEOUT,
    EventLoopThread,
    ServerAddress,
    SslOptions,
    Transport,
    grpc_client,
    grpc_url,
    is_local_address,
    is_recoverable,
    is_unsupported,
    make_transport,
    message_of,
    parse_server,
    raw_status,
)

if TYPE_CHECKING:
    from .service import TritonService

log = logging.getLogger("framework.sonic")


class TritonClient(RequestLayout, Router, Dispatcher):
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

    def _setup_model(self) -> None:
        metadata, config = self._read_model()
        self._v2_json(self._transport)
        local = None
        if self.modelConfigPath:
            from ..server.repository import read_model_config

            local = read_model_config(self.modelConfigPath)
        if config is not None:
            self.maxBatchSize = int(config.max_batch_size)
            self.batched = self.maxBatchSize > 0
        elif local is not None:
            self.maxBatchSize = int(local.max_batch_size)
            self.batched = self.maxBatchSize > 0
        else:  # V2 only: a model batches when every tensor's first dimension is variable
            shapes = [t[2] for t in metadata.inputs + metadata.outputs]
            self.batched = bool(shapes) and all(s and s[0] == -1 for s in shapes)
            self.maxBatchSize = 0

        def infos(tensors: list[tuple[str, str, list[int]]]) -> dict[str, TensorInfo]:
            return {name: TensorInfo(name, datatype, tuple(shape[1:] if self.batched and shape else shape))
                    for name, datatype, shape in tensors}

        self.inputInfo = infos(metadata.inputs)
        self.outputInfo = infos(metadata.outputs)
        if local is not None:
            self._check_local_config(local)
        for name in self.requestedOutputs:
            if name not in self.outputInfo:
                raise TritonConfigError(
                    f"{self._describe()}: Client.outputs asks for '{name}', which the model does not have."
                    f"{did_you_mean(name, self.outputInfo)} Its outputs: {', '.join(self.outputInfo)}.")
        wanted = self.requestedOutputs or list(self.outputInfo)
        owner = self._describe()
        self.input = TritonInputs({n: TritonInputData(i, self.batched, owner) for n, i in self.inputInfo.items()},
                                  owner)
        self.output = TritonOutputs({n: TritonOutputData(self.outputInfo[n], self.batched, owner) for n in wanted},
                                    owner)
        # shared memory with one server only: regions are registered per server, a failover would lose them
        use_shm = self.useSharedMemory and self.isLocal and not self.v2only and len(self._route) <= 1
        self._shm = self._probe_shm() if use_shm else None
        self._shm_output_dims = {name: tuple(o.dims) for name, o in self.output._items.items()
                                 if o.datatype != "BYTES" and not o.variableDims}

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

    def _probe_shm(self) -> ShmPair | None:
        """Small regions registered with the server: shared memory works with it, or a warning and messages."""
        shm = ShmPair()
        try:
            shm.reserve(4096, 4096, CONTROL_TIMEOUT)
            shm.register(self._transport, CONTROL_TIMEOUT, self.serverName)
        except Exception as exc:  # noqa: BLE001 - e.g. a "local" server in a container without our /dev/shm
            shm.destroy(timeout=CONTROL_TIMEOUT)
            log.warning("%s: server '%s' (%s) cannot use this machine's shared memory (%s); sending tensors in "
                        "the %s messages instead (set Client.useSharedMemory = False to skip this check)",
                        self._describe(), self.serverName, self.serverAddress, message_of(exc), self.protocol)
            return None
        return shm

    def _read_model(self) -> tuple[Any, Any]:
        from tritonclient.utils import InferenceServerException

        transport = self._transport
        assert transport is not None
        config = None
        try:
            metadata = transport.model_metadata(self.modelName, self.modelVersion)
            try:
                config = transport.model_config(self.modelName, self.modelVersion)
            except InferenceServerException as exc:
                if not is_unsupported(exc):
                    raise
                self.v2only = True
                log.info("%s: server '%s' (%s) has no model configuration endpoint (%s): using the core KServe V2 "
                         "protocol (shapes, dtypes and batching from the model metadata%s; no shared memory, no "
                         "statistics)", self._describe(), self.serverName, self.serverAddress, message_of(exc),
                         " and Client.modelConfigPath" if self.modelConfigPath else "")
        except InferenceServerException as exc:
            version = f" version {self.modelVersion}" if self.modelVersion else ""
            raise TritonServerError(
                f"{self._describe()}{version}: cannot read the model's metadata from server '{self.serverName}' "
                f"({self.serverAddress}, {self.protocol}): {message_of(exc)}\n  How to fix: check that the server "
                "runs, serves the model and speaks this protocol (python -m framework serve; Client.modelName, "
                "Client.modelVersion; protocol=grpc|http with the server's port).",
                model=self.modelName, server=self.serverName, address=self.serverAddress, status=raw_status(exc),
            ) from exc
        return metadata, config

    def _check_local_config(self, local: Any) -> None:
        problems: list[str] = []
        if int(local.max_batch_size) != self.maxBatchSize:
            problems.append(f"max_batch_size: server {self.maxBatchSize}, local {local.max_batch_size}")
        for kind, server_side, local_side in (("input", self.inputInfo, local.input),
                                             ("output", self.outputInfo, local.output)):
            local_infos = {t.name: TensorInfo(t.name, config_dtype_to_triton(
                _data_type_name(t.data_type)), tuple(int(d) for d in t.dims)) for t in local_side}
            if self.v2only and not local_side:
                continue  # a V2 server may describe tensors the local config leaves out
            for name in local_infos.keys() - server_side.keys():
                problems.append(f"{kind} '{name}' is in the local config but not on the server "
                                f"(server {kind}s: {', '.join(server_side)})")
            for name in server_side.keys() - local_infos.keys():
                problems.append(f"{kind} '{name}' is on the server but not in the local config "
                                f"(local {kind}s: {', '.join(local_infos)})")
            for name in server_side.keys() & local_infos.keys():
                s, loc = server_side[name], local_infos[name]
                if s.datatype != loc.datatype or s.dims != loc.dims:
                    problems.append(f"{kind} '{name}': server {s.describe()}, local {loc.describe()}")
        if problems:
            raise TritonConfigError(
                f"{self._describe()}: the model served by '{self.serverName}' ({self.serverAddress}) does not match "
                f"the local configuration {self.modelConfigPath}:\n  " + "\n  ".join(sorted(problems)) +
                "\n  How to fix: serve the same model version as the local config.pbtxt, or point "
                "Client.modelConfigPath at the config of the served model.")

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


def _data_type_name(value: int) -> str:
    from tritonclient.grpc import model_config_pb2 as mc

    return mc.DataType.Name(value)


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
