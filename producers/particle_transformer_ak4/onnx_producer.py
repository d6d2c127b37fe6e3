"""ParticleTransformer AK4 b-tagger run in-process with ONNXRuntime (the *direct* twin)."""

from __future__ import annotations

import numpy as np

from framework.core.module import EDProducer
from framework.core.registry import register
from framework.ml.onnx import ONNXSession

from .common import COMMON_PARAMETERS, OUTPUT_NAME, ParTAK4Common


@register("ParticleTransformerAK4ONNXJetTagsProducer")
class ParticleTransformerAK4ONNXJetTagsProducer(ParTAK4Common, EDProducer):
    """CMSSW's ``ParticleTransformerAK4ONNXJetTagsProducer``: the event's jets (from the tag infos
    ``src``) as one batch."""

    parameters = {
        **COMMON_PARAMETERS,
        "model_path": "data/models/particletransformer_AK4/1/model.onnx",
        "device": "auto",
        "threads": 1,
    }

    @classmethod
    def initializeGlobalCache(cls, params) -> ONNXSession:
        return ONNXSession(params.model_path, device=params.device, threads=params.threads, name="particletransformer_AK4")

    def produce(self, event) -> None:
        inputs, has_candidates = self.tagInfo(event)
        if len(has_candidates) == 0:
            scores = np.zeros((0, len(self.params.flav_names)), np.float32)
        else:
            with self.timed("inference"):
                scores = self.globalCache.run(inputs, [OUTPUT_NAME], where=f"module {self.label}, {event.where()}")[OUTPUT_NAME]
        self.postprocess(event, scores, has_candidates)
