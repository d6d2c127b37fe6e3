"""DeepMET run on a Triton server (the *SONIC* twin)."""

from __future__ import annotations

from framework.core.registry import register
from framework.ml.onnx import match_names
from framework.sonic.producer import SonicEDProducer

from . import features
from .common import COMMON_PARAMETERS, DeepMETCommon


@register("DeepMETSonicProducer")
class DeepMETSonicProducer(DeepMETCommon, SonicEDProducer):
    """CMSSW's ``DeepMETSonicProducer``: one event per request (batch size 1), inputs from ``src``."""

    parameters = dict(COMMON_PARAMETERS)

    def beginJob(self) -> None:
        super().beginJob()
        self._names = match_names(list(features.INPUT_NAMES), list(self.client.input.keys()))
        self._output = next(iter(self.client.output.keys()))

    def acquire(self, event, input) -> None:
        self.client.setBatchSize(1)
        self._inputs = self.modelInputs(event)
        for name, array in self._inputs.inputs.items():
            input[self._names[name]].toServer(array)

    def produce(self, event, output) -> None:
        self.postprocess(event, self._inputs, output[self._output].fromServer())
