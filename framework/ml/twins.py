"""Config helpers for twin producers: the SONIC declaration made from a direct one."""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

from .. import config as cms
from ..config.types import plain

# CMSSW-like client settings of the standard twins: asynchronous, one retry, generous timeout
DEFAULT_CLIENT: dict[str, Any] = {"mode": "Async", "timeout": 60, "allowedTries": 2}


def model_dir_of(decl: cms.EDProducer) -> str:
    """``<repo>/<model>`` from the direct declaration's ``model_path`` (``<repo>/<model>/<version>/model.onnx``)."""
    return os.path.dirname(os.path.dirname(plain(decl.model_path)))


def sonic_twin(decl: cms.EDProducer, sonic_type: str, common: Iterable[str], **client: Any) -> cms.EDProducer:
    """The SONIC twin of a direct declaration: the *common* parameters copied, the model served by
    Triton under the name of its directory, its ``config.pbtxt`` checked against the server's."""
    model_dir = model_dir_of(decl)
    keep = set(common)
    settings = dict(DEFAULT_CLIENT, modelName=os.path.basename(os.path.normpath(model_dir)),
                    modelConfigPath=os.path.join(model_dir, "config.pbtxt"))
    settings.update(client)
    params = {k: v for k, v in decl.parameters_().items() if k in keep}
    return cms.EDProducer(sonic_type, Client=cms.PSet(**settings), **params)
