"""NuGraph3 as a Triton model: its ``config.pbtxt`` (written from the spec) and the model directory to serve.

Layout of a NuGraph3 model directory (Triton's)::

    DIR/config.pbtxt               backend "python"; optional: written from the spec when absent
    DIR/1/hierarchical.ckpt        the NuGraph team's Lightning checkpoint (network.load_network reads it)

There is no ``model.py``: the Python-backend code lives once in the project
(:mod:`producers.nugraph3.triton_model`), named by the config's ``python_module`` parameter; the fallback
server's repository translation (:mod:`framework.server.repository`) writes a ``model.py`` that imports it.

Our config (:func:`model_config`; the project's ``data/models/nugraph3/config.pbtxt`` is this, written out)
keeps the server's I/O of DESIGN.md section 11 (the 10 hit and space-point tables in, ``e_evt``,
``x_semantic_{u,v,y}``, ``x_filter_{u,v,y}``, ``v_evt`` out) but batches events: ``max_batch_size``
:data:`MAX_BATCH_SIZE` with ``allow_ragged_batch`` on every input and ``dynamic_batching``, so that Triton hands
the Python backend several requests (events of different sizes) in one ``execute``, which builds one graph
of them all, runs the network once and splits the outputs back. So a request carries ONE event with a leading
batch dim of 1: inputs ``[1, n_hits]`` / ``[1, n_spacepoints]``, outputs ``e_evt`` ``[1, 4]``,
``x_semantic_p`` ``[1, n_p, 7]``, ``x_filter_p`` ``[1, n_p]``, ``v_evt`` ``[1, 3]``. (The reference server has
no ``max_batch_size`` and 1-D tensors; :mod:`~producers.nugraph3.triton_model` serves that layout too when a
config says ``max_batch_size: 0``, and the SONIC twin talks to either.) No ``instance_group``: Triton's
default (one instance per GPU, else one on the CPU).

A model directory without ``config.pbtxt`` (the real checkpoint in ``../shared/models/nugraph3``) is served
through :func:`served_model_dir`: a directory made once per process under the system's temporary directory,
removed when the process exits, holding our config and a link to each version directory of the original.
"""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import tempfile
import threading
from pathlib import Path

from framework.exceptions import ConfigurationError

from .network import OUTPUT_NAMES
from .preprocess import INPUT_DTYPES

log = logging.getLogger(__name__)

MODEL_NAME = "nugraph3"
CHECKPOINT_NAME = "hierarchical.ckpt"
PYTHON_MODULE = "producers.nugraph3.triton_model"
MAX_BATCH_SIZE = 32
"""Events the dynamic batcher may give one ``execute`` (each request holds one event)."""
N_SEMANTIC = 7
N_EVENT = 4

_TRITON_TYPES = {"int32": "TYPE_INT32", "float32": "TYPE_FP32"}


def output_dims(name: str) -> list[int]:
    """The non-batch dims of output *name* in our config."""
    if name == "e_evt":
        return [N_EVENT]
    if name == "v_evt":
        return [3]
    if name.startswith("x_semantic_"):
        return [-1, N_SEMANTIC]
    return [-1]


def model_config(name: str = MODEL_NAME, max_batch_size: int = MAX_BATCH_SIZE):
    """Our Triton ``ModelConfig`` of NuGraph3 (see the module docstring); ``max_batch_size`` 0 gives the
    reference server's unbatched layout (1-D tensors, ``e_evt`` ``[1, 4]``)."""
    from tritonclient.grpc import model_config_pb2 as mc

    config = mc.ModelConfig(name=name, backend="python", max_batch_size=int(max_batch_size))
    batched = max_batch_size > 0
    for input_name, dtype in INPUT_DTYPES.items():
        spec = config.input.add(name=input_name, dims=[-1])
        spec.data_type = mc.DataType.Value(_TRITON_TYPES[dtype.name])
        spec.allow_ragged_batch = batched
    for output_name in OUTPUT_NAMES:
        dims = output_dims(output_name)
        if not batched and output_name in ("e_evt", "v_evt"):
            dims = [1, *dims]
        spec = config.output.add(name=output_name, dims=dims)
        spec.data_type = mc.TYPE_FP32
    if batched:
        config.dynamic_batching.SetInParent()
    config.parameters["python_module"].string_value = PYTHON_MODULE
    config.parameters["checkpoint_filename"].string_value = CHECKPOINT_NAME
    config.parameters["torch_threads"].string_value = "1"
    return config


def write_model_config(path: str | os.PathLike, **kwargs) -> None:
    """Write :func:`model_config` (keyword arguments passed on) as a ``config.pbtxt``."""
    from framework.server.repository import write_model_config as write

    write(model_config(**kwargs), path)


def _versions(model_dir: Path) -> list[Path]:
    return sorted((p for p in model_dir.iterdir() if p.is_dir() and p.name.isdigit()), key=lambda p: int(p.name))


def check_model_dir(model_dir: str | os.PathLike) -> Path:
    """*model_dir* resolved; a ConfigurationError saying what is missing unless it holds a version directory
    with the checkpoint."""
    from framework.paths import locate

    path = Path(locate(model_dir))
    if not path.is_dir():
        raise ConfigurationError(
            f"NuGraph3 model directory '{model_dir}' does not exist. Give a directory laid out as "
            f"DIR/1/{CHECKPOINT_NAME} (+ DIR/config.pbtxt), e.g. nugraphModel=../shared/models/nugraph3")
    if not any((v / CHECKPOINT_NAME).is_file() for v in _versions(path)):
        found = sorted(p.name for p in path.iterdir()) or ["nothing"]
        raise ConfigurationError(
            f"NuGraph3 model directory '{model_dir}' has no {{version}}/{CHECKPOINT_NAME} (found: "
            f"{', '.join(found)}). Expected DIR/1/{CHECKPOINT_NAME}")
    return path.resolve()


_made: dict[Path, Path] = {}
_made_lock = threading.Lock()


def served_model_dir(model_dir: str | os.PathLike) -> Path:
    """The directory a Triton server can serve for the NuGraph3 model at *model_dir*: *model_dir* itself when it
    has a ``config.pbtxt``; else (once per process) ``<tmp>/cmsfw-nugraph3-*/nugraph3`` with :func:`model_config`
    and links to *model_dir*'s version directories, removed when the process exits."""
    path = check_model_dir(model_dir)
    if (path / "config.pbtxt").is_file():
        return path
    with _made_lock:
        made = _made.get(path)
        if made is None or not made.is_dir():
            root = Path(tempfile.mkdtemp(prefix="cmsfw-nugraph3-"))
            atexit.register(shutil.rmtree, root, ignore_errors=True)
            made = root / MODEL_NAME
            made.mkdir()
            for version in _versions(path):
                (made / version.name).symlink_to(version, target_is_directory=True)
            write_model_config(made / "config.pbtxt")
            log.info("NuGraph3: %s has no config.pbtxt; serving it with the project's config from %s", path, made)
            _made[path] = made
        return made


__all__ = ["CHECKPOINT_NAME", "MAX_BATCH_SIZE", "MODEL_NAME", "PYTHON_MODULE", "check_model_dir", "model_config",
           "output_dims", "served_model_dir", "write_model_config"]
