"""The model layer of the SONIC client: what the server says of the model (metadata and configuration, or the
model metadata alone on a KServe-V2-only server such as MLServer), checked against the local ``config.pbtxt``
(``Client.modelConfigPath``), and turned into the client's inputs and outputs (:mod:`framework.sonic.data`);
whether the server shares this machine's memory is probed here too.

:class:`ModelSetup` is a part of :class:`~framework.sonic.client.TritonClient` (a mixin), used by
``connect`` (``beginJob``).
"""

from __future__ import annotations

import logging
from typing import Any

from ..exceptions import did_you_mean
from .data import (
    TensorInfo,
    TritonInputData,
    TritonInputs,
    TritonOutputData,
    TritonOutputs,
    config_dtype_to_triton,
)
from .errors import TritonConfigError, TritonServerError
from .shm import ShmPair
from .transport import CONTROL_TIMEOUT, Transport, is_unsupported, message_of, raw_status

log = logging.getLogger("framework.sonic")


def data_type_name(value: int) -> str:
    """The name of a ``model_config.proto`` data type (``TYPE_FP32``)."""
    from tritonclient.grpc import model_config_pb2 as mc

    return mc.DataType.Name(value)


class ModelSetup:
    """Reading and checking the model's description when connecting (part of ``TritonClient``).

    What it uses of the client (set by ``TritonClient.__init__`` / ``connect``) is declared here."""

    modelName: str
    modelVersion: str
    modelConfigPath: str
    serverName: str
    serverAddress: str
    protocol: str
    isLocal: bool
    useSharedMemory: bool
    requestedOutputs: list[str]
    v2only: bool
    batched: bool
    maxBatchSize: int
    inputInfo: dict[str, TensorInfo]
    outputInfo: dict[str, TensorInfo]
    input: TritonInputs
    output: TritonOutputs
    _transport: Transport | None
    _route: list[str]
    _shm: ShmPair | None
    _shm_output_dims: dict[str, tuple[int, ...]]

    def _setup_model(self) -> None:
        metadata, config = self._read_model()
        self._v2_json(self._transport)
        local = None
        if self.modelConfigPath:
            from ..server.repository import read_model_config

            local = read_model_config(self.modelConfigPath)
        if config is not None:
            self.maxBatchSize = int(config.max_batch_size)
            self.batched = self.maxBatchSize > 0
        elif local is not None:
            self.maxBatchSize = int(local.max_batch_size)
            self.batched = self.maxBatchSize > 0
        else:  # V2 only: a model batches when every tensor's first dimension is variable
            shapes = [t[2] for t in metadata.inputs + metadata.outputs]
            self.batched = bool(shapes) and all(s and s[0] == -1 for s in shapes)
            self.maxBatchSize = 0

        def infos(tensors: list[tuple[str, str, list[int]]]) -> dict[str, TensorInfo]:
            return {name: TensorInfo(name, datatype, tuple(shape[1:] if self.batched and shape else shape))
                    for name, datatype, shape in tensors}

        self.inputInfo = infos(metadata.inputs)
        self.outputInfo = infos(metadata.outputs)
        if local is not None:
            self._check_local_config(local)
        for name in self.requestedOutputs:
            if name not in self.outputInfo:
                raise TritonConfigError(
                    f"{self._describe()}: Client.outputs asks for '{name}', which the model does not have."
                    f"{did_you_mean(name, self.outputInfo)} Its outputs: {', '.join(self.outputInfo)}.")
        wanted = self.requestedOutputs or list(self.outputInfo)
        owner = self._describe()
        self.input = TritonInputs({n: TritonInputData(i, self.batched, owner) for n, i in self.inputInfo.items()},
                                  owner)
        self.output = TritonOutputs({n: TritonOutputData(self.outputInfo[n], self.batched, owner) for n in wanted},
                                    owner)
        # shared memory with one server only: regions are registered per server, a failover would lose them
        use_shm = self.useSharedMemory and self.isLocal and not self.v2only and len(self._route) <= 1
        self._shm = self._probe_shm() if use_shm else None
        self._shm_output_dims = {name: tuple(o.dims) for name, o in self.output._items.items()
                                 if o.datatype != "BYTES" and not o.variableDims}

    def _probe_shm(self) -> ShmPair | None:
        """Small regions registered with the server: shared memory works with it, or a warning and messages."""
        shm = ShmPair()
        try:
            shm.reserve(4096, 4096, CONTROL_TIMEOUT)
            shm.register(self._transport, CONTROL_TIMEOUT, self.serverName)
        except Exception as exc:  # noqa: BLE001 - e.g. a "local" server in a container without our /dev/shm
            shm.destroy(timeout=CONTROL_TIMEOUT)
            log.warning("%s: server '%s' (%s) cannot use this machine's shared memory (%s); sending tensors in "
                        "the %s messages instead (set Client.useSharedMemory = False to skip this check)",
                        self._describe(), self.serverName, self.serverAddress, message_of(exc), self.protocol)
            return None
        return shm

    def _read_model(self) -> tuple[Any, Any]:
        from tritonclient.utils import InferenceServerException

        transport = self._transport
        assert transport is not None
        config = None
        try:
            metadata = transport.model_metadata(self.modelName, self.modelVersion)
            try:
                config = transport.model_config(self.modelName, self.modelVersion)
            except InferenceServerException as exc:
                if not is_unsupported(exc):
                    raise
                self.v2only = True
                log.info("%s: server '%s' (%s) has no model configuration endpoint (%s): using the core KServe V2 "
                         "protocol (shapes, dtypes and batching from the model metadata%s; no shared memory, no "
                         "statistics)", self._describe(), self.serverName, self.serverAddress, message_of(exc),
                         " and Client.modelConfigPath" if self.modelConfigPath else "")
        except InferenceServerException as exc:
            version = f" version {self.modelVersion}" if self.modelVersion else ""
            raise TritonServerError(
                f"{self._describe()}{version}: cannot read the model's metadata from server '{self.serverName}' "
                f"({self.serverAddress}, {self.protocol}): {message_of(exc)}\n  How to fix: check that the server "
                "runs, serves the model and speaks this protocol (python -m framework serve; Client.modelName, "
                "Client.modelVersion; protocol=grpc|http with the server's port).",
                model=self.modelName, server=self.serverName, address=self.serverAddress, status=raw_status(exc),
            ) from exc
        return metadata, config

    def _check_local_config(self, local: Any) -> None:
        problems: list[str] = []
        if int(local.max_batch_size) != self.maxBatchSize:
            problems.append(f"max_batch_size: server {self.maxBatchSize}, local {local.max_batch_size}")
        for kind, server_side, local_side in (("input", self.inputInfo, local.input),
                                             ("output", self.outputInfo, local.output)):
            local_infos = {t.name: TensorInfo(t.name, config_dtype_to_triton(
                data_type_name(t.data_type)), tuple(int(d) for d in t.dims)) for t in local_side}
            if self.v2only and not local_side:
                continue  # a V2 server may describe tensors the local config leaves out
            for name in local_infos.keys() - server_side.keys():
                problems.append(f"{kind} '{name}' is in the local config but not on the server "
                                f"(server {kind}s: {', '.join(server_side)})")
            for name in server_side.keys() - local_infos.keys():
                problems.append(f"{kind} '{name}' is on the server but not in the local config "
                                f"(local {kind}s: {', '.join(local_infos)})")
            for name in server_side.keys() & local_infos.keys():
                s, loc = server_side[name], local_infos[name]
                if s.datatype != loc.datatype or s.dims != loc.dims:
                    problems.append(f"{kind} '{name}': server {s.describe()}, local {loc.describe()}")
        if problems:
            raise TritonConfigError(
                f"{self._describe()}: the model served by '{self.serverName}' ({self.serverAddress}) does not match "
                f"the local configuration {self.modelConfigPath}:\n  " + "\n  ".join(sorted(problems)) +
                "\n  How to fix: serve the same model version as the local config.pbtxt, or point "
                "Client.modelConfigPath at the config of the served model.")


__all__ = ["ModelSetup", "data_type_name"]
