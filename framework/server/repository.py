"""Translate standard Triton model repositories into one the bundled ``tritonserver`` can serve.

The ``nvidia-pytriton`` wheel ships a real Triton server with the Python backend only, no ONNXRuntime
backend. A model repository in the standard layout::

    <repo>/<model>/config.pbtxt            platform: "onnxruntime_onnx" (or backend: "onnxruntime")
    <repo>/<model>/<version>/model.onnx
    <repo>/<model>/labels.txt ...

is rewritten into a temporary repository where each ONNX model becomes a Python-backend model: the same
name, inputs, outputs, ``max_batch_size`` and ``dynamic_batching`` (``max_queue_delay_microseconds`` set
when the caller asks for one and the source leaves it 0); ``backend: "python"``; an ``instance_group``
for the requested device; ONNXRuntime settings and ``batch_padding: "zero"`` (merge requests of different
variable-dim sizes by zero padding, unless the source config sets ``batch_padding`` itself) in
``parameters``, with ``allow_ragged_batch`` on the inputs that may be padded (so that Triton's dynamic
batcher hands such requests over together); the ONNX file (and every other file) linked into place, and
a generated ``model.py`` (:mod:`framework.server.model_py_template`) that runs it with ONNXRuntime. The
CMS ``checksum`` repository agent, which the bundled server lacks, is
dropped after the MD5 sums it lists have been verified here. Python-backend and ensemble models are served
as they are, except that a Python-backend model without ``model.py`` whose config names an importable module in
the ``python_module`` parameter gets a ``model.py`` that imports ``TritonPythonModel`` from it (the project's
implementation of that model, e.g. NuGraph3's ``producers.nugraph3.triton_model``), after the job's
``sys.path``. ``config.pbtxt`` is read and written with Triton's own protobuf classes.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

from ..exceptions import ServerError, did_you_mean

log = logging.getLogger(__name__)

TEMPLATE = Path(__file__).with_name("model_py_template.py")
"""The ``model.py`` written into every version directory of a translated ONNX model."""

ONNX_PLATFORMS = {"onnxruntime_onnx"}
ONNX_BACKENDS = {"onnxruntime"}
_GRAPH_LEVEL_NAMES = {-1: "basic", 0: "all", 1: "extended"}  # Triton onnxruntime backend's meaning of `level`
BATCH_PADDING_MODES = ("zero", "none")
"""Values of the ``batch_padding`` model parameter (see :mod:`framework.server.model_py_template`)."""
DEFAULT_BATCH_PADDING = "zero"


class ModelRepositoryError(ServerError):
    """A model repository cannot be served (missing files, bad config.pbtxt, unsupported platform, ...)."""


class ChecksumError(ModelRepositoryError):
    """A model file does not match the checksum given in its ``config.pbtxt``."""


@dataclass
class TranslatedModel:
    """One model of the translated repository."""

    name: str
    source: Path
    """The original model directory."""
    kind: str
    """``onnx`` (translated to the Python backend), ``python`` or ``ensemble`` (served as they are)."""
    versions: list[str] = field(default_factory=list)
    config: mc.ModelConfig | None = None
    """The configuration written for the bundled server."""
    auto_complete: bool = False
    """True when the model's own ``model.py`` defines ``auto_complete_config`` (then the server must run it)."""


