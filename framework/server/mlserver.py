"""Launch a real MLServer (``mlserver start``) on the project's MLServer models: the local fallback for models
packaged DIALS style (a folder with ``model-settings.json``, a handler class and ``model.joblib``).

:class:`LocalMLServer` is a context manager like :class:`~framework.server.LocalTritonServer`: it gathers the
model folders into a temporary root with its own ``settings.json`` (bound to 127.0.0.1, free HTTP and gRPC ports,
no metrics server, inference in the server process: ``parallel_workers`` 0), starts ``mlserver start`` on it,
waits until the server and every model are ready, and stops it again -- also when the job fails, is interrupted,
or its process dies (the server is started from the launcher's long-lived thread with a parent-death signal and
watched by :mod:`framework.server.reaper`, as the Triton fallback is).

MLServer speaks the KServe V2 protocol only (no model configuration, shared memory or statistics); the SONIC
client talks to it in its V2-only mode. The ``mlserver`` executable is the one next to this interpreter (the
project's environment), else ``CMSFW_MLSERVER``, else the one on ``PATH``.
"""

from __future__ import annotations

import atexit
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
import urllib.error
import urllib.request
from collections.abc import Iterable, Sequence
from pathlib import Path

from framework.exceptions import ServerError, did_you_mean
from framework.server.launcher import (
    LOOPBACK,
    ServerStartError,
    free_port,
    process_group_members,
)
from framework.server.spawn import spawn

log = logging.getLogger(__name__)

MODEL_SETTINGS = "model-settings.json"
EXECUTABLE_VARIABLE = "CMSFW_MLSERVER"
"""Environment variable naming the ``mlserver`` executable to run (default: the one of this environment)."""
INSTALL_HINT = "pip install 'mlserver==1.7.1' 'mlserver-sklearn==1.7.1' (the project's dependencies: make install)"
PROJECT_ROOT = Path(__file__).resolve().parents[2]
_EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Exit)\b[^:]*: \S")


def is_mlserver_model(path: str | os.PathLike) -> bool:
    """True for an MLServer model: its ``model-settings.json``, or a folder holding one."""
    if not str(path):
        return False
    p = Path(path)
    return p.name == MODEL_SETTINGS or (p / MODEL_SETTINGS).is_file()


def _model_name(folder: Path) -> str:
    path = folder / MODEL_SETTINGS
    try:
        settings = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ServerStartError(f"cannot read the MLServer model settings {path}: {exc}\n"
                               "  Fix the file (JSON with at least name and implementation).") from exc
    if not isinstance(settings, dict) or not settings.get("implementation"):
        raise ServerStartError(f"{path} names no 'implementation' (the model's MLModel class, e.g. "
                               "'my_handler.MyModel'): MLServer cannot load it")
    return str(settings.get("name") or folder.name)


def find_mlserver_models(paths: Sequence[str | os.PathLike]) -> dict[str, Path]:
    """Model name -> folder over *paths*: each a model folder (with ``model-settings.json``) or a repository
    whose sub-folders are models (other sub-folders, e.g. Triton models, are skipped)."""
    found: dict[str, Path] = {}
    for p in paths:
        root = Path(p).expanduser()
        if root.name == MODEL_SETTINGS:
            root = root.parent
        if not root.is_dir():
            raise ServerStartError(f"MLServer model folder {root} does not exist or is not a directory\n"
                                   f"  Give a folder with {MODEL_SETTINGS} (or a repository of such folders).")
        folders = [root] if (root / MODEL_SETTINGS).is_file() else sorted(
            e for e in root.iterdir() if e.is_dir() and not e.name.startswith(".") and (e / MODEL_SETTINGS).is_file())
        for folder in folders:
            name = _model_name(folder)
            if name in found and found[name] != folder.resolve():
                raise ServerStartError(f"MLServer model '{name}' is in two folders: {found[name]} and {folder}")
            found[name] = folder.resolve()
    return found


