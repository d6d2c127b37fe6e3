"""What the ParT AK4 twins share (coffea ml_tools style): parameters and ``postprocess`` (scores -> one
product per flavour). Both read the event's :class:`~.features.PartTagInfo` (made by
:mod:`.taginfo_producer`) and differ only in the backend call, so "direct equals SONIC" holds by
construction up to the backend's numerics."""

from __future__ import annotations

from typing import Any

import numpy as np

from .features import FLAV_NAMES, PartTagInfo

OUTPUT_NAME = "softmax"

# parameters common to both twins
COMMON_PARAMETERS: dict[str, Any] = {
    "src": "pfParticleTransformerAK4TagInfos",
    "flav_names": list(FLAV_NAMES),
}


class ParTAK4Common:
    """Mixin for the two producers. Products: one float32 array per flavour (one value per jet),
    instance names from ``flav_names``; jets without a candidate get -1 (CMSSW's convention),
    since the model returns NaN for them."""

    params: Any

    def tagInfo(self, event: Any) -> PartTagInfo:
        """The event's model inputs (the product of the tag-info producer ``src``)."""
        return event.get(self.params.src)

    def postprocess(self, event: Any, scores: np.ndarray, has_candidates: np.ndarray) -> None:
        names = self.params.flav_names
        n = len(has_candidates)
        scores = np.asarray(scores, dtype=np.float32).reshape(n, -1) if n else np.zeros((0, len(names)), np.float32)
        if scores.shape[1] != len(names):
            raise ValueError(f"the model gives {scores.shape[1]} scores per jet but flav_names has {len(names)}: {names}")
        scores = np.where(has_candidates[:, None], scores, np.float32(-1.0)).astype(np.float32)
        for i, name in enumerate(names):
            event.put(np.ascontiguousarray(scores[:, i]), name)
