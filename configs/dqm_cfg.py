"""Data-quality monitoring per luminosity section (issue 10): DQM histograms filled from the events, one set per
lumi section, written in DQM's folder naming beside the LuminosityBlocks tree.

    python -m framework run configs/dqm_cfg.py                                    # the bundled sample
    python -m framework run configs/dqm_cfg.py inputFiles=runs.root outputFile=dqm.root
    python -m framework run configs/dqm_cfg.py sonic=1                            # NMF score on MLServer
    python -m framework dqm-report dqm.root --out out/dqm                         # score per lumi section

The input needs MET_significance, Jet_eta, Jet_phi and PuppiMET_pt, PuppiMET_phi (NanoAOD; generated files have
MET_significance only when asked: python -m framework generate ... --branches '*' or 'MET_*,PuppiMET_*,Jet_*');
puppiMET=0 books no PF vs Puppi MET element (for inputs without PuppiMET). The bundled sample
(data/samples/dqm.root) holds 4 runs of 20 lumi sections of 100 events; its LuminosityBlocks tree says which
sections are bad (isBad, anomalies). Read the histograms back with producers.dqm.read.read_lumi_histograms(outputFile).
"""

import framework.config as cms
from framework.config import options
from producers.dqm import cff as dqm
from producers.dqm_nmf import cff as dqmnmf
from producers.dqm_nmf.modifiers import dqmNMFSonic

options.register("wantSummary", 0, int, "1: print the per-module timing table")
options.register("sonic", 0, int, "1: score the sections on MLServer (SONIC client) instead of in-process")
options.register("nmfModel", dqmnmf.DEFAULT_MODEL_DIR, str, "the NMF model folder (MLServer/DIALS package); "
                 "empty: histograms only")
options.register("nmfJetOccModel", dqmnmf.MODEL_DIRS["dqmNMFJetOcc"], str, "the NMF model folder of the jet occupancy map; "
                 "empty: no occupancy score")
options.register("puppiMET", 1, int, "1: book JetMET/MET/pfMETT1/Cleaned/PFMETMinusPuppiMET (needs PuppiMET_pt, "
                 "PuppiMET_phi) and its scorer; 0: the two other elements only")
options.register("nmfMETPuppiModel", dqmnmf.MODEL_DIRS["dqmNMFMETPuppi"], str, "the NMF model folder of the PF vs "
                 "Puppi MET element; empty: no such score")
options.setDefault("inputFiles", ["data/samples/dqm.root"])
options.setDefault("outputFile", "dqm.root")
options.parseArguments()

process = cms.Process("DQM", *([dqmNMFSonic] if options.sonic else []))

process.source = cms.Source("RootSource", fileNames=cms.vstring(options.inputFiles))
process.maxEvents.input = options.maxEvents
process.options.wantSummary = bool(options.wantSummary)
process.options.numberOfThreads = 2
process.options.numberOfStreams = 2

# per lumi section: JetMET/MET/pfMETT1/Cleaned/METSig (51 bins), JetMET/Jet/Cleanedak4PFJetsCHS/PhiVSEta and
# JetMET/MET/pfMETT1/Cleaned/PFMETMinusPuppiMET (50 bins), lumi products "dqmHistograms:<ME path>" (hist.Hist)
elements = [dqm.met_significance(), dqm.jet_occupancy()]
if options.puppiMET:
    elements.append(dqm.met_minus_puppi(note="for an input without PuppiMET, run with puppiMET=0 to leave it out"))
dqm.add(process, "dqmHistograms", *elements)

# the NMF anomaly scores per lumi section, in-process, or on MLServer with sonic=1 (the dqmNMFSonic modifier swaps
# both); after dqmHistograms, whose lumi products they read: METSig (noisy MET tail; lumi products dqmNMF:mse,
# dqmNMF:flag) and the jet eta-phi occupancy map flattened to 1200 bins (dead detector region; dqmNMFJetOcc:mse,
# dqmNMFJetOcc:flag) and PF MET vs Puppi MET (noisy MET tail; dqmNMFMETPuppi:mse, dqmNMFMETPuppi:flag). A section
# is bad when any flag is set.
scorers = []
if options.nmfModel:
    dqmnmf.add(process, "dqmNMF", src="dqmHistograms:" + dqm.MET_SIG, model_dir=options.nmfModel)
    scorers.append(process.dqmNMF)
if options.nmfModel and options.nmfJetOccModel:
    dqmnmf.add(process, "dqmNMFJetOcc", src="dqmHistograms:" + dqm.JET_OCCUPANCY, model_dir=options.nmfJetOccModel)
    scorers.append(process.dqmNMFJetOcc)
if options.nmfModel and options.nmfMETPuppiModel and options.puppiMET:
    dqmnmf.add(process, "dqmNMFMETPuppi", src="dqmHistograms:" + dqm.MET_MINUS_PUPPI, model_dir=options.nmfMETPuppiModel)
    scorers.append(process.dqmNMFMETPuppi)
process.dqm = cms.Path(process.dqmHistograms, *scorers)

process.out = cms.OutputModule(
    "RootOutputModule",
    fileName=cms.string(options.outputFile),
    outputCommands=cms.vstring("drop *", "keep run", "keep luminosityBlock", "keep event", "keep dqmHistograms_*",
                                "keep dqmNMF_*", "keep dqmNMFJetOcc_*", "keep dqmNMFMETPuppi_*"),
)
process.endpath = cms.EndPath(process.out)
