"""What the DeepMET twins share: parameters, ``prepare`` (PF candidates -> padded inputs) and
``postprocess`` (model output -> MET px, py, pt, phi products)."""

from __future__ import annotations

from typing import Any

import numpy as np

from . import features

COMMON_PARAMETERS: dict[str, Any] = {
    "max_n_pf": 4500,
    "norm_factor": 50.0,
    "ignore_leptons": False,
}


class DeepMETCommon:
    """Mixin for the two producers. Products (one number per event, float32): ``px``, ``py``,
    ``pt``, ``phi`` of the DeepMET MET."""

    params: Any

    def inputBranches(self) -> tuple[str, ...]:
        return tuple(features.INPUT_BRANCHES)

    def prepare(self, event: Any) -> dict[str, np.ndarray]:
        p = self.params
        ev = event.getBranches(features.INPUT_BRANCHES)
        # with ignore_leptons, CMSSW leaves e/mu out of the inputs and subtracts their momentum afterwards
        self._leptons = features.lepton_momentum_sum(ev) if p.ignore_leptons else (0.0, 0.0)
        return features.build_deepmet_inputs(ev, max_candidates=p.max_n_pf, norm=p.norm_factor, ignore_leptons=p.ignore_leptons)

    def postprocess(self, event: Any, output: np.ndarray) -> None:
        lx, ly = getattr(self, "_leptons", (0.0, 0.0))
        px, py, pt, phi = features.met_from_output(
            np.asarray(output).reshape(-1)[:2], norm=self.params.norm_factor, lepton_px=lx, lepton_py=ly
        )
        for name, v in (("px", px), ("py", py), ("pt", pt), ("phi", phi)):
            event.put(np.float32(v), name)
