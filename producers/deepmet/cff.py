"""Config fragment: DeepMET, direct by default, swapped for its SONIC twin by the
``deepMETSonicTriton`` modifier (same label, same products)."""

from __future__ import annotations

import os

import framework.config as cms
from framework.ml import twins
from framework.modifiers import deepMETSonicTriton

from .common import COMMON_PARAMETERS

DEFAULT_MODEL_DIR = "data/models/deepmet"


def direct(model_dir: str = DEFAULT_MODEL_DIR, **params) -> cms.EDProducer:
    return cms.EDProducer("DeepMETProducer", model_path=cms.string(os.path.join(model_dir, "1", "model.onnx")), **params)


def sonic_twin(decl: cms.EDProducer, **client) -> cms.EDProducer:
    """The SONIC twin of a direct declaration (same common parameters, model served by Triton)."""
    return twins.sonic_twin(decl, "DeepMETSonicProducer", COMMON_PARAMETERS, **client)


def add(process: cms.Process, label: str = "deepMETProducer", model_dir: str = DEFAULT_MODEL_DIR, **params) -> cms.EDProducer:
    setattr(process, label, direct(model_dir, **params))
    module = getattr(process, label)
    deepMETSonicTriton.toReplaceWith(module, sonic_twin(module))
    return module
