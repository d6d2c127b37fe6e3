"""``DeepMETInputsProducer``: each event's DeepMET inputs as a product. Built once per input batch (chunk),
vectorised over its events and shared by the streams; each event's product is a
:class:`~.features.DeepMETInputs`."""

from __future__ import annotations

from framework.core.module import EDProducer
from framework.core.registry import register

from .features import INPUT_BRANCHES, DeepMETConfig, build_deepmet_inputs

INPUTS_PARAMETERS = {"max_n_pf": 4500, "norm_factor": 50.0, "ignore_leptons": False}


@register("DeepMETInputsProducer")
class DeepMETInputsProducer(EDProducer):
    """Puts one :class:`~.features.DeepMETInputs` per event (instance ``""``); parameters as CMSSW's
    ``DeepMETProducer`` (``max_n_pf``, ``norm_factor``, ``ignore_leptons``)."""

    parameters = dict(INPUTS_PARAMETERS)

    def __init__(self, label, params, globalCache=None):
        super().__init__(label, params, globalCache)
        self.config = DeepMETConfig(params.max_n_pf, params.norm_factor, params.ignore_leptons)
        self._key = ("deepmet", self.config)

    def inputBranches(self) -> tuple[str, ...]:
        return INPUT_BRANCHES

    def produce(self, event) -> None:
        batch = event.batch
        inputs = batch.cached(self._key, lambda b: build_deepmet_inputs(b.columns(INPUT_BRANCHES), self.config))
        event.put(inputs.event(event.batchIndex))
