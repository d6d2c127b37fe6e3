"""Loopback reverse proxies that make the bundled Triton server look like a KServe-V2-only server (like MLServer).

Two context managers, each bound to ``127.0.0.1`` on a free port and served by background daemon threads:

    GrpcV2Proxy   forwards the unary (and streaming) methods of ``inference.GRPCInferenceService`` as raw bytes;
                  the Triton-only methods (config, statistics, shared memory, trace, logging) answer
                  ``UNIMPLEMENTED`` / "Method not found!", exactly as grpc (hence MLServer) does for a method
                  it does not serve.
    HttpV2Proxy   forwards the REST API; the Triton-only endpoints answer ``404 {"error": "Not Found"}``, and with
                  ``reject_binary`` the binary tensor extension of ``tritonclient.http`` is refused (400).

Both count what they see: ``counts`` (everything received), ``forwarded`` and ``refused`` (dict snapshots, keyed by
the gRPC method name such as ``"ModelInfer"``, or by ``"POST /v2/models/affine/infer"`` for HTTP; the query string
is left out of the key). ::

    with GrpcV2Proxy(server.grpc_address) as proxy:
        client = tritonclient.grpc.InferenceServerClient(proxy.address)
"""

from __future__ import annotations

import gzip
import http.client
import http.server
import json
import re
import socket
import threading
import zlib
from collections import Counter
from collections.abc import Iterable, Iterator
from concurrent import futures
from typing import Any

import grpc

SERVICE = "inference.GRPCInferenceService"

DEFAULT_GRPC_DISABLED: frozenset[str] = frozenset(
    f"/{SERVICE}/{name}"
    for name in (
        "ModelConfig",
        "ModelStatistics",
        "SystemSharedMemoryStatus",
        "SystemSharedMemoryRegister",
        "SystemSharedMemoryUnregister",
        "CudaSharedMemoryStatus",
        "CudaSharedMemoryRegister",
        "CudaSharedMemoryUnregister",
        "TraceSetting",
        "LogSettings",
    )
)
"""Full method names that :class:`GrpcV2Proxy` refuses by default (what MLServer lacks)."""

GRPC_NOT_FOUND_DETAILS = "Method not found!"
"""The details of grpc's own UNIMPLEMENTED answer for a method the server does not serve (MLServer's too)."""

STREAMING_METHODS: frozenset[str] = frozenset({f"/{SERVICE}/ModelStreamInfer"})

