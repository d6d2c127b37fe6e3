"""``dqmNMFSonic``: the DQM NMF anomaly model runs on MLServer through the SONIC client instead of in-process (this
package's cff fragment swaps the direct producer for its twin under the same label). It brings ``enableSonicTriton``:
the TritonService with the local fallback, which serves an MLServer model (a folder with ``model-settings.json``)
with a local MLServer. Attached to ``allSonicTriton`` by entry point."""

import framework.config as cms
from framework.modifiers import enableSonicTriton

dqmNMFSonic = cms.ModifierChain(enableSonicTriton)
