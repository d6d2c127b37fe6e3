"""Triton Python-backend model that runs an ONNX file with ONNXRuntime.

This file is copied verbatim as ``<model>/<version>/model.py`` into the repository that
:mod:`framework.server.repository` writes for the bundled ``tritonserver``. It runs inside Triton's
Python-backend stub process, so it imports nothing from the framework: everything it needs comes from
the model configuration (``parameters`` written by the translation):

``onnx_model_filename``
    file of the version directory to load (default ``model.onnx``)
``execution_provider``
    ``cuda`` or ``cpu``; CUDA is used only when ONNXRuntime has it and Triton gave this instance a GPU
``intra_op_thread_count`` / ``inter_op_thread_count``
    ONNXRuntime thread pools (0 = ONNXRuntime's default)
``allow_spinning``
    ``1`` lets idle intra-op threads busy-wait (ONNXRuntime's default); ``0`` (default here) does not
``graph_optimization_level``
    ``disable``, ``basic``, ``extended`` or ``all`` (from the original ``optimization { graph { level } }``)
``batch_padding``
    ``zero`` or ``none`` (default): how requests whose variable (``-1``) dims differ are merged, see below

Dynamic batching: Triton hands ``execute`` several requests at once; they are grouped
(:func:`plan_batches`), each group is merged into one batch (:func:`merge_feeds`), run once, and the
outputs are split back along the batch dimension (:func:`split_outputs`):

* requests whose inputs have the same names, dtypes and non-batch shapes always share a run;
* with ``batch_padding: "zero"``, requests whose shapes differ only in the model's variable dims (``-1``
  in the config's ``dims``) share a run too: each input is zero-padded at the end of those dims to the
  largest size in the run. This is done only when every output has fixed non-batch dims in the config
  (otherwise padding could change the output shapes) and no input or output is reshaped; else the
  requests are grouped by shape as with ``none``. Zero padding suits models that mask padded slots
  (ParticleTransformer finds real slots from its 4-vector inputs: scores change by about 1e-7); a model
  whose outputs depend on the padded length (a mean over the variable dim, say) needs ``none``.
  The translation (:mod:`framework.server.repository`) sets ``zero`` for ONNX models unless their
  ``config.pbtxt`` gives ``batch_padding`` itself, and marks the paddable inputs ``allow_ragged_batch``
  (Triton's dynamic batcher only hands requests of different shapes to one ``execute`` call for such inputs);
* a run holds at most ``max_batch_size`` batch entries (several runs when the requests hold more);
  without batching (``max_batch_size: 0``) every request runs alone.

When a merged run fails (or gives outputs without the merged batch dimension), its requests are run
again one by one, so that an error reaches the request that caused it.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping, Sequence

# The stub's interpreter ignores PYTHONPATH: take the job's sys.path from the launcher, before other imports.
for _entry in reversed(os.environ.get("CMSFW_TRITON_SYS_PATH", "").split(os.pathsep)):
    if _entry:
        if _entry in sys.path:
            sys.path.remove(_entry)
        sys.path.insert(0, _entry)

import numpy as np  # noqa: E402

try:  # only importable inside the Triton Python-backend stub
    import triton_python_backend_utils as pb_utils
except ImportError:  # pragma: no cover - imported outside Triton (lint, tests)
    pb_utils = None

_GRAPH_LEVELS = {"disable": "ORT_DISABLE_ALL", "basic": "ORT_ENABLE_BASIC", "extended": "ORT_ENABLE_EXTENDED",
                 "all": "ORT_ENABLE_ALL"}


def _log(level: str, message: str) -> None:
    logger = getattr(pb_utils, "Logger", None)
    if logger is not None:
        getattr(logger, f"log_{level}")(message)


def _gpu_present() -> bool:
    return any(os.path.exists(f"/dev/nvidia{i}") for i in range(16))


# ----------------------------------------------------------------------------- batching (pure numpy)
PADDING_MODES = ("zero", "none")
"""Values of the ``batch_padding`` parameter."""


def batch_size_of(feed: Mapping[str, np.ndarray]) -> int:
    """Batch entries of one request: the outer dimension of its first input (0 for a request without any)."""
    for array in feed.values():
        return int(array.shape[0]) if array.ndim else 1
    return 0


def _group_key(feed: Mapping[str, np.ndarray], variable_axes: Mapping[str, frozenset[int]] | None) -> tuple:
    """Requests with equal keys may share a run: same names, dtypes, ranks and non-batch sizes, except the
    sizes along ``variable_axes`` (input name -> padded axes of the full array) when padding."""
    key = []
    for name in sorted(feed):
        array = feed[name]
        padded: frozenset[int] = frozenset()
        if variable_axes is not None and array.dtype != np.object_:  # strings are never padded
            padded = variable_axes.get(name, frozenset())
        key.append((name, array.dtype.str, tuple(None if axis in padded else size
                                                 for axis, size in enumerate(array.shape) if axis > 0)))
    return tuple(key)


def plan_batches(feeds: Sequence[Mapping[str, np.ndarray]], max_batch_size: int,
                 variable_axes: Mapping[str, frozenset[int]] | None = None) -> list[list[int]]:
    """Group requests (their feeds: input name -> array with the batch dimension first) into runs.

    Returns lists of indices into ``feeds``, each list one run, in order of first appearance. Requests with
    the same names, dtypes and non-batch shapes share a run; with ``variable_axes`` (input name -> axes of
    the full array that may be zero-padded) requests that differ only along those axes share one too. A run
    holds at most ``max_batch_size`` batch entries; ``max_batch_size <= 0`` (no batching) gives one run
    per request.
    """
    if max_batch_size <= 0:
        return [[i] for i in range(len(feeds))]
    groups: dict[tuple, list[int]] = {}
    for i, feed in enumerate(feeds):
        groups.setdefault(_group_key(feed, variable_axes) if feed else ("empty", i), []).append(i)
    runs: list[list[int]] = []
    for members in groups.values():
        run: list[int] = []
        entries = 0
        for i in members:
            size = batch_size_of(feeds[i])
            if run and entries + size > max_batch_size:
                runs.append(run)
                run, entries = [], 0
            run.append(i)
            entries += size
        runs.append(run)
    return runs


def merge_feeds(feeds: Sequence[Mapping[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Concatenate the feeds of one run along the batch dimension; an input whose non-batch shapes differ
    is zero-padded at the end of each dimension to the run's largest size (the caller decides that those
    dimensions may be padded: :func:`plan_batches`)."""
    merged = {}
    for name in feeds[0]:
        arrays = [feed[name] for feed in feeds]
        inner = tuple(max(sizes) for sizes in zip(*(a.shape[1:] for a in arrays), strict=True))
        same = all(a.shape[1:] == inner for a in arrays)
        if same:
            merged[name] = np.concatenate(arrays) if len(arrays) > 1 else arrays[0]
            continue
        out = np.zeros((sum(a.shape[0] for a in arrays), *inner), dtype=arrays[0].dtype)
        start = 0
        for a in arrays:
            out[(slice(start, start + a.shape[0]), *(slice(0, n) for n in a.shape[1:]))] = a
            start += a.shape[0]
        merged[name] = out
    return merged


