"""DeepMET (CMS, 2018) inputs from the PF candidates of one event, and its output as a MET.

Follows ``RecoMET/METPUSubtraction/plugins/DeepMETProducer.cc`` and ``DeepMETSonicProducer.cc``:

* candidates in collection order; with ``ignore_leptons`` electrons and muons (|pdgId| 11, 13) are
  skipped (they do not take a slot) and their px, py are subtracted from the MET afterwards;
* per candidate ``input`` = (dxy, dz, eta, mass, pt/norm, puppiWeight, px/norm, py/norm): only pt, px and
  py are scaled, by ``scale_and_rm_outlier`` (value/norm, set to 0 beyond +-1e6); mass is not scaled;
* ``input_cat0`` = charge embedding ``{-1: 0, 0: 1, 1: 2}``, ``input_cat1`` = pdgId embedding
  ``{-211: 0, -13: 1, -11: 2, 0: 3, 1: 4, 2: 5, 11: 6, 13: 7, 22: 8, 130: 9, 211: 10}``,
  ``input_cat2`` = fromPV; an unknown charge or pdgId is an error (CMSSW's ``std::map::at`` throws);
* zero padding to ``max_candidates`` (4500); beyond it the first 4500 are kept and the rest dropped,
  as CMSSW does (``break`` once the count reaches ``max_n_pf``; the SONIC producer logs a warning);
* output [2] = (MET px, MET py) / norm: the network estimates the missing transverse momentum itself,
  not the recoil.

Input names carry no ``:0`` suffix (``input``, ``input_cat0``, ...); the ONNX conversion of the model adds
it, and the producers map the names.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import numpy as np

__all__ = [
    "build_deepmet_inputs",
    "lepton_momentum_sum",
    "met_from_output",
    "INPUT_BRANCHES",
    "INPUT_NAMES",
    "PF_FEATURES",
    "CHARGE_EMBEDDING",
    "PDGID_EMBEDDING",
    "MAX_CANDIDATES",
    "NORM",
]

log = logging.getLogger(__name__)

INPUT_NAMES = ("input", "input_cat0", "input_cat1", "input_cat2")
PF_FEATURES = ("dxy", "dz", "eta", "mass", "pt", "puppiWeight", "px", "py")
CHARGE_EMBEDDING: dict[int, int] = {-1: 0, 0: 1, 1: 2}
PDGID_EMBEDDING: dict[int, int] = {
    -211: 0, -13: 1, -11: 2, 0: 3, 1: 4, 2: 5, 11: 6, 13: 7, 22: 8, 130: 9, 211: 10,
}
MAX_CANDIDATES = 4500
NORM = 50.0

#: every branch :func:`build_deepmet_inputs` reads
INPUT_BRANCHES = (
    "PFCands_pt", "PFCands_eta", "PFCands_phi", "PFCands_mass", "PFCands_d0", "PFCands_dz",
    "PFCands_puppiWeight", "PFCands_charge", "PFCands_pdgId", "PFCands_fromPV",
)

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


def build_deepmet_inputs(
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


def met_from_output(
    output: np.ndarray, *, norm: float = NORM, lepton_px: float = 0.0, lepton_py: float = 0.0
) -> tuple[float, float, float, float]:
    """``(px, py, pt, phi)`` of the MET from the model output ``[2]`` (or ``[1, 2]``) = (px, py) / norm.

    As CMSSW: ``px = output[0] * norm - lepton_px`` (likewise py); the lepton sums are non-zero only with
    ``ignore_leptons``.
    """
    out = np.asarray(output, dtype=np.float64).reshape(-1)
    if out.size != 2:
        raise ValueError(f"DeepMET output must have 2 values (px, py), got shape {np.shape(output)}")
    px = float(np.float32(out[0] * norm - lepton_px))
    py = float(np.float32(out[1] * norm - lepton_py))
    return px, py, float(np.hypot(px, py)), float(np.arctan2(py, px))
