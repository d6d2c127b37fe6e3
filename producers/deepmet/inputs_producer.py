"""``DeepMETInputsProducer``: each event's DeepMET inputs as a product. Built once per input batch (chunk),
vectorised over its events and shared by the streams; each event's product is a
:class:`~.features.DeepMETInputs`."""

from __future__ import annotations

from framework.core.registry import register
from framework.ml.inputs import BatchInputsProducer

from .features import INPUT_BRANCHES, DeepMETBatch, DeepMETConfig, build_deepmet_inputs

INPUTS_PARAMETERS = {"max_n_pf": 4500, "norm_factor": 50.0, "ignore_leptons": False}


@register("DeepMETInputsProducer")
class DeepMETInputsProducer(BatchInputsProducer):
    """Puts one :class:`~.features.DeepMETInputs` per event (instance ``""``); parameters as CMSSW's
    ``DeepMETProducer`` (``max_n_pf``, ``norm_factor``, ``ignore_leptons``)."""

    parameters = dict(INPUTS_PARAMETERS)
    branches = INPUT_BRANCHES

    def __init__(self, label, params, globalCache=None):
        self.config = DeepMETConfig(params.max_n_pf, params.norm_factor, params.ignore_leptons)
        super().__init__(label, params, globalCache)

    def build(self, columns) -> DeepMETBatch:
        return build_deepmet_inputs(columns, self.config)
