"""``deepMETSonicTriton``: DeepMET runs via SONIC (this package's cff fragment swaps the direct producer for its
SONIC twin under the same label). Attached to ``allSonicTriton`` by entry point."""

import framework.config as cms

deepMETSonicTriton = cms.Modifier()
