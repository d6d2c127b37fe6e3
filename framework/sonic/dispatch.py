"""The dispatch layer of the SONIC client: the modes, retries and the statistics of each round trip.

``Sync`` runs the requests in the calling thread; ``Async`` sends them on the process's SONIC event loop
(:class:`~framework.sonic.transport.EventLoopThread`) and completes the ExternalWork from the completion
callback; ``PseudoAsync`` runs them blocking on a thread of a small fixed pool (:func:`blocking_pool`). A
recoverable error is retried until ``allowedTries`` tries were made, ``retryDelay`` seconds after the first
failure and twice as long after each further one (at most :data:`MAX_RETRY_DELAY`); a server that did not answer
hands the request to the routing layer (:mod:`framework.sonic.routing`) first. The events of a merged request
(:mod:`framework.sonic.merge`) that failed come back here one by one (:meth:`Dispatcher.redispatch`).

:class:`Dispatcher` is a part of :class:`~framework.sonic.client.TritonClient` (a mixin). The client records its
counters in one method each: :meth:`Dispatcher.count_request`, :meth:`Dispatcher._record_retry`,
:meth:`Dispatcher._record_round_trip` (and the routing layer's ``_record_failover``) into its
:class:`~framework.sonic.stats.ClientStats`.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from ..exceptions import FrameworkError
from ..monitoring import job as monitoring_job
from .data import RAGGED, RECTANGULAR
from .errors import TritonServerError
from .request import Request
from .stats import ClientStats
from .transport import is_recoverable, message_of, raw_status, shm_lost, status_of

if TYPE_CHECKING:
    from ..core.module import WaitingTaskHolder

log = logging.getLogger("framework.sonic")

MAX_RETRY_DELAY = 10.0


class Gather:
    """Collects the answers of several concurrent requests and finishes once, when all are in."""

    def __init__(self, n: int, finish: Callable[[tuple[Request, BaseException] | None], None]):
        self._left = n
        self._lock = threading.Lock()
        self._error: tuple[Request, BaseException] | None = None
        self._finish = finish

    def done(self, req: Request, result: Any, error: BaseException | None) -> None:
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


def blocking_pool() -> ThreadPoolExecutor:
    """The fixed pool of PseudoAsync requests and of retries that must wait or re-register shared memory."""
    global _POOL, _POOL_PID
    with _POOL_LOCK:
        if _POOL is None or _POOL_PID != os.getpid():
            _POOL = ThreadPoolExecutor(max_workers=max(8, 4 * (os.cpu_count() or 1)),
                                       thread_name_prefix="sonic-pseudoasync")
            _POOL_PID = os.getpid()
        return _POOL



class Dispatcher:
    """Sending one event's requests in the client's mode, with retries (part of ``TritonClient``).

    What it uses of the client (set by ``TritonClient.__init__`` / ``connect``) is declared here."""

    modelName: str
    serverName: str
    mode: str
    timeout: float | None
    allowedTries: int
    retryDelay: float
    verbose: bool
    stats: ClientStats
    lastDispatchTime: float
    lastTries: int
    _connected: bool
    _merger: Any
    _dispatch_start: float
    _stats_lock: threading.Lock

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
        self.lastTries = 1
        self._record_round_trip(time.perf_counter() - self._dispatch_start, exc is None)
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

        def finish(failure: tuple[Request, BaseException] | None) -> None:
            exc: BaseException | None = None
            try:
                if failure is not None:
                    raise self._server_error(*failure)
                self._collect(requests)
            except BaseException as e:  # noqa: BLE001 - handed to the framework through done()
                exc = e
                self.stats.failures += 1
            self.lastTries = sum(r.tries for r in requests)
            self._record_round_trip(time.perf_counter() - self._dispatch_start, exc is None)
            done(exc)

        if self.mode == "Async" and not blocking:
            self._run_async(requests, finish)
        elif self.mode == "PseudoAsync" and not blocking:
            blocking_pool().submit(self._run_blocking, requests, finish)
        else:
            self._run_blocking(requests, finish)

    def _run_blocking(self, requests: list[Request],
                      finish: Callable[[tuple[Request, BaseException] | None], None]) -> None:
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

        def gathered(failure: tuple[Request, BaseException] | None) -> None:
            box.append(failure)
            ready.set()

        self._run_async(requests, gathered)
        ready.wait()
        finish(box[0])

    def _infer_blocking(self, req: Request) -> Any:
        while True:
            req.tries += 1
            self.count_request()
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

    def _run_async(self, requests: list[Request],
                   finish: Callable[[tuple[Request, BaseException] | None], None]) -> None:
        gather = Gather(len(requests), finish)
        for req in requests:
            self._send_async(req, gather.done)

    def _send_async(self, req: Request, on_result: Callable[[Request, Any, BaseException | None], None]) -> None:
        req.tries += 1
        self.count_request()  # thread-safe: ragged entries are sent and retried from several threads

        def callback(result: Any = None, error: BaseException | None = None) -> None:
            try:
                self._done(req, error)
                if error is None:
                    on_result(req, result, None)
                elif self._regions_lost(req, error) or self._fail_over(req, error):
                    req.tries -= 1
                    blocking_pool().submit(self._send_async, req, on_result)
                elif self._should_retry(req, error):
                    delay = self._retry_delay(req)
                    if delay <= 0 and self._shm is None:
                        self._send_async(req, on_result)  # re-dispatch from the completion
                    else:  # waiting or (re-)registering shared memory blocks: not on the event loop
                        blocking_pool().submit(self._retry_later, delay, req, on_result)
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

    def _retry_later(self, delay: float, req: Request,
                     on_result: Callable[[Request, Any, BaseException | None], None]) -> None:
        if delay > 0:
            time.sleep(delay)
        self._send_async(req, on_result)

    def _regions_lost(self, req: Request, exc: BaseException) -> bool:
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

    def _should_retry(self, req: Request, exc: BaseException) -> bool:
        if not is_recoverable(exc) or self._transport is None:
            return False
        if self._shm is not None and (status_of(exc) == "UNAVAILABLE" or shm_lost(exc)):
            self._shm.forget(req.server or self.serverName)  # gone or restarted: it forgot our regions
        if req.tries >= self.allowedTries:
            return False
        self._record_retry()
        name, address = self._server_of(req)
        monitoring_job.sonic_retry(self.modelName, address, "retry")
        log.warning("%s: request to server '%s' (%s) failed%s (try %d of %d): %s; retrying", self._describe(),
                    name, address, self._where_suffix(), req.tries, self.allowedTries, message_of(exc))
        return True

    def _retry_delay(self, req: Request) -> float:
        if self.retryDelay <= 0:
            return 0.0
        return min(MAX_RETRY_DELAY, self.retryDelay * 2 ** max(0, req.tries - 1))

    def count_request(self) -> None:
        """One more request sent (thread-safe; for requests sent on the client's behalf, e.g. merged ones)."""
        with self._stats_lock:
            self.stats.requests += 1

    def redispatch(self, done: Callable[[BaseException | None], None]) -> None:
        """Send this client's current event again in a request of its own (retries and failover included);
        errors go to *done* (used for the events of a merged request that failed)."""
        self._dispatch_alone(done)

    def _server_error(self, req: Request, exc: BaseException) -> FrameworkError:
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

    def _record_retry(self) -> None:
        """One request sent again after a recoverable error (thread-safe)."""
        with self._stats_lock:
            self.stats.retries += 1

    def _record_round_trip(self, elapsed: float, ok: bool) -> None:
        """One event's requests came back after *elapsed* seconds (its dispatch time and round trip, and the
        job's monitoring)."""
        self.lastDispatchTime = elapsed
        self.stats.record_round_trip(elapsed)
        monitoring_job.sonic_request(self, elapsed, ok)


__all__ = ["MAX_RETRY_DELAY", "Dispatcher", "Gather", "blocking_pool"]
