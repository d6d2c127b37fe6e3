"""Launch the real ``tritonserver`` shipped in the ``nvidia-pytriton`` wheel on translated repositories.

:class:`LocalTritonServer` is the local fallback server (the ``cmsTriton`` equivalent): a context manager that
translates model repositories (:mod:`framework.server.repository`), starts the bundled binary bound to loopback
on free ports, waits until the server and every model are ready, and stops the server and its Python-backend
stub processes again — also when the job fails, is interrupted, or its process dies.
"""

from __future__ import annotations

import logging
import os
import platform
import re
import secrets
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Iterable, Sequence
from functools import lru_cache
from pathlib import Path

from ..exceptions import ConfigurationError
from .managed import (
    LOOPBACK,
    ManagedServer,
    ServerStartError,
    free_port,
    process_group_cpu,
    process_group_members,
)
from .repository import (
    ModelRepositoryError,
    TranslatedModel,
    find_models,
    translate_repositories,
)

log = logging.getLogger(__name__)

SYS_PATH_VARIABLE = "CMSFW_TRITON_SYS_PATH"
"""Environment variable with the job's ``sys.path``, prepended by the generated ``model.py`` in the stubs."""


# ----------------------------------------------------------------------------- the bundled binary
@lru_cache(maxsize=1)
def _pytriton_dir() -> Path | None:
    from ..exceptions import MissingExtra
    from ..extras import pytriton_spec

    try:
        spec = pytriton_spec()
    except MissingExtra:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _python_version() -> str:
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def _dist_paths() -> dict[str, Path]:
    root = _pytriton_dir()
    assert root is not None
    server = root / "tritonserver"
    return {
        "binary": server / "bin" / "tritonserver",
        "python_backend": server / "backends" / "python",
        "stub": server / "python_backend_stubs" / _python_version() / "triton_python_backend_stub",
        "caches": server / "caches",
        "libs": root.parent / "nvidia_pytriton.libs",
    }


def _libpython_dir() -> Path | None:
    """Directory holding the running interpreter's ``libpythonX.Y.so.1.0`` (the stub links against it)."""
    libdir = sysconfig.get_config_var("LIBDIR")
    soname = sysconfig.get_config_var("INSTSONAME") or f"libpython{_python_version()}.so.1.0"
    if libdir and (Path(libdir) / soname).exists():
        return Path(libdir)
    return None


def bundled_server_available() -> tuple[bool, str]:
    """Whether this platform can run the bundled ``tritonserver``, and the reason when it cannot."""
    if sys.platform != "linux" or platform.machine() not in ("x86_64", "AMD64"):
        return False, (f"the bundled tritonserver (nvidia-pytriton) runs on Linux x86_64 only, "
                       f"not {sys.platform} {platform.machine()}")
    if _pytriton_dir() is None:
        return False, "nvidia-pytriton is not installed (pip install 'cmssw-py-framework[server]')"
    paths = _dist_paths()
    if not paths["binary"].is_file():
        return False, f"nvidia-pytriton is installed but has no tritonserver binary at {paths['binary']}"
    if not (paths["python_backend"] / "libtriton_python.so").is_file():
        return False, f"nvidia-pytriton has no Python backend at {paths['python_backend']}"
    if not paths["stub"].is_file():
        return False, (f"nvidia-pytriton has no Python-backend stub for Python {_python_version()} "
                       f"(looked for {paths['stub']})")
    if _libpython_dir() is None:
        import ctypes.util

        if ctypes.util.find_library(f"python{_python_version()}") is None:
            return False, (f"the Python-backend stub needs libpython{_python_version()}.so.1.0, but this "
                           "interpreter is not a shared build and the system has none")
    return True, "bundled tritonserver available"