# ----------------------------------------------------------------------------- config.pbtxt I/O
def read_model_config(path: str | os.PathLike) -> mc.ModelConfig:
    """Parse a ``config.pbtxt`` (protobuf text format) into a ``ModelConfig``."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ModelRepositoryError(f"cannot read model configuration {path}: {exc}") from exc
    config = mc.ModelConfig()
    try:
        text_format.Parse(text, config)
    except text_format.ParseError as exc:
        raise ModelRepositoryError(
            f"{path} is not a valid Triton model configuration: {exc}\n"
            "  Fix the file (protobuf text format, see inference.ModelConfig in Triton's model_config.proto)."
        ) from exc
    return config


def write_model_config(config: mc.ModelConfig, path: str | os.PathLike) -> None:
    """Write a ``ModelConfig`` as ``config.pbtxt`` (protobuf text format)."""
    Path(path).write_text(text_format.MessageToString(config))


def file_digest(path: str | os.PathLike, algorithm: str = "md5") -> str:
    """Hex digest of a file (streamed)."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_checksums(model_dir: str | os.PathLike, config: mc.ModelConfig) -> int:
    """Verify the files listed by a ``checksum`` repository agent (``MD5:<path>`` keys, as in CMS models).

    Returns the number of files checked; raises :class:`ChecksumError` on a mismatch or a missing file.
    """
    model_dir = Path(model_dir)
    checked = 0
    for agent in config.model_repository_agents.agents:
        if agent.name != "checksum":
            continue
        for key, expected in sorted(agent.parameters.items()):
            algorithm, sep, relative = key.partition(":")
            if not sep or not relative:
                raise ModelRepositoryError(
                    f"{model_dir / 'config.pbtxt'}: checksum parameter {key!r} is not of the form 'MD5:<file>'")
            if algorithm.lower() not in hashlib.algorithms_available:
                raise ModelRepositoryError(
                    f"{model_dir / 'config.pbtxt'}: unknown checksum algorithm {algorithm!r} in {key!r}")
            target = model_dir / relative
            if not target.is_file():
                raise ChecksumError(
                    f"model '{config.name or model_dir.name}': the checksum agent lists {relative!r}, "
                    f"but {target} does not exist")
            actual = file_digest(target, algorithm.lower())
            if actual.lower() != expected.strip().lower():
                raise ChecksumError(
                    f"model '{config.name or model_dir.name}': {algorithm} checksum mismatch for {target}\n"
                    f"  expected {expected.strip()} (config.pbtxt, checksum agent)\n"
                    f"  found    {actual}\n"
                    "  The file is corrupted or was replaced: fetch the model again, or update the checksum in "
                    "config.pbtxt if the new file is intended.")
            checked += 1
    return checked


# ----------------------------------------------------------------------------- discovery
def find_models(repositories: Sequence[str | os.PathLike]) -> dict[str, Path]:
    """Map model name -> model directory over several repositories (directories with a ``config.pbtxt``)."""
    found: dict[str, Path] = {}
    for repo in repositories:
        repo = Path(repo).expanduser()
        if not repo.is_dir():
            raise ModelRepositoryError(
                f"model repository {repo} does not exist or is not a directory\n"
                "  Pass a directory laid out as <repo>/<model>/config.pbtxt + <repo>/<model>/1/model.onnx.")
        for entry in sorted(repo.iterdir()):
            if entry.name.startswith(".") or not entry.is_dir():
                continue
            if not (entry / "config.pbtxt").is_file():
                log.debug("skipping %s: no config.pbtxt", entry)
                continue
            if entry.name in found:
                raise ModelRepositoryError(
                    f"model '{entry.name}' is in two repositories: {found[entry.name]} and {entry}\n"
                    "  Triton serves a model name only once; remove one of them or pass only one repository.")
            found[entry.name] = entry.resolve()
    return found


def model_kind(config: mc.ModelConfig) -> str | None:
    """``onnx``, ``python`` or ``ensemble``; None for a platform the bundled server cannot run."""
    if config.platform in ONNX_PLATFORMS or config.backend in ONNX_BACKENDS:
        return "onnx"
    if config.backend == "python":
        return "python"
    if config.platform == "ensemble":
        return "ensemble"
    return None


def _versions(model_dir: Path) -> list[str]:
    return sorted((p.name for p in model_dir.iterdir() if p.is_dir() and p.name.isdigit()), key=int)


def _link(src: Path, dst: Path, copy: bool) -> None:
    if copy:
        if src.is_dir():
            shutil.copytree(src, dst, symlinks=False)
        else:
            shutil.copy2(src, dst)
    else:
        dst.symlink_to(src.resolve(), target_is_directory=src.is_dir())


# ----------------------------------------------------------------------------- translation
PYTHON_MODULE_PARAMETER = "python_module"
"""Parameter of a Python-backend model whose code is a module importable by the job (not a ``model.py``)."""

MODULE_MODEL_PY = '''"""Generated by framework.server.repository: the model is {module}.TritonPythonModel."""
import os
import sys

# The stub's interpreter ignores PYTHONPATH: take the job's sys.path from the launcher, before other imports.
for _entry in reversed(os.environ.get("CMSFW_TRITON_SYS_PATH", "").split(os.pathsep)):
    if _entry:
        if _entry in sys.path:
            sys.path.remove(_entry)
        sys.path.insert(0, _entry)

from {module} import TritonPythonModel  # noqa: E402,F401
'''
"""The ``model.py`` written for a Python-backend model that names its module in :data:`PYTHON_MODULE_PARAMETER`."""


