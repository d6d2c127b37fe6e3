"""``SonicEDProducer``: the base of SONIC producers (CMSSW's ``SonicEDProducer<TritonClient>``).

A producer author writes two methods and nothing about gRPC::

    @register("MyModelSonicProducer")
    class MyModelSonicProducer(SonicEDProducer):
        parameters = {"src": "Jet_pt"}            # the Client PSet is added by the base class

        def inputBranches(self):
            return [self.params.src]

        def acquire(self, event, input):
            x = np.asarray(event.getBranch(self.params.src), dtype=np.float32)[:, None]
            input["INPUT"].toServer(x)            # the outer dimension is the batch

        def produce(self, event, output):
            event.put(output["OUTPUT"].fromServer(), "scores")

The framework calls :meth:`SonicEDProducer.externalAcquire` (reset the client, call ``acquire``, send the
request according to ``Client.mode``) and, once the server answered, :meth:`SonicEDProducer.externalProduce`
(call ``produce``). A failed request reaches the framework as the module's error, naming the model, the server
and the event.

A real algorithm puts its feature building in a producer of its own (the TagInfo split) and gives both twins
the product: see ``producers/particle_transformer_ak4`` and the step-by-step ``docs/tutorial.md``.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from ..core.module import ExternalWorkProducer, WaitingTaskHolder
from ..core.params import Params
from .client import CLIENT_PARAMETERS, TritonClient
from .data import TritonInputs, TritonOutputs

if TYPE_CHECKING:
    from ..core.event import Event

log = logging.getLogger("framework.sonic")


class SonicEDProducer(ExternalWorkProducer):
    """Base class of producers that run a model on a Triton server.

    Subclasses implement :meth:`acquire` (fill ``input``) and :meth:`produce` (read ``output``, put products).
    Their ``parameters`` get the ``Client`` PSet (:data:`~framework.sonic.client.CLIENT_PARAMETERS`) added
    automatically. ``self.client`` is the :class:`~framework.sonic.client.TritonClient` (e.g. for
    ``self.client.setBatchSize(n)``, ``self.client.maxBatchSize``). A subclass that overrides ``beginJob``,
    ``endJob`` or ``__init__`` must call the base class's.
    """

    parameters: dict[str, Any] = {"Client": CLIENT_PARAMETERS}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        own = cls.__dict__.get("parameters")
        if own is not None and "Client" not in own:
            cls.parameters = {"Client": CLIENT_PARAMETERS, **own}

    def __init__(self, label: str, params: Params, globalCache: Any = None):
        super().__init__(label, params, globalCache)
        self.client: TritonClient = self.makeClient()

    def makeClient(self) -> TritonClient:
        """The client of this instance (registers its model with the TritonService)."""
        return TritonClient(self.params.Client, label=self.label)

    # ------------------------------------------------------------------ to implement
    def acquire(self, event: Event, input: TritonInputs) -> None:  # type: ignore[override]
        """Fill the model's inputs for this event: ``input[name].toServer(array)``."""
        raise NotImplementedError(f"{type(self).__name__} must implement acquire(self, event, input)")

    def produce(self, event: Event, output: TritonOutputs) -> None:  # type: ignore[override]
        """Read the outputs (``output[name].fromServer()``) and put the products."""
        raise NotImplementedError(f"{type(self).__name__} must implement produce(self, event, output)")

    # ------------------------------------------------------------------ the framework's side
    def beginJob(self) -> None:
        self.client.connect()

    def endJob(self) -> None:
        self.client.close()

    def externalAcquire(self, event: Event, holder: WaitingTaskHolder) -> None:
        client = self.client
        client.connect()  # once; a no-op when connected
        client.reset()
        client.setEvent(event.where())
        t0 = time.perf_counter()
        self.acquire(event, client.input)
        self._acquire_time = time.perf_counter() - t0
        client.stats.acquire += self._acquire_time
        client.dispatch(holder)

    def externalProduce(self, event: Event) -> None:
        client = self.client
        t0 = time.perf_counter()
        try:
            self.produce(event, client.output)
        finally:
            elapsed = time.perf_counter() - t0
            client.stats.produce += elapsed
            if client.verbose:
                log.info("SONIC '%s' %s: %s: batch %d, acquire %.3f ms, dispatch %.3f ms (%d %s), produce %.3f ms",
                         self.label, client._describe(), event.where(), client.batchSize,
                         1e3 * getattr(self, "_acquire_time", 0.0), 1e3 * client.lastDispatchTime, client.lastTries,
                         "request" if client.lastTries == 1 else "requests", 1e3 * elapsed)
            client.reset()


__all__ = ["SonicEDProducer"]
