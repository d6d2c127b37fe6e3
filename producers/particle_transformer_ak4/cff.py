"""Config fragment: the ParT AK4 tagger, direct by default, swapped for its SONIC twin by the
``particleTransformerAK4SonicTriton`` modifier (same label, same products)."""

from __future__ import annotations

import os

import framework.config as cms
from configs.modifiers import particleTransformerAK4SonicTriton

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
    """The SONIC twin of a direct declaration: the common parameters copied, the model served by
    Triton under the name of its directory."""
    model_dir = os.path.dirname(os.path.dirname(decl.model_path.value() if hasattr(decl.model_path, "value") else decl.model_path))
    common = {k: v for k, v in decl.parameters_().items() if k in COMMON_PARAMETERS}
    settings = dict(
        mode="Async",
        modelName=os.path.basename(os.path.normpath(model_dir)),
        modelConfigPath=os.path.join(model_dir, "config.pbtxt"),
        timeout=60,
        allowedTries=2,
    )
    settings.update(client)
    return cms.EDProducer("ParticleTransformerAK4SonicJetTagsProducer", Client=cms.PSet(**settings), **common)


def add(process: cms.Process, label: str = "pfParticleTransformerAK4JetTags", model_dir: str = DEFAULT_MODEL_DIR,
        **params) -> cms.EDProducer:
    """Attach the tagger under *label* and register its SONIC swap with the modifier."""
    setattr(process, label, direct(model_dir, **params))
    module = getattr(process, label)
    particleTransformerAK4SonicTriton.toReplaceWith(module, sonic_twin(module))
    return module
