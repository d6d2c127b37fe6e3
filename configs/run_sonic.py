"""Turn SONIC on for any config without editing it (the tutorial's run.py):

    python -m framework run configs/run_sonic.py config=configs/miniaod_cfg.py maxEvents=10 address=HOST

The config given is loaded with the ``allSonicTriton`` modifier chain chosen for its Process
(``enableSonicTriton`` adds the TritonService with the local fallback server; the per-model modifiers swap
each producer for its SONIC twin under the same label). ``address=``/``port=`` point the service at a server.
The same without a wrapper: ``python -m framework run CONFIG procModifiers=allSonicTriton``.
"""

from framework.config import options
from framework.configloader import execute_config
from framework.modifiers import allSonicTriton

options.register("config", "configs/miniaod_cfg.py", str, "the config to run with SONIC switched on")
# the remaining options belong to the config given; it parses them (and the loader checks them all)
_config = next((a.split("=", 1)[1] for a in options.argv if a.startswith("config=")), options.config)

process = execute_config(_config, modifiers=[allSonicTriton])
