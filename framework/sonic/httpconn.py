"""A lean HTTP/1.1 client for the KServe V2 REST protocol, and the process's one completion thread.

tritonclient.http encodes the requests and decodes the answers (``generate_request_body`` /
``parse_response_body``: JSON header plus Triton's binary tensor extension, or JSON tensors); this module only
moves the bytes. A request is written with one ``sendmsg`` of the header and the tensors' buffers (no copy of
the tensors in Python), and the answer is read either in the calling thread (blocking requests) or by the
:class:`Completions` thread, which waits on every connection with one ``epoll`` and calls the request's callback.
Registering a connection is one ``epoll_ctl`` from the calling thread: nothing to wake up, no thread per request.
Measured on the 2-core development machine, a ParT request costs the client 0.24 ms of CPU this way, against
0.6 ms with tritonclient.http's own client and 0.8 ms with tritonclient.grpc.
"""

from __future__ import annotations

import errno
import heapq
import json
import logging
import os
import select
import socket
import threading
import time
import zlib
from collections.abc import Callable, Sequence
from typing import Any

from .perprocess import PerProcess

log = logging.getLogger("framework.sonic")

_READ = 1 << 16


def _error(msg: str, status: str) -> Exception:
    from tritonclient.utils import InferenceServerException

    return InferenceServerException(msg=msg, status=status)


def unavailable(address: str, exc: BaseException) -> Exception:
    """The error of a connection that failed (retried like gRPC's ``UNAVAILABLE``)."""
    return _error(f"connection to {address} failed: {type(exc).__name__}: {exc}", "StatusCode.UNAVAILABLE")


def deadline() -> Exception:
    return _error("Deadline Exceeded", "StatusCode.DEADLINE_EXCEEDED")


class Response:
    """An HTTP answer being read: status, headers, body."""

    __slots__ = ("status", "headers", "body", "_buf", "_need", "_chunked", "_head_done")

    def __init__(self) -> None:
        self.status = 0
        self.headers: dict[str, str] = {}
        self.body = b""
        self._buf = bytearray()
        self._need = -1
        self._chunked = False
        self._head_done = False

    def feed(self, data: bytes) -> bool:
        """Add received bytes; True when the answer is complete."""
        self._buf += data
        if not self._head_done:
            end = self._buf.find(b"\r\n\r\n")
            if end < 0:
                return False
            lines = bytes(self._buf[:end]).decode("latin-1").split("\r\n")
            del self._buf[:end + 4]
            parts = lines[0].split(" ", 2)
            self.status = int(parts[1])
            for line in lines[1:]:
                key, _, value = line.partition(":")
                self.headers[key.strip().lower()] = value.strip()
            self._head_done = True
            self._chunked = "chunked" in self.headers.get("transfer-encoding", "").lower()
            if not self._chunked:
                self._need = int(self.headers.get("content-length", "0"))
        if self._chunked:
            return self._feed_chunked()
        if len(self._buf) >= self._need:
            self.body = bytes(self._buf[:self._need])
            return True
        return False

    def _feed_chunked(self) -> bool:
        body = bytearray()
        pos = 0
        buf = self._buf
        while True:
            end = buf.find(b"\r\n", pos)
            if end < 0:
                return False
            size = int(bytes(buf[pos:end]).split(b";")[0], 16)
            if size == 0:
                if buf.find(b"\r\n", end + 2) < 0:
                    return False
                self.body = bytes(body)
                return True
            if len(buf) < end + 2 + size + 2:
                return False
            body += buf[end + 2:end + 2 + size]
            pos = end + 2 + size + 2

    @property
    def keep_alive(self) -> bool:
        return self.headers.get("connection", "").lower() != "close"


