"""Starting server processes that die with the job, without forking the job.

:func:`spawn` starts a child from one long-lived daemon thread (``PR_SET_PDEATHSIG`` fires when the *thread* that
started the child ends, not the process: a thread that lives as long as the interpreter makes the server die with
the job, and only then, whichever thread asked for the start) through :mod:`framework.server.deathsig_exec`, which
arms the parent-death signal and execs the command. No ``preexec_fn`` is used, so Python starts the child with
``vfork``/``exec``: the fork handlers of the gRPC threads a job holds never run (no ``fork_posix.cc`` warning, no
copy of the job's memory).
"""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

_EXEC = str(Path(__file__).with_name("deathsig_exec.py"))


def wrapped(cmd: Sequence[str]) -> list[str]:
    """*cmd* run through the parent-death wrapper (its pid is the server's: the wrapper execs)."""
    return [sys.executable, "-S", _EXEC, str(os.getpid()), *map(str, cmd)]


class _Spawner:
    """Starts children from one long-lived daemon thread (see the module's docstring)."""

    def __init__(self) -> None:
        self._requests: queue.Queue = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def _loop(self) -> None:
        while True:
            args, kwargs, done = self._requests.get()
            try:
                done.append(("ok", subprocess.Popen(*args, **kwargs)))
            except BaseException as exc:  # noqa: BLE001 - handed back to the caller
                done.append(("error", exc))
            finally:
                done[0].set()

    def popen(self, *args, **kwargs) -> subprocess.Popen:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="server-spawner", daemon=True)
                self._thread.start()
        done: list = [threading.Event()]
        self._requests.put((args, kwargs, done))
        done[0].wait()
        status, value = done[1]
        if status == "error":
            raise value
        return value


_SPAWNER = _Spawner()


def spawn(cmd: Sequence[str], **popen_kwargs) -> subprocess.Popen:
    """Start *cmd* (``subprocess.Popen`` keyword arguments, no ``preexec_fn``) so that it is SIGKILLed when the
    job ends, however it ends. Raises ``OSError`` when the command cannot be executed."""
    if "preexec_fn" in popen_kwargs:
        raise TypeError("spawn() takes no preexec_fn: it would fork the job")
    exe = str(cmd[0])
    if os.sep in exe and not os.access(exe, os.X_OK):  # the wrapper would only say so in the child's log
        raise FileNotFoundError(2, "No such file or not executable", exe)
    return _SPAWNER.popen(wrapped(cmd), **popen_kwargs)


__all__ = ["spawn", "wrapped"]
