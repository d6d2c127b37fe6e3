"""The DQM NMF anomaly model (the dism-examples ``sklearn_nmf`` recipe), shared by the direct twin, the MLServer
handler and the training script.

One monitoring element per luminosity section (e.g. ``JetMET/MET/pfMETT1/Cleaned/METSig``, 51 bins) is one row.
:meth:`NMFAnomalyModel.predict` preprocesses the rows as the training did -- each histogram divided by its
entries (sections with different event counts compare), then per-bin min-max scaling with the training sample's
minimum and range -- reconstructs them with a non-negative matrix factorisation (scikit-learn's ``NMF``, fitted
in float64: ``W = nmf.transform(x)``, reconstruction ``W @ H``) and returns the reconstruction (``output_0``,
[n, bins]) and the per-row mean squared error between the scaled row and its reconstruction (``output_1``, [n]).
A section whose MSE is above the threshold fixed at training (:func:`threshold_from`) is flagged bad.

:func:`score` is the one entry point of both twins: it casts the rows to float64 -- as the DIALS handlers do --
and calls ``predict``, so that "direct equals served" holds by construction. ``predict`` itself refuses other
dtypes with a clear error (the behaviour of the served NMF when a handler forgets the cast).

Imports only numpy here; scikit-learn is imported where a model is fitted (and by unpickling one).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

MODEL_FILE = "model.joblib"
THRESHOLD_FILE = "threshold.json"
INPUT_NAME = "input_0"
OUTPUT_RECONSTRUCTION = "output_0"
OUTPUT_MSE = "output_1"
DEFAULT_QUANTILE = 0.995
DEFAULT_MARGIN = 1.5
TRANSFORMS = ("minmax", "sqrt")


class NMFAnomalyModel:
    """Per-bin min-max preprocessing + NMF; ``predict(x) -> (reconstruction, mse)`` for float64 rows of
    histogram contents. Fitted by :meth:`fit`; persisted with joblib (``model.joblib``)."""

    def __init__(self, n_components: int = 4, *, max_iter: int = 2000, tol: float = 1e-6, seed: int = 0,
                 element: str = "", transform: str = "minmax", shape: tuple[int, int] | None = None,
                 crop: tuple[int, int] | None = None, merge: tuple[int, int] = (1, 1),
                 edges: tuple[int, ...] | None = None, flow: bool = False):
        if transform not in TRANSFORMS:
            raise ValueError(f"transform {transform!r}: expected one of {', '.join(TRANSFORMS)}")
        self.n_components = int(n_components)
        self.max_iter = int(max_iter)
        self.tol = float(tol)
        self.seed = int(seed)
        self.element = element
        self.transform = transform
        self.shape = tuple(shape) if shape else None
        self.crop = tuple(crop) if crop else None
        self.merge = tuple(merge)
        self.edges = tuple(edges) if edges else None
        self.flow = bool(flow)
        self.nmf: Any = None
        self.bin_min: np.ndarray | None = None
        self.bin_range: np.ndarray | None = None
        self.n_inputs = 0
        self.reference_entries = 0.0
        self.threshold: float = float("nan")

    @property
    def n_bins(self) -> int:
        """Bins of one input row (the element's contents, flattened)."""
        if self.nmf is None:
            raise RuntimeError("NMFAnomalyModel is not fitted")
        return int(getattr(self, "n_inputs", 0) or self.bin_min.size)

    @property
    def n_features(self) -> int:
        """Features the NMF factorises (the cells after cropping and merging)."""
        return int(self.nmf.components_.shape[1])

    def cells(self, x: np.ndarray) -> np.ndarray:
        """The rows as the model's cells: a 1-D element summed between the bin indices ``edges`` (cell i holds the
        input bins [edges[i], edges[i+1]); bins outside are dropped), a 2-D element (``shape``: x bins, y bins)
        cropped to the x bins ``crop`` [lo, hi) and merged ``merge`` (x, y) bins per cell; else as it is."""
        edges = getattr(self, "edges", None)
        if edges:
            return np.add.reduceat(x[:, :edges[-1]], list(edges[:-1]), axis=1)
        shape = getattr(self, "shape", None)
        if not shape:
            return x
        grid = x.reshape(x.shape[0], *shape)
        if self.crop:
            grid = grid[:, self.crop[0]:self.crop[1]]
        a, b = self.merge
        n, nx, ny = grid.shape
        return grid.reshape(n, nx // a, a, ny // b, b).sum(axis=(2, 4)).reshape(n, -1)

    @staticmethod
    def normalise(x: np.ndarray) -> np.ndarray:
        """Each row divided by its sum (an empty row stays zero)."""
        total = x.sum(axis=1, keepdims=True)
        return np.divide(x, total, out=np.zeros_like(x), where=total > 0)

    def scale(self, x: np.ndarray) -> np.ndarray:
        """The rows as the NMF sees them. ``minmax`` (dism-examples): normalised rows, min-max scaled per bin with
        the training sample's minimum and range. ``sqrt`` (Poisson-aware): the cells' counts scaled to the
        training sections' mean entries, variance-stabilised as ``2 sqrt(count)`` -- a good cell's residual has a
        spread of ~1 whatever its expected count, so rare bins do not dominate the MSE and an empty cell that
        expected lambda entries costs ~4 lambda."""
        if getattr(self, "transform", "minmax") == "sqrt":
            c = self.cells(x)
            total = c.sum(axis=1, keepdims=True)
            per_ref = np.divide(c * self.reference_entries, total, out=np.zeros_like(c), where=total > 0)
            return 2.0 * np.sqrt(per_ref)
        assert self.bin_min is not None and self.bin_range is not None
        return (self.normalise(x) - self.bin_min) / self.bin_range

    def fit(self, x: np.ndarray) -> NMFAnomalyModel:
        """Fit the scaling and the NMF on the rows *x* (float64 [n, bins], histogram contents of good sections)."""
        from framework import extras

        NMF = extras.sklearn_decomposition("fitting the DQM NMF model").NMF

        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[0] < 2:
            raise ValueError(f"training needs at least 2 rows of histogram contents, got shape {x.shape}")
        if self.shape and int(np.prod(self.shape)) != x.shape[1]:
            raise ValueError(f"rows of {x.shape[1]} bins do not fit the element's shape {self.shape}")
        self.n_inputs = int(x.shape[1])
        if self.transform == "sqrt":
            self.reference_entries = float(self.cells(x).sum(axis=1).mean())
        else:
            normed = self.normalise(x)
            self.bin_min = normed.min(axis=0)
            span = normed.max(axis=0) - self.bin_min
            self.bin_range = np.where(span > 0, span, 1.0)  # a bin constant in training: no scaling
        scaled = self.scale(x)
        self.nmf = NMF(n_components=min(self.n_components, scaled.shape[1]), init="nndsvda",
                       max_iter=self.max_iter, tol=self.tol, random_state=self.seed)
        self.nmf.fit(scaled)
        return self

    def predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(reconstruction [n, features], mse [n])`` of float64 rows *x* (the raw histogram contents); the
        reconstruction is of the scaled cells (:meth:`scale`), the MSE their mean squared residual."""
        if self.nmf is None:
            raise RuntimeError("NMFAnomalyModel is not fitted")
        x = np.asarray(x)
        if x.dtype != np.float64:
            raise TypeError(f"input dtype is {x.dtype}, but the NMF was fitted in float64 and refuses it "
                            f"(scikit-learn: 'H should have the same dtype as X'): cast the input to float64 "
                            "before predict (the handler's job), e.g. x.astype(np.float64)")
        if x.ndim != 2 or x.shape[1] != self.n_bins:
            raise ValueError(f"input shape {x.shape}: expected [n, {self.n_bins}] (one row of {self.n_bins} bins per "
                             f"section{', ' + self.element if self.element else ''})")
        scaled = self.scale(x)
        # NMF works on non-negative data: bins below the training minimum count in the error, not in the fit
        reconstruction = self.nmf.transform(np.clip(scaled, 0.0, None)) @ self.nmf.components_
        mse = np.mean((scaled - reconstruction) ** 2, axis=1)
        return reconstruction, mse


def score(model: NMFAnomalyModel, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The twins' and the handler's one call: rows cast to float64, then ``model.predict``."""
    return model.predict(np.asarray(x, dtype=np.float64))


def as_model_input(contents: Any, flow: bool = False) -> np.ndarray:
    """One section's histogram contents as the model input ``input_0``: FP32 [1, bins] (counts are exact in
    float32 below 2**24). Accepts a ``hist.Hist`` (its values, no flow bins), a ROOT histogram read by uproot
    (``values()``) or an array; a 2D element is flattened row-major (x slowest), as
    :func:`producers.dqm.read.me_matrix` lays out training rows. *flow*: with the under- and overflow bins (a
    ``hist.Hist``'s; the model's ``flow``, noted in its ``threshold.json``)."""
    if hasattr(contents, "values") and callable(contents.values):
        values = contents.values(flow=True) if flow else contents.values()
    else:
        values = contents
    return np.asarray(values, dtype=np.float32).reshape(1, -1)


def threshold_from(train_mse: np.ndarray, quantile: float = DEFAULT_QUANTILE, margin: float = DEFAULT_MARGIN) -> float:
    """The flag threshold: the *quantile* of the training sections' MSE times *margin* (the training sample is
    good sections only; the margin covers the statistical spread of sections the fit never saw)."""
    return float(np.quantile(np.asarray(train_mse, dtype=np.float64), quantile) * margin)


@dataclass
class Threshold:
    """The threshold file of a packaged model (``threshold.json``)."""

    threshold: float
    quantile: float
    margin: float
    element: str
    n_train: int
    rule: str = ""  # how the threshold was set, in words (written by the training)
    flow: bool = False  # the model's input rows include the element's under- and overflow bins

    @classmethod
    def read(cls, path: str | os.PathLike) -> Threshold:
        """The threshold file *path* (or ``threshold.json`` in the model folder *path*)."""
        if os.path.isdir(path):
            path = os.path.join(path, THRESHOLD_FILE)
        try:
            with open(path) as f:
                data = json.load(f)
        except OSError as exc:
            raise FileNotFoundError(f"no threshold file {path} ({exc.strerror}): train the model with "
                                    "scripts/train_dqm_nmf.py, or give the producer a threshold") from exc
        optional = {"rule", "flow"}
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k not in optional or k in data})


def load(path: str | os.PathLike) -> NMFAnomalyModel:
    """A model saved with joblib (``<model dir>/model.joblib``)."""
    from framework import extras

    model = extras.joblib("loading the DQM NMF model").load(path)
    if not isinstance(model, NMFAnomalyModel):
        raise TypeError(f"{path} holds a {type(model).__name__}, not an NMFAnomalyModel")
    return model


__all__ = ["INPUT_NAME", "MODEL_FILE", "NMFAnomalyModel", "OUTPUT_MSE", "OUTPUT_RECONSTRUCTION", "THRESHOLD_FILE",
           "Threshold", "as_model_input", "load", "score", "threshold_from"]
