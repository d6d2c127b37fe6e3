"""What the DeepMET twins share: parameters and ``postprocess`` (model output -> MET px, py, pt, phi
products). Both read the event's :class:`~.features.DeepMETInputs` (made by :mod:`.inputs_producer`) and
differ only in the backend call."""

from __future__ import annotations

from typing import Any

import numpy as np

from . import features

COMMON_PARAMETERS: dict[str, Any] = {
    "src": "deepMETInputs",
    "norm_factor": 50.0,
}


class DeepMETCommon:
    """Mixin for the two producers. Products (one number per event, float32): ``px``, ``py``,
    ``pt``, ``phi`` of the DeepMET MET."""

    params: Any

    def modelInputs(self, event: Any) -> features.DeepMETInputs:
        """The event's model inputs (the product of the inputs producer ``src``)."""
        return event.get(self.params.src)

    def postprocess(self, event: Any, inputs: features.DeepMETInputs, output: np.ndarray) -> None:
        px, py, pt, phi = features.met_from_output(
            np.asarray(output).reshape(-1)[:2], norm=self.params.norm_factor, lepton_px=inputs.lepton_px,
            lepton_py=inputs.lepton_py,
        )
        for name, v in (("px", px), ("py", py), ("pt", pt), ("phi", phi)):
            event.put(np.float32(v), name)
