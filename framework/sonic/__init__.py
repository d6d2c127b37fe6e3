"""SONIC: run a model on a Triton inference server from a producer (CMSSW's SonicCore / SonicTriton).

A producer derives :class:`SonicEDProducer` and implements ``acquire(event, input)`` (fill the named inputs)
and ``produce(event, output)`` (read the named outputs). Its ``Client`` PSet (:data:`CLIENT_PARAMETERS`)
chooses the model, the mode (``Sync``, ``Async``, ``PseudoAsync``), retries, timeout, shared memory and
compression. The job's :class:`TritonService` maps models to servers and starts the local fallback server
when a model is served nowhere.
"""

from .client import (
    CLIENT_PARAMETERS,
    ClientStats,
    ServerAddress,
    SslOptions,
    TritonClient,
    grpc_client,
    is_recoverable,
)
from .data import (
    RAGGED,
    RECTANGULAR,
    TensorInfo,
    TritonInputData,
    TritonInputs,
    TritonOutputData,
    TritonOutputs,
)
from .errors import TritonConfigError, TritonDataError, TritonServerError
from .producer import SonicEDProducer
from .service import ServerStats, TritonService, apply_server_option

__all__ = [
    "CLIENT_PARAMETERS",
    "RAGGED",
    "RECTANGULAR",
    "ClientStats",
    "ServerAddress",
    "ServerStats",
    "SonicEDProducer",
    "SslOptions",
    "TensorInfo",
    "TritonClient",
    "TritonConfigError",
    "TritonDataError",
    "TritonInputData",
    "TritonInputs",
    "TritonOutputData",
    "TritonOutputs",
    "TritonServerError",
    "TritonService",
    "apply_server_option",
    "grpc_client",
    "is_recoverable",
]
