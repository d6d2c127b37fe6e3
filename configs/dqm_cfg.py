"""Data-quality monitoring per luminosity section (issue 10): DQM histograms filled from the events, one set per
lumi section, written in DQM's folder naming beside the LuminosityBlocks tree.

    python -m framework run configs/dqm_cfg.py                                    # the bundled sample
    python -m framework run configs/dqm_cfg.py inputFiles=runs.root outputFile=dqm.root

The bundled sample (data/samples/dqm.root) holds 4 runs of 20 lumi sections of 100 events; its
LuminosityBlocks tree says which sections are bad (isBad, anomalies). Read the histograms back with
producers.dqm.read.read_lumi_histograms(outputFile).
"""

import framework.config as cms
from framework.config import options
from producers.dqm import cff as dqm

options.register("wantSummary", 0, int, "1: print the per-module timing table")
options.setDefault("inputFiles", ["data/samples/dqm.root"])
options.setDefault("outputFile", "dqm.root")
options.parseArguments()

process = cms.Process("DQM")

process.source = cms.Source("RootSource", fileNames=cms.vstring(options.inputFiles))
process.maxEvents.input = options.maxEvents
process.options.wantSummary = bool(options.wantSummary)
process.options.numberOfThreads = 2
process.options.numberOfStreams = 2

# per lumi section: JetMET/MET/pfMETT1/Cleaned/METSig (51 bins) and JetMET/Jet/Cleanedak4PFJetsCHS/PhiVSEta,
# lumi products "dqmHistograms:<ME path>" (hist.Hist)
dqm.add(process, "dqmHistograms")

# --- NMF scoring (issue 10, item 3; built separately) goes here: a module after dqmHistograms on the Path that
# reads lumi.get("dqmHistograms:" + dqm.MET_SIG) in endLuminosityBlock and puts dqmNMF:mse / dqmNMF:flag, its
# direct (joblib) and MLServer twins swapped by a modifier; add "keep dqmNMF_*" to the output below.
process.dqm = cms.Path(process.dqmHistograms)

process.out = cms.OutputModule(
    "RootOutputModule",
    fileName=cms.string(options.outputFile),
    outputCommands=cms.vstring("drop *", "keep run", "keep luminosityBlock", "keep event", "keep dqmHistograms_*"),
)
process.endpath = cms.EndPath(process.out)
