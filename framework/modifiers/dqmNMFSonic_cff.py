"""``dqmNMFSonic``: the DQM NMF anomaly model runs on MLServer through the SONIC client instead of in-process (its
cff fragment, producers/dqm_nmf/cff.py, swaps the direct producer for its twin under the same label). It brings
``enableSonicTriton``: the TritonService with the local fallback, which serves an MLServer model (a folder with
``model-settings.json``) with a local MLServer."""

import framework.config as cms

from .enableSonicTriton_cff import enableSonicTriton

dqmNMFSonic = cms.ModifierChain(enableSonicTriton)
