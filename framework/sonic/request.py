"""The request layer of the SONIC client: one event's inputs checked and turned into requests (the batch size
derived, the shared-memory layout of inputs and outputs, the tensors placed where the server of a try can read
them), and the answers collected into the outputs.

:class:`RequestLayout` is a part of :class:`~framework.sonic.client.TritonClient` (a mixin): it works on the
client's inputs/outputs (:mod:`framework.sonic.data`), its shared memory (:class:`~framework.sonic.shm.ShmPair`)
and the transport of each try (:mod:`framework.sonic.transport`). :class:`Request` is one request on its way.
"""

from __future__ import annotations

import logging
import math
import threading
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .data import RAGGED, TritonInputData, TritonInputs, TritonOutputs
from .errors import TritonDataError, TritonServerError
from .shm import ShmPair, align
from .transport import CONTROL_TIMEOUT, TensorSpec, Transport, is_recoverable, message_of

log = logging.getLogger("framework.sonic")


@dataclass
class Request:
    """One inference request (the whole batch in rectangular mode; one entry in ragged mode)."""

    entry: int
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    explicit_outputs: bool
    batch: int
    shm_outputs: dict[str, tuple[int, tuple[int, ...]]] = field(default_factory=dict)
    tries: int = 0
    result: Any = None
    built: Any = None
    json: bool = False
    """Whether ``built`` carries JSON tensors (HTTP)."""
    server: str = ""
    """The server this try goes to (its name in the TritonService), and its transport."""
    transport: Any = None
    counted: bool = False
    """Whether the service counts this try as outstanding on ``server``."""
    avoid: set = field(default_factory=set)
    """Servers that failed this request (not asked again for it)."""
    failovers: int = 0
    shm: bool = False
    """Whether the request names the client's shared memory regions (else its tensors are in the message)."""
    reregistered: set = field(default_factory=set)
    """Servers that had forgotten the regions of this request (they restarted): registered again once each."""