_UNLIMITED = [("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)]
_NO_DEADLINE = 1e7  # time_remaining() beyond this means the client set no deadline

# metadata that grpc manages itself and refuses (or duplicates) when passed explicitly
_RESERVED_METADATA = ("content-type", "user-agent", "te")


class _Counts:
    """Thread-safe counters of received / forwarded / refused requests."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._forwarded: Counter[str] = Counter()
        self._refused: Counter[str] = Counter()

    def add(self, key: str, *, refused: bool) -> None:
        with self._lock:
            (self._refused if refused else self._forwarded)[key] += 1

    def snapshot(self, which: str) -> dict[str, int]:
        with self._lock:
            if which == "forwarded":
                return dict(self._forwarded)
            if which == "refused":
                return dict(self._refused)
            return dict(self._forwarded + self._refused)

    def reset(self) -> None:
        with self._lock:
            self._forwarded.clear()
            self._refused.clear()


class _CountingProxy:
    """Shared API of the two proxies: counters, ``address``/``port`` and the context manager protocol."""

    _port: int | None

    def __init__(self) -> None:
        self._counts = _Counts()
        self._state_lock = threading.Lock()

    @property
    def counts(self) -> dict[str, int]:
        """Requests received (forwarded + refused), by key."""
        return self._counts.snapshot("counts")

    @property
    def forwarded(self) -> dict[str, int]:
        """Requests forwarded to the upstream server, by key."""
        return self._counts.snapshot("forwarded")

    @property
    def refused(self) -> dict[str, int]:
        """Requests answered by the proxy itself (disabled methods / endpoints, rejected binary data), by key."""
        return self._counts.snapshot("refused")

    def reset_counts(self) -> None:
        self._counts.reset()

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError(f"{type(self).__name__} was never started")
        return self._port

    @property
    def address(self) -> str:
        """``127.0.0.1:PORT`` (valid once started)."""
        return f"127.0.0.1:{self.port}"

    def start(self):  # pragma: no cover - overridden
        raise NotImplementedError

    def stop(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()


# ----------------------------------------------------------------------------------------------------------- gRPC


def _forwardable(metadata: Iterable[tuple[str, Any]] | None) -> list[tuple[str, Any]]:
    return [(k, v) for k, v in (metadata or ())
            if not k.startswith((":", "grpc-")) and k.lower() not in _RESERVED_METADATA]


class GrpcV2Proxy(_CountingProxy):
    """gRPC proxy of ``inference.GRPCInferenceService`` in front of *upstream* (``host:port``).

    Every method of the service is forwarded as raw bytes (request metadata and deadline included; upstream errors
    come back with the same status code and details, and the upstream's initial/trailing metadata are passed on),
    except the full method names in *disabled*, which answer ``UNIMPLEMENTED`` / ``"Method not found!"`` as does any
    method of another service. ``ModelStreamInfer`` is forwarded as a bidirectional stream. Message sizes are
    unlimited both ways. ``counts`` etc. are keyed by the short method name (``"ModelInfer"``).
    """

    def __init__(self, upstream: str = "127.0.0.1:8001", disabled: Iterable[str] = DEFAULT_GRPC_DISABLED, *,
                 max_workers: int = 16) -> None:
        super().__init__()
        self.upstream = upstream
        self.disabled: frozenset[str] = frozenset(disabled)
        self.max_workers = max_workers
        self._port = None
        self._server: grpc.Server | None = None
        self._channel: grpc.Channel | None = None

    def __repr__(self) -> str:
        state = f"on {self.address}" if self._server is not None else "stopped"
        return f"GrpcV2Proxy({state} -> {self.upstream}, {len(self.disabled)} disabled)"

    def start(self) -> GrpcV2Proxy:
        """Bind (the previous port again after a stop) and serve; no-op when running."""
        with self._state_lock:
            if self._server is not None:
                return self
            channel = grpc.insecure_channel(self.upstream, options=_UNLIMITED)
            server = grpc.server(futures.ThreadPoolExecutor(max_workers=self.max_workers,
                                                            thread_name_prefix="grpc-v2-proxy"),
                                 handlers=[_GrpcHandler(self, channel)],
                                 options=[*_UNLIMITED, ("grpc.so_reuseport", 0)])
            port = server.add_insecure_port(f"127.0.0.1:{self._port or 0}")
            if port == 0 and self._port:
                port = server.add_insecure_port("127.0.0.1:0")
            if port == 0:
                channel.close()
                raise RuntimeError("GrpcV2Proxy could not bind 127.0.0.1")
            server.start()
            self._server, self._channel, self._port = server, channel, port
            return self

    def stop(self, grace: float | None = 0.5) -> None:
        """Stop serving (in-flight calls get *grace* seconds) and close the upstream channel; no-op when stopped."""
        with self._state_lock:
            server, channel = self._server, self._channel
            self._server = self._channel = None
        if server is not None:
            server.stop(grace).wait()
        if channel is not None:
            channel.close()


class _GrpcHandler(grpc.GenericRpcHandler):
    def __init__(self, proxy: GrpcV2Proxy, channel: grpc.Channel) -> None:
        self._proxy = proxy
        self._channel = channel

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        method: str = handler_call_details.method
        prefix = f"/{SERVICE}/"
        key = method[len(prefix):] if method.startswith(prefix) else method
        if not method.startswith(prefix) or method in self._proxy.disabled:
            self._proxy._counts.add(key, refused=True)
            return None  # grpc answers UNIMPLEMENTED "Method not found!"
        self._proxy._counts.add(key, refused=False)
        if method in STREAMING_METHODS:
            upstream_stream = self._channel.stream_stream(method, request_serializer=None,
                                                          response_deserializer=None)
            return grpc.stream_stream_rpc_method_handler(
                lambda requests, context: self._stream(upstream_stream, requests, context))
        upstream_unary = self._channel.unary_unary(method, request_serializer=None, response_deserializer=None)
        return grpc.unary_unary_rpc_method_handler(
            lambda request, context: self._unary(upstream_unary, request, context))

    @staticmethod
    def _timeout(context: grpc.ServicerContext) -> float | None:
        remaining = context.time_remaining()
        if remaining is None or remaining > _NO_DEADLINE:
            return None
        return max(remaining, 1e-3)

    @staticmethod
    def _abort(context: grpc.ServicerContext, error: grpc.RpcError) -> None:
        trailing = _forwardable(getattr(error, "trailing_metadata", lambda: None)())
        if trailing:
            context.set_trailing_metadata(trailing)
        code = error.code() if callable(getattr(error, "code", None)) else grpc.StatusCode.UNKNOWN
        details = error.details() if callable(getattr(error, "details", None)) else str(error)
        context.abort(code, details or "")

    def _unary(self, upstream: grpc.UnaryUnaryMultiCallable, request: bytes,
               context: grpc.ServicerContext) -> bytes:
        try:
            response, call = upstream.with_call(request, timeout=self._timeout(context),
                                                metadata=_forwardable(context.invocation_metadata()))
        except grpc.RpcError as error:
            self._abort(context, error)
            raise  # unreachable: abort raises
        initial = _forwardable(call.initial_metadata())
        if initial:
            context.send_initial_metadata(initial)
        trailing = _forwardable(call.trailing_metadata())
        if trailing:
            context.set_trailing_metadata(trailing)
        return response

    def _stream(self, upstream: grpc.StreamStreamMultiCallable, requests: Iterator[bytes],
                context: grpc.ServicerContext) -> Iterator[bytes]:
        call = upstream(requests, timeout=self._timeout(context),
                        metadata=_forwardable(context.invocation_metadata()))
        context.add_callback(call.cancel)
        try:
            yield from call
        except grpc.RpcError as error:
            self._abort(context, error)
        trailing = _forwardable(call.trailing_metadata())
        if trailing:
            context.set_trailing_metadata(trailing)


# ----------------------------------------------------------------------------------------------------------- HTTP

_MODEL = r"/v2/models/[^/]+(?:/versions/[^/]+)?"
_CONFIG_RE = re.compile(rf"^{_MODEL}/config/?$")
_TRITON_ONLY_RE = re.compile(
    rf"^(?:/v2/models(?:/[^/]+(?:/versions/[^/]+)?)?/stats"
    rf"|/v2/(?:systemsharedmemory|cudasharedmemory|trace)(?:/.*)?"
    rf"|{_MODEL}/trace(?:/.*)?"
    rf"|/v2/logging)/?$")
_INFER_RE = re.compile(rf"^{_MODEL}/infer/?$")

_HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
                         "trailers", "transfer-encoding", "upgrade", "proxy-connection", "expect"})
BINARY_HEADER = "Inference-Header-Content-Length"


def _decoded(body: bytes, encoding: str | None) -> bytes:
    encoding = (encoding or "").strip().lower()
    if encoding == "gzip":
        return gzip.decompress(body)
    if encoding == "deflate":
        try:
            return zlib.decompress(body)
        except zlib.error:
            return zlib.decompress(body, -zlib.MAX_WBITS)
    return body


def _binary_request_reason(body: bytes, encoding: str | None) -> str | None:
    """Why an infer request (JSON body) uses the binary tensor extension, or None."""
    try:
        request = json.loads(_decoded(body, encoding))
    except (ValueError, OSError, zlib.error):
        return None  # not ours to judge: the upstream answers
    if not isinstance(request, dict):
        return None
    params = request.get("parameters") or {}
    if isinstance(params, dict) and params.get("binary_data_output"):
        return "the binary_data_output parameter"
    for kind in ("inputs", "outputs"):
        for tensor in request.get(kind) or []:
            tp = tensor.get("parameters") if isinstance(tensor, dict) else None
            if isinstance(tp, dict) and (tp.get("binary_data") or "binary_data_size" in tp):
                return f"binary_data for {kind[:-1]} '{tensor.get('name')}'"
    return None


class _ProxyHTTPServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    proxy: HttpV2Proxy

    def __init__(self, proxy: HttpV2Proxy, port: int) -> None:
        self.proxy = proxy
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(("127.0.0.1", port), _HttpHandler)

    def close_connections(self) -> None:
        with self.connections_lock:
            conns, self.connections = list(self.connections), set()
        for sock in conns:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class HttpV2Proxy(_CountingProxy):
    """HTTP proxy of the KServe V2 REST API in front of *upstream* (``host:port``).

    GET/POST/HEAD are forwarded (body, status and headers, Content-Encoding untouched) over one upstream keep-alive
    connection per client connection. The Triton-only endpoints (statistics, shared memory, trace, logging and,
    with *disable_config*, the model config) answer ``404 {"error": "Not Found"}``. With *reject_binary*, an infer
    request that uses the binary tensor extension (the ``Inference-Header-Content-Length`` header, ``binary_data``
    outputs or the ``binary_data_output`` parameter, which tritonclient sets when no outputs are requested)
    answers ``400 {"error": "Binary tensor data is not supported ..."}``. An unreachable upstream gives 502.
    ``counts`` etc. are keyed by ``"METHOD /path"``.
    """

    def __init__(self, upstream: str = "127.0.0.1:8000", disable_config: bool = True, reject_binary: bool = False,
                 *, timeout: float = 120.0) -> None:
        super().__init__()
        self.upstream = upstream
        self.disable_config = disable_config
        self.reject_binary = reject_binary
        self.timeout = timeout
        host, _, port = upstream.rpartition(":")
        self._upstream_host, self._upstream_port = host or "127.0.0.1", int(port)
        self._port = None
        self._server: _ProxyHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        state = f"on {self.address}" if self._server is not None else "stopped"
        return (f"HttpV2Proxy({state} -> {self.upstream}, disable_config={self.disable_config}, "
                f"reject_binary={self.reject_binary})")

    def start(self) -> HttpV2Proxy:
        """Bind (the previous port again after a stop, if free) and serve; no-op when running."""
        with self._state_lock:
            if self._server is not None:
                return self
            try:
                server = _ProxyHTTPServer(self, self._port or 0)
            except OSError:
                if not self._port:
                    raise
                server = _ProxyHTTPServer(self, 0)
            thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                                      name=f"http-v2-proxy-{server.server_address[1]}", daemon=True)
            thread.start()
            self._server, self._thread, self._port = server, thread, server.server_address[1]
            return self

    def stop(self) -> None:
        """Stop serving and close the open client connections; no-op when stopped."""
        with self._state_lock:
            server, thread = self._server, self._thread
            self._server = self._thread = None
        if server is not None:
            server.shutdown()
            server.server_close()
            server.close_connections()
        if thread is not None:
            thread.join(timeout=5)

    def refusal(self, method: str, path: str, headers: Any, body: bytes) -> tuple[int, str] | None:
        """``(status, error message)`` when the proxy answers the request itself, else None."""
        path = path.split("?", 1)[0]
        if _TRITON_ONLY_RE.match(path) or (self.disable_config and _CONFIG_RE.match(path)):
            return 404, "Not Found"
        if self.reject_binary and method == "POST" and _INFER_RE.match(path):
            if headers.get(BINARY_HEADER) is not None:
                return 400, f"Binary tensor data is not supported (request carries {BINARY_HEADER})"
            reason = _binary_request_reason(body, headers.get("Content-Encoding"))
            if reason:
                return 400, f"Binary tensor data is not supported (request asks for {reason})"
        return None

    def new_upstream_connection(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(self._upstream_host, self._upstream_port, timeout=self.timeout)


class _HttpHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _ProxyHTTPServer
    _upstream: http.client.HTTPConnection | None = None

    def setup(self) -> None:
        super().setup()
        with self.server.connections_lock:
            self.server.connections.add(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            with self.server.connections_lock:
                self.server.connections.discard(self.connection)
            if self._upstream is not None:
                self._upstream.close()

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        self._proxy()

    def do_POST(self) -> None:
        self._proxy()

    def do_HEAD(self) -> None:
        self._proxy()

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _send(self, status: int, body: bytes, headers: list[tuple[str, str]],
              content_length: str | None = None) -> None:
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        if not (100 <= status < 200 or status in (204, 304)):
            self.send_header("Content-Length", content_length if content_length is not None else str(len(body)))
        self.end_headers()
        if self.command != "HEAD" and body:
            self.wfile.write(body)

    def _send_json_error(self, status: int, message: str) -> None:
        body = json.dumps({"error": message}).encode()
        self._send(status, body, [("Content-Type", "application/json")])

    def _proxy(self) -> None:
        proxy = self.server.proxy
        body = self._read_body()
        key = f"{self.command} {self.path.split('?', 1)[0]}"
        refusal = proxy.refusal(self.command, self.path, self.headers, body)
        if refusal is not None:
            proxy._counts.add(key, refused=True)
            self._send_json_error(*refusal)
            return
        proxy._counts.add(key, refused=False)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP and k.lower() != "host"}
        headers["Host"] = proxy.upstream
        if self.command != "GET" or body:
            headers["Content-Length"] = str(len(body))
        else:
            headers.pop("Content-Length", None)
        try:
            response, data = self._exchange(headers, body)
        except (OSError, http.client.HTTPException) as e:
            self._send_json_error(502, f"upstream {proxy.upstream} unreachable: {e}")
            return
        out = [(k, v) for k, v in response.getheaders() if k.lower() not in _HOP_BY_HOP
               and k.lower() != "content-length"]
        length = response.getheader("Content-Length") if self.command == "HEAD" else None
        self._send(response.status, data, out, length)

    def _exchange(self, headers: dict[str, str], body: bytes) -> tuple[http.client.HTTPResponse, bytes]:
        """One request upstream over this connection's keep-alive connection; retried once on a stale one."""
        for attempt in (0, 1):
            reused = self._upstream is not None
            if self._upstream is None:
                self._upstream = self.server.proxy.new_upstream_connection()
            try:
                self._upstream.request(self.command, self.path, body=body or None, headers=headers)
                response = self._upstream.getresponse()
                data = response.read()
            except (OSError, http.client.HTTPException):
                self._upstream.close()
                self._upstream = None
                if attempt or not reused:
                    raise
                continue
            if response.will_close:
                self._upstream.close()
                self._upstream = None
            return response, data
        raise AssertionError("unreachable")


__all__ = [
    "BINARY_HEADER",
    "DEFAULT_GRPC_DISABLED",
    "GRPC_NOT_FOUND_DETAILS",
    "GrpcV2Proxy",
    "HttpV2Proxy",
]
