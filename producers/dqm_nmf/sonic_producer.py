"""The DQM NMF model on MLServer (the *SONIC* twin): the section's element goes to the server over the KServe V2
protocol with the project's SONIC client, in its V2-only mode (MLServer has no model configuration, shared
memory or statistics; over HTTP the tensors go as JSON, since MLServer cannot read Triton's binary tensors).

The request is made synchronously inside ``endLuminosityBlock``: there is no ExternalWork for lumi transitions
(CMSSW's neither), and a lumi ends once, after all its events, so the wait is one round trip per section.

``modelSettings`` names the model's ``model-settings.json``: with the ``TritonService`` fallback enabled, a model
no given server serves is served by a local MLServer started on that folder (and stopped at the end of the job).
"""

from __future__ import annotations

from typing import Any

from framework.core import services
from framework.core.module import EDProducer
from framework.core.params import Params
from framework.core.registry import register
from framework.paths import locate
from framework.sonic.client import CLIENT_PARAMETERS, TritonClient
from framework.sonic.errors import TritonServerError
from framework.sonic.service import MLSERVER_FALLBACK_NAME

from .common import COMMON_PARAMETERS, DQMNMFCommon
from .model import INPUT_NAME, OUTPUT_MSE


@register("DQMNMFSonicProducer")
class DQMNMFSonicProducer(DQMNMFCommon, EDProducer):
    """Scores ``src`` per luminosity section on MLServer (model ``Client.modelName``); lumi products ``mse`` and
    ``flag`` as the direct twin."""

    parameters = {**COMMON_PARAMETERS, "Client": CLIENT_PARAMETERS,
                  "modelSettings": "data/models/dqmNMF/model-settings.json"}

    def __init__(self, label: str, params: Params, globalCache: Any = None):
        super().__init__(label, params, globalCache)
        self.client = TritonClient(self.params.Client, label=label)  # registers the model with the service
        if self.params.modelSettings:
            services.get("TritonService").addModel(self.client.modelName, locate(self.params.modelSettings))

    def beginJob(self) -> None:
        self.threshold = self.resolveThreshold()
        self.client.connect()
        if self.client.v2only and self.client.protocol == "http":
            self.client.transport.json = True  # MLServer cannot parse Triton's binary tensor extension

    def endJob(self) -> None:
        self.client.close()

    def produce(self, event: Any) -> None:
        pass

    def endLuminosityBlock(self, lumi: Any) -> None:
        x = self.modelInput(lumi)
        client = self.client
        client.reset()
        client.setEvent(lumi.where())
        client.input[INPUT_NAME].toServer(x)
        with self.timed("inference"):
            try:
                client.evaluate()  # synchronous: no ExternalWork in a lumi transition
            except TritonServerError as exc:
                raise self._explained(exc) from exc
        mse = client.output[OUTPUT_MSE].fromServer()
        self.putScore(lumi, mse.reshape(-1)[0], self.threshold)

    def _explained(self, exc: TritonServerError) -> TritonServerError:
        """The client's error, with what the local MLServer logged when it was the one that failed (over HTTP it
        answers a handler's exception with a bare 500), and the fix of a handler that does not cast."""
        text, logged = str(exc), ""
        service = services.get("TritonService", None)
        server = getattr(service, "mlserverFallback", None)
        extra = ""
        if server is not None and self.client.serverName == MLSERVER_FALLBACK_NAME:
            if server.is_running():
                logged = server.last_error()
            elif server.returncode is not None:
                extra = (f"\n  The local MLServer (pid {server.pid}) is gone: it exited with code {server.returncode}"
                         f"{' (killed by a signal)' if server.returncode < 0 else ''}.")
        said = logged.split(": ", 1)[-1]  # the message without the exception's name
        extra += f"\n  The local MLServer logged: {logged}" if logged and said not in text else ""
        if "dtype" in text + logged:
            extra += ("\n  The model refuses the input's dtype: its handler must cast the FP32 rows to float64 "
                      "before predict (the NMF was fitted in float64), as producers/dqm_nmf/mlserver_handler.py does.")
        if not extra:
            return exc
        return TritonServerError(f"{text}{extra}", model=self.client.modelName, server=exc.server, address=exc.address,
                                 event=exc.event, status=exc.status, tries=exc.tries)
