"""System shared memory between a SONIC client and a Triton server on the same machine.

Each client owns two regions (inputs, outputs) made with :mod:`tritonclient.utils.shared_memory`. Registration
is per server (a server knows only the regions registered with it): the client registers the pair with each
server a request goes to before the request names the regions there (:meth:`ShmPair.registered_on`,
:meth:`ShmPair.register`), forgets a server's registration when that server went away or restarted
(:meth:`ShmPair.forget`), and registers again on every server after a region grew. At the end of the job the
regions are unregistered from every server that has them and unlinked. A module-level registry unlinks any region still alive at
interpreter exit, so that no ``/dev/shm`` segment outlives the job.
"""

from __future__ import annotations

import atexit
import gc
import logging
import os
import secrets
import threading
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

PREFIX = "cmsfw_sonic_"
"""Start of the names of every region this framework creates (``/dev/shm/cmsfw_sonic_*``)."""
ALIGNMENT = 64
_MIN_SIZE = 4096

_live: dict[str, ShmRegion] = {}
_live_lock = threading.Lock()
_counter = 0


def align(n: int) -> int:
    return (int(n) + ALIGNMENT - 1) // ALIGNMENT * ALIGNMENT


def _capacity(n: int) -> int:
    """Size to allocate for *n* bytes: the next power of two (at least 4 KiB), so that regions rarely grow."""
    n = max(int(n), _MIN_SIZE)
    return 1 << (n - 1).bit_length()


def _unique_name(kind: str) -> str:
    global _counter
    with _live_lock:
        _counter += 1
        n = _counter
    return f"{PREFIX}{os.getpid()}_{secrets.token_hex(3)}_{n}_{kind}"


class ShmRegion:
    """One system shared memory region: created here, registered with any number of servers."""

    def __init__(self, kind: str, size: int):
        import tritonclient.utils.shared_memory as shm

        self.name = _unique_name(kind)
        self.key = "/" + self.name
        self.size = int(size)
        self.handle = shm.create_shared_memory_region(self.name, self.key, self.size, create_only=True)
        self.registered_with: dict[str, Any] = {}
        """Server name -> the transport it was registered through (to unregister at the end)."""
        self._view: np.ndarray | None = None
        with _live_lock:
            _live[self.name] = self
        log.debug("created shared memory region %s (%d bytes)", self.key, self.size)

    def register(self, transport: Any, timeout: float | None = None, server: str = "") -> None:
        """Register with the server of *transport* (a :class:`~framework.sonic.transport.Transport`), known to
        the job as *server* (again, if the server restarted meanwhile)."""
        from tritonclient.utils import InferenceServerException

        try:
            transport.register_shm(self.name, self.key, self.size, timeout)
        except InferenceServerException as exc:
            if "already" not in str(exc).lower():  # registered before: nothing to do
                raise
        self.registered_with[server] = transport

    def _bytes(self) -> np.ndarray:
        """The whole region as a uint8 array (a view, made once)."""
        view = self._view
        if view is None:
            import tritonclient.utils.shared_memory as shm

            view = self._view = shm.get_contents_as_numpy(self.handle, np.uint8, [self.size], offset=0)
        return view

    def write(self, offset: int, array: np.ndarray) -> None:
        """Copy *array* into the region at *offset* (one memcpy)."""
        flat = np.ascontiguousarray(array).reshape(-1).view(np.uint8)
        self._bytes()[offset:offset + flat.size] = flat

    def read(self, offset: int, dtype: np.dtype, shape: tuple[int, ...]) -> np.ndarray:
        """A copy of the data at *offset* (the region is reused by the next event)."""
        dtype = np.dtype(dtype)
        count = int(np.prod(shape)) if shape else 1
        data = self._bytes()[offset:offset + count * dtype.itemsize]
        return data.view(dtype).reshape(shape).copy()

    def destroy(self, timeout: float | None = 5.0) -> None:
        """Unregister from the servers it is registered with (best effort) and unlink the region; idempotent."""
        import tritonclient.utils.shared_memory as shm

        with _live_lock:
            if _live.pop(self.name, None) is None:
                return
        servers, self.registered_with = self.registered_with, {}
        self._view = None  # the mapping cannot be released while a view of it exists
        for server, client in servers.items():
            try:
                client.unregister_shm(self.name, timeout)
            except Exception as exc:  # noqa: BLE001 - the server may be gone; the region is unlinked anyway
                log.debug("could not unregister shared memory region %s from server '%s': %s", self.name, server,
                          exc)
        try:
            shm.destroy_shared_memory_region(self.handle)
        except BufferError:
            gc.collect()
            try:
                shm.destroy_shared_memory_region(self.handle)
            except Exception:  # noqa: BLE001
                log.debug("shared memory region %s still mapped; unlinking it", self.name, exc_info=True)
        except Exception:  # noqa: BLE001
            log.debug("could not destroy shared memory region %s", self.name, exc_info=True)
        path = f"/dev/shm/{self.name}"
        if os.path.exists(path):
            try:
                os.unlink(path)
            except OSError as exc:
                log.warning("could not remove shared memory segment %s: %s", path, exc)
        log.debug("destroyed shared memory region %s", self.key)


