"""The main job: AOD-like events -> MiniAOD-like output with ParticleTransformer AK4 b-tag scores
and DeepMET, the ML producers run in-process (direct) or via SONIC (Triton).

    python -m framework run configs/miniaod_cfg.py maxEvents=100                 # direct
    python -m framework run configs/miniaod_cfg.py maxEvents=100 sonic=1         # SONIC, local fallback server
    python -m framework run configs/miniaod_cfg.py sonic=1 address=HOST port=8001   # SONIC on a given server
    python -m framework run configs/miniaod_cfg.py partModel=../shared/models/particletransformer_AK4   # the real CMS model
"""

import framework.config as cms
from framework.config import options
from framework.modifiers import allSonicTriton
from producers.deepmet import cff as deepmet
from producers.particle_transformer_ak4 import cff as part

options.register("sonic", 0, int, "1: run the ML producers via SONIC (Triton) instead of in-process")
options.register("partModel", part.DEFAULT_MODEL_DIR, str, "ParT AK4 model directory (Triton layout)")
options.register("deepmetModel", deepmet.DEFAULT_MODEL_DIR, str, "DeepMET model directory (Triton layout)")
options.register("wantSummary", 1, int, "1: print the per-module timing table")
options.register("mergeEvents", 1, int, "SONIC: up to this many events of the streams in one request (1 = each alone)",
                 minimum=1)
options.setDefault("inputFiles", ["data/samples/sample.root"])
options.setDefault("outputFile", "miniaod.root")
options.parseArguments()

process = cms.Process("MINIAOD", *([allSonicTriton] if options.sonic else []))

process.source = cms.Source("RootSource", fileNames=cms.vstring(options.inputFiles))
process.maxEvents.input = options.maxEvents
process.options.wantSummary = bool(options.wantSummary)
process.options.numberOfThreads = 2
process.options.numberOfStreams = 4

# each add() attaches the algorithm's inputs producer and its inference producer, and returns their Task
partTask = part.add(process, "pfParticleTransformerAK4JetTags", options.partModel)
deepmetTask = deepmet.add(process, "deepMETProducer", options.deepmetModel)
if options.sonic and options.mergeEvents > 1:
    for module in (process.pfParticleTransformerAK4JetTags, process.deepMETProducer):
        module.Client.mergeEvents = cms.uint32(options.mergeEvents)
process.mlTask = cms.Task(partTask, deepmetTask)

process.out = cms.OutputModule(
    "RootOutputModule",
    fileName=cms.string(options.outputFile),
    outputCommands=cms.vstring(
        "drop *",
        "keep run", "keep luminosityBlock", "keep event",
        "keep Jet_*",
        "keep MET_*", "keep PuppiMET_*", "keep GenMET_*",
        "keep PV_npvs",
        "keep pfParticleTransformerAK4JetTags_*",
        "keep deepMETProducer_*",
    ),
)
process.endpath = cms.EndPath(process.out, process.mlTask)
