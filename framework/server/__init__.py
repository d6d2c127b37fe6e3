"""The local fallback servers: the real ``tritonserver`` of the ``nvidia-pytriton`` wheel, and MLServer.

:mod:`~framework.server.repository` translates standard model repositories (ONNX models) into Python-backend
models that run ONNXRuntime; :mod:`~framework.server.managed` is the life cycle both launchers share;
:mod:`~framework.server.launcher` starts the Triton binary on translated repositories, bound to loopback, and
:mod:`~framework.server.mlserver` MLServer on its model folders; :mod:`~framework.server.kind` picks which of the
two serves a model; :mod:`~framework.server.endpoints` checks protocols and ports;
:mod:`~framework.server.serve` is ``python -m framework serve``.

The names below are imported on first use: ``framework.server.endpoints`` or ``.kind`` alone import no
tritonclient.
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "LocalTritonServer": "launcher",
    "bundled_server_available": "launcher",
    "gpu_available": "launcher",
    "ServerStartError": "managed",
    "free_port": "managed",
    "ChecksumError": "repository",
    "ModelRepositoryError": "repository",
    "TranslatedModel": "repository",
    "read_model_config": "repository",
    "translate_repositories": "repository",
    "verify_checksums": "repository",
    "write_model_config": "repository",
}


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    globals()[name] = value
    return value


__all__ = sorted(_WHERE)