def mlserver_executable(executable: str | os.PathLike | None = None) -> Path:
    """The ``mlserver`` to run: *executable*, else ``$CMSFW_MLSERVER``, else this environment's, else ``PATH``'s."""
    given = executable or os.environ.get(EXECUTABLE_VARIABLE)
    if given:
        path = Path(given).expanduser()
        if not (path.is_file() and os.access(path, os.X_OK)):
            origin = "given" if executable else f"from {EXECUTABLE_VARIABLE}"
            raise ServerStartError(f"MLServer is missing: the mlserver executable {origin}, {path}, does not exist or "
                                   f"is not executable.\n  How to fix: {INSTALL_HINT}, or point {EXECUTABLE_VARIABLE} "
                                   "at an mlserver executable.")
        return path
    here = Path(sys.executable).parent / "mlserver"
    if here.is_file():
        return here
    found = shutil.which("mlserver")
    if found is None:
        raise ServerStartError(f"MLServer is missing: no mlserver executable next to {sys.executable} or on PATH.\n"
                               f"  How to fix: {INSTALL_HINT}, or set {EXECUTABLE_VARIABLE}.")
    return Path(found)


_RUNNING: set[LocalMLServer] = set()


@atexit.register
def _stop_all() -> None:
    for server in list(_RUNNING):
        try:
            server.stop()
        except Exception:  # noqa: BLE001 - interpreter exit: do what can be done
            log.exception("could not stop the local MLServer cleanly")


