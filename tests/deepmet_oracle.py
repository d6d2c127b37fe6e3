"""The test oracle of the DeepMET inputs: the per-event builder the project started with.

The framework builds the inputs once per batch of events (:func:`producers.deepmet.features.
build_deepmet_inputs`); the tests check it against this straightforward per-event version, bit for bit.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import numpy as np

from producers.deepmet.features import (
    CHARGE_EMBEDDING,
    INPUT_BRANCHES,
    MAX_CANDIDATES,
    NORM,
    PDGID_EMBEDDING,
    PF_FEATURES,
    DeepMETConfig,
    DeepMETInputs,
    build_deepmet_inputs,
)

log = logging.getLogger("producers.deepmet.features")

_PDG_KEYS = np.array(sorted(PDGID_EMBEDDING), dtype=np.int64)
_PDG_VALUES = np.array([PDGID_EMBEDDING[k] for k in _PDG_KEYS], dtype=np.float32)


def _get(ev: Mapping[str, np.ndarray], name: str, dtype) -> np.ndarray:
    try:
        value = ev[name]
    except KeyError:
        missing = [b for b in INPUT_BRANCHES if b not in ev]
        raise KeyError(
            f"build_deepmet_inputs: branch {name!r} missing from the event; missing: {missing}. "
            f"Declare producers.deepmet.features.INPUT_BRANCHES as the module's inputs."
        ) from None
    return np.asarray(value, dtype=dtype).reshape(-1)


def _scale_and_rm_outlier(value: np.ndarray, scale: float) -> np.ndarray:
    """``deepmet_helper::scale_and_rm_outlier``: value * scale, 0 beyond +-1e6."""
    out = (value * scale).astype(np.float32)
    return np.where((out > 1e6) | (out < -1e6), np.float32(0.0), out)


def _selected(ev: Mapping[str, np.ndarray], max_candidates: int, ignore_leptons: bool) -> np.ndarray:
    pdg = _get(ev, "PFCands_pdgId", np.int64)
    idx = np.arange(len(pdg))
    if ignore_leptons:
        apdg = np.abs(pdg)
        idx = idx[(apdg != 11) & (apdg != 13)]
    if len(idx) >= max_candidates:
        if len(idx) > max_candidates:
            log.warning(
                "DeepMET: %d candidates, more than the %d the model takes; keeping the first %d (as CMSSW)",
                len(idx), max_candidates, max_candidates,
            )
        idx = idx[:max_candidates]
    return idx


def build_event_inputs(
    ev: Mapping[str, np.ndarray],
    *,
    max_candidates: int = MAX_CANDIDATES,
    norm: float = NORM,
    ignore_leptons: bool = False,
) -> dict[str, np.ndarray]:
    """DeepMET inputs for one event: ``input`` [1, max, 8] and ``input_cat0/1/2`` [1, max, 1], float32.

    ``ev`` maps the branch names of :data:`INPUT_BRANCHES` to this event's 1D arrays. Raises
    ``ValueError`` for a charge or pdgId the embeddings do not know.
    """
    if max_candidates < 1:
        raise ValueError(f"max_candidates must be >= 1, got {max_candidates}")
    if not norm > 0:
        raise ValueError(f"norm must be > 0, got {norm}")
    idx = _selected(ev, max_candidates, ignore_leptons)
    n = len(idx)
    pt = _get(ev, "PFCands_pt", np.float32)[idx]
    phi = _get(ev, "PFCands_phi", np.float32)[idx]
    charge = _get(ev, "PFCands_charge", np.int64)[idx]
    pdg = _get(ev, "PFCands_pdgId", np.int64)[idx]

    bad_charge = (charge < -1) | (charge > 1)
    if bad_charge.any():
        raise ValueError(
            f"DeepMET charge embedding knows {sorted(CHARGE_EMBEDDING)}; got charge(s) "
            f"{sorted(set(charge[bad_charge].tolist()))} (candidate(s) {idx[bad_charge][:10].tolist()})"
        )
    pos = np.clip(np.searchsorted(_PDG_KEYS, pdg), 0, len(_PDG_KEYS) - 1)
    bad_pdg = _PDG_KEYS[pos] != pdg
    if bad_pdg.any():
        raise ValueError(
            f"DeepMET pdgId embedding knows {sorted(PDGID_EMBEDDING)}; got pdgId(s) "
            f"{sorted(set(pdg[bad_pdg].tolist()))} (candidate(s) {idx[bad_pdg][:10].tolist()})"
        )

    scale = np.float32(1.0 / norm)
    x = np.zeros((1, max_candidates, len(PF_FEATURES)), np.float32)
    x[0, :n, 0] = _get(ev, "PFCands_d0", np.float32)[idx]
    x[0, :n, 1] = _get(ev, "PFCands_dz", np.float32)[idx]
    x[0, :n, 2] = _get(ev, "PFCands_eta", np.float32)[idx]
    x[0, :n, 3] = _get(ev, "PFCands_mass", np.float32)[idx]
    x[0, :n, 4] = _scale_and_rm_outlier(pt, scale)
    x[0, :n, 5] = _get(ev, "PFCands_puppiWeight", np.float32)[idx]
    x[0, :n, 6] = _scale_and_rm_outlier(pt * np.cos(phi), scale)
    x[0, :n, 7] = _scale_and_rm_outlier(pt * np.sin(phi), scale)
    cat0 = np.zeros((1, max_candidates, 1), np.float32)
    cat1 = np.zeros((1, max_candidates, 1), np.float32)
    cat2 = np.zeros((1, max_candidates, 1), np.float32)
    cat0[0, :n, 0] = charge + 1
    cat1[0, :n, 0] = _PDG_VALUES[pos]
    cat2[0, :n, 0] = _get(ev, "PFCands_fromPV", np.float32)[idx]
    return {"input": x, "input_cat0": cat0, "input_cat1": cat1, "input_cat2": cat2}


def lepton_momentum_sum(ev: Mapping[str, np.ndarray]) -> tuple[float, float]:
    """Sum of px, py of electrons and muons: what ``ignore_leptons`` leaves out of the inputs and CMSSW
    subtracts from the network's MET (pass it to :func:`met_from_output`)."""
    pdg = np.abs(_get(ev, "PFCands_pdgId", np.int64))
    lep = (pdg == 11) | (pdg == 13)
    pt = _get(ev, "PFCands_pt", np.float32)[lep].astype(np.float64)
    phi = _get(ev, "PFCands_phi", np.float32)[lep].astype(np.float64)
    return float(np.sum(pt * np.cos(phi))), float(np.sum(pt * np.sin(phi)))


def build_batch_event(ev: Mapping[str, np.ndarray], **kwargs) -> DeepMETInputs:
    """The production (batch) builder run on one event (``kwargs``: :class:`DeepMETConfig` fields)."""
    columns = {}
    for name in INPUT_BRANCHES:
        value = np.asarray(ev[name]).reshape(-1)
        columns[name] = (value, np.array([0, len(value)], np.int64))
    return build_deepmet_inputs(columns, DeepMETConfig(**kwargs)).event(0)
