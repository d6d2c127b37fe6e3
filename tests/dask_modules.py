"""Modules and a light config for the Dask executor tests (tests/test_executor_dask.py). The config imports this
module, so the worker processes register the modules too."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import hist
import numpy as np

from framework.core.module import EDAnalyzer, EDProducer
from framework.core.registry import register


@register("TestDaskKillOnce")
class KillOnce(EDAnalyzer):
    """SIGKILLs its own process at the event numbered ``event``, the first time only (``marker`` is created,
    holding the pid killed; an existing marker disarms it)."""

    parameters = {"marker": "", "event": -1}

    def analyze(self, event):
        marker = self.params.marker
        if marker and int(event.id.event) == self.params.event and not os.path.exists(marker):
            Path(marker).write_text(str(os.getpid()))
            os.kill(os.getpid(), signal.SIGKILL)


@register("TestDaskSleep")
class Sleep(EDAnalyzer):
    """Sleeps ``ms`` milliseconds per event (a job that lasts long enough to be interrupted)."""

    parameters = {"ms": 0}

    def analyze(self, event):
        if self.params.ms > 0:
            time.sleep(self.params.ms / 1000)


@register("TestDaskBlockSums")
class BlockSums(EDProducer):
    """Per lumi the event count; per run the event count and a histogram of the event numbers (DQMData)."""

    parameters = {}

    @classmethod
    def initializeGlobalCache(cls, params):
        return {"lumi": 0, "run": 0, "hist": None, "lock": threading.Lock()}

    def produce(self, event):
        c = self.globalCache
        with c["lock"]:
            c["lumi"] += 1
            c["run"] += 1
            c["hist"].fill(float(event.id.event))
        event.put(np.int64(event.id.event))

    def beginLuminosityBlock(self, lumi):
        self.globalCache["lumi"] = 0

    def endLuminosityBlock(self, lumi):
        lumi.put(np.int32(self.globalCache["lumi"]), "nEvents")

    def beginRun(self, run):
        self.globalCache["run"] = 0
        self.globalCache["hist"] = hist.Hist(hist.axis.Regular(20, 0, 1000, name="event"))

    def endRun(self, run):
        run.put(np.int32(self.globalCache["run"]), "nEvents")
        run.put(self.globalCache["hist"], "eventNumbers")


LIGHT_CONFIG = '''
import framework.config as cms
from framework.config import options
import tests.dask_modules  # noqa: F401 - the test modules, also in the workers

options.register("killMarker", "", str, "TestDaskKillOnce: marker file")
options.register("killEvent", -1, int, "TestDaskKillOnce: the event number that kills the process")
options.register("sleepMs", 0, int, "TestDaskSleep: milliseconds per event")
options.setDefault("outputFile", "light.root")
options.parseArguments()

process = cms.Process("DASKTEST")
process.source = cms.Source("RootSource", fileNames=cms.vstring(options.inputFiles))
process.maxEvents.input = options.maxEvents
process.options.numberOfThreads = 1
process.options.numberOfStreams = 2
process.sums = cms.EDProducer("TestDaskBlockSums")
process.kill = cms.EDAnalyzer("TestDaskKillOnce", marker=options.killMarker, event=options.killEvent)
process.sleep = cms.EDAnalyzer("TestDaskSleep", ms=options.sleepMs)
process.p = cms.Path(process.sums, process.kill, process.sleep)
process.out = cms.OutputModule("RootOutputModule", fileName=cms.string(options.outputFile),
                               outputCommands=cms.vstring("drop *", "keep Jet_*", "keep MET_pt", "keep sums*"))
process.e = cms.EndPath(process.out)
'''
