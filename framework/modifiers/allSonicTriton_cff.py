"""``allSonicTriton``: every ML producer via SONIC, with the TritonService (and its local fallback server; the DQM
NMF model on a local MLServer)."""

import framework.config as cms

from .deepMETSonicTriton_cff import deepMETSonicTriton
from .dqmNMFSonic_cff import dqmNMFSonic
from .enableSonicTriton_cff import enableSonicTriton
from .nuGraph3SonicTriton_cff import nuGraph3SonicTriton
from .particleTransformerAK4SonicTriton_cff import particleTransformerAK4SonicTriton

allSonicTriton = cms.ModifierChain(enableSonicTriton, particleTransformerAK4SonicTriton, deepMETSonicTriton,
                                   nuGraph3SonicTriton, dqmNMFSonic)
