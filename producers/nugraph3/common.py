"""What the NuGraph3 twins share: parameters and ``postprocess`` (the network's outputs for one event -> flat
products). Both read the event's tables (the product of :mod:`.inputs_producer`) and differ only in where the
preprocessing and the network run (the job, or the Triton server): so "direct equals SONIC" holds by
construction up to the server's batching of events into one graph.

Products of a module labelled ``nuGraph3`` (the output writes ``nuGraph3_<instance>``), float32:

- per hit of plane p (u, v, y), in the plane's input order (the rows of the hit table whose
  ``local_plane`` is p, in file order): ``filter_p`` (sigmoid score: the hit is from the neutrino
  interaction) and ``semantic_p_<class>`` for the classes :data:`SEMANTIC_CLASSES` (softmax over the 7);
- per event: ``event_<class>`` for :data:`EVENT_CLASSES` (softmax over the 4) and ``vertex_x/y/z``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from .preprocess import PLANES

SEMANTIC_CLASSES: tuple[str, ...] = ("pion", "muon", "kaon", "hadron", "shower", "michel", "diffuse")
EVENT_CLASSES: tuple[str, ...] = ("cc_nue", "cc_numu", "cc_nutau", "nc")
VERTEX_COORDINATES: tuple[str, ...] = ("x", "y", "z")

COMMON_PARAMETERS: dict[str, Any] = {"src": "nuGraph3Inputs"}


def product_instances() -> list[str]:
    """The instance names of the products, in the order they are put."""
    names = []
    for p in PLANES:
        names.append(f"filter_{p}")
        names += [f"semantic_{p}_{c}" for c in SEMANTIC_CLASSES]
    names += [f"event_{c}" for c in EVENT_CLASSES]
    names += [f"vertex_{c}" for c in VERTEX_COORDINATES]
    return names


def softmax(logits: np.ndarray) -> np.ndarray:
    """Softmax over the last axis (computed in float64, returned as float32)."""
    z = np.asarray(logits, dtype=np.float64)
    z = np.exp(z - z.max(axis=-1, keepdims=True)) if z.size else z
    return (z / z.sum(axis=-1, keepdims=True) if z.size else z).astype(np.float32)


def event_products(tables: Mapping[str, np.ndarray], outputs: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """The products (instance -> value) of one event from its input *tables* and the network's *outputs* for
    it (server output names; ``e_evt``/``v_evt`` as [4]/[3] or [1, 4]/[1, 3])."""
    plane_of_hit = np.asarray(tables["hit_table_local_plane"])
    products: dict[str, Any] = {}
    for i, p in enumerate(PLANES):
        n = int(np.count_nonzero(plane_of_hit == i))
        semantic = np.asarray(outputs[f"x_semantic_{p}"], dtype=np.float32).reshape(-1, len(SEMANTIC_CLASSES))
        filt = np.asarray(outputs[f"x_filter_{p}"], dtype=np.float32).reshape(-1)
        if semantic.shape[0] != n or filt.shape[0] != n:
            raise ValueError(f"NuGraph3 gave {semantic.shape[0]} semantic and {filt.shape[0]} filter rows for plane "
                             f"{p}, which has {n} hits")
        products[f"filter_{p}"] = np.ascontiguousarray(filt)
        probs = softmax(semantic)
        for k, c in enumerate(SEMANTIC_CLASSES):
            products[f"semantic_{p}_{c}"] = np.ascontiguousarray(probs[:, k])
    probs = softmax(np.asarray(outputs["e_evt"]).reshape(-1))
    vertex = np.asarray(outputs["v_evt"], dtype=np.float32).reshape(-1)
    if probs.shape != (len(EVENT_CLASSES),) or vertex.shape != (len(VERTEX_COORDINATES),):
        raise ValueError(f"NuGraph3 gave e_evt of {probs.size} and v_evt of {vertex.size} values; expected "
                         f"{len(EVENT_CLASSES)} and {len(VERTEX_COORDINATES)}")
    for k, c in enumerate(EVENT_CLASSES):
        products[f"event_{c}"] = np.float32(probs[k])
    for k, c in enumerate(VERTEX_COORDINATES):
        products[f"vertex_{c}"] = np.float32(vertex[k])
    return products


class NuGraph3Common:
    """Mixin for the two producers: the inputs (``src``) and the products (:func:`event_products`)."""

    params: Any

    def modelInputs(self, event: Any) -> dict[str, np.ndarray]:
        """The event's 10 tables (the product of the inputs producer ``src``)."""
        return event.get(self.params.src)

    def postprocess(self, event: Any, tables: Mapping[str, np.ndarray], outputs: Mapping[str, np.ndarray]) -> None:
        for instance, value in event_products(tables, outputs).items():
            event.put(value, instance)
