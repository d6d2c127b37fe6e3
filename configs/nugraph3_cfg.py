"""NuGraph3: label every hit of LArTPC events (NuML HDF5 files) with Fermilab's graph network, in the job's
process (direct) or on a Triton server (SONIC), and write the scores as flat branches.

    python -m framework generate-nugraph --events 100 --seed 1 events.h5
    python -m framework run configs/nugraph3_cfg.py inputFiles=events.h5 outputFile=nugraph3.root        # direct
    python -m framework run configs/nugraph3_cfg.py inputFiles=events.h5 sonic=1                         # SONIC, local server
    python -m framework run configs/nugraph3_cfg.py inputFiles=events.h5 sonic=1 protocol=grpc           # ... over gRPC
    python -m framework run configs/nugraph3_cfg.py inputFiles=events.h5 nugraphModel=../shared/models/nugraph3

Branches (module label ``nuGraph3``): per hit of plane p in u, v, y, in the plane's input order,
``nuGraph3_filter_p`` and ``nuGraph3_semantic_p_{pion,muon,kaon,hadron,shower,michel,diffuse}``; per event
``nuGraph3_event_{cc_nue,cc_numu,cc_nutau,nc}`` and ``nuGraph3_vertex_{x,y,z}``.
"""

import framework.config as cms
from framework.config import options
from framework.modifiers import allSonicTriton
from producers.nugraph3 import cff as nugraph3

options.register("sonic", 0, int, "1: run NuGraph3 via SONIC (Triton) instead of in-process")
options.register("nugraphModel", nugraph3.DEFAULT_MODEL_DIR, str,
                 "NuGraph3 model directory (DIR/1/hierarchical.ckpt [+ DIR/config.pbtxt]), e.g. ../shared/models/nugraph3")
options.register("wantSummary", 1, int, "1: print the per-module timing table")
options.register("keepTruth", 0, int, "1: also write the input's truth (hit labels, neutrino vertex) for compare's "
                 "efficiency, purity and residual plots", allowed=(0, 1))
options.setDefault("outputFile", "nugraph3.root")
options.parseArguments()

process = cms.Process("NUGRAPH", *([allSonicTriton] if options.sonic else []))

process.source = cms.Source("NuMLSource", fileNames=cms.vstring(options.inputFiles))
process.maxEvents.input = options.maxEvents
process.options.wantSummary = bool(options.wantSummary)
process.options.numberOfThreads = 2
process.options.numberOfStreams = 4

process.nugraphTask = nugraph3.add(process, "nuGraph3", options.nugraphModel)

process.out = cms.OutputModule(
    "RootOutputModule",
    fileName=cms.string(options.outputFile),
    outputCommands=cms.vstring("drop *", "keep run", "keep luminosityBlock", "keep event", "keep nuGraph3_*",
                               *(["keep hit_table_local_plane", "keep hit_table_filter_label",
                                  "keep hit_table_semantic_label", "keep event_table_nu_vtx_*"]
                                 if options.keepTruth else [])),
)
process.endpath = cms.EndPath(process.out, process.nugraphTask)
