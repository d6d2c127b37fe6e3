"""Test helpers of the failover tests: a module that SIGKILLs a given server's process group at the end of a chosen
lumi section, attached with ``customise=tests.failover_plugins.killGivenServerAtLumi3`` (the process group id in
``CMSFW_TEST_KILL_PGID``)."""

from __future__ import annotations

import os
import signal

import framework.config as cms
from framework.core.module import EDAnalyzer
from framework.core.registry import register

PGID_VARIABLE = "CMSFW_TEST_KILL_PGID"


@register("TestGivenServerKiller")
class TestGivenServerKiller(EDAnalyzer):
    """At the end of lumi ``lumi`` of the first run: SIGKILL the process group ``pgid`` (once)."""

    parameters = {"pgid": 0, "lumi": 3}

    def analyze(self, event) -> None:
        pass

    def endLuminosityBlock(self, lumi) -> None:
        if lumi.luminosityBlock == self.params.lumi and lumi.run == 1 and self.params.pgid:
            try:
                os.killpg(self.params.pgid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def killGivenServerAtLumi3(process: cms.Process) -> cms.Process:
    """Put the killer (pgid: $CMSFW_TEST_KILL_PGID) on a path of its own (the sections after lumi 3 need another
    server, whether the killer ends lumi 3 before or after the scorers)."""
    process.killer = cms.EDAnalyzer("TestGivenServerKiller", pgid=int(os.environ[PGID_VARIABLE]), lumi=3)
    process.killpath = cms.Path(process.killer)
    return process
