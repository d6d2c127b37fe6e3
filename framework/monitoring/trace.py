"""``traceFile=``: the job's module phases and SONIC requests as a Chrome trace (Perfetto, chrome://tracing)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from ..exceptions import ConfigurationError
from .job import JobObserver


class TraceObserver(JobObserver):
    """Records complete ("X") events, a track (tid) per stream; written atomically at :meth:`close`."""

    def __init__(self, path: str):
        self.path = Path(path)
        if not self.path.parent.is_dir():
            raise ConfigurationError(f"traceFile={path}: the folder {self.path.parent} does not exist; create it or "
                                     "give a path in an existing folder.")
        self._t0 = time.perf_counter()
        self._events: list[tuple] = []

    def module_phase(self, module: str, phase: str, stream: int, t0: float, t1: float) -> None:
        self._events.append((module, phase, stream, t0, t1, None))

    def sonic_request(self, model: str, server: str, protocol: str, t0: float, t1: float, ok: bool) -> None:
        self._events.append((model, "sonic", -1, t0, t1, {"model": model, "server": server, "protocol": protocol,
                                                          "ok": ok}))

    def sonic_retry(self, model: str, server: str, kind: str) -> None:
        t = time.perf_counter()
        self._events.append((model, kind, -2, t, t, {"model": model, "server": server}))

    def server_state(self, server: str, address: str, up: bool) -> None:
        t = time.perf_counter()
        self._events.append((server, "up" if up else "down", -2, t, t, {"server": server, "address": address}))

    def to_dict(self) -> dict:
        """The trace as Chrome trace-event JSON (ts and dur in microseconds)."""
        out, streams = [], set()
        for name, phase, stream, t0, t1, args in sorted(self._events, key=lambda e: e[3]):
            tid = stream if stream >= 0 else 1000  # SONIC round trips (and retries, servers down / up): their track
            streams.add(tid)
            ts = round((t0 - self._t0) * 1e6, 3)
            if stream == -2:  # an instant: a retry, a failover, a server going down or coming up
                out.append({"name": f"{phase} {name}", "cat": phase, "ph": "i", "s": "p", "ts": ts, "pid": 1,
                            "tid": tid, "args": args})
                continue
            out.append({"name": f"{name} {phase}" if phase != "sonic" else f"SONIC {name}", "cat": phase, "ph": "X",
                        "ts": ts, "dur": round(max(0.0, t1 - t0) * 1e6, 3),
                        "pid": 1, "tid": tid, "args": args or {"module": name, "phase": phase, "stream": stream}})
        meta = [{"name": "thread_name", "ph": "M", "pid": 1, "tid": tid,
                 "args": {"name": f"stream {tid}" if tid != 1000 else "SONIC requests"}} for tid in sorted(streams)]
        return {"traceEvents": meta + out, "displayTimeUnit": "ms"}

    def close(self) -> None:
        tmp = self.path.with_name(f".{self.path.name}.tmp{os.getpid()}")
        with open(tmp, "w") as f:
            json.dump(self.to_dict(), f)
        os.replace(tmp, self.path)
