"""Turn SONIC on for any config without editing it (the tutorial's run.py):

    python -m framework run configs/run_sonic.py config=configs/miniaod_cfg.py maxEvents=10 address=HOST

The config given is loaded with the ``allSonicTriton`` modifier chain (``enableSonicTriton`` adds
the TritonService with the local fallback server; the per-model modifiers swap each producer for
its SONIC twin under the same label). ``address=``/``port=`` point the service at a server.
"""

import runpy

from configs.modifiers import allSonicTriton
from framework.config import options
from framework.config import process as _process_module

options.register("config", "configs/miniaod_cfg.py", str, "the config to run with SONIC switched on")
# the remaining options belong to the config given; it parses them (and the loader checks them all)
_config = next((a.split("=", 1)[1] for a in options.argv if a.startswith("config=")), options.config)

_process_module._extra_modifiers[:] = [allSonicTriton]
try:
    _namespace = runpy.run_path(_config, run_name="__config__")
finally:
    _process_module._extra_modifiers[:] = []
process = _namespace["process"]
