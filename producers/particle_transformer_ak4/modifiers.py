"""``particleTransformerAK4SonicTriton``: the ParT AK4 tagger runs via SONIC (this package's cff fragment swaps the
direct producer for its SONIC twin under the same label). Attached to ``allSonicTriton`` by this repository's entry
points (group ``framework.allSonicTriton``)."""

import framework.config as cms

particleTransformerAK4SonicTriton = cms.Modifier()
