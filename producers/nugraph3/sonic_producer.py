"""NuGraph3 run on a Triton server (the *SONIC* twin): the event's raw tables go to the server, which builds the
graph and runs the network (:mod:`~producers.nugraph3.triton_model`)."""

from __future__ import annotations

import os
from typing import Any

from framework.core.params import Params
from framework.core.registry import register
from framework.sonic.client import TritonClient
from framework.sonic.producer import SonicEDProducer

from .common import COMMON_PARAMETERS, NuGraph3Common


@register("NuGraph3SonicProducer")
class NuGraph3SonicProducer(NuGraph3Common, SonicEDProducer):
    """One event per request: each table as ``[1, n]`` (the model batches: Triton merges the streams' events
    into one ``execute``), or ``[n]`` for a server model without batching (the reference layout).

    ``modelDir``: the model directory (``DIR/1/hierarchical.ckpt``), checked when the module is made; when
    ``Client.modelConfigPath`` is empty, the config of :func:`~.model_repo.served_model_dir` is used (the
    directory's own, or ours written for it), so the local fallback server can serve a directory without
    ``config.pbtxt``."""

    parameters: dict[str, Any] = {**COMMON_PARAMETERS, "modelDir": ""}

    def makeClient(self) -> TritonClient:
        settings = self.params.Client.to_dict()
        if self.params.modelDir:
            from .model_repo import served_model_dir

            served = served_model_dir(self.params.modelDir)  # checks the directory: a clear error before any server
            if not settings.get("modelConfigPath"):
                settings["modelConfigPath"] = os.path.join(served, "config.pbtxt")
        return TritonClient(Params(settings), label=self.label)

    def acquire(self, event, input) -> None:
        self._tables = self.modelInputs(event)
        self.client.setBatchSize(1)
        for name, array in self._tables.items():
            input[name].toServer(array if self.client.noBatch else array[None])

    def produce(self, event, output) -> None:
        self.postprocess(event, self._tables, output.arrays())
