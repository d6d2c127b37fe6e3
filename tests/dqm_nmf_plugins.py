"""Test helpers of the DQM NMF tests: a module that, at the end of a chosen lumi section, kills the job's local
MLServer or the job itself (``CMSFW_TEST_DQM_KILL`` = ``server``, ``term`` or ``kill``), attached before the scorer
with ``customise=tests.dqm_nmf_plugins.killAtLumi3``."""

from __future__ import annotations

import os
import signal

import framework.config as cms
from framework.core import services
from framework.core.module import EDAnalyzer
from framework.core.registry import register

KILL_VARIABLE = "CMSFW_TEST_DQM_KILL"


@register("TestDQMKiller")
class TestDQMKiller(EDAnalyzer):
    """At the end of lumi ``lumi`` of the first run: SIGKILL the local MLServer (``server``), SIGTERM the job
    (``term``) or SIGKILL the job (``kill``)."""

    parameters = {"what": "server", "lumi": 3}

    def analyze(self, event) -> None:
        pass

    def endLuminosityBlock(self, lumi) -> None:
        if lumi.luminosityBlock != self.params.lumi or lumi.run != 1:
            return
        what = self.params.what
        if what == "server":
            server = services.get("TritonService").mlserverFallback
            os.killpg(server.pid, signal.SIGKILL)
        else:
            os.kill(os.getpid(), signal.SIGTERM if what == "term" else signal.SIGKILL)


def killAtLumi3(process: cms.Process) -> cms.Process:
    """Put the killer (what: $CMSFW_TEST_DQM_KILL) on the DQM path, before the scorer."""
    process.killer = cms.EDAnalyzer("TestDQMKiller", what=os.environ.get(KILL_VARIABLE, "server"), lumi=3)
    process.dqm = cms.Path(process.dqmHistograms, process.killer, process.dqmNMF)
    return process
