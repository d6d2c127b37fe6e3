"""``ParticleTransformerAK4TagInfoProducer``: the ParT AK4 inputs of each event, as a product (CMSSW's
TagInfo split). Built once per input batch (chunk), vectorised over its events, and shared by the streams;
each event's product is a :class:`~.features.PartTagInfo` of read-only views into the batch's buffers."""

from __future__ import annotations

from dataclasses import fields

from framework.core.module import EDProducer
from framework.core.registry import register

from .features import INPUT_BRANCHES, PartConfig, build_part_inputs

#: the tag-info producer's parameters: every setting of :class:`PartConfig`, with its default
TAGINFO_PARAMETERS = {f.name: f.default for f in fields(PartConfig)}


@register("ParticleTransformerAK4TagInfoProducer")
class ParticleTransformerAK4TagInfoProducer(EDProducer):
    """Puts one :class:`~.features.PartTagInfo` per event (instance ``""``)."""

    parameters = dict(TAGINFO_PARAMETERS)

    def __init__(self, label, params, globalCache=None):
        super().__init__(label, params, globalCache)
        self.config = PartConfig.from_params(params)
        self._key = ("particle_transformer_ak4", self.config)

    def inputBranches(self) -> tuple[str, ...]:
        return INPUT_BRANCHES

    def produce(self, event) -> None:
        batch = event.batch
        inputs = batch.cached(self._key, lambda b: build_part_inputs(b.columns(INPUT_BRANCHES), self.config))
        event.put(inputs.event(event.batchIndex))
