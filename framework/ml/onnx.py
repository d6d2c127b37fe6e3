"""In-process ONNXRuntime inference, with the input checks a user needs (names, dtypes, shapes)."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping

import numpy as np

from ..exceptions import ConfigurationError, FrameworkError, did_you_mean
from ..paths import resolve_path

log = logging.getLogger(__name__)

_ORT_TYPES = {"tensor(float)": np.float32, "tensor(double)": np.float64, "tensor(int64)": np.int64,
              "tensor(int32)": np.int32, "tensor(bool)": np.bool_, "tensor(float16)": np.float16}


class ModelInputError(FrameworkError):
    """Inputs that do not fit the model (name, dtype or shape)."""


def cuda_usable() -> bool:
    """Whether onnxruntime can use CUDA here (the provider is built in and a GPU is visible)."""
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        return False
    return any(os.path.exists(f"/dev/nvidia{i}") for i in range(8))


class ONNXSession:
    """An ONNXRuntime session for one model file, shared by all streams of a module.

    ``device``: "auto" (CUDA if usable), "cpu" or "gpu". ``threads``: intra-op threads (0 = 1 per
    stream is usually best: several streams already run in parallel)."""

    def __init__(self, path: str, *, device: str = "auto", threads: int = 1, name: str | None = None):
        import onnxruntime as ort

        self.path = str(resolve_path(path, "ONNX model"))
        self.name = name or os.path.basename(os.path.dirname(os.path.dirname(self.path))) or self.path
        if device not in ("auto", "cpu", "gpu"):
            raise ConfigurationError(f"device must be auto, cpu or gpu, got {device!r}")
        use_cuda = device == "gpu" or (device == "auto" and cuda_usable())
        if device == "gpu" and not cuda_usable():
            raise ConfigurationError(f"device='gpu' asked for model {self.name}, but onnxruntime sees no usable CUDA GPU")
        providers = (["CUDAExecutionProvider"] if use_cuda else []) + ["CPUExecutionProvider"]
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = max(0, int(threads))
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(self.path, sess_options=opts, providers=providers)
        except Exception as e:  # noqa: BLE001
            raise ConfigurationError(f"cannot load ONNX model {self.path}: {type(e).__name__}: {e}") from None
        self.providers = self.session.get_providers()
        self.inputs = {i.name: (list(i.shape), _ORT_TYPES.get(i.type, None)) for i in self.session.get_inputs()}
        self.outputs = [o.name for o in self.session.get_outputs()]
        self._lock = threading.Lock()
        log.info("loaded %s with %s", self.path, ", ".join(self.providers))

    def check(self, inputs: Mapping[str, np.ndarray], where: str = "") -> None:
        """Raise :class:`ModelInputError` if *inputs* do not match the model's inputs."""
        loc = f" ({where})" if where else ""
        for name in inputs:
            if name not in self.inputs:
                raise ModelInputError(
                    f"model {self.name} has no input '{name}'{loc}.{did_you_mean(name, self.inputs)} "
                    f"Inputs: {', '.join(self.inputs)}"
                )
        for name, (shape, dtype) in self.inputs.items():
            if name not in inputs:
                raise ModelInputError(f"model {self.name}: input '{name}' not given{loc}; expected shape {shape}")
            a = inputs[name]
            if dtype is not None and a.dtype != dtype:
                raise ModelInputError(
                    f"model {self.name}: input '{name}' has dtype {a.dtype}, expected {np.dtype(dtype).name}{loc}"
                )
            if len(shape) != a.ndim or any(isinstance(d, int) and d >= 0 and d != s for d, s in zip(shape, a.shape)):
                raise ModelInputError(
                    f"model {self.name}: input '{name}' has shape {list(a.shape)}, expected {shape} "
                    f"(strings are free dimensions){loc}"
                )

    def run(self, inputs: Mapping[str, np.ndarray], outputs: list[str] | None = None, where: str = "") -> dict[str, np.ndarray]:
        """Run the model; returns output name -> array."""
        self.check(inputs, where)
        names = outputs or self.outputs
        result = self.session.run(names, dict(inputs))
        return dict(zip(names, result))


def match_names(wanted: list[str], available: list[str]) -> dict[str, str]:
    """Map feature names (``input``) to model names (``input:0``): exact, else ignoring a ``:N`` suffix."""
    mapping = {}
    for w in wanted:
        if w in available:
            mapping[w] = w
            continue
        found = [a for a in available if a.split(":", 1)[0] == w]
        if len(found) != 1:
            raise ModelInputError(f"no model input matches '{w}'.{did_you_mean(w, available)} Model inputs: {', '.join(available)}")
        mapping[w] = found[0]
    return mapping
