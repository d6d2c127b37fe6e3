"""A progress display for long runs: a rich bar on a terminal, a log line every few seconds otherwise."""

from __future__ import annotations

import logging
import sys
import threading
import time

log = logging.getLogger("framework.progress")


class Progress:
    """Callable ``(done, total)``; use as a context manager."""

    def __init__(self, description: str = "events", enabled: bool = True, interval: float = 10.0):
        self.description = description
        self.enabled = enabled
        self.interval = interval
        self.total: int | None = None
        self._bar = None
        self._task = None
        self._last = time.monotonic()
        self._lock = threading.Lock()

    def __enter__(self) -> Progress:
        if self.enabled and sys.stderr.isatty():
            from rich.progress import BarColumn, MofNCompleteColumn, TimeRemainingColumn
            from rich.progress import Progress as RichProgress

            self._bar = RichProgress(
                "[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                transient=True,
            )
            self._bar.__enter__()
        return self

    def __call__(self, done: int, total: int | None) -> None:
        if not self.enabled:
            return
        with self._lock:
            if total is not None:
                self.total = total
                if self._bar is not None and self._task is None:
                    self._task = self._bar.add_task(self.description, total=total or None)
            if self._bar is not None and self._task is not None:
                self._bar.update(self._task, completed=done)
            elif done and time.monotonic() - self._last > self.interval:
                self._last = time.monotonic()
                log.info("processed %d/%s %s", done, self.total if self.total is not None else "?", self.description)

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.__exit__(None, None, None)
            self._bar = None