class Connection:
    """One keep-alive connection to the server (used by one request at a time)."""

    def __init__(self, host: str, port: int, ssl_context: Any = None, timeout: float | None = 30.0):
        self.address = f"{host}:{port}"
        sock = socket.create_connection((host, port), timeout=timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if ssl_context is not None:
            sock = ssl_context.wrap_socket(sock, server_hostname=host)
        self.sock = sock
        self.ssl = ssl_context is not None
        self._timeout: float | None = timeout

    def settimeout(self, timeout: float | None) -> None:
        """Change the socket's timeout only when it differs (each change is a system call)."""
        if timeout != self._timeout:
            self.sock.settimeout(timeout)
            self._timeout = timeout

    def send(self, head: bytes, body: Sequence[Any]) -> None:
        self.settimeout(None)
        if self.ssl:
            self.sock.sendall(head + b"".join(bytes(b) for b in body))
            return
        buffers = [memoryview(head)] + [memoryview(b).cast("B") for b in body if len(b)]
        while buffers:
            sent = self.sock.sendmsg(buffers[:512])
            while sent and buffers:
                n = len(buffers[0])
                if sent >= n:
                    sent -= n
                    buffers.pop(0)
                else:
                    buffers[0] = buffers[0][sent:]
                    sent = 0

    def read(self, timeout: float | None) -> Response:
        """Read one answer, blocking."""
        self.settimeout(timeout)
        response = Response()
        while True:
            try:
                data = self.sock.recv(_READ)
            except TimeoutError:
                raise deadline() from None
            if not data:
                raise ConnectionResetError("the server closed the connection")
            if response.feed(data):
                return response

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


def request_head(method: str, path: str, host: str, length: int, headers: dict[str, str] | None = None) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", f"Content-Length: {length}"]
    for key, value in (headers or {}).items():
        lines.append(f"{key}: {value}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def error_from(response: Response) -> Exception:
    """The ``InferenceServerException`` of a non-200 answer (the server's ``error`` text)."""
    text = response.body.decode("utf-8", "replace")
    try:
        message = json.loads(text).get("error", text) if text else "empty response"
    except (ValueError, AttributeError):
        message = text or f"HTTP {response.status}"
    return _error(str(message), str(response.status))


class HttpResult:
    """The outputs of one V2 inference answer (JSON header, then the binary outputs in header order);
    ``as_numpy(name)`` as ``tritonclient``'s results."""

    __slots__ = ("_outputs", "_body", "_start")

    def __init__(self, body: bytes, header_length: int | None):
        header = body[:header_length] if header_length else body
        self._body = body
        self._start = header_length or len(body)
        self._outputs = {o["name"]: o for o in json.loads(header).get("outputs", [])}

    def as_numpy(self, name: str) -> Any:
        import numpy as np
        from tritonclient.utils import deserialize_bytes_tensor, triton_to_np_dtype

        out = self._outputs.get(name)
        if out is None:
            return None
        shape = [int(d) for d in out.get("shape", [])]
        datatype = out.get("datatype", "")
        params = out.get("parameters") or {}
        if "binary_data_size" in params:
            offset = self._start
            for other in self._outputs.values():  # the binary outputs follow in the header's order
                if other is out:
                    break
                offset += int((other.get("parameters") or {}).get("binary_data_size", 0))
            data = self._body[offset:offset + int(params["binary_data_size"])]
            if datatype == "BYTES":
                return deserialize_bytes_tensor(data).reshape(shape)
            return np.frombuffer(data, dtype=triton_to_np_dtype(datatype)).reshape(shape)
        if "data" in out:
            dtype = np.object_ if datatype == "BYTES" else triton_to_np_dtype(datatype)
            return np.array(out["data"], dtype=dtype).reshape(shape)
        return None


def decode_body(response: Response) -> bytes:
    encoding = response.headers.get("content-encoding", "")
    if encoding == "gzip":
        return zlib.decompress(response.body, 16 + zlib.MAX_WBITS)
    if encoding == "deflate":
        return zlib.decompress(response.body)
    return response.body


class Completions(PerProcess):
    """The process's one completion thread: reads the answers of asynchronous HTTP requests with ``epoll``
    and calls their callbacks; enforces their deadlines."""

    def __init__(self) -> None:
        super().__init__()
        self._epoll = select.epoll()
        self._pending: dict[int, tuple[Connection, Response, Callable[[Response | None, BaseException | None],
                                                                     None], float]] = {}
        self._deadlines: list[tuple[float, int, int]] = []
        self._serial = 0
        self._guard = threading.Lock()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        self._epoll.register(self._wake_r, select.EPOLLIN)
        self.thread = threading.Thread(target=self._run, name="sonic-completions", daemon=True)
        self.thread.start()

    def watch(self, conn: Connection, callback: Callable[[Response | None, BaseException | None], None],
              timeout: float | None) -> None:
        """Read *conn*'s next answer on the completion thread; ``callback(response, error)`` runs there."""
        fd = conn.sock.fileno()
        conn.settimeout(0.0)
        until = time.monotonic() + timeout if timeout else 0.0
        with self._guard:
            self._serial += 1
            self._pending[fd] = (conn, Response(), callback, until)
            if until:
                heapq.heappush(self._deadlines, (until, self._serial, fd))
        self._epoll.register(fd, select.EPOLLIN | select.EPOLLONESHOT)
        if until:
            os.write(self._wake_w, b"x")  # the poll timeout may have to shrink

    def _finish(self, fd: int, response: Response | None, error: BaseException | None) -> None:
        with self._guard:
            entry = self._pending.pop(fd, None)
        if entry is None:
            return
        conn, _, callback, _ = entry
        try:
            self._epoll.unregister(fd)
        except (OSError, ValueError):
            pass
        if error is not None:
            conn.close()
        try:
            callback(response, error)
        except BaseException:  # noqa: BLE001 - a callback must not stop the thread
            log.exception("SONIC completion callback failed")

    def _read(self, fd: int) -> None:
        with self._guard:
            entry = self._pending.get(fd)
        if entry is None:
            return
        conn, response, _, _ = entry
        try:
            while True:
                try:
                    data = conn.sock.recv(_READ)
                except (BlockingIOError, InterruptedError):
                    self._epoll.modify(fd, select.EPOLLIN | select.EPOLLONESHOT)
                    return
                except OSError as exc:
                    if getattr(exc, "errno", None) == errno.EAGAIN:
                        self._epoll.modify(fd, select.EPOLLIN | select.EPOLLONESHOT)
                        return
                    raise
                if not data:
                    raise ConnectionResetError("the server closed the connection")
                if response.feed(data):
                    self._finish(fd, response, None)
                    return
        except BaseException as exc:  # noqa: BLE001 - handed to the callback
            self._finish(fd, None, unavailable(conn.address, exc))

    def _expire(self) -> float | None:
        now = time.monotonic()
        expired = []
        with self._guard:
            while self._deadlines and self._deadlines[0][0] <= now:
                until, _, fd = heapq.heappop(self._deadlines)
                entry = self._pending.get(fd)
                if entry is not None and entry[3] == until:
                    expired.append(fd)
            wait = self._deadlines[0][0] - now if self._deadlines else None
        for fd in expired:
            self._finish(fd, None, deadline())
        return wait

    def _run(self) -> None:
        while True:
            wait = self._expire()
            try:
                events = self._epoll.poll(-1 if wait is None else max(wait, 0.001))
            except InterruptedError:
                continue
            for fd, _ in events:
                if fd == self._wake_r:
                    try:
                        os.read(self._wake_r, 4096)
                    except BlockingIOError:
                        pass
                    continue
                self._read(fd)


__all__ = ["Completions", "HttpResult", "Connection", "Response", "decode_body", "error_from", "request_head", "unavailable"]
