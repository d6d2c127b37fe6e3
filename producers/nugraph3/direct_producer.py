"""NuGraph3 run in the job's process (the *direct* twin): preprocessing and the network in torch."""

from __future__ import annotations

from typing import Any

from framework import extras
from framework.core.module import EDProducer
from framework.core.registry import register

from .common import COMMON_PARAMETERS, NuGraph3Common


def _device(name: str) -> str:
    torch = extras.torch("the NuGraph3 producer (direct)")

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return name


@register("NuGraph3Producer")
class NuGraph3Producer(NuGraph3Common, EDProducer):
    """One event per call: the graph from the tables ``src`` (:func:`~.preprocess.build_graph`), the network
    loaded once per module from ``checkpoint`` (:func:`~.network.load_network`). ``device``: ``cpu``, ``cuda``
    or ``auto``; ``threads``: torch's intra-op threads (process-wide; 0 = leave torch's setting)."""

    parameters: dict[str, Any] = {
        **COMMON_PARAMETERS,
        "checkpoint": "data/models/nugraph3/1/hierarchical.ckpt",
        "device": "cpu",
        "threads": 1,
    }

    @classmethod
    def initializeGlobalCache(cls, params) -> Any:
        from framework.paths import locate

        torch = extras.torch("the NuGraph3 producer (direct)")

        from .network import load_network

        if int(params.threads) > 0:
            torch.set_num_threads(int(params.threads))
        return load_network(locate(params.checkpoint), _device(params.device))

    def produce(self, event) -> None:
        from .network import run_network
        from .preprocess import build_graph

        tables = self.modelInputs(event)
        with self.timed("preprocess"):
            graph = build_graph(tables)
        with self.timed("inference"):
            outputs = run_network(self.globalCache, graph)
        self.postprocess(event, tables, outputs)
