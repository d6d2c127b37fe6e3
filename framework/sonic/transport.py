"""How SONIC requests travel: gRPC or HTTP, Triton's full protocol or the core KServe V2 protocol.

One :class:`Transport` per client connection hides the protocol: it reads model metadata and configuration,
registers shared memory, builds requests and runs them, blocking (``infer``) or with a completion callback
(``infer_async``). Control calls, errors and statistics come back in one form whatever the protocol.

Completions: no thread is started per request, so the number of threads stays flat however many requests are
in flight (a ``tritonclient.grpc`` future starts a channel spin thread per burst of requests).

* gRPC: blocking requests use the synchronous ``tritonclient.grpc`` client in the calling thread (the cheapest
  gRPC call); asynchronous ones run on ONE asyncio event loop for the process (:class:`EventLoopThread`,
  ``tritonclient.grpc.aio``).
* HTTP: requests are encoded as ``tritonclient.http`` does (Triton's binary tensor extension, or JSON tensors
  for servers that refuse it) and carried by :mod:`framework.sonic.httpconn`: keep-alive connections, written
  with one ``sendmsg``; the answers of asynchronous requests are read by ONE epoll thread for the process.
  Measured on the 2-core machine this costs the client about half the CPU of a gRPC request (README).
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import zlib
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from ..server.endpoints import PROTOCOLS, check_protocol
from . import httpconn
from .perprocess import PerProcess

log = logging.getLogger("framework.sonic")

CONTROL_TIMEOUT = 30.0
"""Seconds allowed for metadata, configuration, statistics and shared-memory calls."""

_RETRIABLE_STATUS = {"UNAVAILABLE", "DEADLINE_EXCEEDED"}
_RETRIABLE_TEXT = ("connection reset", "socket closed", "broken pipe", "connection refused", "failed to connect",
                   "rst_stream", "goaway", "connection aborted", "end of tcp stream", "cannot connect to host",
                   "server disconnected", "connection closed", "connect call failed")
_HTTP_STATUS = {"400": "INVALID_ARGUMENT", "404": "NOT_FOUND", "408": "DEADLINE_EXCEEDED", "415": "INVALID_ARGUMENT",
                "422": "INVALID_ARGUMENT", "429": "UNAVAILABLE", "500": "INTERNAL", "501": "UNIMPLEMENTED",
                "502": "UNAVAILABLE", "503": "UNAVAILABLE", "504": "DEADLINE_EXCEEDED"}


# ----------------------------------------------------------------------------- addresses
class SslOptions(NamedTuple):
    """Files of an SSL connection (``None``: the default root certificates / no client certificate)."""

    rootCertificates: str | None = None
    privateKey: str | None = None
    certificateChain: str | None = None


class ServerAddress(NamedTuple):
    """Where a model is served: ``host:port`` (or ``unix:...`` for gRPC), whether the server runs on this
    machine (shared memory possible), the SSL options (``None`` for a plain connection) and the protocol."""

    address: str
    isLocal: bool
    ssl: SslOptions | None = None
    protocol: str = "grpc"


_LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1", "0.0.0.0"}


def grpc_url(address: str, port: int | None) -> str:
    """``host:port`` (IPv6 hosts in brackets; ``unix:`` addresses as they are)."""
    if address.startswith("unix:"):
        return address
    if ":" in address and not address.startswith("["):
        address = f"[{address}]"
    return f"{address}:{port}" if port is not None else address


def is_local_address(address: str) -> bool:
    """True for loopback hosts and unix sockets (where system shared memory is possible)."""
    if address.startswith("unix:"):
        return True
    host = address.rsplit(":", 1)[0] if address.count(":") == 1 or address.startswith("[") else address
    host = host.strip("[]")
    return host in _LOCAL_HOSTS or host.startswith("127.")


def parse_server(server: str | ServerAddress, protocol: str = "grpc") -> ServerAddress:
    """A :class:`ServerAddress` from ``"host:port"`` (or one given as is)."""
    if isinstance(server, ServerAddress):
        return server
    return ServerAddress(str(server), is_local_address(str(server)), None, protocol)


# ----------------------------------------------------------------------------- errors
def raw_status(exc: BaseException) -> str:
    """The status an exception carries as the client library gives it (``StatusCode.UNAVAILABLE``, ``404``)."""
    status = getattr(exc, "status", None)
    try:
        return str(status()) if callable(status) else str(status or "")
    except Exception:  # noqa: BLE001
        return ""


def status_of(exc: BaseException) -> str:
    """The gRPC status name of an error, whatever the protocol (HTTP codes mapped: 503 -> ``UNAVAILABLE``,
    404 -> ``NOT_FOUND``, ...); ``""`` when it carries none."""
    status = raw_status(exc)
    if status.startswith("StatusCode."):
        return status[len("StatusCode."):]
    return _HTTP_STATUS.get(status, status)


def message_of(exc: BaseException) -> str:
    """``[status] text`` of an error."""
    message = getattr(exc, "message", None)
    try:
        text = message() if callable(message) else str(exc)
    except Exception:  # noqa: BLE001
        text = str(exc)
    status = raw_status(exc)
    return f"[{status}] {text}" if status else f"{type(exc).__name__}: {text}"


def shm_lost(exc: BaseException) -> bool:
    """True when the server no longer knows our shared memory regions (it restarted)."""
    text = str(exc).lower()
    return "shared memory region" in text and ("unable to find" in text or "not found" in text
                                                or "no shared memory" in text)


def is_recoverable(exc: BaseException) -> bool:
    """Whether a failed request may succeed when tried again (server unavailable, timeout, reset connection,
    shared memory lost in a server restart)."""
    if status_of(exc) in _RETRIABLE_STATUS or isinstance(exc, (ConnectionError, asyncio.TimeoutError)):
        return True
    text = str(exc).lower()
    return any(t in text for t in _RETRIABLE_TEXT) or shm_lost(exc)


def is_unsupported(exc: BaseException) -> bool:
    """True when a server answered that it does not have an endpoint (a KServe-V2-only server asked for a
    Triton extension: gRPC ``UNIMPLEMENTED``, HTTP 404/501 that is not about an unknown model)."""
    status = status_of(exc)
    if status == "UNIMPLEMENTED":
        return True
    if status == "NOT_FOUND" and not raw_status(exc).startswith("StatusCode."):
        text = str(exc).lower()
        return "unknown model" not in text and "model" not in text.replace("not found", "")
    return False


# ----------------------------------------------------------------------------- the event loop
class EventLoopThread(PerProcess):
    """The process's one asyncio loop for SONIC requests, in one daemon thread (started on first use, made
    anew in a forked child)."""

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, name="sonic-io", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def submit(self, make: Callable[[], Any], callback: Callable[[Any, BaseException | None], None]) -> None:
        """Run the coroutine ``make()`` on the loop; ``callback(result, error)`` runs on the loop thread."""

        def done(task: asyncio.Task) -> None:
            try:
                result, error = task.result(), None
            except BaseException as exc:  # noqa: BLE001 - handed to the callback
                result, error = None, exc
            callback(result, error)

        def start() -> None:
            try:
                self.loop.create_task(make()).add_done_callback(done)
            except BaseException as exc:  # noqa: BLE001
                callback(None, exc)

        self.loop.call_soon_threadsafe(start)

    def run(self, make: Callable[[], Any], timeout: float | None = None) -> Any:
        """Run the coroutine ``make()`` on the loop and wait for its result (from any other thread)."""
        future: Future = Future()
        self.submit(make, lambda result, error: future.set_exception(error) if error is not None
                    else future.set_result(result))
        return future.result(timeout)


# ----------------------------------------------------------------------------- requests
@dataclass
class TensorSpec:
    """One tensor of a request: data in the message (``array``) or in a shared memory region."""

    name: str
    shape: Sequence[int]
    datatype: str
    array: np.ndarray | None = None
    region: str = ""
    nbytes: int = 0
    offset: int = 0


@dataclass
class ModelMetadata:
    """A model's inputs and outputs as the server describes them: (name, datatype, full shape)."""

    inputs: list[tuple[str, str, list[int]]]
    outputs: list[tuple[str, str, list[int]]]


