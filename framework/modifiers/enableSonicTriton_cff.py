"""``enableSonicTriton``: SONIC producers need a ``TritonService``. A Process this modifier is chosen for
gets one with the local fallback server enabled (or the fallback of the one it has is enabled).

:data:`enableSonicTritonProcess` does the same as a process modifier, for a config that attaches it::

    process = cms.Process("DEMO", enableSonicTriton)
    process.enableSonicTritonProcess = enableSonicTritonProcess

Servers given on the command line (``address=HOST port=PORT``) are tried first; the fallback serves the
models they do not have.
"""

from __future__ import annotations

from typing import Any

import framework.config as cms
from framework.sonic.service import FALLBACK_PARAMETERS

enableSonicTriton = cms.Modifier()

# the service's own defaults, with the fallback switched on
TRITON_FALLBACK_DEFAULTS: dict[str, Any] = {**FALLBACK_PARAMETERS, "enable": True}


def tritonService(**fallback: Any) -> cms.Service:
    """A ``TritonService`` declaration with the local fallback server enabled (``fallback`` overrides its
    settings, e.g. ``device="cpu"``)."""
    settings = {**TRITON_FALLBACK_DEFAULTS, **fallback}
    return cms.Service(
        "TritonService",
        verbose=cms.untracked.bool(False),
        servers=cms.VPSet(),
        fallback=cms.PSet(
            enable=cms.bool(settings["enable"]),
            device=cms.string(settings["device"]),
            port=cms.int32(settings["port"]),
            instances=cms.uint32(settings["instances"]),
            threads=cms.uint32(settings["threads"]),
            queueDelay=cms.int32(settings["queueDelay"]),
            protocol=cms.string(settings["protocol"]),
            wait=cms.double(settings["wait"]),
            verbose=cms.untracked.bool(settings["verbose"]),
            keepLogs=cms.untracked.bool(settings["keepLogs"]),
        ),
    )


def _enableTritonService(process: cms.Process) -> None:
    services = process.services_()
    if "TritonService" not in services:
        process.TritonService = tritonService()
        return
    service = services["TritonService"]
    if "fallback" in service:
        service.fallback.enable = True
    else:
        service.fallback = tritonService().fallback


enableSonicTritonProcess = enableSonicTriton.makeProcessModifier(_enableTritonService)

# part of the modifier's definition: every Process it is chosen for gets the service
enableSonicTriton.toModifyProcess(_enableTritonService)
