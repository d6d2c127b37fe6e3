"""``nuGraph3SonicTriton``: NuGraph3 runs via SONIC (its cff fragment, producers/nugraph3/cff.py, swaps the
direct producer for its SONIC twin under the same label)."""

import framework.config as cms

nuGraph3SonicTriton = cms.Modifier()