def split_outputs(outputs: Sequence[np.ndarray], sizes: Sequence[int]) -> list[list[np.ndarray]] | None:
    """Split the outputs of a merged run back into the requests' outputs (``sizes``: batch entries of each
    request); None when an output does not carry the merged batch dimension."""
    total = sum(sizes)
    if not all(out.ndim > 0 and out.shape[0] == total for out in outputs):
        return None
    bounds = np.cumsum(sizes)[:-1]
    pieces = [np.split(out, bounds) for out in outputs]
    return [[piece[k] for piece in pieces] for k in range(len(sizes))]


def padding_axes(config: Mapping) -> dict[str, frozenset[int]] | None:
    """Input name -> the axes (of the full array, batch first) that zero padding may extend, from a model
    configuration (Triton's JSON form); None when padding is not safe: no batching, a reshaped input or
    output, or an output with a variable (``-1``) non-batch dim."""
    if int(config.get("max_batch_size", 0)) <= 0:
        return None
    for output in config.get("output", []):
        if output.get("reshape") or any(int(d) < 0 for d in output.get("dims", [])):
            return None
    axes = {}
    for spec in config.get("input", []):
        if spec.get("reshape"):
            return None
        axes[spec["name"]] = frozenset(1 + k for k, d in enumerate(spec.get("dims", [])) if int(d) < 0)
    return axes