class LocalMLServer:
    """A real MLServer serving MLServer model folders on loopback.

    Example::

        with LocalMLServer(["data/models"]) as server:      # every folder with a model-settings.json
            client = tritonclient.grpc.InferenceServerClient(server.grpc_address)

    Ports ``-1`` are picked free; ``models`` limits the served models; ``wait`` is the readiness timeout in
    seconds; ``executable`` the ``mlserver`` to run (see :func:`mlserver_executable`). The log is kept in a
    temporary directory removed by :meth:`stop` unless ``keep_logs`` or ``log_dir`` is given, or the start failed.
    """

    def __init__(self, paths: Sequence[str | os.PathLike] | str | os.PathLike, *, models: Iterable[str] | None = None,
                 grpc_port: int = -1, http_port: int = -1, wait: float = 120.0, verbose: bool = False,
                 keep_logs: bool = False, log_dir: str | os.PathLike | None = None, stop_timeout: float = 10.0,
                 executable: str | os.PathLike | None = None) -> None:
        if isinstance(paths, (str, os.PathLike)):
            paths = [paths]
        self.paths = [Path(p).expanduser().resolve() for p in paths]
        self.selected_models = list(models) if models is not None else None
        self.requested_grpc_port = grpc_port
        self.requested_http_port = http_port
        self.wait = wait
        self.verbose = verbose
        self.keep_logs = keep_logs
        self.log_dir = Path(log_dir) if log_dir is not None else None
        self.stop_timeout = stop_timeout
        self.executable = executable
        self.start_seconds: float | None = None
        self._process: subprocess.Popen | None = None
        self._reaper: subprocess.Popen | None = None
        self._workdir: Path | None = None
        self._own_log_dir: Path | None = None
        self._log_path: Path | None = None
        self._log_file = None
        self._grpc_port: int | None = None
        self._http_port: int | None = None
        self._served: dict[str, Path] = {}
        self._failed = False
        self._lock = threading.RLock()

    # ------------------------------------------------------------------ properties
    @property
    def grpc_address(self) -> str:
        """``127.0.0.1:PORT`` of the gRPC endpoint (valid once started)."""
        return f"{LOOPBACK}:{self._port(self._grpc_port)}"

    @property
    def http_address(self) -> str:
        """``127.0.0.1:PORT`` of the HTTP endpoint (valid once started)."""
        return f"{LOOPBACK}:{self._port(self._http_port)}"

    @property
    def models(self) -> list[str]:
        """The served models (before the start: those it would serve)."""
        return list(self._served) if self._served else list(self._select())

    @property
    def pid(self) -> int | None:
        """PID of the ``mlserver`` process (also its process group), None when not running."""
        return self._process.pid if self._process is not None else None

    @property
    def log_path(self) -> Path | None:
        return self._log_path

    def _port(self, port: int | None) -> int:
        if port is None:
            raise ServerError("the local MLServer is not started: call start() or use it as a context manager")
        return port

    @property
    def returncode(self) -> int | None:
        """The exit code of a server that died (negative: killed by that signal), None while it runs."""
        return self._process.poll() if self._process is not None else None

    def is_running(self) -> bool:
        """True while the server process is alive."""
        return self._process is not None and self._process.poll() is None

    def __repr__(self) -> str:
        state = f"running pid={self.pid} grpc={self.grpc_address}" if self.is_running() else "stopped"
        return f"<LocalMLServer {state} models={self.models}>"

    def __enter__(self) -> LocalMLServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ life cycle
    def _select(self) -> dict[str, Path]:
        found = find_mlserver_models(self.paths)
        if self.selected_models is None:
            if not found:
                raise ServerStartError(f"no MLServer models (folders with {MODEL_SETTINGS}) in "
                                       f"{', '.join(map(str, self.paths))}")
            return found
        missing = [m for m in self.selected_models if m not in found]
        if missing:
            raise ServerStartError(
                f"MLServer model(s) {', '.join(map(repr, missing))} not found in {', '.join(map(str, self.paths))}."
                f"{did_you_mean(missing[0], found)} Found: {', '.join(found) or 'none'}")
        return {m: found[m] for m in self.selected_models}

    def start(self) -> LocalMLServer:
        """Start ``mlserver start`` and wait until it and every model are ready."""
        with self._lock:
            if self.is_running():
                return self
            if self._process is not None or self._workdir is not None:  # it died: clean up, keep its log
                self._cleanup(keep_log=True)
            self._failed = False
            exe = mlserver_executable(self.executable)
            served = self._select()
            begin = time.monotonic()
            for attempt in range(1, 4):
                try:
                    self._prepare(served)
                    self._launch(exe)
                    self._wait_ready()
                    break
                except ServerStartError as exc:
                    picked = self.requested_grpc_port < 0 and self.requested_http_port < 0
                    retry = attempt < 3 and picked and "address already in use" in str(exc).lower()
                    self._cleanup(keep_log=not retry)
                    if retry:
                        log.info("a port was taken meanwhile; retrying with other ports")
                        continue
                    self._failed = True
                    raise
                except BaseException:
                    self._cleanup(keep_log=True)
                    self._failed = True
                    raise
            self.start_seconds = time.monotonic() - begin
            _RUNNING.add(self)
            log.info("local MLServer pid %d ready in %.1f s: gRPC %s, HTTP %s, models %s", self.pid,
                     self.start_seconds, self.grpc_address, self.http_address, self.models)
            return self

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL of its process group); idempotent."""
        with self._lock:
            if self._process is not None:
                self._terminate()
                log.info("local MLServer stopped")
            self._cleanup(keep_log=self.keep_logs or self.log_dir is not None or self._failed)
            _RUNNING.discard(self)

    # ------------------------------------------------------------------ internals
    def _prepare(self, served: dict[str, Path]) -> None:
        self._workdir = Path(tempfile.mkdtemp(prefix="cmsfw-triton-mlserver-"))  # the reaper's prefix
        (self._workdir / "models").mkdir()
        for name, folder in served.items():
            os.symlink(folder, self._workdir / "models" / name, target_is_directory=True)
        self._served = dict(served)
        self._grpc_port = self.requested_grpc_port if self.requested_grpc_port >= 0 else free_port()
        self._http_port = self.requested_http_port if self.requested_http_port >= 0 else free_port()
        while self._http_port == self._grpc_port:
            self._http_port = free_port()
        settings = {"debug": self.verbose, "host": LOOPBACK, "http_port": self._http_port,
                    "grpc_port": self._grpc_port, "metrics_endpoint": None, "parallel_workers": 0,
                    "load_models_at_startup": True}
        (self._workdir / "settings.json").write_text(json.dumps(settings, indent=2))
        if self._log_path is None:
            if self.log_dir is not None:
                self.log_dir.mkdir(parents=True, exist_ok=True)
                self._log_path = self.log_dir / f"mlserver-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
            else:
                self._own_log_dir = Path(tempfile.mkdtemp(prefix="cmsfw-triton-mlserver-log-"))
                self._log_path = self._own_log_dir / "mlserver.log"

    def environment(self) -> dict[str, str]:
        """The server's environment: the project importable (handlers use ``producers``), no MLSERVER_* settings
        of the caller's (the generated settings.json is the whole configuration)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("MLSERVER_")}
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(PROJECT_ROOT), env.get("PYTHONPATH", "")) if p)
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def _launch(self, exe: Path) -> None:
        assert self._workdir is not None and self._log_path is not None
        cmd = [str(exe), "start", str(self._workdir)]
        self._log_file = open(self._log_path, "ab")  # noqa: SIM115 - closed in _cleanup
        self._log_file.write(f"# {' '.join(cmd)}\n".encode())
        self._log_file.flush()
        try:
            self._process = spawn(cmd, stdin=subprocess.DEVNULL, stdout=self._log_file, stderr=subprocess.STDOUT,
                                  env=self.environment(), cwd=str(self._workdir), start_new_session=True,
                                  close_fds=True)
        except OSError as exc:
            raise ServerStartError(f"MLServer is missing or cannot run: could not execute {exe}: {exc}\n"
                                   f"  How to fix: {INSTALL_HINT}") from exc
        from . import reaper

        try:  # cleans up the server's group if this process dies without stopping it
            self._reaper = subprocess.Popen(  # noqa: S603 - our own script, fixed arguments
                [sys.executable, "-S", reaper.__file__, str(os.getpid()), str(self._process.pid), "",
                 str(self._workdir), "" if self.keep_logs else str(self._own_log_dir or "")],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                start_new_session=True, close_fds=True)
        except OSError as exc:
            log.warning("could not start the MLServer watchdog: %s", exc)

    def _ready(self, path: str) -> bool:
        try:
            with urllib.request.urlopen(f"http://{LOOPBACK}:{self._http_port}{path}", timeout=2.0) as response:
                return response.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.wait
        pending = set(self._served)
        while True:
            code = self._process.poll() if self._process is not None else -1
            if code is not None:
                raise ServerStartError(self._failure(f"mlserver exited with code {code} while starting"))
            if self._ready("/v2/health/live"):
                pending = {m for m in pending if not self._ready(f"/v2/models/{m}/ready")}
                if not pending and self._ready("/v2/health/ready") and self._grpc_listening():
                    return
            if time.monotonic() > deadline:
                self._terminate()
                raise ServerStartError(self._failure(
                    f"mlserver was not ready after {self.wait:.0f} s (models not ready: {sorted(pending)})",
                    "A model that fails to load keeps the server unready: see the log. A slow machine may need "
                    "a longer wait."))
            time.sleep(0.2)

    def _grpc_listening(self) -> bool:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.settimeout(1.0)
            return s.connect_ex((LOOPBACK, int(self._grpc_port or 0))) == 0

    def _failure(self, what: str, hint: str = "") -> str:
        tail = self.log_tail(30)
        hints = [hint] if hint else []
        if "address already in use" in tail.lower():
            hints.append("A port is taken: pass other ports, or -1 to pick free ones.")
        if "No module named" in tail:
            hints.append(f"A module the model needs is missing in the server's environment: {INSTALL_HINT}; the "
                         "handler module must sit in the model folder (or be importable).")
        if not hints:
            hints.append("Look for the first error in the log.")
        return (f"local MLServer failed to start: {what}\n  models: {self._served}\n  how to fix: {' '.join(hints)}\n"
                f"  (full log: {self._log_path})\n--- tail of the mlserver log ---\n{tail}")

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

    def last_error(self, wait: float = 2.0) -> str:
        """The last exception line in the server log (``TypeError: ...``: what a handler raised; over HTTP
        MLServer answers such an error with a bare 500 and logs the traceback after answering: waits up to *wait*
        seconds for it), '' when there is none."""
        deadline = time.monotonic() + wait
        while True:
            for line in reversed(self.log_tail(300).splitlines()):
                if _EXCEPTION_LINE.match(line):
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
            try:
                os.kill(pgid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                process.wait(timeout=self.stop_timeout)
            except subprocess.TimeoutExpired:
                log.warning("mlserver pid %d did not stop within %.0f s; killing it", pgid, self.stop_timeout)
        deadline = time.monotonic() + 2.0
        while process.poll() is None or process_group_members(pgid):
            try:
                os.killpg(pgid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            process.poll()
            if time.monotonic() > deadline:
                log.warning("processes %s of the mlserver group survive SIGKILL", process_group_members(pgid))
                break
            time.sleep(0.05)
        self._process = None

    def _cleanup(self, keep_log: bool) -> None:
        if self._process is not None:
            self._terminate()
        reaper, self._reaper = self._reaper, None
        if reaper is not None:
            reaper.kill()
            reaper.wait()
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
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


__all__ = ["LocalMLServer", "find_mlserver_models", "is_mlserver_model", "mlserver_executable"]
