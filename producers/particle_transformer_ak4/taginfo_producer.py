"""``ParticleTransformerAK4TagInfoProducer``: the ParT AK4 inputs of each event, as a product (CMSSW's
TagInfo split). Built once per input batch (chunk), vectorised over its events, and shared by the streams;
each event's product is a :class:`~.features.PartTagInfo` of read-only views into the batch's buffers."""

from __future__ import annotations

from dataclasses import fields

from framework.core.registry import register
from framework.ml.inputs import BatchInputsProducer

from .features import INPUT_BRANCHES, PartConfig, PartInputs, build_part_inputs

#: the tag-info producer's parameters: every setting of :class:`PartConfig`, with its default
TAGINFO_PARAMETERS = {f.name: f.default for f in fields(PartConfig)}


@register("ParticleTransformerAK4TagInfoProducer")
class ParticleTransformerAK4TagInfoProducer(BatchInputsProducer):
    """Puts one :class:`~.features.PartTagInfo` per event (instance ``""``)."""

    parameters = dict(TAGINFO_PARAMETERS)
    branches = INPUT_BRANCHES

    def __init__(self, label, params, globalCache=None):
        self.config = PartConfig.from_params(params)
        super().__init__(label, params, globalCache)

    def build(self, columns) -> PartInputs:
        return build_part_inputs(columns, self.config)