class Transport:
    """The connection of one client to one server (base class: see :class:`GrpcTransport`,
    :class:`HttpTransport`)."""

    protocol = ""

    def __init__(self, server: ServerAddress, compression: str = ""):
        self.server = server
        self.address = server.address
        self.compression = compression
        self.json = False
        """HTTP only: tensors as JSON (servers that refuse Triton's binary tensor extension)."""

    # control calls (blocking, any thread)
    def model_metadata(self, model: str, version: str = "") -> ModelMetadata:
        raise NotImplementedError

    def model_config(self, model: str, version: str = "") -> Any:
        """The model's configuration (``model_config_pb2.ModelConfig``); raises where the server has none."""
        raise NotImplementedError

    def repository_index(self) -> set[str]:
        raise NotImplementedError

    def model_ready(self, model: str) -> bool:
        raise NotImplementedError

    def statistics(self, model: str) -> list[dict]:
        """Triton's per-model statistics as JSON-like dicts (``model_stats``)."""
        raise NotImplementedError

    def register_shm(self, name: str, key: str, size: int, timeout: float | None = CONTROL_TIMEOUT) -> None:
        raise NotImplementedError

    def unregister_shm(self, name: str, timeout: float | None = None) -> None:
        raise NotImplementedError

    # requests
    def make_request(self, model: str, version: str, inputs: list[TensorSpec],
                     outputs: list[TensorSpec] | None) -> Any:
        raise NotImplementedError

    def infer(self, request: Any, timeout: float | None) -> Any:
        raise NotImplementedError

    def infer_async(self, request: Any, timeout: float | None,
                    callback: Callable[[Any, BaseException | None], None]) -> None:
        raise NotImplementedError

    @staticmethod
    def output(result: Any, name: str) -> np.ndarray | None:
        return result.as_numpy(name)

    def close(self) -> None:
        raise NotImplementedError


