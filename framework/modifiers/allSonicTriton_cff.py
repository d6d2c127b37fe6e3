"""``allSonicTriton``: every ML producer via SONIC, with the TritonService (and its local fallback server).

The chain holds ``enableSonicTriton`` and whatever the installed plug-ins attach to it: the entry points of group
``framework.allSonicTriton`` (name = the modifier's name, value = ``package.module:modifier``). This repository's
pyproject attaches the ParT, DeepMET, NuGraph3 and DQM NMF modifiers; a user's package attaches its own the same way.
"""

from framework.config.modifiers import PluginModifierChain

from .enableSonicTriton_cff import enableSonicTriton

ALL_SONIC_GROUP = "framework.allSonicTriton"

allSonicTriton = PluginModifierChain(ALL_SONIC_GROUP, enableSonicTriton)
