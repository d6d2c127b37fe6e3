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
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ..core.params import Params, Required, check_parameters
from ..exceptions import ConfigurationError, FrameworkError, did_you_mean
from ..monitoring import job as monitoring_job
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
from .errors import TritonConfigError, TritonDataError, TritonServerError
from .shm import ShmPair, align
from .stats import ClientStats  # also re-exported: producers and tests import it from here
from .transport import (
    CONTROL_TIMEOUT,
    EventLoopThread,
    ServerAddress,
    SslOptions,
    TensorSpec,
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
    shm_lost,
    status_of,
)

if TYPE_CHECKING:
    from ..core.module import WaitingTaskHolder
    from .service import TritonService

log = logging.getLogger("framework.sonic")

MODES = ("Sync", "Async", "PseudoAsync")
BATCH_MODES = (RECTANGULAR, RAGGED)
COMPRESSIONS = ("", "gzip", "deflate")
TIMEOUT_UNITS = {"seconds": 1.0, "milliseconds": 1e-3, "microseconds": 1e-6}
MAX_RETRY_DELAY = 10.0
MAX_FAILOVERS = 8
"""Servers a request is sent to at most after its own did not answer (besides the allowedTries retries)."""

CLIENT_PARAMETERS: dict[str, Any] = {
    "mode": "Async",
    "modelName": Required(str, "the model's name on the Triton server"),
    "modelVersion": "",
    "modelConfigPath": "",
    "preferredServer": "",
    "timeout": 0.0,
    "timeoutUnit": "seconds",
    "allowedTries": 1,
    "retryDelay": 0.5,
    "useSharedMemory": True,
    "compression": "",
    "outputs": [],
    "verbose": False,
    "batchMode": RECTANGULAR,
    "mergeEvents": 1,
}
"""The ``Client`` PSet of a SONIC producer (CMSSW's names). ``timeout``: per request, in ``timeoutUnit``, 0 = no
limit; ``allowedTries``: attempts in total; ``retryDelay``: seconds before the first retry (doubled after each
further one); ``outputs``: the outputs to request (empty = all); ``batchMode``: ``Rectangular`` or ``Ragged``;
``mergeEvents``: up to this many events of the module's streams in one request (1 = each event alone; ``Async``
mode, :mod:`framework.sonic.merge`)."""



# ----------------------------------------------------------------------------- requests
@dataclass
class _Request:
    """One inference request (the whole batch in rectangular mode; one entry in ragged mode)."""

    entry: int
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    explicit_outputs: bool
    batch: int
    shm_outputs: dict[str, tuple[int, tuple[int, ...]]] = field(default_factory=dict)
    tries: int = 0
    result: Any = None
    built: Any = None
    json: bool = False
    """Whether ``built`` carries JSON tensors (HTTP)."""
    server: str = ""
    """The server this try goes to (its name in the TritonService), and its transport."""
    transport: Any = None
    counted: bool = False
    """Whether the service counts this try as outstanding on ``server``."""
    avoid: set = field(default_factory=set)
    """Servers that failed this request (not asked again for it)."""
    failovers: int = 0
    shm: bool = False
    """Whether the request names the client's shared memory regions (else its tensors are in the message)."""
    reregistered: set = field(default_factory=set)
    """Servers that had forgotten the regions of this request (they restarted): registered again once each."""


@dataclass
class Route:
    """Where one try of a request goes: the server's name in the service, its connection, and whether the
    service counts the try as outstanding there (hand it back with :meth:`TritonClient.release`)."""

    server: str
    transport: Any
    counted: bool = False


class _Gather:
    """Collects the answers of several concurrent requests and finishes once, when all are in."""

    def __init__(self, n: int, finish: Callable[[tuple[_Request, BaseException] | None], None]):
        self._left = n
        self._lock = threading.Lock()
        self._error: tuple[_Request, BaseException] | None = None
        self._finish = finish

    def done(self, req: _Request, result: Any, error: BaseException | None) -> None:
        with self._lock:
            req.result = result
            if error is not None and self._error is None:
                self._error = (req, error)
            self._left -= 1
            last = self._left == 0
        if last:
            self._finish(self._error)


