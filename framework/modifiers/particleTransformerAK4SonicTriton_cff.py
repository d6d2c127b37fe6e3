"""``particleTransformerAK4SonicTriton``: the ParT AK4 tagger runs via SONIC (its cff fragment,
producers/particle_transformer_ak4/cff.py, swaps the direct producer for its SONIC twin under the same label)."""

import framework.config as cms

particleTransformerAK4SonicTriton = cms.Modifier()
