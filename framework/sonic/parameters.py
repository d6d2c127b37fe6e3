"""The SONIC parameters, declared once: each PSet's defaults and, beside them, the values each parameter takes
(:class:`~framework.core.params.Constraint`, CMSSW's ``fillDescriptions`` / ``allowedValues``).

The client (``Client`` PSet of a SONIC producer) and the service (``TritonService`` ``servers`` / ``fallback``
PSets) check their parameters against these tables with :func:`~framework.core.params.check_constraints` when
they are constructed, before any connection; the transport takes its protocols from the same list. A bad value
is a :class:`~framework.exceptions.ConfigurationError` naming the module, the parameter, the value and what is
allowed."""

from __future__ import annotations

from typing import Any

from ..constraints import Constraint
from ..core.params import Required
from ..server.endpoints import PROTOCOL
from .data import RAGGED, RECTANGULAR

MODES = ("Sync", "Async", "PseudoAsync")
BATCH_MODES = (RECTANGULAR, RAGGED)
COMPRESSIONS = ("", "gzip", "deflate")
TIMEOUT_UNITS = {"seconds": 1.0, "milliseconds": 1e-3, "microseconds": 1e-6}
FALLBACK_DEVICES = ("auto", "cpu", "gpu")

CLIENT_PARAMETERS: dict[str, Any] = {
    "mode": "Async",
    "modelName": Required(str, "the model's name on the Triton server"),
    "modelVersion": "",
    "modelConfigPath": "",
    "preferredServer": "",
    "timeout": 0.0,
    "timeoutUnit": "seconds",
    "allowedTries": 1,
    "retryDelay": 0.5,
    "useSharedMemory": True,
    "compression": "",
    "outputs": [],
    "verbose": False,
    "batchMode": RECTANGULAR,
    "mergeEvents": 1,
}
"""The ``Client`` PSet of a SONIC producer (CMSSW's names). ``timeout``: per request, in ``timeoutUnit``, 0 = no
limit; ``allowedTries``: attempts in total; ``retryDelay``: seconds before the first retry (doubled after each
further one); ``outputs``: the outputs to request (empty = all); ``batchMode``: ``Rectangular`` or ``Ragged``;
``mergeEvents``: up to this many events of the module's streams in one request (1 = each event alone; ``Async``
mode, :mod:`framework.sonic.merge`)."""

CLIENT_CONSTRAINTS: dict[str, Constraint] = {
    "mode": Constraint(allowed=MODES),
    "batchMode": Constraint(allowed=BATCH_MODES),
    "compression": Constraint(allowed=COMPRESSIONS),
    "timeoutUnit": Constraint(allowed=tuple(TIMEOUT_UNITS)),
    "timeout": Constraint(minimum=0, help="per request, in timeoutUnit; 0 = no limit"),
    "allowedTries": Constraint(minimum=1, help="the number of attempts in total"),
    "retryDelay": Constraint(minimum=0, help="seconds before the first retry"),
    "mergeEvents": Constraint(minimum=1, help="1 = one event per request"),
}

SERVER_PARAMETERS: dict[str, Any] = {
    "name": Required(str, "a name for the server, used by Client.preferredServer"),
    "address": Required(str, "host name or IP address (or unix:/path)"),
    "port": Required(int, "the port of the protocol (Triton: gRPC 8001, HTTP 8000)"),
    "protocol": "grpc",
    "useSsl": False,
    "rootCertificates": "",
    "privateKey": "",
    "certificateChain": "",
}
"""One entry of ``TritonService.servers`` (the port is checked by :func:`~framework.server.endpoints.check_port`:
a unix socket has none)."""

SERVER_CONSTRAINTS: dict[str, Constraint] = {
    "protocol": PROTOCOL,
}

FALLBACK_PARAMETERS: dict[str, Any] = {
    "enable": False,
    "device": "auto",
    "port": -1,
    "instances": 0,  # 0 = auto (from the cores)
    "threads": 0,  # 0 = auto
    "queueDelay": -1,  # dynamic batching max_queue_delay_microseconds; -1 = auto, 0 = none
    "protocol": "http",  # how the clients talk to the fallback server: http (measured cheaper, README) or grpc
    "wait": 120.0,
    "verbose": False,
    "keepLogs": False,
}
"""``TritonService.fallback``: the local fallback server."""

FALLBACK_CONSTRAINTS: dict[str, Constraint] = {
    "device": Constraint(allowed=FALLBACK_DEVICES),
    "protocol": PROTOCOL,
    "instances": Constraint(minimum=0, help="0 = from the cores"),
    "threads": Constraint(minimum=0, help="0 = auto"),
    "queueDelay": Constraint(minimum=-1, help="microseconds; -1 = auto, 0 = none"),
    "wait": Constraint(minimum=0, help="seconds to wait for the fallback server to start"),
}

__all__ = [
    "BATCH_MODES",
    "CLIENT_CONSTRAINTS",
    "CLIENT_PARAMETERS",
    "COMPRESSIONS",
    "FALLBACK_CONSTRAINTS",
    "FALLBACK_DEVICES",
    "FALLBACK_PARAMETERS",
    "MODES",
    "SERVER_CONSTRAINTS",
    "SERVER_PARAMETERS",
    "TIMEOUT_UNITS",
]
