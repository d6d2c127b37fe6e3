"""The local fallback Triton server: the real ``tritonserver`` of the ``nvidia-pytriton`` wheel.

:mod:`~framework.server.repository` translates standard model repositories (ONNX models) into Python-backend
models that run ONNXRuntime; :mod:`~framework.server.launcher` starts the binary on them, bound to loopback;
:mod:`~framework.server.serve` is ``python -m framework serve``.
"""

from framework.server.launcher import (
    LocalTritonServer,
    ServerStartError,
    bundled_server_available,
    free_port,
    gpu_available,
)
from framework.server.repository import (
    ChecksumError,
    ModelRepositoryError,
    TranslatedModel,
    read_model_config,
    translate_repositories,
    verify_checksums,
    write_model_config,
)

__all__ = [
    "ChecksumError",
    "LocalTritonServer",
    "ModelRepositoryError",
    "ServerStartError",
    "TranslatedModel",
    "bundled_server_available",
    "free_port",
    "gpu_available",
    "read_model_config",
    "translate_repositories",
    "verify_checksums",
    "write_model_config",
]
