"""Launch a real MLServer (``mlserver start``) on the project's MLServer models: the local fallback for models
packaged DIALS style (a folder with ``model-settings.json``, a handler class and ``model.joblib``).

:class:`LocalMLServer` is a context manager like :class:`~framework.server.LocalTritonServer`: it gathers the
model folders into a temporary root with its own ``settings.json`` (bound to 127.0.0.1, free HTTP and gRPC ports,
no metrics server, inference in the server process: ``parallel_workers`` 0), starts ``mlserver start`` on it,
waits until the server and every model are ready, and stops it again -- also when the job fails, is interrupted,
or its process dies (the life cycle of :class:`~framework.server.managed.ManagedServer`, shared with the Triton fallback).

MLServer speaks the KServe V2 protocol only (no model configuration, shared memory or statistics); the SONIC
client talks to it in its V2-only mode. The ``mlserver`` executable is the one next to this interpreter (the
project's environment), else ``CMSFW_MLSERVER``, else the one on ``PATH``.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import socket
import sys
import urllib.error
import urllib.request
from collections.abc import Iterable, Sequence
from pathlib import Path

from ..exceptions import did_you_mean
from .kind import MODEL_SETTINGS, is_mlserver_model
from .managed import LOOPBACK, ManagedServer, ServerStartError

log = logging.getLogger(__name__)

EXECUTABLE_VARIABLE = "CMSFW_MLSERVER"
"""Environment variable naming the ``mlserver`` executable to run (default: the one of this environment)."""
INSTALL_HINT = "pip install 'mlserver==1.7.1' 'mlserver-sklearn==1.7.1' (the project's dependencies: make install)"
PROJECT_ROOT = Path(__file__).resolve().parents[2]
_EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Exit)\b[^:]*: \S")


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


class LocalMLServer(ManagedServer):
    """A real MLServer serving MLServer model folders on loopback.

    Example::

        with LocalMLServer(["data/models"]) as server:      # every folder with a model-settings.json
            client = tritonclient.grpc.InferenceServerClient(server.grpc_address)

    Ports ``-1`` are picked free; ``models`` limits the served models; ``wait`` is the readiness timeout in
    seconds; ``executable`` the ``mlserver`` to run (see :func:`mlserver_executable`). The log is kept in a
    temporary directory removed by :meth:`stop` unless ``keep_logs`` or ``log_dir`` is given, or the start failed.
    """

    title = "local MLServer"
    program = "mlserver"
    tag = "mlserver"
    poll_interval = 0.2
    retry_note = ("A model that fails to load keeps the server unready: see the log. A slow machine may need "
                  "a longer wait.")

    def __init__(self, paths: Sequence[str | os.PathLike] | str | os.PathLike, *, models: Iterable[str] | None = None,
                 grpc_port: int = -1, http_port: int = -1, wait: float = 120.0, verbose: bool = False,
                 keep_logs: bool = False, log_dir: str | os.PathLike | None = None, stop_timeout: float = 10.0,
                 executable: str | os.PathLike | None = None) -> None:
        super().__init__(grpc_port=grpc_port, http_port=http_port, wait=wait, verbose=verbose, keep_logs=keep_logs,
                         log_dir=log_dir, stop_timeout=stop_timeout)
        if isinstance(paths, (str, os.PathLike)):
            paths = [paths]
        self.paths = [Path(p).expanduser().resolve() for p in paths]
        self.selected_models = list(models) if models is not None else None
        self.executable = executable
        self._exe: Path | None = None
        self._served: dict[str, Path] = {}
        self._to_serve: dict[str, Path] = {}
        self._pending: set[str] = set()

    @property
    def models(self) -> list[str]:
        """The served models (before the start: those it would serve)."""
        return list(self._served) if self._served else list(self._select())

    def __repr__(self) -> str:
        state = f"running pid={self.pid} grpc={self.grpc_address}" if self.is_running() else "stopped"
        return f"<LocalMLServer {state} models={self.models}>"

    def __enter__(self) -> LocalMLServer:
        return self.start()

    def start(self) -> LocalMLServer:
        """Start ``mlserver start`` and wait until it and every model are ready."""
        return super().start()

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

    # ------------------------------------------------------------------ what differs from ManagedServer
    def _check_startable(self) -> None:
        self._exe = mlserver_executable(self.executable)
        self._to_serve = self._select()

    def _started(self) -> None:
        log.info("local MLServer pid %d ready in %.1f s: gRPC %s, HTTP %s, models %s", self.pid,
                 self.start_seconds, self.grpc_address, self.http_address, self.models)

    def _prepare(self, workdir: Path) -> None:
        (workdir / "models").mkdir()
        for name, folder in self._to_serve.items():
            os.symlink(folder, workdir / "models" / name, target_is_directory=True)
        self._served = dict(self._to_serve)
        self._pending = set(self._served)
        settings = {"debug": self.verbose, "host": LOOPBACK, "http_port": self._http_port,
                    "grpc_port": self._grpc_port, "metrics_endpoint": None, "parallel_workers": 0,
                    "load_models_at_startup": True}
        (workdir / "settings.json").write_text(json.dumps(settings, indent=2))

    def command(self) -> list[str]:
        """``mlserver start WORKDIR`` (after :meth:`start` prepared the work directory)."""
        assert self._workdir is not None and self._exe is not None
        return [str(self._exe), "start", str(self._workdir)]

    def environment(self) -> dict[str, str]:
        """The server's environment: the project importable (handlers use ``producers``), no MLSERVER_* settings
        of the caller's (the generated settings.json is the whole configuration)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("MLSERVER_")}
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(PROJECT_ROOT), env.get("PYTHONPATH", "")) if p)
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def _cannot_execute(self, exe: str, exc: OSError) -> str:
        return f"MLServer is missing or cannot run: could not execute {exe}: {exc}\n  How to fix: {INSTALL_HINT}"

    def _ready(self, path: str) -> bool:
        try:
            with urllib.request.urlopen(f"http://{LOOPBACK}:{self._http_port}{path}", timeout=2.0) as response:
                return response.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def _probe(self) -> tuple[bool, str]:
        if self._ready("/v2/health/live"):
            self._pending = {m for m in self._pending if not self._ready(f"/v2/models/{m}/ready")}
            if not self._pending and self._ready("/v2/health/ready") and self._grpc_listening():
                return True, ""
        return False, f"models not ready: {sorted(self._pending)}"

    def _grpc_listening(self) -> bool:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.settimeout(1.0)
            return s.connect_ex((LOOPBACK, int(self._grpc_port or 0))) == 0

    def _describe(self) -> str:
        return f"models: {self._served}"

    def _hints(self, tail: str) -> list[str]:
        if "No module named" in tail:
            return [f"A module the model needs is missing in the server's environment: {INSTALL_HINT}; the "
                    "handler module must sit in the model folder (or be importable)."]
        return []

    def last_error(self, wait: float = 2.0) -> str:
        """The last exception line in the server log (``TypeError: ...``: what a handler raised; over HTTP
        MLServer answers such an error with a bare 500 and logs the traceback after answering: waits up to *wait*
        seconds for it), '' when there is none."""
        return self.last_line_matching(_EXCEPTION_LINE, wait)


__all__ = ["LocalMLServer", "find_mlserver_models", "is_mlserver_model", "mlserver_executable"]