def client_tensors(lib: Any, inputs: list[TensorSpec], outputs: list[TensorSpec] | None,
                   **data: Any) -> tuple[list[Any], list[Any] | None]:
    """``tritonclient.<lib>`` ``InferInput``s and ``InferRequestedOutput``s of a request (*lib*: the
    ``tritonclient.grpc`` or ``tritonclient.http`` module; *data*: e.g. ``binary_data=`` for HTTP)."""
    tensors = []
    for spec in inputs:
        tensor = lib.InferInput(spec.name, list(spec.shape), spec.datatype)
        if spec.region:
            tensor.set_shared_memory(spec.region, spec.nbytes, spec.offset)
        else:
            tensor.set_data_from_numpy(spec.array, **data)
        tensors.append(tensor)
    if outputs is None:
        return tensors, None
    requested = []
    for spec in outputs:
        out = lib.InferRequestedOutput(spec.name, **data)
        if spec.region:
            out.set_shared_memory(spec.region, spec.nbytes, spec.offset)
        requested.append(out)
    return tensors, requested


# ----------------------------------------------------------------------------- gRPC
def _grpc_channel_args() -> list[tuple[str, Any]]:
    import tritonclient.grpc as grpcclient

    keepalive = grpcclient.KeepAliveOptions()
    return [
        ("grpc.max_send_message_length", grpcclient.MAX_GRPC_MESSAGE_SIZE),
        ("grpc.max_receive_message_length", grpcclient.MAX_GRPC_MESSAGE_SIZE),
        ("grpc.keepalive_time_ms", keepalive.keepalive_time_ms),
        ("grpc.keepalive_timeout_ms", keepalive.keepalive_timeout_ms),
        ("grpc.keepalive_permit_without_calls", keepalive.keepalive_permit_without_calls),
        ("grpc.http2.max_pings_without_data", keepalive.http2_max_pings_without_data),
        # reconnect within a second after the server comes back (gRPC's default backoff grows to two minutes)
        ("grpc.initial_reconnect_backoff_ms", 100),
        ("grpc.min_reconnect_backoff_ms", 100),
        ("grpc.max_reconnect_backoff_ms", 1000),
    ]


