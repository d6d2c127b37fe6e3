"""What the ParT AK4 twins share (coffea ml_tools style): parameters, ``prepare`` (event ->
the six padded model inputs) and ``postprocess`` (scores -> one product per flavour). Only the
backend call differs between the ONNX and the SONIC producer, so "direct equals SONIC" holds by
construction up to the backend's numerics."""

from __future__ import annotations

from typing import Any

import numpy as np

from . import features
from .features_chunk import build_part_inputs_chunk

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


def _chunk_columns(chunk: Any) -> dict[str, tuple[np.ndarray, np.ndarray | None]]:
    columns = {}
    for name in features.INPUT_BRANCHES:
        col = chunk.column(name)
        columns[name] = (col.content, col.offsets)
    return columns


class ParTAK4Common:
    """Mixin for the two producers. Products: one float32 array per flavour (one value per jet),
    instance names from ``flav_names``; jets without a candidate get -1 (CMSSW's convention),
    since the model returns NaN for them."""

    params: Any

    def inputBranches(self) -> tuple[str, ...]:
        return tuple(features.INPUT_BRANCHES)

    def prepare(self, event: Any) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """The event's model inputs. Computed for the whole input chunk at once on its first event
        (:func:`.features_chunk.build_part_inputs_chunk`, cached on the chunk and shared by the streams,
        equal to the per-event :func:`.features.build_part_inputs` bit for bit); per event without a
        chunk (EmptySource). The arrays are read-only views into the chunk's buffers."""
        p = self.params
        kwargs = dict(max_cpf=p.max_cpf, max_npf=p.max_npf, max_sv=p.max_sv, min_slots=p.min_slots,
                      pad_to_event_max=True)
        src = getattr(event, "_src", None)
        chunk = getattr(src, "chunk", None)
        if chunk is None:
            return features.build_part_inputs(event.getBranches(features.INPUT_BRANCHES), **kwargs)
        key = ("particle_transformer_ak4", tuple(sorted(kwargs.items())))
        batch = chunk.cached(key, lambda c: build_part_inputs_chunk(_chunk_columns(c), **kwargs))
        return batch.event(src.local)

    def postprocess(self, event: Any, scores: np.ndarray, has_candidates: np.ndarray) -> None:
        names = self.params.flav_names
        n = len(has_candidates)
        scores = np.asarray(scores, dtype=np.float32).reshape(n, -1) if n else np.zeros((0, len(names)), np.float32)
        if scores.shape[1] != len(names):
            raise ValueError(f"the model gives {scores.shape[1]} scores per jet but flav_names has {len(names)}: {names}")
        scores = np.where(has_candidates[:, None], scores, np.float32(-1.0)).astype(np.float32)
        for i, name in enumerate(names):
            event.put(np.ascontiguousarray(scores[:, i]), name)
