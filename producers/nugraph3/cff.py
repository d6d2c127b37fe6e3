"""Config fragment: NuGraph3, direct by default, swapped for its SONIC twin by the ``nuGraph3SonicTriton``
modifier (same label, same products)::

    from producers.nugraph3 import cff as nugraph3
    task = nugraph3.add(process, "nuGraph3", "data/models/nugraph3")   # or ../shared/models/nugraph3

A model directory is ``DIR/1/hierarchical.ckpt`` (+ ``DIR/config.pbtxt``; without it the SONIC twin serves the
directory with the project's config, :mod:`~producers.nugraph3.model_repo`).
"""

from __future__ import annotations

import os

import framework.config as cms
from framework.config.types import plain
from framework.ml.twins import DEFAULT_CLIENT
from framework.paths import locate

from .common import COMMON_PARAMETERS
from .model_repo import CHECKPOINT_NAME, MODEL_NAME
from .modifiers import nuGraph3SonicTriton

DEFAULT_MODEL_DIR = "data/models/nugraph3"
DEFAULT_LABEL = "nuGraph3"


def inputs() -> cms.EDProducer:
    """The producer of the model inputs (``NuGraph3InputsProducer``: the event's 10 tables), shared by both twins."""
    return cms.EDProducer("NuGraph3InputsProducer")


def direct(model_dir: str = DEFAULT_MODEL_DIR, src: str = "nuGraph3Inputs", **params) -> cms.EDProducer:
    """The in-process (torch) producer of the model at *model_dir*, reading the tables *src*."""
    return cms.EDProducer("NuGraph3Producer", src=cms.InputTag(src),
                          checkpoint=cms.string(os.path.join(model_dir, "1", CHECKPOINT_NAME)), **params)


def sonic_twin(decl: cms.EDProducer, **client) -> cms.EDProducer:
    """The SONIC twin of a direct declaration: same ``src``, the model of its checkpoint's directory served by
    Triton as ``nugraph3`` (the directory's ``config.pbtxt`` checked against the server's when it has one)."""
    model_dir = os.path.dirname(os.path.dirname(plain(decl.checkpoint)))
    config = os.path.join(model_dir, "config.pbtxt")
    settings = dict(DEFAULT_CLIENT, modelName=MODEL_NAME,
                    modelConfigPath=config if os.path.isfile(locate(config)) else "")
    settings.update(client)
    params = {k: v for k, v in decl.parameters_().items() if k in COMMON_PARAMETERS}
    return cms.EDProducer("NuGraph3SonicProducer", Client=cms.PSet(**settings), modelDir=cms.string(model_dir),
                          **params)


def inputs_label(label: str) -> str:
    """``nuGraph3`` -> ``nuGraph3Inputs``."""
    return label + "Inputs"


def add(process: cms.Process, label: str = DEFAULT_LABEL, model_dir: str = DEFAULT_MODEL_DIR, **params) -> cms.Task:
    """Attach the inputs producer and NuGraph3 (label *label*, model directory *model_dir*) to *process*,
    register NuGraph3's SONIC swap with the modifier, and return a Task holding both. *params* go to the direct
    producer (``device``, ``threads``)."""
    in_label = inputs_label(label)
    setattr(process, in_label, inputs())
    setattr(process, label, direct(model_dir, src=in_label, **params))
    module = getattr(process, label)
    nuGraph3SonicTriton.toReplaceWith(module, sonic_twin(module))
    return cms.Task(getattr(process, in_label), module)
