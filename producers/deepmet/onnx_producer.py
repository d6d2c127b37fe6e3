"""DeepMET run in-process with ONNXRuntime (the *direct* twin)."""

from __future__ import annotations

from framework.core.module import EDProducer
from framework.core.registry import register
from framework.ml.onnx import ONNXSession, match_names

from . import features
from .common import COMMON_PARAMETERS, DeepMETCommon


class _Cache:
    def __init__(self, session: ONNXSession):
        self.session = session
        self.names = match_names(list(features.INPUT_NAMES), list(session.inputs))
        self.output = session.outputs[0]


@register("DeepMETProducer")
class DeepMETProducer(DeepMETCommon, EDProducer):
    """CMSSW's ``DeepMETProducer``: one event per inference, inputs from ``src``."""

    parameters = {
        **COMMON_PARAMETERS,
        "model_path": "data/models/deepmet/1/model.onnx",
        "device": "auto",
        "threads": 1,
    }

    @classmethod
    def initializeGlobalCache(cls, params) -> _Cache:
        return _Cache(ONNXSession(params.model_path, device=params.device, threads=params.threads, name="deepmet"))

    def produce(self, event) -> None:
        cache = self.globalCache
        inputs = self.modelInputs(event)
        feed = {cache.names[k]: v for k, v in inputs.inputs.items()}
        with self.timed("inference"):
            out = cache.session.run(feed, [cache.output], where=f"module {self.label}, {event.where()}")[cache.output]
        self.postprocess(event, inputs, out)
