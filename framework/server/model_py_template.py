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

Dynamic batching: Triton hands ``execute`` several requests at once. When every request carries the same
non-batch shapes, they are concatenated along the batch dimension, run once, and the outputs are split
back; otherwise (``-1`` dims that differ, or a model without batching) each request runs on its own.
"""

from __future__ import annotations

import json
import os
import sys

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

    def _batchable(self, feeds: list[dict]) -> bool:
        if self.max_batch_size <= 0 or len(feeds) < 2:
            return False
        first = feeds[0]
        for other in feeds[1:]:
            if other.keys() != first.keys():
                return False
            for name, array in first.items():
                if other[name].shape[1:] != array.shape[1:] or other[name].dtype != array.dtype:
                    return False
        return True

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

        if self._batchable([feeds[i] for i in good]):
            sizes = [next(iter(feeds[i].values())).shape[0] for i in good]
            total = sum(sizes)
            try:
                merged = {name: np.concatenate([feeds[i][name] for i in good]) for name in feeds[good[0]]}
                outputs = self._run(merged)
                if all(out.ndim > 0 and out.shape[0] == total for out in outputs):
                    bounds = np.cumsum(sizes)[:-1]
                    pieces = [np.split(out, bounds) for out in outputs]
                    for k, i in enumerate(good):
                        responses[i] = self._response([p[k] for p in pieces])
                    return responses
            except Exception:  # noqa: BLE001 - retried request by request to blame the right one
                pass

        for i in good:
            try:
                responses[i] = self._response(self._run(feeds[i]))
            except Exception as exc:  # noqa: BLE001 - reported to the client
                responses[i] = self._error(exc)
        return responses

    def finalize(self) -> None:
        self.session = None
