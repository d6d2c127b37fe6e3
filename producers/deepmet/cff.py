"""Config fragment: DeepMET, direct by default, swapped for its SONIC twin by the
``deepMETSonicTriton`` modifier (same label, same products)."""

from __future__ import annotations

import os

import framework.config as cms
from configs.modifiers import deepMETSonicTriton

from .common import COMMON_PARAMETERS

DEFAULT_MODEL_DIR = "data/models/deepmet"


def direct(model_dir: str = DEFAULT_MODEL_DIR, **params) -> cms.EDProducer:
    return cms.EDProducer("DeepMETProducer", model_path=cms.string(os.path.join(model_dir, "1", "model.onnx")), **params)


def sonic_twin(decl: cms.EDProducer, **client) -> cms.EDProducer:
    path = decl.model_path.value() if hasattr(decl.model_path, "value") else decl.model_path
    model_dir = os.path.dirname(os.path.dirname(path))
    common = {k: v for k, v in decl.parameters_().items() if k in COMMON_PARAMETERS}
    settings = dict(
        mode="Async",
        modelName=os.path.basename(os.path.normpath(model_dir)),
        modelConfigPath=os.path.join(model_dir, "config.pbtxt"),
        timeout=60,
        allowedTries=2,
    )
    settings.update(client)
    return cms.EDProducer("DeepMETSonicProducer", Client=cms.PSet(**settings), **common)


def add(process: cms.Process, label: str = "deepMETProducer", model_dir: str = DEFAULT_MODEL_DIR, **params) -> cms.EDProducer:
    setattr(process, label, direct(model_dir, **params))
    module = getattr(process, label)
    deepMETSonicTriton.toReplaceWith(module, sonic_twin(module))
    return module
