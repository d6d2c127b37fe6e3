"""Config fragment: the ParT AK4 tagger, direct by default, swapped for its SONIC twin by the
``particleTransformerAK4SonicTriton`` modifier (same label, same products)."""

from __future__ import annotations

import os

import framework.config as cms
from framework.ml import twins

from .common import COMMON_PARAMETERS
from .modifiers import particleTransformerAK4SonicTriton

DEFAULT_MODEL_DIR = "data/models/particletransformer_AK4"
DEFAULT_LABEL = "pfParticleTransformerAK4JetTags"


def tag_infos(**params) -> cms.EDProducer:
    """The producer of the model inputs (``ParticleTransformerAK4TagInfoProducer``), shared by both twins."""
    return cms.EDProducer("ParticleTransformerAK4TagInfoProducer", **params)


def direct(model_dir: str = DEFAULT_MODEL_DIR, src: str = "pfParticleTransformerAK4TagInfos", **params) -> cms.EDProducer:
    """The in-process (ONNXRuntime) producer for the model in Triton layout at *model_dir*, reading the
    tag infos *src*."""
    return cms.EDProducer(
        "ParticleTransformerAK4ONNXJetTagsProducer",
        src=cms.InputTag(src),
        model_path=cms.string(os.path.join(model_dir, "1", "model.onnx")),
        **params,
    )


def sonic_twin(decl: cms.EDProducer, **client) -> cms.EDProducer:
    """The SONIC twin of a direct declaration (same common parameters, model served by Triton)."""
    return twins.sonic_twin(decl, "ParticleTransformerAK4SonicJetTagsProducer", COMMON_PARAMETERS, **client)


def tag_info_label(label: str) -> str:
    """``pfParticleTransformerAK4JetTags`` -> ``pfParticleTransformerAK4TagInfos`` (CMSSW's names)."""
    return label[: -len("JetTags")] + "TagInfos" if label.endswith("JetTags") else label + "TagInfos"


def add(process: cms.Process, label: str = DEFAULT_LABEL, model_dir: str = DEFAULT_MODEL_DIR, **params) -> cms.Task:
    """Attach the tag infos and the tagger (label *label*) to *process*, register the tagger's SONIC swap with
    the modifier, and return a Task holding both (associate it with a Path or EndPath)."""
    info_label = tag_info_label(label)
    setattr(process, info_label, tag_infos())
    setattr(process, label, direct(model_dir, src=info_label, **params))
    module = getattr(process, label)
    particleTransformerAK4SonicTriton.toReplaceWith(module, sonic_twin(module))
    return cms.Task(getattr(process, info_label), module)
