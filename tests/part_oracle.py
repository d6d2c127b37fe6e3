"""The test oracle of the ParT AK4 inputs: the per-event builder.

The framework builds the inputs once per batch of events (:func:`producers.particle_transformer_ak4.features.
build_part_inputs`, vectorised over events and jets). This module keeps the straightforward per-event
builder the project started with, on the same CMSSW feature formulas (:mod:`..formulas`) but with its own
per-event bookkeeping (selection, ordering, slotting, SV matching), so the tests can check the batch
builder against it bit for bit.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from producers.particle_transformer_ak4.features import PartConfig
from producers.particle_transformer_ak4.formulas import (
    BTAG_FIELDS,
    CPF_FEATURES,
    INPUT_BRANCHES,
    INPUT_NAMES,
    MAX_CPF,
    MAX_NPF,
    MAX_SV,
    MINDR_START,
    NPF_FEATURES,
    SV_FEATURES,
    cand_sv_dr,
    charged_order,
    cpf_features,
    jet_frame,
    link_kinematics,
    neutral_order,
    npf_features,
    p4,
    rank_in_group,
    sv_features,
    sv_jet_delta,
    sv_sort_key,
)


def _get(ev: Mapping[str, np.ndarray], name: str, dtype=np.float64) -> np.ndarray:
    try:
        value = ev[name]
    except KeyError:
        missing = [b for b in INPUT_BRANCHES if b not in ev]
        raise KeyError(
            f"build_part_inputs: branch {name!r} missing from the event; missing: {missing}. "
            f"Declare producers.particle_transformer_ak4.features.INPUT_BRANCHES as the module's inputs."
        ) from None
    if type(value) is np.ndarray and value.ndim == 1:
        return value.astype(dtype, copy=False)
    return np.asarray(value, dtype=dtype).reshape(-1)


def _slots(counts: np.ndarray, maximum: int, min_slots: int, pad_to_event_max: bool) -> int:
    if not pad_to_event_max:
        return maximum
    largest = int(counts.max()) if len(counts) else 0
    return max(min_slots, min(largest, maximum))


def build_part_inputs(
    ev: Mapping[str, np.ndarray],
    *,
    max_cpf: int = MAX_CPF,
    max_npf: int = MAX_NPF,
    max_sv: int = MAX_SV,
    min_slots: int = 1,
    pad_to_event_max: bool = True,
    jet_radius: float = 0.4,
    min_candidate_pt: float = 0.95,
    min_jet_pt: float = 15.0,
    max_jet_eta: float = 2.5,
    is_weighted_jet: bool = False,
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """ParT AK4 inputs ``input_1`` .. ``input_6`` for all jets of one event, and a validity mask.

    ``ev`` maps the branch names of :data:`INPUT_BRANCHES` to this event's arrays (jagged branches as 1D
    arrays). Returns ``(inputs, has_candidates)``: float32 arrays of shapes ``[nJet, n_cpf, 16]``,
    ``[nJet, n_npf, 8]``, ``[nJet, n_sv, 14]``, ``[nJet, n_cpf, 4]``, ``[nJet, n_npf, 4]``,
    ``[nJet, n_sv, 4]`` (zero padded), and a bool ``[nJet]`` that is True where the jet passes CMSSW's
    tag-info selection (``pt >= min_jet_pt``, ``|eta| <= max_jet_eta``) and has at least one candidate
    (the model returns NaN for a jet without any; CMSSW's producers write -1 for unfilled jets).

    Slot counts: with ``pad_to_event_max`` (as CMSSW's SONIC producer) every jet is padded to the event's
    largest count clamped to ``[min_slots, max]``; otherwise to ``max_cpf``/``max_npf``/``max_sv``.
    ``is_weighted_jet`` multiplies the candidate pt by its PUPPI weight in ``ptrel`` (PUPPI jets).
    """
    if min_slots < 0 or min_slots > min(max_cpf, max_npf, max_sv):
        raise ValueError(f"min_slots must be in [0, min(max_cpf, max_npf, max_sv)], got {min_slots}")
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        return _build(ev, max_cpf, max_npf, max_sv, min_slots, pad_to_event_max, jet_radius, min_candidate_pt,
                      min_jet_pt, max_jet_eta, is_weighted_jet)


def _build(ev, max_cpf, max_npf, max_sv, min_slots, pad_to_event_max, jet_radius, min_candidate_pt, min_jet_pt,
           max_jet_eta, is_weighted_jet):
    # ---- jets
    jpt = _get(ev, "Jet_pt")
    jeta = _get(ev, "Jet_eta")
    jphi = _get(ev, "Jet_phi")
    jmass = _get(ev, "Jet_mass")
    n_jets = len(jpt)
    if n_jets == 0 and len(_get(ev, "JetPFCands_jetIdx", np.int64)) == 0:  # fast path, same result
        slots = (max_cpf, max_npf, max_sv) if not pad_to_event_max else (min_slots,) * 3
        widths = (len(CPF_FEATURES), len(NPF_FEATURES), len(SV_FEATURES), 4, 4, 4)
        inputs = {name: np.zeros((0, slots[i % 3], widths[i]), np.float32) for i, name in enumerate(INPUT_NAMES)}
        return inputs, np.zeros(0, bool)
    je, ux, uy, uz, filled = jet_frame(jpt, jeta, jphi, jmass, min_jet_pt, max_jet_eta)

    # ---- candidates reached through the links (jet daughters)
    cpt = _get(ev, "PFCands_pt")
    n_cands = len(cpt)
    lj = _get(ev, "JetPFCands_jetIdx", np.int64)
    lc = _get(ev, "JetPFCands_pFCandsIdx", np.int64)
    if len(lj) != len(lc):
        raise ValueError(f"JetPFCands_jetIdx ({len(lj)}) and JetPFCands_pFCandsIdx ({len(lc)}) differ in length")
    if len(lj) and (lj.min() < 0 or lj.max() >= n_jets):
        raise ValueError(f"JetPFCands_jetIdx out of range [0, {n_jets}): min {lj.min()}, max {lj.max()}")
    if len(lc) and (lc.min() < 0 or lc.max() >= n_cands):
        raise ValueError(f"JetPFCands_pFCandsIdx out of range [0, {n_cands}): min {lc.min()}, max {lc.max()}")
    link_sel = np.flatnonzero(filled[lj] & (cpt[lc] >= min_candidate_pt))
    lj, lc = lj[link_sel], lc[link_sel]

    pt = cpt[lc]
    eta = _get(ev, "PFCands_eta")[lc]
    phi = _get(ev, "PFCands_phi")[lc]
    mass = _get(ev, "PFCands_mass")[lc]
    charge = _get(ev, "PFCands_charge", np.int64)[lc]
    puppi = _get(ev, "PFCands_puppiWeight")[lc]
    px, py, pz, energy = p4(pt, eta, phi, mass)

    # ---- secondary vertices (all of the event)
    s_pt = _get(ev, "SV_pt")
    s_eta = _get(ev, "SV_eta")
    s_phi = _get(ev, "SV_phi")

    # mindrsvpfcand: min dR to any SV of the event, starting at 0.4
    if len(s_pt) and len(lc):
        dr = cand_sv_dr(eta[:, None], phi[:, None], s_eta[None, :], s_phi[None, :])
        drmin = np.minimum(dr.min(axis=1), MINDR_START)
    else:
        drmin = np.full(len(lc), MINDR_START)

    ptrel_raw, key_ptrel, key_drmin, deta, dphi, delta_r = link_kinematics(
        pt, eta, phi, puppi, drmin, jpt[lj], jeta[lj], jphi[lj], is_weighted_jet)
    is_ch = charge != 0

    # ---- charged candidates
    sip2sig = _get(ev, "JetPFCands_btagSip2dSig")[link_sel]
    c = charged_order(np.flatnonzero(is_ch), lj, key_ptrel, key_drmin, sip2sig)
    cj = lj[c]
    crank = rank_in_group(cj)
    n_c_jet = np.bincount(cj, minlength=n_jets)
    n_cpf = _slots(n_c_jet, max_cpf, min_slots, pad_to_event_max)
    keep = crank < n_cpf
    c, cj, crank = c[keep], cj[keep], crank[keep]
    cand = lc[c]
    links = link_sel[c]

    cx, cy, cz = px[c], py[c], pz[c]
    x1 = np.zeros((n_jets, n_cpf, len(CPF_FEATURES)), np.float32)
    x4 = np.zeros((n_jets, n_cpf, 4), np.float32)
    x1[cj, crank] = cpf_features(
        cx, cy, cz, ux[cj], uy[cj], uz[cj], delta_r[c], [_get(ev, "JetPFCands_" + f)[links] for f in BTAG_FIELDS],
        ptrel_raw[c], drmin[c], _get(ev, "PFCands_pvAssocQuality")[cand], puppi[c], _get(ev, "PFCands_trkChi2")[cand],
        _get(ev, "PFCands_trkQuality")[cand], jet_radius)
    x4[cj, crank, 0] = cx
    x4[cj, crank, 1] = cy
    x4[cj, crank, 2] = cz
    x4[cj, crank, 3] = energy[c]

    # ---- neutral candidates
    n = neutral_order(np.flatnonzero(~is_ch), lj, key_ptrel, key_drmin)
    nj = lj[n]
    nrank = rank_in_group(nj)
    n_n_jet = np.bincount(nj, minlength=n_jets)
    n_npf = _slots(n_n_jet, max_npf, min_slots, pad_to_event_max)
    keep = nrank < n_npf
    n, nj, nrank = n[keep], nj[keep], nrank[keep]
    ncand = lc[n]
    x2 = np.zeros((n_jets, n_npf, len(NPF_FEATURES)), np.float32)
    x5 = np.zeros((n_jets, n_npf, 4), np.float32)
    x2[nj, nrank] = npf_features(
        ptrel_raw[n], deta[n], dphi[n], delta_r[n], _get(ev, "PFCands_pdgId", np.int64)[ncand],
        _get(ev, "PFCands_hcalFraction")[ncand], drmin[n], puppi[n], jet_radius)
    x5[nj, nrank, 0] = px[n]
    x5[nj, nrank, 1] = py[n]
    x5[nj, nrank, 2] = pz[n]
    x5[nj, nrank, 3] = energy[n]

    # ---- secondary vertices: sorted by dxy significance (sv_vertex_comparator), matched by dR <= R
    s_order = np.argsort(sv_sort_key(_get(ev, "SV_dxySig")), kind="stable")
    s_pt, s_eta, s_phi = s_pt[s_order], s_eta[s_order], s_phi[s_order]
    s_mass = _get(ev, "SV_mass")[s_order]
    s_px, s_py, s_pz, s_e = p4(s_pt, s_eta, s_phi, s_mass)
    sdeta, sdphi, sdr2 = sv_jet_delta(s_eta[None, :], s_phi[None, :], jeta[:, None], jphi[:, None])
    match = (sdr2 <= jet_radius * jet_radius) & filled[:, None]
    srank_all = np.cumsum(match, axis=1) - 1
    n_sv = _slots(match.sum(axis=1), max_sv, min_slots, pad_to_event_max)
    sj, si = np.nonzero(match & (srank_all < n_sv))
    srank = srank_all[sj, si]
    sv = s_order[si]
    x3 = np.zeros((n_jets, n_sv, len(SV_FEATURES)), np.float32)
    x6 = np.zeros((n_jets, n_sv, 4), np.float32)
    x3[sj, srank] = sv_features(
        s_pt[si], sdr2[sj, si], s_mass[si], sdeta[sj, si], sdphi[sj, si], _get(ev, "SV_ntracks")[sv],
        _get(ev, "SV_chi2")[sv], _get(ev, "SV_ndof")[sv], _get(ev, "SV_dxy")[sv], _get(ev, "SV_dxySig")[sv],
        _get(ev, "SV_dlen")[sv], _get(ev, "SV_dlenSig")[sv], _get(ev, "SV_pAngle")[sv], s_e[si], je[sj])
    x6[sj, srank, 0] = s_px[si]
    x6[sj, srank, 1] = s_py[si]
    x6[sj, srank, 2] = s_pz[si]
    x6[sj, srank, 3] = s_e[si]

    has_candidates = filled & ((n_c_jet + n_n_jet) > 0)
    inputs = {"input_1": x1, "input_2": x2, "input_3": x3, "input_4": x4, "input_5": x5, "input_6": x6}
    return inputs, has_candidates


def build_batch_event(ev: Mapping[str, np.ndarray], **kwargs) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The production (batch) builder run on one event: ``(inputs, has_candidates)``, for tests written
    per event."""
    from producers.particle_transformer_ak4.features import build_part_inputs as build_batch

    columns = {}
    for name in INPUT_BRANCHES:
        value = np.asarray(ev[name]).reshape(-1)
        columns[name] = (value, np.array([0, len(value)], np.int64))
    return tuple(build_batch(columns, PartConfig(**kwargs)).event(0))
