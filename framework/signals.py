"""SIGTERM (what batch systems send) stops a command like Ctrl-C.

While :class:`StopOnSignals` is entered (the command line enters it around every command), SIGTERM raises
:class:`Terminated`, a :class:`KeyboardInterrupt`, in the main thread, so it takes the Ctrl-C path: the event
loop finishes the events in flight, the outputs are discarded, the services stop their servers; the exit code is
143 (128 + 15), and 130 for SIGINT. A second SIGTERM or SIGINT while the events in flight finish
(:func:`grace_wait`) stops waiting for them; one during the cleanup (outputs discarded, servers stopped) is only
logged; either way the command then exits without waiting for threads still busy in modules. The previous
handlers are restored on exit, so library use (``run_config`` called from Python) is left untouched.
"""

from __future__ import annotations

import atexit
import logging
import os
import signal
import sys
import threading
import time
from types import FrameType, TracebackType

log = logging.getLogger("framework")

HANDLED = (signal.SIGINT, signal.SIGTERM)


class Terminated(KeyboardInterrupt):
    """Raised in the main thread on SIGTERM: handled wherever Ctrl-C is, exit code 143."""

    signum = signal.SIGTERM

    def __init__(self, message: str = "terminated by SIGTERM") -> None:
        super().__init__(message)


def exit_code(exc: BaseException) -> int:
    """128 + the signal number: 143 for :class:`Terminated` (SIGTERM), 130 for another KeyboardInterrupt."""
    return 128 + int(getattr(exc, "signum", signal.SIGINT))


def describe(exc: BaseException) -> str:
    """``terminated by SIGTERM`` or ``interrupted`` (a plain Ctrl-C)."""
    return str(exc) or "interrupted"


_in_grace = False  # the main thread is in grace_wait: a repeated signal may end the wait


def grace_wait(done: threading.Event, timeout: float) -> bool:
    """``done.wait(timeout)``, the grace period after a stop signal (the events in flight finish): a second signal
    raises here, ending the wait, while one during the cleanup that follows is only logged. Returns ``done``'s
    state."""
    global _in_grace
    _in_grace = True
    deadline = time.monotonic() + timeout
    try:  # in slices: a signal that another thread took is handled within 0.1 s
        while not done.wait(max(0.0, min(0.1, deadline - time.monotonic()))):
            if time.monotonic() >= deadline:
                return False
        return True
    finally:
        _in_grace = False


def _stop_exception(signum: int) -> KeyboardInterrupt:
    return Terminated() if signum == signal.SIGTERM else KeyboardInterrupt("interrupted")


class StopOnSignals:
    """Context manager: SIGTERM and SIGINT raise :class:`Terminated` / :class:`KeyboardInterrupt` in the main
    thread (the first signal, and a later one during :func:`grace_wait`; others are logged); no-op off the main
    thread. A signal that was ignored (``SIG_IGN``, e.g. SIGINT of a background job) stays ignored."""

    def __init__(self) -> None:
        self.received: list[int] = []
        self._previous: dict[int, signal.Handlers | object] = {}

    @property
    def repeated(self) -> bool:
        """More than one signal came: the job is to stop without waiting for work still in flight."""
        return len(self.received) > 1

    def __enter__(self) -> StopOnSignals:
        if threading.current_thread() is not threading.main_thread():
            return self
        for sig in HANDLED:
            current = signal.getsignal(sig)
            if current is signal.SIG_IGN or current is None:  # ignored, or a handler not set from Python
                continue
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        while self._previous:
            sig, handler = self._previous.popitem()
            signal.signal(sig, handler)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.received.append(signum)
        name = signal.Signals(signum).name
        if len(self.received) == 1:
            raise _stop_exception(signum)
        if _in_grace:
            log.warning("%s again: not waiting for the events in flight; stopping the servers", name)
            raise _stop_exception(self.received[0])
        log.warning("%s: already stopping (stopping the servers, removing temporary files)", name)

    def finish(self, exc: KeyboardInterrupt) -> int:
        """For the command line, once *exc* ended the command: print ``terminated by SIGTERM`` / ``interrupted`` on
        stderr and return the exit code (143 / 130). After a repeated signal, if threads are still busy in modules
        (a long ``produce``, external work), run the exit handlers (they stop servers still running, remove shared
        memory) and end the process at once with that code instead of waiting for those threads."""
        code = exit_code(exc)
        busy = [t.name for t in threading.enumerate()
                if t is not threading.main_thread() and not t.daemon and t.is_alive()] if self.repeated else []
        if busy:
            log.warning("not waiting for %d thread(s) still busy (%s)", len(busy), ", ".join(sorted(busy)))
        print(describe(exc), file=sys.stderr)
        if busy:
            for stream in (sys.stdout, sys.stderr):
                try:
                    stream.flush()
                except (OSError, ValueError):
                    pass
            atexit._run_exitfuncs()  # noqa: SLF001 - the servers' and shared memory's exit handlers; no thread join
            os._exit(code)
        return code


__all__ = ["StopOnSignals", "Terminated", "describe", "exit_code", "grace_wait"]