_POOL: ThreadPoolExecutor | None = None
_POOL_PID = 0
_POOL_LOCK = threading.Lock()


def _blocking_pool() -> ThreadPoolExecutor:
    """The fixed pool of PseudoAsync requests and of retries that must wait or re-register shared memory."""
    global _POOL, _POOL_PID
    with _POOL_LOCK:
        if _POOL is None or _POOL_PID != os.getpid():
            _POOL = ThreadPoolExecutor(max_workers=max(8, 4 * (os.cpu_count() or 1)),
                                       thread_name_prefix="sonic-pseudoasync")
            _POOL_PID = os.getpid()
        return _POOL


# ----------------------------------------------------------------------------- the client
class TritonClient:
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
        self.mode: str = _choice(where, "mode", params.mode, MODES)
        self.defaultBatchMode: str = _choice(where, "batchMode", params.batchMode, BATCH_MODES)
        self.compression: str = _choice(where, "compression", params.compression, COMPRESSIONS)
        unit = _choice(where, "timeoutUnit", params.timeoutUnit, tuple(TIMEOUT_UNITS))
        if params.timeout < 0:
            raise ConfigurationError(f"{where}: timeout must be >= 0 (0 = no limit), got {params.timeout}")
        self.timeout: float | None = params.timeout * TIMEOUT_UNITS[unit] or None
        if int(params.allowedTries) < 1:
            raise ConfigurationError(
                f"{where}: allowedTries is the number of attempts in total and must be >= 1, got {params.allowedTries}")
        self.allowedTries = int(params.allowedTries)
        if params.retryDelay < 0:
            raise ConfigurationError(f"{where}: retryDelay must be >= 0 seconds, got {params.retryDelay}")
        self.retryDelay = float(params.retryDelay)
        self.verbose = bool(params.verbose)
        self.useSharedMemory = bool(params.useSharedMemory)
        self.requestedOutputs = [str(o) for o in params.outputs]
        if int(params.mergeEvents) < 1:
            raise ConfigurationError(f"{where}: mergeEvents must be >= 1 (1 = one event per request), got "
                                     f"{params.mergeEvents}")
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

    # ------------------------------------------------------------------ connection
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

    # ------------------------------------------------------------------ per event
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
        mode = _choice(self._describe(), "batch mode", mode, BATCH_MODES, error=TritonDataError)
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

    def _check_batch(self, n: int, ragged: bool) -> None:
        if ragged or not self._connected:
            return
        if self.noBatch and n > 1:
            raise TritonDataError(
                f"{self._describe()}: batch size {n}, but the model does not batch (max_batch_size 0) and takes "
                f"one entry per request{self._where_suffix()}.\n  Use ragged mode (one request per entry).")
        if self.batched and self.maxBatchSize > 0 and n > self.maxBatchSize:
            raise TritonDataError(
                f"{self._describe()}: batch size {n} exceeds the model's max_batch_size {self.maxBatchSize}"
                f"{self._where_suffix()}.\n  How to fix: send at most {self.maxBatchSize} entries per event (split or "
                "truncate the batch), or raise max_batch_size in the model's config.pbtxt on the server.")

    def _derive_batch(self, inputs: list[TritonInputData], ragged: bool) -> int:
        """The event's batch size from the inputs, checked against each other and :meth:`setBatchSize`."""
        n, source = self._batch_explicit, ""
        for i in inputs:
            if not i.isSet:
                continue
            count = i.entryCount
            if n is None:
                n, source = count, i.name
            elif count != n:
                other = (f"setBatchSize({n}) was called" if not source
                         else f"input '{source}' has {n}")
                raise TritonDataError(f"{self._describe()}: input '{i.name}' has {count} entries, but {other}"
                                      f"{self._where_suffix()}. Every input needs the same batch size.")
        if n is None:
            raise TritonDataError(
                f"{self._describe()}: no input was given{self._where_suffix()}. Fill the inputs in acquire() "
                "(input[name].toServer(array)), or call client.setBatchSize(0) to skip the server call.")
        if self.noBatch and not ragged and n > 1:
            raise TritonDataError(
                f"{self._describe()}: the model does not batch (max_batch_size 0), so it takes one entry per "
                f"request, but {n} entries were given{self._where_suffix()}.\n  Give one array of the model's "
                "shape, or switch to ragged mode (one request per entry).")
        self._check_batch(n, ragged)
        return n

    # ------------------------------------------------------------------ dispatch
    def dispatch(self, holder: WaitingTaskHolder) -> None:
        """Send this event's inputs according to ``mode``; ``holder.doneWaiting(error_or_None)`` is called when
        the outputs are ready (at once for ``Sync`` and for batch size 0)."""
        self._start(holder.doneWaiting)

    def evaluate(self) -> None:
        """Send this event's inputs and block until the outputs are ready (any mode); raises on failure."""
        box: list[BaseException | None] = []
        self._start(box.append, blocking=True)  # blocking: done() was called when this returns
        if box[0] is not None:
            raise box[0]

    def _start(self, done: Callable[[BaseException | None], None], blocking: bool = False) -> None:
        if not self._connected:
            self.connect()
        self._dispatch_start = time.perf_counter()
        self.lastTries = 0
        self.stats.events += 1
        if self._merger is not None and not blocking and self.batchMode == RECTANGULAR:
            inputs = list(self.input._items.values())
            n = self._derive_batch(inputs, False) if inputs else (self._batch_explicit or 0)
            if n > 0:
                self._check_given(inputs)
                self.stats.entries += n
                self._merger.submit(self, {i.name: i.array() for i in inputs}, n,
                                    lambda exc: self._merged_done(exc, done))
                return
        self._dispatch_alone(done, blocking, first=True)

    def _merged_done(self, exc: BaseException | None, done: Callable[[BaseException | None], None]) -> None:
        if exc is not None:
            self.stats.failures += 1
        elapsed = time.perf_counter() - self._dispatch_start
        self.lastDispatchTime = elapsed
        self.lastTries = 1
        self.stats.record_round_trip(elapsed)
        monitoring_job.sonic_request(self, elapsed, exc is None)
        done(exc)

    def _dispatch_alone(self, done: Callable[[BaseException | None], None], blocking: bool = False,
                        first: bool = False) -> None:
        """This event in its own request(s) (also a merged request's events, again one by one, after it failed:
        then errors go to *done*)."""
        if not first:
            try:
                self._dispatch_alone(done, blocking, first=True)
            except BaseException as exc:  # noqa: BLE001 - handed to the framework
                done(exc)
            return
        requests = self._prepare()
        if not requests:
            self.stats.skipped += 1
            self._fill_empty_outputs()
            self.lastDispatchTime = 0.0
            done(None)
            return
        self.stats.entries += self.batchSize

        def finish(failure: tuple[_Request, BaseException] | None) -> None:
            exc: BaseException | None = None
            try:
                if failure is not None:
                    raise self._server_error(*failure)
                self._collect(requests)
            except BaseException as e:  # noqa: BLE001 - handed to the framework through done()
                exc = e
                self.stats.failures += 1
            elapsed = time.perf_counter() - self._dispatch_start
            self.lastDispatchTime = elapsed
            self.lastTries = sum(r.tries for r in requests)
            self.stats.record_round_trip(elapsed)
            monitoring_job.sonic_request(self, elapsed, exc is None)
            done(exc)

        if self.mode == "Async" and not blocking:
            self._run_async(requests, finish)
        elif self.mode == "PseudoAsync" and not blocking:
            _blocking_pool().submit(self._run_blocking, requests, finish)
        else:
            self._run_blocking(requests, finish)

    def _run_blocking(self, requests: list[_Request],
                      finish: Callable[[tuple[_Request, BaseException] | None], None]) -> None:
        if len(requests) == 1:
            req = requests[0]
            try:
                req.result = self._infer_blocking(req)
                failure = None
            except BaseException as exc:  # noqa: BLE001
                failure = (req, exc)
            finish(failure)
            return
        ready = threading.Event()
        box: list = []

        def gathered(failure: tuple[_Request, BaseException] | None) -> None:
            box.append(failure)
            ready.set()

        self._run_async(requests, gathered)
        ready.wait()
        finish(box[0])

    def _infer_blocking(self, req: _Request) -> Any:
        while True:
            req.tries += 1
            self.stats.requests += 1
            self._assign(req)
            try:
                self._place(req)
                result = req.transport.infer(self._built(req), self.timeout)
                self._done(req, None)
                return result
            except Exception as exc:  # noqa: BLE001
                self._done(req, exc)
                if self._regions_lost(req, exc) or self._fail_over(req, exc):
                    req.tries -= 1
                    continue
                if not self._should_retry(req, exc):
                    raise
                time.sleep(self._retry_delay(req))

    def _run_async(self, requests: list[_Request],
                   finish: Callable[[tuple[_Request, BaseException] | None], None]) -> None:
        gather = _Gather(len(requests), finish)
        for req in requests:
            self._send_async(req, gather.done)

    def _send_async(self, req: _Request, on_result: Callable[[_Request, Any, BaseException | None], None]) -> None:
        req.tries += 1
        with self._stats_lock:  # ragged entries are sent and retried from several threads
            self.stats.requests += 1

        def callback(result: Any = None, error: BaseException | None = None) -> None:
            try:
                self._done(req, error)
                if error is None:
                    on_result(req, result, None)
                elif self._regions_lost(req, error) or self._fail_over(req, error):
                    req.tries -= 1
                    _blocking_pool().submit(self._send_async, req, on_result)
                elif self._should_retry(req, error):
                    delay = self._retry_delay(req)
                    if delay <= 0 and self._shm is None:
                        self._send_async(req, on_result)  # re-dispatch from the completion
                    else:  # waiting or (re-)registering shared memory blocks: not on the event loop
                        _blocking_pool().submit(self._retry_later, delay, req, on_result)
                else:
                    on_result(req, None, error)
            except BaseException as exc:  # noqa: BLE001 - never lose a completion
                on_result(req, None, exc)

        try:
            self._assign(req)
            self._place(req)
            req.transport.infer_async(self._built(req), self.timeout, callback)
        except Exception as exc:  # noqa: BLE001 - e.g. shared memory re-registration failed: counts as a try
            callback(None, exc)

    def _retry_later(self, delay: float, req: _Request,
                     on_result: Callable[[_Request, Any, BaseException | None], None]) -> None:
        if delay > 0:
            time.sleep(delay)
        self._send_async(req, on_result)

    def _regions_lost(self, req: _Request, exc: BaseException) -> bool:
        """The server restarted and forgot this client's regions: register them again and send the request
        again (not a failed try; once per server and request)."""
        server = req.server or self.serverName
        if self._shm is None or not req.shm or not shm_lost(exc) or server in req.reregistered:
            return False
        req.reregistered.add(server)
        self._shm.forget(server)
        log.info("%s: server '%s' no longer knows this client's shared memory (it restarted): registering it again",
                 self._describe(), server)
        return True

    def _should_retry(self, req: _Request, exc: BaseException) -> bool:
        if not is_recoverable(exc) or self._transport is None:
            return False
        if self._shm is not None and (status_of(exc) == "UNAVAILABLE" or shm_lost(exc)):
            self._shm.forget(req.server or self.serverName)  # gone or restarted: it forgot our regions
        if req.tries >= self.allowedTries:
            return False
        with self._stats_lock:
            self.stats.retries += 1
        name, address = self._server_of(req)
        monitoring_job.sonic_retry(self.modelName, address, "retry")
        log.warning("%s: request to server '%s' (%s) failed%s (try %d of %d): %s; retrying", self._describe(),
                    name, address, self._where_suffix(), req.tries, self.allowedTries, message_of(exc))
        return True

    def _retry_delay(self, req: _Request) -> float:
        if self.retryDelay <= 0:
            return 0.0
        return min(MAX_RETRY_DELAY, self.retryDelay * 2 ** max(0, req.tries - 1))

    def _place(self, req: _Request) -> None:
        """Make the request's tensors reachable by the server of this try: the shared memory regions registered
        there first (once per server, again after it restarted), or, where that server cannot have them, the
        tensors in the message. A region is never named on a server it was not registered with."""
        shm = self._shm
        if shm is None or not req.shm:
            return
        server = req.server or self.serverName
        generation = self._service.generation(server) if self._routed() else 0
        if not shm.registered_on(server, generation):
            with self._shm_lock:
                if not shm.registered_on(server, generation) and server not in shm.refused:
                    why = self._shm_unusable(server)
                    if not why:
                        try:
                            shm.register(req.transport or self._transport, CONTROL_TIMEOUT, server, generation)
                        except Exception as exc:
                            if is_recoverable(exc):
                                raise  # the server did not answer: this try failed (retried or moved on)
                            why = message_of(exc)
                    if why:
                        shm.refused[server] = why
                        log.warning("%s: server '%s' cannot use this machine's shared memory (%s); its requests "
                                    "carry their tensors in the messages", self._describe(), server, why)
        if not shm.registered_on(server, generation):
            self._inline(req)

    def _shm_unusable(self, server: str) -> str:
        """Why *server* cannot share this machine's memory ("" when it can: on this machine, Triton)."""
        if server == self.serverName or self._service is None:
            return ""  # probed when connecting
        endpoint = self._service.endpoint(server)
        return "" if endpoint.isLocal else f"{endpoint.address} is not on this machine"

    def _inline(self, req: _Request) -> None:
        """Rewrite a shared-memory request with its tensors in the message (read back from the regions)."""
        from tritonclient.utils import triton_to_np_dtype

        shm = self._shm
        assert shm is not None and shm.input is not None
        req.inputs = [TensorSpec(s.name, s.shape, s.datatype,
                                 array=shm.input.read(s.offset, triton_to_np_dtype(s.datatype), tuple(s.shape)))
                      if s.region else s for s in req.inputs]
        req.outputs = [TensorSpec(s.name, (), s.datatype) if s.region else s for s in req.outputs]
        req.shm_outputs = {}
        req.shm = False
        req.built = None

    def _server_of(self, req: _Request | None = None) -> tuple[str, str]:
        """Name and address of the server of *req*'s last try (the client's server without one)."""
        name = (req.server if req is not None else "") or self.serverName
        if name != self.serverName and self._service is not None:
            try:
                return name, self._service.endpoint(name).address
            except KeyError:
                return name, "?"
        return name, self.serverAddress

    def _server_error(self, req: _Request, exc: BaseException) -> FrameworkError:
        if isinstance(exc, FrameworkError):
            return exc
        status = status_of(exc)
        entry = f" (ragged entry {req.entry})" if self.batchMode == RAGGED else ""
        tries = f" after {req.tries} {'try' if req.tries == 1 else 'tries'}"
        if status == "DEADLINE_EXCEEDED":
            timeout = f"{self.timeout:g} s" if self.timeout else "none"
            hint = (f"the request took longer than Client.timeout ({timeout}): raise Client.timeout (0 = no limit) "
                    "or Client.allowedTries, or check the server's load.")
        elif is_recoverable(exc):
            hint = ("the server is not reachable or went away: check that it runs and listens on this address "
                    "(python -m framework serve; address=/port=/protocol= options), or allow retries with "
                    "Client.allowedTries > 1 (Client.retryDelay between tries).")
        elif "unknown model" in str(exc).lower() or status == "NOT_FOUND":
            hint = "the server does not serve this model (any more): check Client.modelName and the server."
        elif status == "INVALID_ARGUMENT":
            hint = "the server rejected the request: check the inputs against the model's config.pbtxt."
        else:
            hint = "see the server's log for the cause."
        name, address = self._server_of(req)
        return TritonServerError(
            f"{self._describe()} on server '{name}' ({address}) failed"
            f"{self._where_suffix()}{entry}{tries}: {message_of(exc)}\n  How to fix: {hint}",
            model=self.modelName, server=name, address=address, event=self._where,
            status=raw_status(exc), tries=req.tries)

    # ------------------------------------------------------------------ requests and results
    def _built(self, req: _Request) -> Any:
        transport = req.transport or self._transport
        if req.built is None:
            outputs = req.outputs if req.explicit_outputs or transport.json else None  # type: ignore[union-attr]
            req.built = transport.make_request(  # type: ignore[union-attr]
                self.modelName, self.modelVersion, req.inputs, outputs)
            req.json = transport.json  # type: ignore[union-attr]
        return req.built

    # ------------------------------------------------------------------ several servers: routing and failover
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
            self._service.requestDone(route.server, error, server_down=error is not None and self._unresponsive(error))

    def _unresponsive(self, exc: BaseException) -> bool:
        """The server did not answer (down, reset) or, where another server can take the request, not in time."""
        return _server_down(exc) or (status_of(exc) == "DEADLINE_EXCEEDED" and self._routed())

    def _assign(self, req: _Request) -> None:
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

    def _done(self, req: _Request, error: BaseException | None) -> None:
        if req.counted:
            req.counted = False
            self.release(Route(req.server, req.transport, True), error)

    def _fail_over(self, req: _Request, exc: BaseException) -> bool:
        """The server did not answer (or not in time): send the request at once to another live server (or the
        fallback)."""
        if not self._routed() or not self._unresponsive(exc) or req.failovers >= MAX_FAILOVERS:
            return False
        req.avoid.add(req.server)
        if not self._service.canServe(self.modelName, req.avoid):
            return False
        req.failovers += 1
        with self._stats_lock:
            self.stats.failovers += 1
        name, address = self._server_of(req)
        monitoring_job.sonic_retry(self.modelName, address, "failover")
        log.warning("%s: server '%s' (%s) did not answer%s (%s); sending the request to another server",
                    self._describe(), name, address, self._where_suffix(), message_of(exc))
        return True

    def count_request(self) -> None:
        """One more request sent (thread-safe; for requests sent on the client's behalf, e.g. merged ones)."""
        with self._stats_lock:
            self.stats.requests += 1

    def redispatch(self, done: Callable[[BaseException | None], None]) -> None:
        """Send this client's current event again in a request of its own (retries and failover included);
        errors go to *done* (used for the events of a merged request that failed)."""
        self._dispatch_alone(done)

    def _prepare(self) -> list[_Request]:
        """Check this event's inputs, derive the batch and lay out the requests (inputs written to shared
        memory when the server shares it)."""
        inputs = list(self.input._items.values())
        outputs = self.output._items
        ragged = self.batchMode == RAGGED
        n = self._derive_batch(inputs, ragged) if inputs else (self._batch_explicit or 0)
        if n == 0:
            return []
        self._check_given(inputs)
        batched = self.batched
        if ragged:
            columns = [(i, i.entries()) for i in inputs]
            per_request = [[(i, entries[e], (1, *entries[e].shape) if batched else entries[e].shape)
                            for i, entries in columns] for e in range(n)]
        else:
            per_request = [[(i, a, a.shape) for i in inputs for a in (i.array(),)]]
        shm = self._shm
        out_shapes: dict[str, tuple[int, ...]] = {}
        if shm is not None:  # outputs of known shape go to shared memory
            batch = (1 if ragged else n) if batched else None
            for name, dims in self._shm_output_dims.items():
                out_shapes[name] = (batch, *dims) if batch is not None else dims

        # shared-memory layout: every request's inputs, then every request's outputs, each aligned
        in_offsets: list[list[int]] = []
        out_offsets: list[dict[str, int]] = []
        if shm is not None:
            in_bytes = out_bytes = 0
            for req_inputs in per_request:
                row = []
                for inp, array, _ in req_inputs:
                    row.append(in_bytes)
                    if inp.datatype != "BYTES":
                        in_bytes += align(array.nbytes)
                in_offsets.append(row)
                row_out = {}
                for name, shape in out_shapes.items():
                    row_out[name] = out_bytes
                    out_bytes += align(math.prod(shape) * outputs[name].dtype.itemsize)
                out_offsets.append(row_out)
            with self._shm_lock:
                shm.reserve(in_bytes, out_bytes, CONTROL_TIMEOUT)

        requests = []
        explicit = bool(out_shapes) or bool(self.requestedOutputs)
        for e, req_inputs in enumerate(per_request):
            specs = []
            for k, (inp, array, shape) in enumerate(req_inputs):
                if shm is not None and inp.datatype != "BYTES":
                    shm.input.write(in_offsets[e][k], array)  # type: ignore[union-attr]
                    specs.append(TensorSpec(inp.name, shape, inp.datatype, region=shm.input.name,  # type: ignore[union-attr]
                                            nbytes=array.nbytes, offset=in_offsets[e][k]))
                else:
                    specs.append(TensorSpec(inp.name, shape, inp.datatype,
                                            array=array.reshape(shape) if array.shape != shape else array))
            out_specs = []
            shm_outputs: dict[str, tuple[int, tuple[int, ...]]] = {}
            for name, out in outputs.items():
                if name in out_shapes:
                    offset, shape = out_offsets[e][name], out_shapes[name]
                    out_specs.append(TensorSpec(name, shape, out.datatype, region=shm.output.name,  # type: ignore[union-attr]
                                                nbytes=math.prod(shape) * out.dtype.itemsize, offset=offset))
                    shm_outputs[name] = (offset, shape)
                else:
                    out_specs.append(TensorSpec(name, (), out.datatype))
            requests.append(_Request(e, specs, out_specs, explicit, 1 if ragged else n, shm_outputs,
                                     shm=shm is not None))
        return requests

    def _check_given(self, inputs: list[TritonInputData]) -> None:
        missing = [i.name for i in inputs if not i.isSet]
        if missing:
            raise TritonDataError(
                f"{self._describe()}: input(s) {', '.join(repr(m) for m in missing)} not given"
                f"{self._where_suffix()}; the model needs all of: {', '.join(self.input)}.")

    def _collect(self, requests: list[_Request]) -> None:
        """Copy the answers into the outputs (shared-memory outputs are copied out of the region)."""
        ragged = self.batchMode == RAGGED
        outputs = self.output._items
        transport = self._transport
        for name, out in outputs.items():
            arrays = []
            for req in requests:
                if name in req.shm_outputs:
                    offset, shape = req.shm_outputs[name]
                    array = self._shm.output.read(offset, out.dtype, shape)  # type: ignore[union-attr]
                else:
                    array = (req.transport or transport).output(req.result, name)  # type: ignore[union-attr]
                    if array is None:
                        server, address = self._server_of(req)
                        raise TritonServerError(
                            f"{self._describe()}: the server '{server}' ({address}) returned no "
                            f"output '{name}'{self._where_suffix()}", model=self.modelName, server=server,
                            address=address, event=self._where)
                arrays.append(array)
            if ragged:
                out.setResult([a[0] if self.batched and a.ndim and a.shape[0] == 1 else a for a in arrays])
            else:
                out.setResult(arrays[0])

    def _fill_empty_outputs(self) -> None:
        ragged = self.batchMode == RAGGED
        for out in self.output._items.values():
            out.setResult([] if ragged else np.empty((0, *[max(int(d), 0) for d in out.dims]), dtype=out.dtype))

    def __repr__(self) -> str:
        state = (f"server '{self.serverName}' ({self.serverAddress}, {self.protocol})" if self._connected
                 else "not connected")
        return f"<TritonClient {self._describe()} mode={self.mode} {state}>"


def _server_down(exc: BaseException) -> bool:
    """The server did not answer (unreachable, connection refused or reset): another server may. A timeout is
    not: the server may just be busy."""
    return is_recoverable(exc) and status_of(exc) != "DEADLINE_EXCEEDED" and not shm_lost(exc)


def _choice(where: str, name: str, value: str, allowed: tuple[str, ...], error: type = ConfigurationError) -> str:
    if value in allowed:
        return value
    shown = ", ".join(repr(a) for a in allowed)
    raise error(f"{where}: {name} must be one of {shown}, got {value!r}.{did_you_mean(str(value), allowed)}")


def _data_type_name(value: int) -> str:
    from tritonclient.grpc import model_config_pb2 as mc

    return mc.DataType.Name(value)


__all__ = [
    "CLIENT_PARAMETERS",
    "ClientStats",
    "Route",
    "EventLoopThread",
    "ServerAddress",
    "SslOptions",
    "TritonClient",
    "grpc_client",
    "grpc_url",
    "is_local_address",
    "is_recoverable",
]