def _ssl_kwargs(ssl: SslOptions | None) -> dict[str, Any]:
    if ssl is None:
        return {}
    return {"ssl": True, "root_certificates": ssl.rootCertificates or None, "private_key": ssl.privateKey or None,
            "certificate_chain": ssl.certificateChain or None}


def grpc_client(address: str, ssl: SslOptions | None = None) -> Any:
    """A ``tritonclient.grpc.InferenceServerClient`` with the framework's channel options. With *ssl*, a
    secure channel with the given certificates; verification is never turned off."""
    import tritonclient.grpc as grpcclient

    return grpcclient.InferenceServerClient(address, channel_args=_grpc_channel_args(), **_ssl_kwargs(ssl))


class GrpcTransport(Transport):
    """gRPC: blocking calls on ``tritonclient.grpc``, asynchronous ones on ``tritonclient.grpc.aio``."""

    protocol = "grpc"

    def __init__(self, server: ServerAddress, compression: str = ""):
        super().__init__(server, compression)
        self._sync = grpc_client(server.address, server.ssl)
        self._aio: Any = None
        self._aio_lock = threading.Lock()

    def model_metadata(self, model: str, version: str = "") -> ModelMetadata:
        md = self._sync.get_model_metadata(model, version, client_timeout=CONTROL_TIMEOUT)
        return ModelMetadata([(t.name, t.datatype, [int(d) for d in t.shape]) for t in md.inputs],
                             [(t.name, t.datatype, [int(d) for d in t.shape]) for t in md.outputs])

    def model_config(self, model: str, version: str = "") -> Any:
        return self._sync.get_model_config(model, version, client_timeout=CONTROL_TIMEOUT).config

    def repository_index(self) -> set[str]:
        index = self._sync.get_model_repository_index(client_timeout=CONTROL_TIMEOUT)
        # MLServer (1.7) writes its state enum over gRPC as "State.READY"
        return {m.name for m in index.models if m.state in ("READY", "", "State.READY")}

    def model_ready(self, model: str) -> bool:
        return bool(self._sync.is_model_ready(model, client_timeout=CONTROL_TIMEOUT))

    def statistics(self, model: str) -> list[dict]:
        from google.protobuf import json_format

        response = self._sync.get_inference_statistics(model, "", client_timeout=CONTROL_TIMEOUT)
        return json_format.MessageToDict(response, preserving_proto_field_name=True).get("model_stats", [])

    def register_shm(self, name: str, key: str, size: int, timeout: float | None = CONTROL_TIMEOUT) -> None:
        self._sync.register_system_shared_memory(name, key, size, client_timeout=timeout or CONTROL_TIMEOUT)

    def unregister_shm(self, name: str, timeout: float | None = None) -> None:
        self._sync.unregister_system_shared_memory(name, client_timeout=timeout)

    def make_request(self, model: str, version: str, inputs: list[TensorSpec],
                     outputs: list[TensorSpec] | None) -> Any:
        import tritonclient.grpc as grpcclient

        tensors, requested = client_tensors(grpcclient, inputs, outputs)
        return (model, version, tensors, requested)

    def infer(self, request: Any, timeout: float | None) -> Any:
        model, version, tensors, requested = request
        return self._sync.infer(model, tensors, model_version=version, outputs=requested, client_timeout=timeout,
                                compression_algorithm=self.compression or None)

    def _aio_client(self) -> Any:
        # made on the loop thread (grpc.aio channels belong to the loop that made them)
        if self._aio is None:
            import tritonclient.grpc.aio as grpcaio

            self._aio = grpcaio.InferenceServerClient(self.address, channel_args=_grpc_channel_args(),
                                                      **_ssl_kwargs(self.server.ssl))
        return self._aio

    def infer_async(self, request: Any, timeout: float | None,
                    callback: Callable[[Any, BaseException | None], None]) -> None:
        model, version, tensors, requested = request

        def make() -> Any:
            return self._aio_client().infer(model, tensors, model_version=version, outputs=requested,
                                            client_timeout=timeout, compression_algorithm=self.compression or None)

        EventLoopThread.get().submit(make, callback)

    def close(self) -> None:
        try:
            self._sync.close()
        except Exception:  # noqa: BLE001
            log.debug("error closing the gRPC client", exc_info=True)
        aio, self._aio = self._aio, None
        if aio is not None:
            try:
                EventLoopThread.get().run(aio.close, timeout=5.0)
            except Exception:  # noqa: BLE001
                log.debug("error closing the gRPC aio client", exc_info=True)


