"""A tiny watchdog process: if the job that started a local tritonserver dies without stopping it
(SIGKILL, a crash), kill the server's whole process group — the Python-backend stubs survive the
server's own parent-death signal otherwise — and remove its shared-memory regions and temp dir.

Run as ``python reaper.py JOB_PID SERVER_PGID SHM_PREFIX WORKDIR [LOGDIR]``; it exits on its own once the
server group is gone. Imports nothing heavy: it starts in a few milliseconds.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import sys
import time


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def main(argv: list[str]) -> int:
    job_pid, pgid, shm_prefix = int(argv[0]), int(argv[1]), argv[2]
    dirs = [d for d in argv[3:5] if d and os.path.basename(d).startswith("cmsfw-triton-")]
    while _group_alive(pgid):
        if os.getppid() != job_pid:  # the job is gone: we were re-parented
            for sig, grace in ((signal.SIGTERM, 3.0), (signal.SIGKILL, 2.0)):
                try:
                    os.killpg(pgid, sig)
                except ProcessLookupError:
                    break
                deadline = time.monotonic() + grace
                while _group_alive(pgid) and time.monotonic() < deadline:
                    time.sleep(0.05)
            if shm_prefix:
                for leftover in glob.glob(f"/dev/shm/{shm_prefix}*"):
                    try:
                        os.unlink(leftover)
                    except OSError:
                        pass
            for d in dirs:
                shutil.rmtree(d, ignore_errors=True)
            return 0
        time.sleep(0.5)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
