"""A fault-injection harness for the failover tests: a loopback TCP proxy in front of a real server that resets,
stalls, drops and slows connections on command.

    with FaultProxy(("127.0.0.1", server.grpc_port)) as proxy:
        client = grpcclient.InferenceServerClient(f"127.0.0.1:{proxy.listen_port}")
        proxy.stall()        # bytes stop flowing both ways; sockets stay open (a call with a timeout times out)
        proxy.pass_through()

The proxy runs an asyncio loop in its own daemon thread. Its commands may be called from any thread; each returns
once it has taken effect in the loop (after :meth:`FaultProxy.stall` returns no further byte is forwarded, after
:meth:`FaultProxy.reset` every connection that was live has been reset). It listens on 127.0.0.1 only and forwards
to a loopback target only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
import threading
from collections.abc import Coroutine
from typing import Any

log = logging.getLogger(__name__)

LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")
CHUNK = 65536
COMMAND_TIMEOUT_S = 10.0


def _rst(writer: asyncio.StreamWriter) -> None:
    """Close *writer*'s socket with an RST (SO_LINGER on, timeout 0), not a FIN."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class _Connection:
    """One client connection and its upstream connection."""

    def __init__(self, client: asyncio.StreamWriter) -> None:
        self.client = client
        self.upstream: asyncio.StreamWriter | None = None
        self.tasks: list[asyncio.Task] = []

    def writers(self) -> list[asyncio.StreamWriter]:
        return [w for w in (self.client, self.upstream) if w is not None]


class FaultProxy:
    """A loopback TCP proxy to *target* ``(host, port)`` with faults on command.

    ``listen_port``: the port it listens on (127.0.0.1). Counters: ``connections`` (accepted, dropped ones
    included), ``bytes_up`` (client to target), ``bytes_down`` (target to client)."""

    def __init__(self, target: tuple[str, int]) -> None:
        host, port = target
        if host not in LOOPBACK_HOSTS:
            raise ValueError(f"FaultProxy forwards to loopback only (127.0.0.1, ::1), got {host!r}")
        self.target = (host, int(port))
        self.listen_port = 0
        self.connections = 0
        self.bytes_up = 0
        self.bytes_down = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.AbstractServer | None = None
        self._live: set[_Connection] = set()
        self._flowing: asyncio.Event | None = None  # cleared while stalled
        self._dropping = False
        self._delay_s = 0.0

    # ------------------------------------------------------------------ life cycle
    def start(self) -> FaultProxy:
        """Start the loop thread and listen; return once ``listen_port`` is known."""
        if self._thread is not None:
            raise RuntimeError("FaultProxy already started")
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="faultproxy", daemon=True)
        self._thread.start()
        self._call(self._listen())
        return self

    def close(self) -> None:
        """Stop listening, abort every connection, stop the loop thread."""
        if self._loop is None or self._thread is None:
            return
        with contextlib.suppress(Exception):
            self._call(self._shutdown())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(COMMAND_TIMEOUT_S)
        if not self._thread.is_alive():
            self._loop.close()
        self._loop = self._thread = None

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ commands (any thread)
    def reset(self) -> None:
        """Reset (RST) every live connection, both sides. New connections are still accepted (see :meth:`drop`)."""
        self._call(self._reset_all())

    def stall(self) -> None:
        """Stop forwarding bytes in both directions; sockets stay open, new connections are accepted and stall."""
        self._call(self._set(stalled=True))

    def unstall(self) -> None:
        """Forward bytes again after :meth:`stall` (the bytes held meanwhile go on)."""
        self._call(self._set(stalled=False))

    def drop(self) -> None:
        """From now on accept new connections and close them at once (live ones are left alone)."""
        self._call(self._set(dropping=True))

    def slow(self, delay_s: float) -> None:
        """Delay each forwarded chunk by *delay_s* seconds."""
        if delay_s < 0:
            raise ValueError(f"slow(delay_s={delay_s}): give a delay >= 0")
        self._call(self._set(delay_s=float(delay_s)))

    def pass_through(self) -> None:
        """Back to normal: no stall, no drop, no delay."""
        self._call(self._set(stalled=False, dropping=False, delay_s=0.0))

    @property
    def live_connections(self) -> int:
        """Connections open now."""
        return len(self._live)

    # ------------------------------------------------------------------ in the loop
    def _call(self, coro: Coroutine[Any, Any, Any]) -> Any:
        if self._loop is None:
            coro.close()
            raise RuntimeError("FaultProxy is not running: use it as a context manager (with FaultProxy(...) as p)")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(COMMAND_TIMEOUT_S)

    async def _listen(self) -> None:
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.listen_port = int(self._server.sockets[0].getsockname()[1])

    async def _set(self, *, stalled: bool | None = None, dropping: bool | None = None,
                   delay_s: float | None = None) -> None:
        assert self._flowing is not None
        if stalled is True:
            self._flowing.clear()
        elif stalled is False:
            self._flowing.set()
        if dropping is not None:
            self._dropping = dropping
        if delay_s is not None:
            self._delay_s = delay_s

    async def _reset_all(self) -> None:
        conns = list(self._live)
        for conn in conns:
            self._abort(conn, rst=True)
        for conn in conns:
            for t in conn.tasks:
                with contextlib.suppress(BaseException):
                    await t

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)
        await self._reset_all()

    def _abort(self, conn: _Connection, *, rst: bool) -> None:
        for w in conn.writers():
            if rst:
                _rst(w)
            else:
                w.transport.abort()
        for t in conn.tasks:
            t.cancel()
        self._live.discard(conn)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        if self._dropping:
            writer.close()
            return
        conn = _Connection(writer)
        self._live.add(conn)
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError as e:
            log.debug("faultproxy: cannot reach %s:%d (%s): closing the client's connection", *self.target, e)
            self._live.discard(conn)
            _rst(writer)
            return
        if conn not in self._live:  # reset while connecting
            _rst(up_writer)
            return
        conn.upstream = up_writer
        conn.tasks = [asyncio.ensure_future(self._pump(reader, up_writer, "up")),
                      asyncio.ensure_future(self._pump(up_reader, writer, "down"))]
        await asyncio.wait(conn.tasks, return_when=asyncio.FIRST_COMPLETED)
        if conn in self._live:  # one side closed: close the other (gracefully, bytes written go out)
            self._live.discard(conn)
            for t in conn.tasks:
                t.cancel()
            for w in conn.writers():
                with contextlib.suppress(Exception):
                    w.close()

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, direction: str) -> None:
        assert self._flowing is not None
        try:
            while True:
                data = await reader.read(CHUNK)
                if not data:
                    return
                if self._delay_s > 0:
                    await asyncio.sleep(self._delay_s)
                await self._flowing.wait()
                writer.write(data)
                if direction == "up":
                    self.bytes_up += len(data)
                else:
                    self.bytes_down += len(data)
                await writer.drain()
        except (ConnectionError, OSError):
            return
