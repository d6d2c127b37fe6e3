"""ParticleTransformer AK4 b-tagger run on a Triton server (the *SONIC* twin)."""

from __future__ import annotations

import numpy as np

from framework.core.registry import register
from framework.sonic.producer import SonicEDProducer

from .common import COMMON_PARAMETERS, OUTPUT_NAME, ParTAK4Common


@register("ParticleTransformerAK4SonicJetTagsProducer")
class ParticleTransformerAK4SonicJetTagsProducer(ParTAK4Common, SonicEDProducer):
    """CMSSW's ``ParticleTransformerAK4SonicJetTagsProducer``: the event's jets as one batch, every
    jet padded to the event's largest candidate counts; an event without jets makes no server call."""

    parameters = dict(COMMON_PARAMETERS)

    def acquire(self, event, input) -> None:
        inputs, self._has_candidates = self.tagInfo(event)
        self.client.setBatchSize(len(self._has_candidates))
        if len(self._has_candidates) == 0:
            return
        for name, array in inputs.items():
            input[name].toServer(array)

    def produce(self, event, output) -> None:
        if len(self._has_candidates) == 0:
            scores = np.zeros((0, len(self.params.flav_names)), np.float32)
        else:
            scores = output[OUTPUT_NAME].fromServer()
        self.postprocess(event, scores, self._has_candidates)