class RequestLayout:
    """Building the requests of one event and collecting their answers (part of ``TritonClient``).

    What it uses of the client (set by ``TritonClient.__init__`` / ``connect``) is declared here."""

    modelName: str
    modelVersion: str
    serverName: str
    batched: bool
    maxBatchSize: int
    requestedOutputs: list[str]
    timeout: float | None
    input: TritonInputs
    output: TritonOutputs
    _connected: bool
    _batch_explicit: int | None
    _where: str
    _service: Any
    _transport: Transport | None
    _shm: ShmPair | None
    _shm_lock: threading.Lock
    _shm_output_dims: dict[str, tuple[int, ...]]

    def _check_batch(self, n: int, ragged: bool) -> None:
        if ragged or not self._connected:
            return
        if self.noBatch and n > 1:
            raise TritonDataError(
                f"{self._describe()}: batch size {n}, but the model does not batch (max_batch_size 0) and takes "
                f"one entry per request{self._where_suffix()}.\n  Use ragged mode (one request per entry).")
        if self.batched and self.maxBatchSize > 0 and n > self.maxBatchSize:
            raise TritonDataError(
                f"{self._describe()}: batch size {n} exceeds the model's max_batch_size {self.maxBatchSize}"
                f"{self._where_suffix()}.\n  How to fix: send at most {self.maxBatchSize} entries per event (split or "
                "truncate the batch), or raise max_batch_size in the model's config.pbtxt on the server.")

    def _derive_batch(self, inputs: list[TritonInputData], ragged: bool) -> int:
        """The event's batch size from the inputs, checked against each other and :meth:`setBatchSize`."""
        n, source = self._batch_explicit, ""
        for i in inputs:
            if not i.isSet:
                continue
            count = i.entryCount
            if n is None:
                n, source = count, i.name
            elif count != n:
                other = (f"setBatchSize({n}) was called" if not source
                         else f"input '{source}' has {n}")
                raise TritonDataError(f"{self._describe()}: input '{i.name}' has {count} entries, but {other}"
                                      f"{self._where_suffix()}. Every input needs the same batch size.")
        if n is None:
            raise TritonDataError(
                f"{self._describe()}: no input was given{self._where_suffix()}. Fill the inputs in acquire() "
                "(input[name].toServer(array)), or call client.setBatchSize(0) to skip the server call.")
        if self.noBatch and not ragged and n > 1:
            raise TritonDataError(
                f"{self._describe()}: the model does not batch (max_batch_size 0), so it takes one entry per "
                f"request, but {n} entries were given{self._where_suffix()}.\n  Give one array of the model's "
                "shape, or switch to ragged mode (one request per entry).")
        self._check_batch(n, ragged)
        return n

    def _prepare(self) -> list[Request]:
        """Check this event's inputs, derive the batch and lay out the requests (inputs written to shared
        memory when the server shares it)."""
        inputs = list(self.input._items.values())
        outputs = self.output._items
        ragged = self.batchMode == RAGGED
        n = self._derive_batch(inputs, ragged) if inputs else (self._batch_explicit or 0)
        if n == 0:
            return []
        self._check_given(inputs)
        batched = self.batched
        if ragged:
            columns = [(i, i.entries()) for i in inputs]
            per_request = [[(i, entries[e], (1, *entries[e].shape) if batched else entries[e].shape)
                            for i, entries in columns] for e in range(n)]
        else:
            per_request = [[(i, a, a.shape) for i in inputs for a in (i.array(),)]]
        shm = self._shm
        out_shapes: dict[str, tuple[int, ...]] = {}
        if shm is not None:  # outputs of known shape go to shared memory
            batch = (1 if ragged else n) if batched else None
            for name, dims in self._shm_output_dims.items():
                out_shapes[name] = (batch, *dims) if batch is not None else dims

        # shared-memory layout: every request's inputs, then every request's outputs, each aligned
        in_offsets: list[list[int]] = []
        out_offsets: list[dict[str, int]] = []
        if shm is not None:
            in_bytes = out_bytes = 0
            for req_inputs in per_request:
                row = []
                for inp, array, _ in req_inputs:
                    row.append(in_bytes)
                    if inp.datatype != "BYTES":
                        in_bytes += align(array.nbytes)
                in_offsets.append(row)
                row_out = {}
                for name, shape in out_shapes.items():
                    row_out[name] = out_bytes
                    out_bytes += align(math.prod(shape) * outputs[name].dtype.itemsize)
                out_offsets.append(row_out)
            with self._shm_lock:
                shm.reserve(in_bytes, out_bytes, CONTROL_TIMEOUT)

        requests = []
        explicit = bool(out_shapes) or bool(self.requestedOutputs)
        for e, req_inputs in enumerate(per_request):
            specs = []
            for k, (inp, array, shape) in enumerate(req_inputs):
                if shm is not None and inp.datatype != "BYTES":
                    shm.input.write(in_offsets[e][k], array)  # type: ignore[union-attr]
                    specs.append(TensorSpec(inp.name, shape, inp.datatype, region=shm.input.name,  # type: ignore[union-attr]
                                            nbytes=array.nbytes, offset=in_offsets[e][k]))
                else:
                    specs.append(TensorSpec(inp.name, shape, inp.datatype,
                                            array=array.reshape(shape) if array.shape != shape else array))
            out_specs = []
            shm_outputs: dict[str, tuple[int, tuple[int, ...]]] = {}
            for name, out in outputs.items():
                if name in out_shapes:
                    offset, shape = out_offsets[e][name], out_shapes[name]
                    out_specs.append(TensorSpec(name, shape, out.datatype, region=shm.output.name,  # type: ignore[union-attr]
                                                nbytes=math.prod(shape) * out.dtype.itemsize, offset=offset))
                    shm_outputs[name] = (offset, shape)
                else:
                    out_specs.append(TensorSpec(name, (), out.datatype))
            requests.append(Request(e, specs, out_specs, explicit, 1 if ragged else n, shm_outputs,
                                     shm=shm is not None))
        return requests

    def _check_given(self, inputs: list[TritonInputData]) -> None:
        missing = [i.name for i in inputs if not i.isSet]
        if missing:
            raise TritonDataError(
                f"{self._describe()}: input(s) {', '.join(repr(m) for m in missing)} not given"
                f"{self._where_suffix()}; the model needs all of: {', '.join(self.input)}.")

    def _collect(self, requests: list[Request]) -> None:
        """Copy the answers into the outputs (shared-memory outputs are copied out of the region)."""
        ragged = self.batchMode == RAGGED
        outputs = self.output._items
        transport = self._transport
        for name, out in outputs.items():
            arrays = []
            for req in requests:
                if name in req.shm_outputs:
                    offset, shape = req.shm_outputs[name]
                    array = self._shm.output.read(offset, out.dtype, shape)  # type: ignore[union-attr]
                else:
                    array = (req.transport or transport).output(req.result, name)  # type: ignore[union-attr]
                    if array is None:
                        server, address = self._server_of(req)
                        raise TritonServerError(
                            f"{self._describe()}: the server '{server}' ({address}) returned no "
                            f"output '{name}'{self._where_suffix()}", model=self.modelName, server=server,
                            address=address, event=self._where)
                arrays.append(array)
            if ragged:
                out.setResult([a[0] if self.batched and a.ndim and a.shape[0] == 1 else a for a in arrays])
            else:
                out.setResult(arrays[0])

    def _fill_empty_outputs(self) -> None:
        ragged = self.batchMode == RAGGED
        for out in self.output._items.values():
            out.setResult([] if ragged else np.empty((0, *[max(int(d), 0) for d in out.dims]), dtype=out.dtype))

    def _built(self, req: Request) -> Any:
        transport = req.transport or self._transport
        if req.built is None:
            outputs = req.outputs if req.explicit_outputs or transport.json else None  # type: ignore[union-attr]
            req.built = transport.make_request(  # type: ignore[union-attr]
                self.modelName, self.modelVersion, req.inputs, outputs)
            req.json = transport.json  # type: ignore[union-attr]
        return req.built

    def _place(self, req: Request) -> None:
        """Make the request's tensors reachable by the server of this try: the shared memory regions registered
        there first (once per server, again after it restarted), or, where that server cannot have them, the
        tensors in the message. A region is never named on a server it was not registered with."""
        shm = self._shm
        if shm is None or not req.shm:
            return
        server = req.server or self.serverName
        generation = self._service.generation(server) if self._routed() else 0
        if not shm.registered_on(server, generation):
            with self._shm_lock:
                if not shm.registered_on(server, generation) and server not in shm.refused:
                    why = self._shm_unusable(server)
                    if not why:
                        try:
                            # within the request's timeout (none: the control calls'): a stalled server must
                            # not hold the streams, which wait on this lock
                            shm.register(req.transport or self._transport, self.timeout, server, generation)
                        except Exception as exc:
                            if is_recoverable(exc):
                                raise  # the server did not answer: this try failed (retried or moved on)
                            why = message_of(exc)
                    if why:
                        shm.refused[server] = why
                        log.warning("%s: server '%s' cannot use this machine's shared memory (%s); its requests "
                                    "carry their tensors in the messages", self._describe(), server, why)
        if not shm.registered_on(server, generation):
            self._inline(req)

    def _shm_unusable(self, server: str) -> str:
        """Why *server* cannot share this machine's memory ("" when it can: on this machine, Triton)."""
        if server == self.serverName or self._service is None:
            return ""  # probed when connecting
        endpoint = self._service.endpoint(server)
        return "" if endpoint.isLocal else f"{endpoint.address} is not on this machine"

    def _inline(self, req: Request) -> None:
        """Rewrite a shared-memory request with its tensors in the message (read back from the regions)."""
        from tritonclient.utils import triton_to_np_dtype

        shm = self._shm
        assert shm is not None and shm.input is not None
        req.inputs = [TensorSpec(s.name, s.shape, s.datatype,
                                 array=shm.input.read(s.offset, triton_to_np_dtype(s.datatype), tuple(s.shape)))
                      if s.region else s for s in req.inputs]
        req.outputs = [TensorSpec(s.name, (), s.datatype) if s.region else s for s in req.outputs]
        req.shm_outputs = {}
        req.shm = False
        req.built = None


__all__ = ["Request", "RequestLayout"]
