"""Config fragment: the ParT AK4 tagger, direct by default, swapped for its SONIC twin by the
``particleTransformerAK4SonicTriton`` modifier (same label, same products)."""

from __future__ import annotations

import os

import framework.config as cms
from framework.ml import twins
from framework.modifiers import particleTransformerAK4SonicTriton

from .common import COMMON_PARAMETERS

DEFAULT_MODEL_DIR = "data/models/particletransformer_AK4"


def direct(model_dir: str = DEFAULT_MODEL_DIR, **params) -> cms.EDProducer:
    """The in-process (ONNXRuntime) producer for the model in Triton layout at *model_dir*."""
    return cms.EDProducer(
        "ParticleTransformerAK4ONNXJetTagsProducer",
        model_path=cms.string(os.path.join(model_dir, "1", "model.onnx")),
        **params,
    )


def sonic_twin(decl: cms.EDProducer, **client) -> cms.EDProducer:
    """The SONIC twin of a direct declaration (same common parameters, model served by Triton)."""
    return twins.sonic_twin(decl, "ParticleTransformerAK4SonicJetTagsProducer", COMMON_PARAMETERS, **client)


def add(process: cms.Process, label: str = "pfParticleTransformerAK4JetTags", model_dir: str = DEFAULT_MODEL_DIR,
        **params) -> cms.EDProducer:
    """Attach the tagger under *label* and register its SONIC swap with the modifier."""
    setattr(process, label, direct(model_dir, **params))
    module = getattr(process, label)
    particleTransformerAK4SonicTriton.toReplaceWith(module, sonic_twin(module))
    return module
