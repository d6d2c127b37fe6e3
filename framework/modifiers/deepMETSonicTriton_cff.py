"""``deepMETSonicTriton``: DeepMET runs via SONIC (its cff fragment, producers/deepmet/cff.py, swaps the
direct producer for its SONIC twin under the same label)."""

import framework.config as cms

deepMETSonicTriton = cms.Modifier()
