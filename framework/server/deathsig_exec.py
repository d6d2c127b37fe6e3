"""``python -S deathsig_exec.py PARENT_PID CMD ...``: ask the kernel to SIGKILL this process when its parent thread
ends (``PR_SET_PDEATHSIG``, kept across ``execve``), then become ``CMD``.

The framework starts servers through this small program instead of a ``preexec_fn``: a ``preexec_fn`` makes
Python ``fork()`` the whole job, running the fork handlers of the gRPC threads the job may hold (gRPC then warns
"Other threads are currently calling into gRPC, skipping fork() handlers"); without one, Python spawns the child
with ``vfork``/``exec`` and no handler runs. Standard library only, so that ``-S`` starts it in milliseconds.
"""

import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1


def main() -> None:
    parent, cmd = int(sys.argv[1]), sys.argv[2:]
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except OSError:  # no glibc: the job's atexit and watchdog still stop the server
        pass
    if os.getppid() != parent:  # the job died before the signal was armed
        os._exit(1)
    try:
        os.execvp(cmd[0], cmd)
    except OSError as exc:
        sys.stderr.write(f"could not execute {cmd[0]}: {exc}\n")
        os._exit(127)


if __name__ == "__main__":
    main()
