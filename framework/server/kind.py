"""The one place that picks which local fallback server serves a model, from its repository's contents.

A model folder with ``model-settings.json`` (DIALS packaging, or the file itself given as the model's config path)
is served by MLServer; anything else (a Triton ``config.pbtxt``, or a bare ONNX model Triton auto-completes) by
the bundled Triton server. Standard library only: the service asks before it imports either launcher.
"""

from __future__ import annotations

import os
from pathlib import Path

MODEL_SETTINGS = "model-settings.json"
"""The file that makes a folder an MLServer model."""
TRITON_CONFIG = "config.pbtxt"
TRITON = "triton"
MLSERVER = "mlserver"


def server_kind(config_path: str | os.PathLike | None) -> str:
    """``"mlserver"`` for an MLServer model (its ``model-settings.json``, or a folder holding one without a
    ``config.pbtxt``), else ``"triton"``."""
    if not config_path or not str(config_path):
        return TRITON
    path = Path(config_path)
    if path.name == MODEL_SETTINGS:
        return MLSERVER
    if path.name == TRITON_CONFIG:
        return TRITON
    if path.is_dir() and (path / MODEL_SETTINGS).is_file() and not (path / TRITON_CONFIG).is_file():
        return MLSERVER
    return TRITON


def is_mlserver_model(path: str | os.PathLike) -> bool:
    """True for an MLServer model: its ``model-settings.json``, or a folder holding one."""
    if not str(path):
        return False
    p = Path(path)
    return p.name == MODEL_SETTINGS or (p / MODEL_SETTINGS).is_file()


__all__ = ["MLSERVER", "MODEL_SETTINGS", "TRITON", "TRITON_CONFIG", "is_mlserver_model", "server_kind"]
