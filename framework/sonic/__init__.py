"""SONIC: run a model on a Triton inference server from a producer (CMSSW's SonicCore / SonicTriton).

A producer derives :class:`SonicEDProducer` and implements ``acquire(event, input)`` (fill the named inputs)
and ``produce(event, output)`` (read the named outputs). Its ``Client`` PSet (:data:`CLIENT_PARAMETERS`)
chooses the model, the mode (``Sync``, ``Async``, ``PseudoAsync``), retries, timeout, shared memory and
compression. The job's :class:`TritonService` maps models to servers (each spoken to over ``grpc`` or ``http``,
:mod:`framework.sonic.transport`) and starts the local fallback server when a model is served nowhere.
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
from .service import ServerStats, TritonService, apply_protocol_option, apply_server_option
from .transport import PROTOCOLS, Transport, make_transport

__all__ = [
    "CLIENT_PARAMETERS",
    "PROTOCOLS",
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
    "Transport",
    "TritonServerError",
    "TritonService",
    "apply_protocol_option",
    "apply_server_option",
    "grpc_client",
    "is_recoverable",
    "make_transport",
]
