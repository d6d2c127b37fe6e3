"""The life cycle of a local server process, written once for the Triton and the MLServer launchers.

:class:`ManagedServer` starts a server command through :func:`~framework.server.spawn.spawn` (parent-death
signal, no ``preexec_fn``) in its own process group, with its output in a log file; waits for readiness with a
deadline (the exit code and the log tail in the error when it fails); stops it (SIGTERM, wait, SIGKILL of the
process group, then the leftovers of the group); keeps every running server in one registry stopped at exit;
and registers it with the :mod:`~framework.server.reaper` watchdog through an explicit registry file that names
what to clean up if the job dies without stopping it. Subclasses give what differs: the command line, the work
directory's contents, the environment and the readiness probe.
"""

from __future__ import annotations

import atexit
import glob
import json
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from ..exceptions import ServerError
from . import reaper
from .endpoints import check_port
from .spawn import spawn

log = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"
REGISTRY_FILE = reaper.REGISTRY_FILE
"""The file in a server's work directory that tells the reaper what belongs to the server."""


class ServerStartError(ServerError):
    """A local server did not start or did not become ready; the message shows its log tail."""


def free_port() -> int:
    """A TCP port that is free on the loopback interface right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def _process_group_stats(pgid: int) -> list[tuple[int, list[str]]]:
    """``(pid, /proc/<pid>/stat fields after the command name)`` of the processes of a process group."""
    members = []
    for stat in glob.glob("/proc/[0-9]*/stat"):
        try:
            with open(stat) as f:
                text = f.read()
        except OSError:
            continue
        fields = text[text.rfind(")") + 2:].split()
        if len(fields) > 14 and int(fields[2]) == pgid:
            members.append((int(stat.split("/")[2]), fields))
    return members


def process_group_members(pgid: int) -> list[int]:
    """PIDs of live (non-zombie) processes in a process group, from /proc."""
    return [pid for pid, fields in _process_group_stats(pgid) if fields[0] != "Z"]


def process_group_cpu(pgid: int) -> tuple[float, int]:
    """CPU seconds (user + system, with their reaped children's) of the live processes of process group *pgid*
    (a local server and its helper processes: ``ManagedServer.pid``), and how many there are."""
    stats = [fields for _, fields in _process_group_stats(pgid) if fields[0] != "Z"]
    ticks = sum(sum(int(x) for x in fields[11:15]) for fields in stats)
    return ticks / os.sysconf("SC_CLK_TCK"), len(stats)


_RUNNING: set[ManagedServer] = set()  # strong references: atexit must find every running server


@atexit.register
def _stop_all() -> None:
    for server in list(_RUNNING):
        try:
            server.stop()
        except Exception:  # noqa: BLE001 - interpreter exit: do what can be done
            log.exception("could not stop the %s cleanly", server.title)


def running_servers() -> list[ManagedServer]:
    """The local servers this process started and has not stopped yet."""
    return list(_RUNNING)


class ManagedServer:
    """A local server process on loopback: start, readiness, stop, log, watchdog; a context manager.

    Subclasses set :attr:`title`, :attr:`program` and :attr:`tag` and implement :meth:`command`, :meth:`_prepare`
    (fill the work directory) and :meth:`_probe` (one readiness check); they may override :meth:`environment`,
    :meth:`_check_startable`, :meth:`_hints` and :meth:`_port_taken`.
    """

    title = "local server"
    """How messages name the server ("local Triton server")."""
    program = "server"
    """The executable's short name: the log file's name, messages."""
    tag = "server"
    """The temporary directories' prefix: ``cmsfw-<tag>-`` (work) and ``cmsfw-<tag>-log-`` (log)."""
    poll_interval = 0.1
    retry_note = "A slow machine or a large model may need a longer wait."
    """The hint of a start that timed out."""
    default_hint = "Look for the first error in the log."
    """The hint of a failed start when the log names no known cause."""

    def __init__(self, *, grpc_port: int = -1, http_port: int = -1, wait: float = 120.0, verbose: bool = False,
                 keep_logs: bool = False, log_dir: str | os.PathLike | None = None,
                 stop_timeout: float = 10.0) -> None:
        self.requested_grpc_port = check_port(grpc_port, f"{self.title}: grpc_port", pick_free=True)
        self.requested_http_port = check_port(http_port, f"{self.title}: http_port", pick_free=True)
        self.wait = wait
        self.verbose = verbose
        self.keep_logs = keep_logs
        self.log_dir = Path(log_dir) if log_dir is not None else None
        self.stop_timeout = stop_timeout
        self.start_seconds: float | None = None
        self._process: subprocess.Popen | None = None
        self._reaper: subprocess.Popen | None = None
        self._workdir: Path | None = None
        self._own_log_dir: Path | None = None
        self._log_path: Path | None = None
        self._log_file = None
        self._grpc_port: int | None = None
        self._http_port: int | None = None
        self._shm_prefix = ""
        self._failed = False
        self._lock = threading.RLock()

    # ------------------------------------------------------------------ what subclasses give
    def command(self) -> list[str]:
        """The server's command line (after :meth:`start` prepared the work directory)."""
        raise NotImplementedError

    def environment(self) -> dict[str, str]:
        """The server's environment (default: this process's)."""
        return dict(os.environ)

    def _check_startable(self) -> None:
        """Raise :class:`ServerStartError` when the server cannot be started here (before any work)."""

    def _prepare(self, workdir: Path) -> None:
        """Fill the fresh work directory (repository, settings) once the ports are picked."""

    def _probe(self) -> tuple[bool, str]:
        """One readiness check: ``(ready, what is not ready yet)``."""
        raise NotImplementedError

    def _close_probe(self) -> None:
        """Release what :meth:`_probe` opened (a client)."""

    def _hints(self, tail: str) -> list[str]:
        """How-to-fix hints for a failed start, from the log tail."""
        return []

    def _port_taken(self, message: str) -> bool:
        """Whether a failed start was a picked port taken between picking and binding (then it is retried)."""
        picked = self.requested_grpc_port < 0 and self.requested_http_port < 0
        return picked and "address already in use" in message.lower()

    def _describe(self) -> str:
        """One line on what the server serves, for the failure message."""
        return ""

    def log_excerpt(self, lines: int = 40) -> str:
        """The part of the log a failure message shows (default: its tail)."""
        return self.log_tail(lines)

    # ------------------------------------------------------------------ properties
    @property
    def grpc_address(self) -> str:
        """``127.0.0.1:PORT`` of the gRPC endpoint (valid once started)."""
        return f"{LOOPBACK}:{self._require_port(self._grpc_port)}"

    @property
    def http_address(self) -> str:
        """``127.0.0.1:PORT`` of the HTTP endpoint (valid once started)."""
        return f"{LOOPBACK}:{self._require_port(self._http_port)}"

    @property
    def grpc_port(self) -> int:
        return self._require_port(self._grpc_port)

    @property
    def http_port(self) -> int:
        return self._require_port(self._http_port)

    @property
    def log_path(self) -> Path | None:
        """The server log (its stdout and stderr)."""
        return self._log_path

    @property
    def workdir(self) -> Path | None:
        """The server's temporary work directory (with the reaper's registry file), None when not started."""
        return self._workdir

    @property
    def pid(self) -> int | None:
        """PID of the server process (also its process group), None when not running."""
        return self._process.pid if self._process is not None else None

    @property
    def returncode(self) -> int | None:
        """The exit code of a server that died (negative: killed by that signal), None while it runs."""
        return self._process.poll() if self._process is not None else None

    def is_running(self) -> bool:
        """True while the server process is alive."""
        return self._process is not None and self._process.poll() is None

    def _require_port(self, port: int | None) -> int:
        if port is None:
            raise ServerError(f"the {self.title} is not started: call start() or use it as a context manager")
        return port

    # ------------------------------------------------------------------ life cycle
    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self):
        """Start the server and wait until it is ready; a picked port taken meanwhile is picked anew."""
        with self._lock:
            if self.is_running():
                return self
            if self._process is not None or self._workdir is not None:  # it died: clean up, keep its log
                self._cleanup(keep_log=True)
            self._failed = False
            self._check_startable()
            begin = time.monotonic()
            attempts = 3
            for attempt in range(1, attempts + 1):
                try:
                    self._setup()
                    self._launch()
                    self._wait_ready()
                    break
                except ServerStartError as exc:
                    retry = attempt < attempts and self._port_taken(str(exc))
                    self._cleanup(keep_log=not retry)
                    if retry:
                        log.info("a port was taken meanwhile; retrying the %s with other ports", self.title)
                        continue
                    self._failed = True
                    raise
                except BaseException:
                    self._cleanup(keep_log=True)
                    self._failed = True
                    raise
            self.start_seconds = time.monotonic() - begin
            _RUNNING.add(self)
            self._started()
            return self

    def _started(self) -> None:
        log.info("%s pid %d ready in %.1f s: gRPC %s, HTTP %s", self.title, self.pid, self.start_seconds,
                 self.grpc_address, self.http_address)

    def stop(self) -> None:
        """Stop the server and its process group (SIGTERM, then SIGKILL); idempotent."""
        with self._lock:
            if self._process is not None:
                self._terminate()
                log.info("%s stopped", self.title)
            # the log of a failed start is kept: the ServerStartError names it
            self._cleanup(keep_log=self.keep_logs or self.log_dir is not None or self._failed)
            _RUNNING.discard(self)

    def restart(self):
        """Stop and start again (same options; ports given explicitly are kept, picked ones are picked anew)."""
        self.stop()
        return self.start()

    # ------------------------------------------------------------------ internals
    def _setup(self) -> None:
        self._workdir = Path(tempfile.mkdtemp(prefix=f"cmsfw-{self.tag}-"))
        self._grpc_port = self.requested_grpc_port if self.requested_grpc_port >= 0 else free_port()
        self._http_port = self.requested_http_port if self.requested_http_port >= 0 else free_port()
        while self._http_port == self._grpc_port:
            self._http_port = free_port()
        self._prepare(self._workdir)  # before the log: a bad repository leaves no log behind
        if self._log_path is None:
            if self.log_dir is not None:
                self.log_dir.mkdir(parents=True, exist_ok=True)
                stamp = time.strftime("%Y%m%d-%H%M%S")
                self._log_path = self.log_dir / f"{self.program}-{stamp}-{os.getpid()}.log"
            else:
                self._own_log_dir = Path(tempfile.mkdtemp(prefix=f"cmsfw-{self.tag}-log-"))
                self._log_path = self._own_log_dir / f"{self.program}.log"

    def _launch(self) -> None:
        assert self._log_path is not None and self._workdir is not None
        cmd = self.command()
        log.debug("starting %s", " ".join(cmd))
        self._log_file = open(self._log_path, "ab")  # noqa: SIM115 - closed in _cleanup
        self._log_file.write(f"# {' '.join(cmd)}\n".encode())
        self._log_file.flush()
        try:
            self._process = spawn(cmd, stdin=subprocess.DEVNULL, stdout=self._log_file, stderr=subprocess.STDOUT,
                                  env=self.environment(), cwd=str(self._workdir), start_new_session=True,
                                  close_fds=True)
        except OSError as exc:
            raise ServerStartError(self._cannot_execute(cmd[0], exc)) from exc
        self._start_reaper()

    def _cannot_execute(self, exe: str, exc: OSError) -> str:
        return f"could not execute {exe}: {exc}"

    def _start_reaper(self) -> None:
        """Register the server with a watchdog that cleans up its group if this process dies without stopping it."""
        assert self._process is not None and self._workdir is not None
        owned = [str(self._workdir)]
        if self._own_log_dir is not None and not self.keep_logs:
            owned.append(str(self._own_log_dir))
        registry = self._workdir / REGISTRY_FILE
        registry.write_text(json.dumps({"job_pid": os.getpid(), "pgid": self._process.pid,
                                        "shm_prefix": self._shm_prefix, "remove": owned}))
        try:
            self._reaper = subprocess.Popen(  # noqa: S603 - our own script, fixed arguments
                [sys.executable, "-S", reaper.__file__, str(registry)],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                start_new_session=True, close_fds=True)
        except OSError as exc:  # the server still dies with us; only its helpers could outlive a SIGKILL
            log.warning("could not start the %s watchdog: %s", self.title, exc)

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.wait
        try:
            while True:
                code = self._process.poll() if self._process is not None else -1
                if code is not None:
                    raise ServerStartError(self._failure(f"{self.program} exited with code {code} while starting"))
                ready, pending = self._probe()
                if ready:
                    return
                if time.monotonic() > deadline:
                    self._terminate()
                    raise ServerStartError(self._failure(
                        f"{self.program} was not ready after {self.wait:.0f} s ({pending})", self.retry_note))
                time.sleep(self.poll_interval)
        finally:
            self._close_probe()

    def _failure(self, what: str, hint: str = "") -> str:
        """The message of a failed start: what happened, how to fix it, where the log is, the log's tail."""
        tail = self.log_excerpt(30)
        hints = [hint] if hint else []
        if "already in use" in tail:
            hints.append("A port is taken: pass other ports, or -1 to pick free ones.")
        hints += self._hints(tail)
        if not hints:
            hints.append(self.default_hint)
        describe = self._describe()
        return (f"{self.title} failed to start: {what}\n" + (f"  {describe}\n" if describe else "")
                + f"  how to fix: {' '.join(hints)}\n  (full log: {self._log_path})\n"
                f"--- tail of the {self.program} log ---\n{tail}")

    def log_tail(self, lines: int = 40) -> str:
        """The last lines of the server log ('' when there is none)."""
        if self._log_path is None or not self._log_path.exists():
            return ""
        try:
            with open(self._log_path, "rb") as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - 64 * 1024))
                text = f.read().decode("utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def last_line_matching(self, pattern: re.Pattern[str], wait: float = 0.0, lines: int = 300) -> str:
        """The last log line that *pattern* matches (waiting up to *wait* seconds for one), '' when none."""
        deadline = time.monotonic() + wait
        while True:
            for line in reversed(self.log_tail(lines).splitlines()):
                if pattern.match(line):
                    return line.strip()
            if time.monotonic() > deadline:
                return ""
            time.sleep(0.05)

    def _terminate(self) -> None:
        process = self._process
        if process is None:
            return
        pgid = process.pid
        if process.poll() is None:
            try:  # the server alone first: it finalizes its helper processes itself
                os.kill(pgid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                process.wait(timeout=self.stop_timeout)
            except subprocess.TimeoutExpired:
                log.warning("%s pid %d did not stop within %.0f s; killing it", self.program, pgid, self.stop_timeout)
        # the server (if it did not stop) and what is left of its group
        deadline = time.monotonic() + 2.0
        while process.poll() is None or process_group_members(pgid):
            try:
                os.killpg(pgid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            if time.monotonic() > deadline:
                log.warning("processes %s of the %s group survive SIGKILL", process_group_members(pgid),
                            self.program)
                break
            time.sleep(0.05)
        self._process = None

    def _cleanup(self, keep_log: bool) -> None:
        if self._process is not None:
            self._terminate()
        watchdog, self._reaper = self._reaper, None
        if watchdog is not None:  # we stop the server ourselves: the watchdog is not needed (and must be reaped)
            watchdog.kill()
            watchdog.wait()
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        if self._shm_prefix:
            for leftover in glob.glob(f"/dev/shm/{self._shm_prefix}*"):
                try:
                    os.unlink(leftover)
                except OSError:
                    pass
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None
        if not keep_log:
            if self._own_log_dir is not None:
                shutil.rmtree(self._own_log_dir, ignore_errors=True)
                self._own_log_dir = None
            elif self._log_path is not None and self._log_path.exists():
                self._log_path.unlink()
            self._log_path = None
        self._grpc_port = self._http_port = None


__all__ = ["LOOPBACK", "REGISTRY_FILE", "ManagedServer", "ServerStartError", "free_port", "process_group_cpu",
           "process_group_members", "running_servers"]
