"""A tiny watchdog process: if the job that started a local server dies without stopping it (SIGKILL, a crash),
kill the server's whole process group -- the helper processes (Triton's Python-backend stubs) survive the
server's own parent-death signal otherwise -- and remove its shared-memory regions and temporary directories.

Run as ``python -S reaper.py REGISTRY``: *REGISTRY* is the JSON file :class:`~framework.server.managed.ManagedServer`
writes into the server's work directory (``job_pid``, ``pgid``, ``shm_prefix``, ``remove``: the directories the
server owns). The reaper cleans up exactly what the file names -- no guessing from directory names -- and exits on
its own once the server group is gone. Imports nothing heavy: it starts in a few milliseconds.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import signal
import sys
import time

REGISTRY_FILE = "managed-server.json"
"""The registry file's name in a server's work directory."""


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def read_registry(path: str) -> dict:
    """The registry file at *path*: ``job_pid``, ``pgid`` (ints), ``shm_prefix`` (str), ``remove`` (dirs)."""
    with open(path) as f:
        entry = json.load(f)
    return {"job_pid": int(entry["job_pid"]), "pgid": int(entry["pgid"]), "shm_prefix": str(entry["shm_prefix"]),
            "remove": [str(d) for d in entry["remove"]]}


def clean_up(entry: dict) -> None:
    """Kill the server group of *entry* (SIGTERM, then SIGKILL) and remove its shared memory and directories."""
    pgid = entry["pgid"]
    for sig, grace in ((signal.SIGTERM, 3.0), (signal.SIGKILL, 2.0)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + grace
        while _group_alive(pgid) and time.monotonic() < deadline:
            time.sleep(0.05)
    if entry["shm_prefix"]:
        for leftover in glob.glob(f"/dev/shm/{entry['shm_prefix']}*"):
            try:
                os.unlink(leftover)
            except OSError:
                pass
    for d in entry["remove"]:
        shutil.rmtree(d, ignore_errors=True)


def main(argv: list[str]) -> int:
    try:
        entry = read_registry(argv[0])
    except (IndexError, OSError, ValueError, KeyError, TypeError) as exc:
        sys.stderr.write(f"reaper: cannot read the server registry {argv[:1]}: {exc}\n")
        return 2
    if entry["job_pid"] != os.getppid():  # started by another job, or the job is already gone
        if _group_alive(entry["pgid"]) and not _alive(entry["job_pid"]):
            clean_up(entry)
        return 0
    while _group_alive(entry["pgid"]):
        if os.getppid() != entry["job_pid"]:  # the job is gone: we were re-parented
            clean_up(entry)
            return 0
        time.sleep(0.5)
    return 0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