class TritonPythonModel:
    """ONNXRuntime session answering (dynamically batched) Triton requests."""

    def initialize(self, args: dict) -> None:
        import onnxruntime as ort

        config = json.loads(args["model_config"])
        params = {k: v.get("string_value", "") for k, v in config.get("parameters", {}).items()}
        self.model_name = config["name"]
        self.max_batch_size = int(config.get("max_batch_size", 0))
        self.inputs = [(i["name"], pb_utils.triton_string_to_numpy(i["data_type"]), bool(i.get("optional")))
                       for i in config.get("input", [])]
        self.outputs = [(o["name"], pb_utils.triton_string_to_numpy(o["data_type"])) for o in config.get("output", [])]
        self.output_names = [name for name, _ in self.outputs]
        padding = (params.get("batch_padding") or "none").strip().lower()
        if padding not in PADDING_MODES:
            raise ValueError(f"model '{self.model_name}': parameter batch_padding must be one of "
                             f"{PADDING_MODES}, not {params.get('batch_padding')!r}")
        self.variable_axes = padding_axes(config) if padding == "zero" else None
        if padding == "zero" and self.variable_axes is None:
            _log("info", f"{self.model_name}: batch_padding 'zero' is not used (an output has variable dims, "
                         "a tensor is reshaped, or the model does not batch)")

        path = os.path.join(args["model_repository"], args["model_version"],
                            params.get("onnx_model_filename") or "model.onnx")
        options = ort.SessionOptions()
        options.intra_op_num_threads = int(params.get("intra_op_thread_count") or 0)
        options.inter_op_num_threads = int(params.get("inter_op_thread_count") or 0)
        # busy-waiting intra-op threads would steal the cores of the job this local server shares a machine with
        options.add_session_config_entry("session.intra_op.allow_spinning", params.get("allow_spinning") or "0")
        level = params.get("graph_optimization_level") or "all"
        options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, _GRAPH_LEVELS.get(level, "ORT_ENABLE_ALL"))

        providers: list = ["CPUExecutionProvider"]
        if (params.get("execution_provider") == "cuda" and args.get("model_instance_kind") == "GPU"
                and "CUDAExecutionProvider" in ort.get_available_providers() and _gpu_present()):
            device_id = int(args.get("model_instance_device_id") or 0)
            providers = [("CUDAExecutionProvider", {"device_id": device_id}), "CPUExecutionProvider"]
        self.session = ort.InferenceSession(path, sess_options=options, providers=providers)
        _log("info", f"{self.model_name}: loaded {path} with providers {self.session.get_providers()}, "
                     f"{options.intra_op_num_threads} intra-op threads")

    # ------------------------------------------------------------------ helpers
    def _feeds(self, request) -> dict:
        feeds = {}
        for name, dtype, optional in self.inputs:
            tensor = pb_utils.get_input_tensor_by_name(request, name)
            if tensor is None:
                if optional:
                    continue
                raise ValueError(f"model '{self.model_name}': input '{name}' is missing from the request")
            array = tensor.as_numpy()
            feeds[name] = array if array.dtype == dtype or dtype is np.object_ else array.astype(dtype)
        return feeds

    def _run(self, feeds: dict) -> list:
        return self.session.run(self.output_names, feeds)

    def _response(self, outputs: list):
        tensors = [pb_utils.Tensor(name, np.ascontiguousarray(value if value.dtype == dtype or dtype is np.object_
                                                              else value.astype(dtype)))
                   for (name, dtype), value in zip(self.outputs, outputs, strict=True)]
        return pb_utils.InferenceResponse(output_tensors=tensors)

    @staticmethod
    def _error(exc: BaseException):
        return pb_utils.InferenceResponse(output_tensors=[], error=pb_utils.TritonError(f"{type(exc).__name__}: {exc}"))

    # ------------------------------------------------------------------ Triton API
    def execute(self, requests: list) -> list:
        responses: list = [None] * len(requests)
        feeds: list = [None] * len(requests)
        for i, request in enumerate(requests):
            try:
                feeds[i] = self._feeds(request)
            except Exception as exc:  # noqa: BLE001 - reported to the client
                responses[i] = self._error(exc)
        good = [i for i in range(len(requests)) if responses[i] is None]

        for run in plan_batches([feeds[i] for i in good], self.max_batch_size, self.variable_axes):
            members = [good[k] for k in run]
            if len(members) > 1:
                try:
                    outputs = self._run(merge_feeds([feeds[i] for i in members]))
                    pieces = split_outputs(outputs, [batch_size_of(feeds[i]) for i in members])
                except Exception:  # noqa: BLE001 - retried request by request to blame the right one
                    pieces = None
                if pieces is not None:
                    for i, piece in zip(members, pieces, strict=True):
                        responses[i] = self._response(piece)
                    continue
            for i in members:
                try:
                    responses[i] = self._response(self._run(feeds[i]))
                except Exception as exc:  # noqa: BLE001 - reported to the client
                    responses[i] = self._error(exc)
        return responses

    def finalize(self) -> None:
        self.session = None
