"""Config fragment: DeepMET, direct by default, swapped for its SONIC twin by the
``deepMETSonicTriton`` modifier (same label, same products)."""

from __future__ import annotations

import os

import framework.config as cms
from framework.ml import twins

from .common import COMMON_PARAMETERS
from .modifiers import deepMETSonicTriton

DEFAULT_MODEL_DIR = "data/models/deepmet"
DEFAULT_LABEL = "deepMETProducer"


def inputs(**params) -> cms.EDProducer:
    """The producer of the model inputs (``DeepMETInputsProducer``), shared by both twins."""
    return cms.EDProducer("DeepMETInputsProducer", **params)


def direct(model_dir: str = DEFAULT_MODEL_DIR, src: str = "deepMETInputs", **params) -> cms.EDProducer:
    """The in-process (ONNXRuntime) producer for the model in Triton layout at *model_dir*, reading the
    inputs *src*."""
    return cms.EDProducer("DeepMETProducer", src=cms.InputTag(src),
                          model_path=cms.string(os.path.join(model_dir, "1", "model.onnx")), **params)


def sonic_twin(decl: cms.EDProducer, **client) -> cms.EDProducer:
    """The SONIC twin of a direct declaration (same common parameters, model served by Triton)."""
    return twins.sonic_twin(decl, "DeepMETSonicProducer", COMMON_PARAMETERS, **client)


def inputs_label(label: str) -> str:
    """``deepMETProducer`` -> ``deepMETInputs``; any other label gets ``Inputs`` appended."""
    return label[: -len("Producer")] + "Inputs" if label.endswith("Producer") else label + "Inputs"


def add(process: cms.Process, label: str = DEFAULT_LABEL, model_dir: str = DEFAULT_MODEL_DIR,
        **params) -> cms.Task:
    """Attach the inputs producer and DeepMET (label *label*) to *process*, register DeepMET's SONIC swap with
    the modifier, and return a Task holding both. Settings of the inputs (``max_n_pf``, ``ignore_leptons``,
    ``norm_factor``) go to the inputs producer; ``norm_factor`` to both."""
    input_keys = ("max_n_pf", "norm_factor", "ignore_leptons")
    in_label = inputs_label(label)
    setattr(process, in_label, inputs(**{k: v for k, v in params.items() if k in input_keys}))
    rest = {k: v for k, v in params.items() if k not in input_keys or k == "norm_factor"}
    setattr(process, label, direct(model_dir, src=in_label, **rest))
    module = getattr(process, label)
    deepMETSonicTriton.toReplaceWith(module, sonic_twin(module))
    return cms.Task(getattr(process, in_label), module)