@lru_cache(maxsize=1)
def gpu_available() -> bool:
    """True when ``nvidia-smi -L`` lists at least one GPU."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return False
    try:
        out = subprocess.run([exe, "-L"], capture_output=True, text=True, timeout=15, check=False)
    except (OSError, subprocess.SubprocessError):
        return False
    return out.returncode == 0 and any(line.startswith("GPU ") for line in out.stdout.splitlines())


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def auto_settings(cores: int, device: str = "cpu") -> tuple[int, int, int]:
    """``(instances, intra-op threads per instance, max_queue_delay_microseconds)`` of the local server for
    ``cores`` usable cores (the launcher's ``0`` / ``-1`` = auto).

    Measured on 2 cores with ``benchmarks/bench_fallback_tuning.py`` (results in
    ``benchmarks/results/fallback_tuning.md``: ParT AK4 + DeepMET events from 1, 4 and 8 concurrent clients)
    and the SONIC job at 4 streams: 2 instances x 1 thread beat 1 x 2 by about 10 % from 4 requests in
    flight on (the default job runs 4 streams) and cost less CPU per event, while 1 x 2 is about 10 % faster
    for a single client; any queue delay (100 to 2000 us) costs throughput and latency, because requests that
    arrive while the instances are busy are merged anyway. More cores (not measured here): 2 instances up to
    8 cores, then one per 4 cores up to 4, the cores shared out as intra-op threads. A GPU gets 1 instance
    (ONNXRuntime's CPU threads: all cores) and no delay either.
    """
    cores = max(1, int(cores))
    if device == "gpu":
        return 1, cores, AUTO_QUEUE_DELAY_US
    instances = 1 if cores == 1 else min(4, max(2, cores // 4))
    return instances, max(1, cores // instances), AUTO_QUEUE_DELAY_US


AUTO_QUEUE_DELAY_US = 0
"""The dynamic batcher's ``max_queue_delay_microseconds`` for ``queue_delay_us=-1`` (auto): none (see
:func:`auto_settings`)."""


def _job_sys_path() -> str:
    """The running job's import path, for the stub processes (numpy, onnxruntime, ... of the same env)."""
    entries = []
    for entry in sys.path:
        if entry and os.path.isdir(entry) and entry not in entries:
            entries.append(entry)
    return os.pathsep.join(entries)


# ----------------------------------------------------------------------------- the server
class LocalTritonServer(ManagedServer):
    """The bundled ``tritonserver`` serving translated model repositories on loopback.

    Example::

        with LocalTritonServer(["data/models"]) as server:
            client = tritonclient.grpc.InferenceServerClient(server.grpc_address)

    ``device``: ``auto`` (GPU when ``nvidia-smi -L`` lists one), ``cpu`` or ``gpu``. Ports ``-1`` are picked
    free. ``instances`` model instances per ONNX model (0 = auto), ``threads`` ONNXRuntime intra-op threads
    per instance (0 = auto; cores / instances when ``instances`` is given), ``queue_delay_us`` the dynamic
    batcher's ``max_queue_delay_microseconds`` for ONNX models with a ``dynamic_batching`` block that leaves
    it 0 (-1 = auto, 0 = none; a value in the model's config is kept): the auto values come from
    :func:`auto_settings` for the usable cores.
    ``models`` limits the served models (default: all in the repositories).
    ``wait`` is the readiness timeout in seconds. The log is kept in a temporary directory removed by
    :meth:`stop` unless ``keep_logs`` or ``log_dir`` is given.
    """

    title = "local Triton server"
    program = "tritonserver"
    tag = "triton"
    retry_note = "A large model may need more time: raise `wait`."
    default_hint = "Look for the first error in the log: a model that fails to load stops the server."

    def __init__(self, repositories: Sequence[str | os.PathLike] | str | os.PathLike, *, device: str = "auto",
                 grpc_port: int = -1, http_port: int = -1, instances: int = 0, threads: int = 0,
                 queue_delay_us: int = -1, models: Iterable[str] | None = None, wait: float = 120.0,
                 verbose: bool = False, keep_logs: bool = False, log_dir: str | os.PathLike | None = None,
                 stop_timeout: float = 10.0) -> None:
        super().__init__(grpc_port=grpc_port, http_port=http_port, wait=wait, verbose=verbose, keep_logs=keep_logs,
                         log_dir=log_dir, stop_timeout=stop_timeout)
        if isinstance(repositories, (str, os.PathLike)):
            repositories = [repositories]
        self.repositories = [Path(r).expanduser().resolve() for r in repositories]
        if device not in ("auto", "cpu", "gpu"):
            raise ConfigurationError(f"the local Triton server: device must be 'auto', 'cpu' or 'gpu', not {device!r}")
        if instances < 0:
            raise ConfigurationError(f"the local Triton server: instances must be 0 (auto) or positive, not {instances}")
        if threads < 0:
            raise ConfigurationError(f"the local Triton server: threads must be 0 (auto) or positive, not {threads}")
        if queue_delay_us < -1:
            raise ConfigurationError("the local Triton server: queue_delay_us (--queue-delay-us) must be -1 (auto), "
                                     f"0 (none) or positive, not {queue_delay_us}")
        self.device_option = device
        self.instances_option = instances
        self.instances = instances or 1
        self.threads_option = threads
        self.queue_delay_option = queue_delay_us
        self.queue_delay_us = max(0, queue_delay_us)
        self.selected_models = list(models) if models is not None else None
        self._translated: list[TranslatedModel] = []
        self._client = None
        self._pending: set[str] = set()
        self._metrics_port: int | None = None
        self.device = "cpu"
        self.threads = 1

    # ------------------------------------------------------------------ properties
    @property
    def models(self) -> list[str]:
        """Names of the served models (before the first start: the models it would serve)."""
        if self._translated:
            return [m.name for m in self._translated]
        if self.selected_models is not None:
            return list(self.selected_models)
        try:
            return list(find_models(self.repositories))
        except ModelRepositoryError:
            return []

    @property
    def translated_models(self) -> list[TranslatedModel]:
        return list(self._translated)

    def __repr__(self) -> str:
        state = f"running pid={self.pid} grpc={self.grpc_address}" if self.is_running() else "stopped"
        return f"<LocalTritonServer {state} models={self.models} repositories={[str(r) for r in self.repositories]}>"

    def __enter__(self) -> LocalTritonServer:
        return self.start()

    def start(self) -> LocalTritonServer:
        """Translate the repositories, start the server and wait until it and every model are ready."""
        return super().start()

    def restart(self) -> LocalTritonServer:
        """Stop and start again (same options; ports given explicitly are kept, picked ones are picked anew)."""
        return super().restart()

    # ------------------------------------------------------------------ what differs from ManagedServer
    def _check_startable(self) -> None:
        ok, reason = bundled_server_available()
        if not ok and _pytriton_dir() is None and sys.platform == "linux":
            from ..extras import pytriton_spec

            pytriton_spec()  # raises MissingExtra("server")
        if not ok:
            raise ServerStartError(f"cannot start the local Triton server: {reason}")
        self._resolve_device()

    def _started(self) -> None:
        log.info("local Triton server pid %d ready in %.1f s: gRPC %s, HTTP %s, %s, models %s",
                 self.pid, self.start_seconds, self.grpc_address, self.http_address, self.device, self.models)

    def _port_taken(self, message: str) -> bool:
        # a port picked here was taken between picking and binding: pick again (never a port given explicitly)
        taken = [int(p) for p in re.findall(r"Socket '[^']*:(\d+)' already in use", message)]
        return bool(taken) and not set(taken) & {self.requested_grpc_port, self.requested_http_port}

    def _resolve_device(self) -> None:
        if self.device_option == "auto":
            self.device = "gpu" if gpu_available() else "cpu"
        elif self.device_option == "gpu":
            if not gpu_available():
                raise ServerStartError("device='gpu' was asked for, but `nvidia-smi -L` lists no GPU\n"
                                       "  Use device='cpu' or 'auto'.")
            self.device = "gpu"
        else:
            self.device = "cpu"
        instances, threads, delay = auto_settings(_cpu_count(), self.device)
        self.instances = self.instances_option or instances
        self.threads = self.threads_option or (threads if not self.instances_option
                                               else max(1, _cpu_count() // self.instances))
        self.queue_delay_us = delay if self.queue_delay_option < 0 else self.queue_delay_option

    def _prepare(self, workdir: Path) -> None:
        paths = _dist_paths()
        backend_dir = workdir / "backends" / "python"
        backend_dir.mkdir(parents=True)
        for entry in paths["python_backend"].iterdir():
            if entry.is_file():
                shutil.copy2(entry, backend_dir / entry.name)
        shutil.copy2(paths["stub"], backend_dir / "triton_python_backend_stub")
        self._translated = translate_repositories(
            self.repositories, workdir / "repository", models=self.selected_models, device=self.device,
            instances=self.instances, threads=self.threads, queue_delay_us=self.queue_delay_us)
        self._shm_prefix = f"cmsfw_triton_{os.getpid()}_{secrets.token_hex(4)}_"

    @property
    def metrics_url(self) -> str:
        """``http://127.0.0.1:PORT/metrics``: Triton's Prometheus endpoint (valid once started)."""
        self._require_port(self._grpc_port)
        return f"http://{LOOPBACK}:{self._require_port(self._metrics_port)}/metrics"

    def command(self) -> list[str]:
        """The ``tritonserver`` command line (after :meth:`start` prepared the work directory)."""
        assert self._workdir is not None
        self._metrics_port = free_port()
        while self._metrics_port in (self._grpc_port, self._http_port):
            self._metrics_port = free_port()
        paths = _dist_paths()
        auto_complete = any(m.auto_complete for m in self._translated)
        cmd = [
            str(paths["binary"]),
            f"--model-repository={self._workdir / 'repository'}",
            f"--backend-directory={self._workdir / 'backends'}",
            f"--cache-directory={paths['caches']}",
            f"--grpc-address={LOOPBACK}", f"--grpc-port={self._grpc_port}",
            f"--http-address={LOOPBACK}", f"--http-port={self._http_port}",
            "--allow-metrics=true", f"--metrics-address={LOOPBACK}", f"--metrics-port={self._metrics_port}",
            "--allow-gpu-metrics=false", "--allow-cpu-metrics=false",
            "--allow-sagemaker=false", "--allow-vertex-ai=false",
            "--strict-readiness=true", "--exit-on-error=true",
            "--model-control-mode=none",
            "--exit-timeout-secs=5",
            f"--backend-config=python,shm-region-prefix-name={self._shm_prefix}",
            f"--log-verbose={1 if self.verbose else 0}",
        ]
        if not auto_complete:
            # the configs are complete; skipping auto-complete saves one stub start per Python-backend model
            cmd.append("--disable-auto-complete-config")
        if self.device == "cpu":
            cmd += ["--pinned-memory-pool-byte-size=0", "--cuda-memory-pool-byte-size=0:0"]
        return cmd

    def environment(self) -> dict[str, str]:
        """Environment for ``tritonserver``: the interpreter's libpython and the wheel's libraries first on
        ``LD_LIBRARY_PATH``; this interpreter first on ``PATH`` and the job's ``sys.path`` for the stubs."""
        env = dict(os.environ)
        libs = [str(d) for d in (_libpython_dir(), _dist_paths()["libs"]) if d is not None]
        if env.get("LD_LIBRARY_PATH"):
            libs.append(env["LD_LIBRARY_PATH"])
        env["LD_LIBRARY_PATH"] = os.pathsep.join(libs)
        # The stub's embedded interpreter ignores PYTHON* variables (PYTHONPATH included) but finds its prefix
        # from `python3` on PATH: this interpreter's directory first makes it see this venv's site-packages.
        # Generated model.py files also prepend the job's exact sys.path (SYS_PATH_VARIABLE) before importing.
        env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")]).rstrip(os.pathsep)
        env[SYS_PATH_VARIABLE] = _job_sys_path()
        if self.device == "cpu":
            env["CUDA_VISIBLE_DEVICES"] = ""
        return env

    def _probe(self) -> tuple[bool, str]:
        import tritonclient.grpc as grpcclient
        from tritonclient.utils import InferenceServerException

        if self._client is None:
            self._client = grpcclient.InferenceServerClient(f"{LOOPBACK}:{self._grpc_port}")
            self._pending = set(self.models)
        client = self._client
        try:
            if client.is_server_live(client_timeout=2.0):
                for name in sorted(self._pending):
                    if client.is_model_ready(name, client_timeout=2.0):
                        self._pending.discard(name)
                if not self._pending and client.is_server_ready(client_timeout=2.0):
                    return True, ""
        except InferenceServerException:
            pass
        return False, f"models not ready: {sorted(self._pending)}"

    def _close_probe(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()

    def log_excerpt(self, lines: int = 40) -> str:
        """The server log's tail without its option and backend tables, after its first error lines."""
        text = self.log_tail(400)
        kept: list[str] = []
        block: list[str] = []

        def flush() -> None:
            header = block[1] if len(block) > 1 else ""
            if re.match(r"\|\s*Model\s*\|", header):  # the model status table; not options, backends, agents
                kept.extend(block)
            block.clear()

        for line in text.splitlines():
            if line.startswith(("+", "|")):
                block.append(line)
                continue
            if block:
                flush()
            if line.strip() and "CudaDriverHelper has not been initialized" not in line:  # benign without GPU
                kept.append(line)
        if block:
            flush()
        tail = kept[-lines:]
        errors = [line for line in kept if re.match(r"E\d{4} ", line) and line not in tail][:5]
        return "\n".join([*errors, "..."] if errors else []) + ("\n" if errors else "") + "\n".join(tail)

    def _describe(self) -> str:
        return f"repositories: {[str(r) for r in self.repositories]}, models: {self.models}"

    def _hints(self, tail: str) -> list[str]:
        hints = []
        if "_recursion_count" in tail or "libpython" in tail:
            hints.append("The Python-backend stub loaded another libpython than this interpreter's; "
                         "use a shared-library build of Python (LIBDIR must hold libpythonX.Y.so.1.0).")
        if "No module named" in tail:
            hints.append(f"The stub imports from this job's sys.path ({sys.executable}); install the missing "
                         "package into this environment.")
        return hints


__all__ = [
    "AUTO_QUEUE_DELAY_US",
    "LOOPBACK",
    "SYS_PATH_VARIABLE",
    "LocalTritonServer",
    "ServerStartError",
    "auto_settings",
    "bundled_server_available",
    "free_port",
    "gpu_available",
    "process_group_cpu",
    "process_group_members",
]