# ----------------------------------------------------------------------------- HTTP
def _http_ssl_context(ssl: SslOptions | None) -> Any:
    if ssl is None:
        return None
    import ssl as ssl_module

    context = ssl_module.create_default_context(cafile=ssl.rootCertificates or None)
    if ssl.certificateChain:
        context.load_cert_chain(ssl.certificateChain, ssl.privateKey or None)
    return context


class HttpTransport(Transport):
    """HTTP/REST: requests encoded by ``tritonclient.http`` (binary tensors, or JSON tensors for servers that
    refuse them), carried by :mod:`framework.sonic.httpconn` (keep-alive connections; answers of asynchronous
    requests read by the process's one completion thread)."""

    protocol = "http"

    def __init__(self, server: ServerAddress, compression: str = ""):
        super().__init__(server, compression)
        if server.address.startswith("unix:"):
            from ..exceptions import ConfigurationError

            raise ConfigurationError(f"server {server.address}: unix sockets need protocol 'grpc', not 'http'")
        host, _, port = server.address.rpartition(":")
        self._host, self._port = host.strip("[]"), int(port)
        self._ssl_context = _http_ssl_context(server.ssl)
        self._idle: list[Any] = []
        self._lock = threading.Lock()
        self._closed = False

    # ------------------------------------------------------------------ connections
    def _connection(self) -> Any:
        with self._lock:
            if self._idle:
                return self._idle.pop()
        try:
            return httpconn.Connection(self._host, self._port, self._ssl_context)
        except OSError as exc:
            raise httpconn.unavailable(self.address, exc) from None

    def _release(self, conn: Any, response: Any) -> None:
        if response is not None and response.keep_alive and not self._closed:
            with self._lock:
                self._idle.append(conn)
        else:
            conn.close()

    def _send(self, method: str, path: str, body: Sequence[Any], headers: dict[str, str] | None = None) -> Any:
        """A connection with the request written (a stale kept-alive connection is replaced once)."""
        length = sum(len(memoryview(b).cast("B")) for b in body)
        head = httpconn.request_head(method, path, self.address, length, headers)
        for attempt in (0, 1):
            conn = self._connection()
            try:
                conn.send(head, body)
                return conn
            except OSError as exc:
                conn.close()
                if attempt:
                    raise httpconn.unavailable(self.address, exc) from None
        raise AssertionError("unreachable")

    def _request(self, method: str, path: str, payload: Any = None, timeout: float | None = CONTROL_TIMEOUT) -> Any:
        """A control call: JSON in, JSON out; raises the server's error."""
        body = [json.dumps(payload).encode()] if payload is not None else []
        headers = {"Content-Type": "application/json"} if payload is not None else None
        for attempt in (0, 1):
            conn = self._send(method, path, body, headers)
            try:
                response = conn.read(timeout)
                break
            except OSError as exc:
                conn.close()
                if attempt:
                    raise httpconn.unavailable(self.address, exc) from None
            except BaseException:
                conn.close()
                raise
        self._release(conn, response)
        if response.status != 200:
            raise httpconn.error_from(response)
        return json.loads(response.body) if response.body else None

    @staticmethod
    def _model_path(model: str, version: str) -> str:
        from urllib.parse import quote

        path = f"/v2/models/{quote(model, safe='')}"
        return path + (f"/versions/{quote(version, safe='')}" if version else "")

    # ------------------------------------------------------------------ control
    def model_metadata(self, model: str, version: str = "") -> ModelMetadata:
        md = self._request("GET", self._model_path(model, version))
        return ModelMetadata([(t["name"], t["datatype"], [int(d) for d in t["shape"]]) for t in md.get("inputs", [])],
                             [(t["name"], t["datatype"], [int(d) for d in t["shape"]]) for t in md.get("outputs", [])])

    def model_config(self, model: str, version: str = "") -> Any:
        from google.protobuf import json_format
        from tritonclient.grpc import model_config_pb2 as mc

        config = self._request("GET", self._model_path(model, version) + "/config")
        return json_format.ParseDict(config, mc.ModelConfig(), ignore_unknown_fields=True)

    def repository_index(self) -> set[str]:
        index = self._request("POST", "/v2/repository/index", {})
        return {m["name"] for m in index if m.get("state", "READY") in ("READY", "")}

    def model_ready(self, model: str) -> bool:
        try:
            self._request("GET", self._model_path(model, "") + "/ready")
        except Exception as exc:  # noqa: BLE001
            if status_of(exc) in ("NOT_FOUND", "UNAVAILABLE", "INVALID_ARGUMENT") and raw_status(exc).isdigit():
                return False
            raise
        return True

    def statistics(self, model: str) -> list[dict]:
        return (self._request("GET", self._model_path(model, "") + "/stats") or {}).get("model_stats", [])

    def register_shm(self, name: str, key: str, size: int, timeout: float | None = CONTROL_TIMEOUT) -> None:
        from urllib.parse import quote

        self._request("POST", f"/v2/systemsharedmemory/region/{quote(name, safe='')}/register",
                      {"key": key, "offset": 0, "byte_size": int(size)}, timeout=timeout or CONTROL_TIMEOUT)

    def unregister_shm(self, name: str, timeout: float | None = None) -> None:
        from urllib.parse import quote

        self._request("POST", f"/v2/systemsharedmemory/region/{quote(name, safe='')}/unregister", {},
                      timeout=timeout)

    # ------------------------------------------------------------------ requests
    def make_request(self, model: str, version: str, inputs: list[TensorSpec],
                     outputs: list[TensorSpec] | None) -> Any:
        if not self.json and all(spec.datatype != "BYTES" for spec in inputs):
            return self._binary_request(model, version, inputs, outputs)
        import tritonclient.http as httpclient

        tensors, requested = client_tensors(httpclient, inputs, outputs, binary_data=not self.json)
        body, json_size = httpclient.InferenceServerClient.generate_request_body(tensors, outputs=requested)
        if isinstance(body, str):
            body = body.encode()
        headers = {"Inference-Header-Content-Length": str(json_size)} if json_size is not None else {}
        return self._finish_request(model, version, [body], headers, json_size is not None)

    def _binary_request(self, model: str, version: str, inputs: list[TensorSpec],
                        outputs: list[TensorSpec] | None) -> Any:
        """Triton's binary tensor extension, written directly: a small JSON header, then the tensors' bytes
        (sent as they are, without joining them)."""
        header_inputs = []
        raw: list[Any] = []
        for spec in inputs:
            entry: dict[str, Any] = {"name": spec.name, "shape": [int(d) for d in spec.shape],
                                     "datatype": spec.datatype}
            if spec.region:
                entry["parameters"] = {"shared_memory_region": spec.region, "shared_memory_byte_size": spec.nbytes,
                                       "shared_memory_offset": spec.offset}
            else:
                array = np.ascontiguousarray(spec.array)
                entry["parameters"] = {"binary_data_size": array.nbytes}
                raw.append(array)
            header_inputs.append(entry)
        request: dict[str, Any] = {"inputs": header_inputs}
        if outputs is None:
            request["parameters"] = {"binary_data_output": True}
        else:
            request["outputs"] = [
                {"name": spec.name, "parameters": {"shared_memory_region": spec.region,
                                                   "shared_memory_byte_size": spec.nbytes,
                                                   "shared_memory_offset": spec.offset}}
                if spec.region else {"name": spec.name, "parameters": {"binary_data": True}}
                for spec in outputs]
        header = json.dumps(request, separators=(",", ":")).encode()
        headers = {"Inference-Header-Content-Length": str(len(header))}
        return self._finish_request(model, version, [header, *raw], headers, True)

    def _finish_request(self, model: str, version: str, body: list[Any], headers: dict[str, str],
                        binary: bool) -> Any:
        headers["Content-Type"] = "application/octet-stream" if binary else "application/json"
        if self.compression:
            joined = b"".join(bytes(memoryview(b).cast("B")) for b in body)
            if self.compression == "gzip":
                compressor = zlib.compressobj(wbits=16 + zlib.MAX_WBITS)
                body = [compressor.compress(joined) + compressor.flush()]
            else:
                body = [zlib.compress(joined)]
            headers["Content-Encoding"] = self.compression
            headers["Accept-Encoding"] = self.compression
        return (self._model_path(model, version) + "/infer", body, headers)

    @staticmethod
    def _result(response: Any) -> Any:
        if response.status != 200:
            raise httpconn.error_from(response)
        length = response.headers.get("inference-header-content-length")
        return httpconn.HttpResult(httpconn.decode_body(response), int(length) if length else None)

    def infer(self, request: Any, timeout: float | None) -> Any:
        path, body, headers = request
        conn = self._send("POST", path, body, headers)
        try:
            response = conn.read(timeout)
        except OSError as exc:
            conn.close()
            raise httpconn.unavailable(self.address, exc) from None
        except BaseException:
            conn.close()
            raise
        self._release(conn, response)
        return self._result(response)

    def infer_async(self, request: Any, timeout: float | None,
                    callback: Callable[[Any, BaseException | None], None]) -> None:
        path, body, headers = request
        conn = self._send("POST", path, body, headers)

        def done(response: Any, error: BaseException | None) -> None:
            if error is not None:
                callback(None, error)
                return
            self._release(conn, response)
            try:
                result = self._result(response)
            except BaseException as exc:  # noqa: BLE001 - handed to the callback
                callback(None, exc)
                return
            callback(result, None)

        httpconn.Completions.get().watch(conn, done, timeout)

    def close(self) -> None:
        self._closed = True
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()


def make_transport(server: ServerAddress, compression: str = "") -> Transport:
    """The transport of *server*'s protocol."""
    if server.protocol == "http":
        return HttpTransport(server, compression)
    check_protocol(server.protocol, f"server {server.address}")
    return GrpcTransport(server, compression)


__all__ = [
    "CONTROL_TIMEOUT",
    "PROTOCOLS",
    "EventLoopThread",
    "GrpcTransport",
    "HttpTransport",
    "ModelMetadata",
    "ServerAddress",
    "SslOptions",
    "TensorSpec",
    "Transport",
    "grpc_client",
    "grpc_url",
    "is_local_address",
    "is_recoverable",
    "is_unsupported",
    "make_transport",
    "message_of",
    "parse_server",
    "raw_status",
    "shm_lost",
    "status_of",
]
