"""``BatchInputsProducer``: the base of an algorithm's inputs producer (CMSSW's TagInfo producers).

A subclass names the branches it reads and how to build the inputs of a whole batch of events; the base
builds them once per input batch (``event.batch``, shared by the streams) and puts each event's share::

    @register("MyModelInputsProducer")
    class MyModelInputsProducer(BatchInputsProducer):
        branches = ("Jet_pt", "Jet_eta")
        parameters = {"scale": 1.0}

        def build(self, columns):                 # name -> Column (flat content + offsets) over the batch
            return MyBatch(columns, self.params.scale)   # anything with .event(i)

The inference producers (ONNX and SONIC twins) read the product with ``event.get(src)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from ..core.module import EDProducer


class BatchInputsProducer(EDProducer):
    """Puts ``build(columns).event(i)`` for each event (instance ``""``), built once per input batch."""

    branches: ClassVar[tuple[str, ...]] = ()

    def __init__(self, label: str, params: Any, globalCache: Any = None):
        super().__init__(label, params, globalCache)
        self._key = self.cacheKey()

    def cacheKey(self) -> Any:
        """What makes two modules' batches the same (hashable): by default the type and the parameters, so
        modules with equal settings share one computation per batch."""
        return (type(self).__name__, repr(sorted(self.params.items())))

    def build(self, columns: Mapping[str, Any]) -> Any:
        """The inputs of every event of a batch: an object whose ``event(i)`` is event *i*'s product."""
        raise NotImplementedError(f"{type(self).__name__} must implement build(self, columns)")

    def inputBranches(self) -> tuple[str, ...]:
        return tuple(self.branches)

    def produce(self, event) -> None:
        inputs = event.batch.cached(self._key, lambda batch: self.build(batch.columns(self.branches)))
        event.put(inputs.event(event.batchIndex))
