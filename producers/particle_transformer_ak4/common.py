"""What the ParT AK4 twins share (coffea ml_tools style): parameters, ``prepare`` (event ->
the six padded model inputs) and ``postprocess`` (scores -> one product per flavour). Only the
backend call differs between the ONNX and the SONIC producer, so "direct equals SONIC" holds by
construction up to the backend's numerics."""

from __future__ import annotations

from typing import Any

import numpy as np

from . import features

FLAV_NAMES = ["probb", "probbb", "problepb", "probc", "probuds", "probg"]
OUTPUT_NAME = "softmax"

# parameters common to both twins
COMMON_PARAMETERS: dict[str, Any] = {
    "flav_names": list(FLAV_NAMES),
    "max_cpf": 25,
    "max_npf": 25,
    "max_sv": 5,
    "min_slots": 1,
}


class ParTAK4Common:
    """Mixin for the two producers. Products: one float32 array per flavour (one value per jet),
    instance names from ``flav_names``; jets without a candidate get -1 (CMSSW's convention),
    since the model returns NaN for them."""

    params: Any

    def inputBranches(self) -> tuple[str, ...]:
        return tuple(features.INPUT_BRANCHES)

    def prepare(self, event: Any) -> tuple[dict[str, np.ndarray], np.ndarray]:
        p = self.params
        ev = event.getBranches(features.INPUT_BRANCHES)
        return features.build_part_inputs(
            ev, max_cpf=p.max_cpf, max_npf=p.max_npf, max_sv=p.max_sv, min_slots=p.min_slots, pad_to_event_max=True
        )

    def postprocess(self, event: Any, scores: np.ndarray, has_candidates: np.ndarray) -> None:
        names = self.params.flav_names
        n = len(has_candidates)
        scores = np.asarray(scores, dtype=np.float32).reshape(n, -1) if n else np.zeros((0, len(names)), np.float32)
        if scores.shape[1] != len(names):
            raise ValueError(f"the model gives {scores.shape[1]} scores per jet but flav_names has {len(names)}: {names}")
        scores = np.where(has_candidates[:, None], scores, np.float32(-1.0)).astype(np.float32)
        for i, name in enumerate(names):
            event.put(np.ascontiguousarray(scores[:, i]), name)