class ShmPair:
    """The input and output regions of one client; :meth:`reserve` grows them as needed.

    The pair is registered per server: :meth:`registered_on` tells whether a server has both regions now.
    """

    def __init__(self) -> None:
        self.input: ShmRegion | None = None
        self.output: ShmRegion | None = None
        self._servers: dict[str, int] = {}  # server -> its generation when registered
        self.refused: dict[str, str] = {}
        """Servers that could not register the regions (e.g. not on this machine after all) -> why; requests to
        them carry their tensors in the messages."""

    def reserve(self, input_bytes: int, output_bytes: int, timeout: float | None) -> None:
        """Make sure the regions hold *input_bytes* and *output_bytes*. A region made anew is registered with
        a server by the next :meth:`register` for it (the client registers before each request that needs it)."""
        for attr, kind, need in (("input", "in", input_bytes), ("output", "out", output_bytes)):
            region = getattr(self, attr)
            if need <= 0 or (region is not None and region.size >= need):
                continue
            if region is not None:
                region.destroy(timeout)
            setattr(self, attr, ShmRegion(kind, _capacity(need)))
            self._servers.clear()

    def registered_on(self, server: str, generation: int = 0) -> bool:
        """Whether *server* has both regions registered (as far as this client knows). *generation* counts the
        times the job saw the server go down (:meth:`TritonService.generation`): a registration made before the
        server last went down does not count."""
        return self._servers.get(server) == generation

    @property
    def servers(self) -> set[str]:
        """The servers the regions are registered with."""
        return set(self._servers)

    def register(self, transport: Any, timeout: float | None, server: str = "", generation: int = 0) -> None:
        """Register both regions with *server* (through *transport*) in its *generation*."""
        for region in (self.input, self.output):
            if region is not None:
                region.register(transport, timeout, server)
        self._servers[server] = generation

    def forget(self, server: str) -> None:
        """*server* went away or restarted: it no longer has the regions; register again before naming them."""
        self._servers.pop(server, None)
        for region in (self.input, self.output):
            if region is not None:
                region.registered_with.pop(server, None)

    def destroy(self, timeout: float | None = 5.0) -> None:
        for region in (self.input, self.output):
            if region is not None:
                region.destroy(timeout)
        self.input = self.output = None
        self._servers.clear()


def live_regions() -> list[str]:
    """Names of the regions of this process not yet destroyed."""
    with _live_lock:
        return list(_live)


@atexit.register
def _destroy_all() -> None:
    with _live_lock:
        regions = list(_live.values())
    for region in regions:
        try:
            region.destroy(timeout=1.0)
        except Exception:  # noqa: BLE001 - interpreter exit: best effort
            pass


__all__ = ["PREFIX", "ShmPair", "ShmRegion", "align", "live_regions"]
