"""DeepMET (CMS, 2018) inputs from the PF candidates of a batch of events, and its output as a MET.

The one builder of the inputs: :func:`build_deepmet_inputs` computes them for every event of a batch (an
input chunk) at once; ``DeepMETInputsProducer`` puts each event's :class:`DeepMETInputs` as a product that
the ONNX and SONIC producers consume.

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
from dataclasses import dataclass
from typing import Any

import numpy as np

from framework.ml.jagged import rank_in_group

__all__ = [
    "build_deepmet_inputs",
    "DeepMETBatch",
    "DeepMETConfig",
    "DeepMETInputs",
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


@dataclass(frozen=True)
class DeepMETConfig:
    """How the inputs are built: ``max_candidates`` slots (CMSSW's ``max_n_pf``), momenta divided by
    ``norm`` (``norm_factor``), electrons and muons left out with ``ignore_leptons``."""

    max_candidates: int = MAX_CANDIDATES
    norm: float = NORM
    ignore_leptons: bool = False

    def __post_init__(self) -> None:
        if self.max_candidates < 1:
            raise ValueError(f"max_candidates must be >= 1, got {self.max_candidates}")
        if not self.norm > 0:
            raise ValueError(f"norm must be > 0, got {self.norm}")


@dataclass(frozen=True)
class DeepMETInputs:
    """One event's DeepMET inputs (the product of the inputs producer): ``inputs`` maps ``input`` to
    [1, max, 8] and ``input_cat0/1/2`` to [1, max, 1] float32 arrays (zero padded); ``lepton_px``/``py``: the
    momentum sum of the electrons and muons left out with ``ignore_leptons`` (0 otherwise), which CMSSW
    subtracts from the network's MET (:func:`met_from_output`)."""

    inputs: dict[str, np.ndarray]
    lepton_px: float = 0.0
    lepton_py: float = 0.0


def _scale_and_rm_outlier(value: np.ndarray, scale: float) -> np.ndarray:
    """``deepmet_helper::scale_and_rm_outlier``: value * scale, 0 beyond +-1e6."""
    out = (value * scale).astype(np.float32)
    return np.where((out > 1e6) | (out < -1e6), np.float32(0.0), out)


def _column(columns: Mapping[str, Any], name: str, dtype) -> tuple[np.ndarray, np.ndarray]:
    """Branch *name* as (content starting at the first event, int64 offsets starting at 0)."""
    try:
        value = columns[name]
    except KeyError:
        missing = [b for b in INPUT_BRANCHES if b not in columns]
        raise KeyError(
            f"build_deepmet_inputs: branch {name!r} missing from the columns; missing: {missing}. "
            f"Declare producers.deepmet.features.INPUT_BRANCHES as the module's inputs."
        ) from None
    content, offsets = value if isinstance(value, tuple) else (value.content, value.offsets)
    if offsets is None:
        raise ValueError(f"build_deepmet_inputs: branch {name!r} must be jagged (one value per candidate)")
    offsets = np.asarray(offsets, np.int64)
    content = np.asarray(content).reshape(-1)[offsets[0] : offsets[-1]]
    return content.astype(dtype, copy=False), offsets - offsets[0]


class DeepMETBatch:
    """The DeepMET inputs of every event of a batch, held compactly (the selected candidates' rows);
    :meth:`event` pads one event's to the model's [1, max, ...] shapes."""

    def __init__(self, config: DeepMETConfig, rows: np.ndarray, cats: np.ndarray, row_off: np.ndarray,
                 n_selected: np.ndarray, errors: dict[int, str], leptons: tuple[np.ndarray, np.ndarray, np.ndarray] | None):
        self.config = config
        self._rows = rows  # float32 [kept candidates, 8]
        self._cats = cats  # float32 [kept candidates, 3]
        self._row_off = row_off  # int64 [n_events + 1]
        self._n_selected = n_selected  # candidates each event would use before the cut at max_candidates
        self._errors = errors  # event -> unknown charge / pdgId message
        self._leptons = leptons  # (pt, phi, offsets) of the electrons and muons, with ignore_leptons

    def __len__(self) -> int:
        return len(self._row_off) - 1

    def event(self, i: int) -> DeepMETInputs:
        """The inputs of event *i* of the batch; ``ValueError`` for a charge or pdgId the embeddings do not
        know (CMSSW's ``std::map::at`` throws)."""
        if not 0 <= i < len(self):
            raise IndexError(f"event {i} out of range [0, {len(self)})")
        if i in self._errors:
            raise ValueError(self._errors[i])
        max_n = self.config.max_candidates
        if self._n_selected[i] > max_n:
            log.warning("DeepMET: %d candidates, more than the %d the model takes; keeping the first %d (as CMSSW)",
                        self._n_selected[i], max_n, max_n)
        r0, r1 = self._row_off[i], self._row_off[i + 1]
        x = np.zeros((1, max_n, len(PF_FEATURES)), np.float32)
        x[0, : r1 - r0] = self._rows[r0:r1]
        inputs = {"input": x}
        for k in range(3):
            cat = np.zeros((1, max_n, 1), np.float32)
            cat[0, : r1 - r0, 0] = self._cats[r0:r1, k]
            inputs[f"input_cat{k}"] = cat
        lx = ly = 0.0
        if self._leptons is not None:
            pt, phi, off = self._leptons
            pt, phi = pt[off[i] : off[i + 1]], phi[off[i] : off[i + 1]]
            lx, ly = float(np.sum(pt * np.cos(phi))), float(np.sum(pt * np.sin(phi)))
        return DeepMETInputs(inputs, lx, ly)


def build_deepmet_inputs(columns: Mapping[str, Any], config: DeepMETConfig | None = None) -> DeepMETBatch:
    """DeepMET inputs of every event of a batch, vectorised over the events.

    ``columns`` maps each name of :data:`INPUT_BRANCHES` to a :class:`framework.io.chunk.Column` or a
    ``(content, offsets)`` pair over the batch. Per event, as CMSSW: candidates in collection order (with
    ``ignore_leptons`` electrons and muons take no slot), the first ``max_candidates`` of them.
    """
    config = config or DeepMETConfig()
    pdg_all, off = _column(columns, "PFCands_pdgId", np.int64)
    n_events = len(off) - 1
    event_of = np.repeat(np.arange(n_events), np.diff(off))
    local = np.arange(len(pdg_all)) - off[event_of]
    apdg = np.abs(pdg_all)
    lepton = (apdg == 11) | (apdg == 13)
    selected = np.flatnonzero(~lepton) if config.ignore_leptons else np.arange(len(pdg_all))
    sel_ev = event_of[selected]
    n_selected = np.bincount(sel_ev, minlength=n_events)
    idx = selected[rank_in_group(sel_ev) < config.max_candidates]
    ev = event_of[idx]
    row_off = np.zeros(n_events + 1, np.int64)
    np.cumsum(np.bincount(ev, minlength=n_events), out=row_off[1:])

    every = len(idx) == len(pdg_all)  # nothing left out: no gather needed

    def get(name, dtype):
        values = _column(columns, name, dtype)[0]
        return values if every else values[idx]

    pt, phi = get("PFCands_pt", np.float32), get("PFCands_phi", np.float32)
    charge, pdg = get("PFCands_charge", np.int64), (pdg_all if every else pdg_all[idx])
    pos = np.clip(np.searchsorted(_PDG_KEYS, pdg), 0, len(_PDG_KEYS) - 1)
    errors = _embedding_errors(ev, local[idx], charge, pdg, _PDG_KEYS[pos] != pdg)

    scale = np.float32(1.0 / config.norm)
    rows = np.empty((len(idx), len(PF_FEATURES)), np.float32)
    rows[:, 0] = get("PFCands_d0", np.float32)
    rows[:, 1] = get("PFCands_dz", np.float32)
    rows[:, 2] = get("PFCands_eta", np.float32)
    rows[:, 3] = get("PFCands_mass", np.float32)
    rows[:, 4] = _scale_and_rm_outlier(pt, scale)
    rows[:, 5] = get("PFCands_puppiWeight", np.float32)
    rows[:, 6] = _scale_and_rm_outlier(pt * np.cos(phi), scale)
    rows[:, 7] = _scale_and_rm_outlier(pt * np.sin(phi), scale)
    cats = np.empty((len(idx), 3), np.float32)
    cats[:, 0] = charge + 1
    cats[:, 1] = _PDG_VALUES[pos]
    cats[:, 2] = get("PFCands_fromPV", np.float32)
    leptons = None
    if config.ignore_leptons:
        lep = np.flatnonzero(lepton)
        lep_off = np.zeros(n_events + 1, np.int64)
        np.cumsum(np.bincount(event_of[lep], minlength=n_events), out=lep_off[1:])
        leptons = (_column(columns, "PFCands_pt", np.float32)[0][lep].astype(np.float64),
                   _column(columns, "PFCands_phi", np.float32)[0][lep].astype(np.float64), lep_off)
    return DeepMETBatch(config, rows, cats, row_off, n_selected, errors, leptons)


def _embedding_errors(ev, local, charge, pdg, bad_pdg) -> dict[int, str]:
    """Per event with a charge or pdgId the embeddings do not know: the message (charge first, as CMSSW
    fills the charge before the pdgId)."""
    errors: dict[int, str] = {}
    bad_charge = (charge < -1) | (charge > 1)
    for e in np.unique(ev[bad_charge | bad_pdg]).tolist():
        mine = ev == e
        bc, bp = bad_charge & mine, bad_pdg & mine
        if bc.any():
            errors[e] = (f"DeepMET charge embedding knows {sorted(CHARGE_EMBEDDING)}; got charge(s) "
                         f"{sorted(set(charge[bc].tolist()))} (candidate(s) {local[bc][:10].tolist()})")
        else:
            errors[e] = (f"DeepMET pdgId embedding knows {sorted(PDGID_EMBEDDING)}; got pdgId(s) "
                         f"{sorted(set(pdg[bp].tolist()))} (candidate(s) {local[bp][:10].tolist()})")
    return errors


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