def _python_module(model_dir: Path, config: mc.ModelConfig) -> str:
    """The module named by the ``python_module`` parameter ('' when none), checked to be importable here."""
    import importlib.util
    import re

    if PYTHON_MODULE_PARAMETER not in config.parameters:
        return ""
    module = config.parameters[PYTHON_MODULE_PARAMETER].string_value.strip()
    where = f"{model_dir / 'config.pbtxt'}: parameter {PYTHON_MODULE_PARAMETER}"
    if not re.fullmatch(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*", module):
        raise ModelRepositoryError(f"{where} is {module!r}, not a module name (e.g. 'mypackage.triton_model')")
    try:
        found = importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        raise ModelRepositoryError(
            f"{where} names '{module}', which this Python cannot import.\n"
            "  Install the package that holds it in this environment, or give the model a <version>/model.py.")
    return module


def _allow_ragged_batches(config: mc.ModelConfig) -> None:
    """Mark the inputs with ``-1`` dims ``allow_ragged_batch`` when ``model.py`` can zero-pad them: without it
    Triton's dynamic batcher only hands requests of equal shapes to ``execute`` together."""
    from google.protobuf import json_format

    from .model_py_template import padding_axes

    axes = padding_axes(json_format.MessageToDict(config, preserving_proto_field_name=True))
    for spec in config.input:
        if axes and axes.get(spec.name):
            spec.allow_ragged_batch = True


def translate_model(model_dir: str | os.PathLike, dest_repo: str | os.PathLike, *, device: str = "cpu",
                    instances: int = 1, threads: int = 1, queue_delay_us: int = 0,
                    copy: bool = False) -> TranslatedModel:
    """Translate one model directory into ``dest_repo/<name>`` for the bundled server.

    ``device`` is ``cpu`` or ``gpu`` (instance kind and ONNXRuntime provider), ``instances`` the instance
    count, ``threads`` the ONNXRuntime intra-op threads per instance, ``queue_delay_us`` the dynamic
    batcher's ``max_queue_delay_microseconds`` for an ONNX model with a ``dynamic_batching`` block whose
    source leaves it 0 (0: keep the source's); files are symlinked unless ``copy``. Python-backend models
    and ensembles are served as they are.
    """
    model_dir = Path(model_dir).resolve()
    if device not in ("cpu", "gpu"):
        raise ValueError(f"device must be 'cpu' or 'gpu', not {device!r}")
    source = read_model_config(model_dir / "config.pbtxt")
    name = source.name or model_dir.name
    if name != model_dir.name:
        raise ModelRepositoryError(
            f"{model_dir / 'config.pbtxt'}: name '{source.name}' differs from its directory '{model_dir.name}'\n"
            "  Triton requires them to be equal: rename the directory or fix `name:`.")
    kind = model_kind(source)
    if kind is None:
        what = f"platform '{source.platform}'" if source.platform else f"backend '{source.backend or '?'}'"
        raise ModelRepositoryError(
            f"model '{name}' ({model_dir}) uses {what}, which the bundled tritonserver cannot run: it serves "
            "ONNX models (platform 'onnxruntime_onnx', run with ONNXRuntime in the Python backend), "
            "Python-backend models and ensembles.\n"
            "  Serve it with a full Triton server (e.g. the nvcr.io/nvidia/tritonserver image) and point the "
            "client at that server, or export the model to ONNX.")
    verify_checksums(model_dir, source)
    unknown_agents = [a.name for a in source.model_repository_agents.agents if a.name != "checksum"]
    if unknown_agents:
        log.warning("model '%s': dropping repository agents %s, which the bundled server does not have",
                    name, unknown_agents)

    config = mc.ModelConfig()
    config.CopyFrom(source)
    config.name = name
    config.ClearField("model_repository_agents")
    versions = _versions(model_dir)
    auto_complete = False
    target = Path(dest_repo) / name
    target.mkdir(parents=True)

    if kind == "onnx":
        onnx_name = source.default_model_filename or "model.onnx"
        if not versions:
            raise ModelRepositoryError(
                f"model '{name}' ({model_dir}) has no version directory: expected {model_dir}/1/{onnx_name}")
        for version in versions:
            if not (model_dir / version / onnx_name).is_file():
                raise ModelRepositoryError(
                    f"model '{name}' version {version}: {model_dir / version / onnx_name} does not exist\n"
                    f"  Found: {sorted(p.name for p in (model_dir / version).iterdir()) or 'nothing'}.")
        graph_level = _GRAPH_LEVEL_NAMES.get(source.optimization.graph.level, "all") \
            if source.HasField("optimization") else "all"
        config.platform = ""
        config.backend = "python"
        for field_name in ("optimization", "instance_group", "default_model_filename", "cc_model_filenames"):
            config.ClearField(field_name)
        group = config.instance_group.add()
        group.count = max(1, int(instances))
        group.kind = mc.ModelInstanceGroup.KIND_GPU if device == "gpu" else mc.ModelInstanceGroup.KIND_CPU
        params = {
            "onnx_model_filename": onnx_name,
            "execution_provider": "cuda" if device == "gpu" else "cpu",
            "intra_op_thread_count": str(max(0, int(threads))),
            "inter_op_thread_count": "1",
            "graph_optimization_level": graph_level,
        }
        for key, value in params.items():
            config.parameters[key].string_value = value
        padding = DEFAULT_BATCH_PADDING
        if "batch_padding" in source.parameters:
            padding = source.parameters["batch_padding"].string_value.strip().lower()
            if padding not in BATCH_PADDING_MODES:
                raise ModelRepositoryError(
                    f"{model_dir / 'config.pbtxt'}: parameter batch_padding is "
                    f"{source.parameters['batch_padding'].string_value!r}; use one of {BATCH_PADDING_MODES} "
                    "('zero': merge requests whose -1 dims differ by zero padding, 'none': do not).")
        config.parameters["batch_padding"].string_value = padding
        if padding == "zero" and config.HasField("dynamic_batching"):
            _allow_ragged_batches(config)
        if queue_delay_us > 0 and source.HasField("dynamic_batching") \
                and source.dynamic_batching.max_queue_delay_microseconds == 0:
            config.dynamic_batching.max_queue_delay_microseconds = int(queue_delay_us)
        for version in versions:
            (target / version).mkdir()
            for entry in sorted((model_dir / version).iterdir()):
                if entry.name != "model.py":
                    _link(entry, target / version / entry.name, copy)
            shutil.copyfile(TEMPLATE, target / version / "model.py")
    else:
        script_name = source.default_model_filename or "model.py"
        without = kind == "python" and any(not (model_dir / v / script_name).is_file() for v in versions)
        module = _python_module(model_dir, source) if without else ""
        for version in versions:
            script = model_dir / version / script_name
            if module and not script.is_file():  # the implementation lives in an importable module
                (target / version).mkdir()
                for entry in sorted((model_dir / version).iterdir()):
                    _link(entry, target / version / entry.name, copy)
                (target / version / script.name).write_text(MODULE_MODEL_PY.format(module=module))
                continue
            _link(model_dir / version, target / version, copy)
            if kind == "python" and script.is_file() and "auto_complete_config" in script.read_text(errors="replace"):
                auto_complete = True

    for entry in sorted(model_dir.iterdir()):
        if entry.name == "config.pbtxt" or entry.name in versions or entry.name.startswith("."):
            continue
        _link(entry, target / entry.name, copy)
    write_model_config(config, target / "config.pbtxt")
    log.debug("translated model '%s' (%s, versions %s) from %s into %s", name, kind, versions, model_dir, target)
    return TranslatedModel(name=name, source=model_dir, kind=kind, versions=versions, config=config,
                           auto_complete=auto_complete)


def translate_repositories(repositories: Sequence[str | os.PathLike], dest: str | os.PathLike, *,
                           models: Iterable[str] | None = None, device: str = "cpu", instances: int = 1,
                           threads: int = 1, queue_delay_us: int = 0,
                           copy: bool = False) -> list[TranslatedModel]:
    """Translate the models of one or more repositories into the (new or empty) directory ``dest``.

    ``models`` selects model names (default: all models found). See :func:`translate_model` for the rest.
    """
    if isinstance(repositories, (str, os.PathLike)):
        repositories = [repositories]
    available = find_models(repositories)
    if models is None:
        wanted = list(available)
    else:
        wanted = list(dict.fromkeys(models))
        for name in wanted:
            if name not in available:
                raise ModelRepositoryError(
                    f"model '{name}' is not in the repositories {[str(r) for r in repositories]}."
                    + did_you_mean(name, available)
                    + f"\n  Available models: {sorted(available) or 'none'}.")
    if not wanted:
        raise ModelRepositoryError(
            f"no model found in {[str(r) for r in repositories]}: expected <repo>/<model>/config.pbtxt")
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    return [translate_model(available[name], dest, device=device, instances=instances, threads=threads,
                            queue_delay_us=queue_delay_us, copy=copy)
            for name in wanted]
