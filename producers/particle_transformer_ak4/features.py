"""ParticleTransformer AK4 (CMS Run 3) inputs from NanoAOD/PFNano-style flat arrays of one event.

One pure function, :func:`build_part_inputs`, shared by the in-process ONNX producer and its SONIC twin;
:func:`.features_chunk.build_part_inputs_chunk` computes the same for all events of an input chunk at once,
with the same feature formulas (the elementwise ``_*_features`` helpers below), bit for bit.
It reproduces, vectorised over all jets of an event, what CMSSW does in

* ``RecoBTag/FeatureTools/plugins/ParticleTransformerAK4TagInfoProducer.cc`` (jet selection
  ``pt >= 15``, ``|eta| <= 2.5``; candidates with ``pt < 0.95`` skipped; charged/neutral split on
  ``charge != 0``; the sorting of candidates and secondary vertices; SVs matched to the jet by
  ``deltaR(sv, jet) <= 0.4`` among *all* SVs of the event),
* ``RecoBTag/FeatureTools/interface/ChargedCandidateConverter.h`` (``commonCandidateToFeatures``) and
  ``src/ChargedCandidateConverter.cc`` (``packedCandidateToFeatures``),
* ``RecoBTag/FeatureTools/interface/NeutralCandidateConverter.h`` (``commonCandidateToFeatures``) and
  ``src/NeutralCandidateConverter.cc``,
* ``RecoBTag/FeatureTools/src/SecondaryVertexConverter.cc`` (``svToFeatures``),
* ``RecoBTag/FeatureTools/src/TrackInfoBuilder.cc`` (trackEtaRel, trackPtRel, trackPPar, trackDeltaR,
  trackPParRatio),
* ``RecoBTag/FeatureTools/src/deep_helpers.cc`` (``catch_infs``, ``catch_infs_and_bound``,
  ``mindrsvpfcand``, ``sv_vertex_comparator``),
* ``RecoBTag/ONNXRuntime/src/tensor_fillers.cc`` (``inputs_parT``: the feature order of each input),
* ``RecoBTag/ONNXRuntime/plugins/ParticleTransformerAK4SonicJetTagsProducer.cc`` (padding every jet to
  the event's largest count, clamped to ``[1, max]``) and ``ParticleTransformerAK4ONNXJetTagsProducer.cc``.

Where the flat NanoAOD/PFNano content differs from the MiniAOD objects CMSSW uses:

* impact-parameter features (trackSip2d/3d Val/Sig, trackJetDistVal) are read from the PFNano link
  table ``JetPFCands_btag*`` (computed there by the same TrackInfoBuilder); the purely kinematic track
  features are recomputed from the candidate and jet 4-vectors (CMSSW uses the track momentum, which for
  a packed candidate equals the candidate momentum up to packing precision);
* SV quantities come from the NanoAOD ``SV_*`` table: ``dxy``/``dxySig``/``dlen``/``dlenSig`` are
  CMSSW's ``vertexDxy``/``vertexD3d`` w.r.t. the PV, ``costhetasvpv = cos(SV_pAngle)``, and the fit chi2 is
  ``SV_chi2 * SV_ndof`` (NanoAOD stores the normalized chi2);
* ``vtx_ass = PFCands_pvAssocQuality``, ``puppiw = PFCands_puppiWeight``, ``chi2 = PFCands_trkChi2``,
  ``quality = PFCands_trkQuality``, ``hadFrac = PFCands_hcalFraction``.

Ordering (``std::sort`` with ``SortingClass::compareByABCInv``, i.e. descending on key A, then B, then C;
non-finite keys rank below finite ones; ties keep the link order, CMSSW's sort is not stable):

* charged: A = trackSip2dSig (unbounded), B = -drminsv (closest to an SV first), C = pt/jet pt;
* neutral: A = -1 (constant), B = -drminsv, C = pt/jet pt;
* SVs: dxy significance descending (``sv_vertex_comparator``), then kept in that order.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import numpy as np

__all__ = [
    "build_part_inputs",
    "INPUT_BRANCHES",
    "INPUT_NAMES",
    "CPF_FEATURES",
    "NPF_FEATURES",
    "SV_FEATURES",
    "VEC4_FEATURES",
    "MAX_CPF",
    "MAX_NPF",
    "MAX_SV",
    "FLAV_NAMES",
]

log = logging.getLogger(__name__)

INPUT_NAMES = ("input_1", "input_2", "input_3", "input_4", "input_5", "input_6")
FLAV_NAMES = ("probb", "probbb", "problepb", "probc", "probuds", "probg")

CPF_FEATURES = (
    "trackEtaRel", "trackPtRel", "trackPPar", "trackDeltaR", "trackPParRatio", "trackSip2dVal",
    "trackSip2dSig", "trackSip3dVal", "trackSip3dSig", "trackJetDistVal", "ptrel", "drminsv", "vtx_ass",
    "puppiw", "chi2", "quality",
)
NPF_FEATURES = ("ptrel", "etarel", "phirel", "deltaR", "isGamma", "hadFrac", "drminsv", "puppiw")
SV_FEATURES = (
    "pt", "deltaR", "mass", "etarel", "phirel", "ntracks", "chi2", "normchi2", "dxy", "dxysig", "d3d",
    "d3dsig", "costhetasvpv", "enratio",
)
VEC4_FEATURES = ("px", "py", "pz", "e")

MAX_CPF = 25
MAX_NPF = 25
MAX_SV = 5

#: every branch :func:`build_part_inputs` reads
INPUT_BRANCHES = (
    "Jet_pt", "Jet_eta", "Jet_phi", "Jet_mass",
    "PFCands_pt", "PFCands_eta", "PFCands_phi", "PFCands_mass", "PFCands_charge", "PFCands_pdgId",
    "PFCands_puppiWeight", "PFCands_pvAssocQuality", "PFCands_trkChi2", "PFCands_trkQuality",
    "PFCands_hcalFraction",
    "JetPFCands_jetIdx", "JetPFCands_pFCandsIdx", "JetPFCands_btagSip2dVal", "JetPFCands_btagSip2dSig",
    "JetPFCands_btagSip3dVal", "JetPFCands_btagSip3dSig", "JetPFCands_btagJetDistVal",
    "SV_pt", "SV_eta", "SV_phi", "SV_mass", "SV_chi2", "SV_ndof", "SV_dxy", "SV_dxySig", "SV_dlen",
    "SV_dlenSig", "SV_pAngle", "SV_ntracks",
)

_PION_MASS = 0.13957  # reco::ParticleMasses::piPlus, used by reco::btau::etaRel
_MINDR_START = 0.4  # default ``mindr`` of btagbtvdeep::mindrsvpfcand


# ------------------------------------------------------------------------- CMSSW deep_helpers.cc
def _catch_infs(x: np.ndarray, replace: float = 0.0) -> np.ndarray:
    """``btagbtvdeep::catch_infs``: non-finite or |x| > 1e32 -> ``replace``."""
    return np.where(np.isfinite(x) & (x >= -1e32) & (x <= 1e32), x, replace)


_NO_BOUND = (np.nan, -np.inf, np.inf, 0.0)


def _bound_columns(values: np.ndarray, spec: np.ndarray) -> np.ndarray:
    """``btagbtvdeep::catch_infs_and_bound(x, replace, lower, upper, offset)`` (``use_offsets = true``)
    column by column in one pass; ``spec`` rows are (replace, lower, upper, offset), a NaN ``replace``
    marks a column CMSSW copies as it is."""
    replace, lower, upper, offset = spec
    bounded = ~np.isnan(replace)
    ok = np.isfinite(values) & (values >= -1e32) & (values <= 1e32)
    v = np.where(ok, values, replace) + offset
    v = np.where(v < lower, lower, np.where(v > upper, upper, v))
    return np.where(bounded, v, values)


def _spec(*rows: tuple[float, float, float, float]) -> np.ndarray:
    return np.array(rows, dtype=np.float64).T


# (replace, lower, upper, offset) of each feature, from ChargedCandidateConverter / NeutralCandidateConverter /
# SecondaryVertexConverter; _NO_BOUND where CMSSW copies the value as it is
_CPF_SPEC = _spec(
    (0, -5, 15, 0),  # trackEtaRel
    (0, -1, 4, 0),  # trackPtRel
    (0, -1e5, 1e5, 0),  # trackPPar
    (0, -5, 5, 0),  # trackDeltaR
    (0, -10, 100, 0),  # trackPParRatio
    (0, -1, 70, 0),  # trackSip2dVal
    (0, -1, 4e4, 0),  # trackSip2dSig
    (0, -1, 1e5, 0),  # trackSip3dVal
    (0, -1, 4e4, 0),  # trackSip3dSig
    (0, -20, 1, 0),  # trackJetDistVal
    (0, -1, 0, -1),  # ptrel = pt/jet pt - 1 in [-1, 0]
    (0, -0.4, 0, -0.4),  # drminsv = mindr - R in [-R, 0] (R patched per call)
    _NO_BOUND,  # vtx_ass
    _NO_BOUND,  # puppiw
    (300, -1, 300, 0),  # chi2
    _NO_BOUND,  # quality
)
_NPF_SPEC = _spec(
    (0, -1, 0, -1),  # ptrel
    (0, -2, 0, -0.5),  # etarel = |deta| - 0.5
    (0, -2, 0, -0.5),  # phirel = |dphi| - 0.5
    (0, -0.6, 0, -0.6),  # deltaR - 0.6
    _NO_BOUND,  # isGamma
    _NO_BOUND,  # hadFrac
    (0, -0.4, 0, -0.4),  # drminsv
    _NO_BOUND,  # puppiw
)
_SV_SPEC = _spec(
    _NO_BOUND,  # pt
    (0, -2, 0, 0),  # deltaR: |dR| - 0.5 (offset applied before)
    _NO_BOUND,  # mass
    (0, -2, 0, 0),  # etarel
    (0, -2, 0, 0),  # phirel
    _NO_BOUND,  # ntracks
    _NO_BOUND,  # chi2
    (1000, -1000, 1000, 0),  # normchi2
    _NO_BOUND,  # dxy
    (0, -1, 800, 0),  # dxysig
    _NO_BOUND,  # d3d
    (0, -1, 800, 0),  # d3dsig
    _NO_BOUND,  # costhetasvpv
    _NO_BOUND,  # enratio
)


# --------------------------------------------------------------------------------------- helpers
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


def _wrap(dphi: np.ndarray) -> np.ndarray:
    return (dphi + np.pi) % (2.0 * np.pi) - np.pi


def _desc_key(v: np.ndarray) -> np.ndarray:
    """Ascending sort key for a descending sort where non-finite values rank last (SortingClass)."""
    return np.where(np.isfinite(v), -v, np.inf)


def _rank_in_group(groups: np.ndarray) -> np.ndarray:
    """Position of each element inside its run of equal ``groups`` (groups already sorted)."""
    n = len(groups)
    if n == 0:
        return np.zeros(0, np.int64)
    idx = np.arange(n)
    start = np.ones(n, bool)
    start[1:] = groups[1:] != groups[:-1]
    return idx - np.maximum.accumulate(np.where(start, idx, 0))


def _slots(counts: np.ndarray, maximum: int, min_slots: int, pad_to_event_max: bool) -> int:
    if not pad_to_event_max:
        return maximum
    largest = int(counts.max()) if len(counts) else 0
    return max(min_slots, min(largest, maximum))


def _p4(pt, eta, phi, mass):
    px, py, pz = pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)
    return px, py, pz, np.sqrt(px * px + py * py + pz * pz + mass * mass)


# ------------------------------------------------- feature formulas on flat arrays (shared with features_chunk)
# Every function below is elementwise over its (broadcast) arguments, so the per-event builder and the
# chunk builder (:mod:`.features_chunk`) give bit-identical values however the elements are grouped.
_BTAG_FIELDS = ("btagSip2dVal", "btagSip2dSig", "btagSip3dVal", "btagSip3dSig", "btagJetDistVal")


def _jet_frame(jpt, jeta, jphi, jmass, min_jet_pt, max_jet_eta):
    """Jet energy, unit momentum direction (``jet.momentum().Unit()``) and the tag-info selection."""
    jpx, jpy, jpz, je = _p4(jpt, jeta, jphi, jmass)
    jp = np.sqrt(jpx * jpx + jpy * jpy + jpz * jpz)
    filled = (jpt >= min_jet_pt) & (np.abs(jeta) <= max_jet_eta)
    return je, jpx / jp, jpy / jp, jpz / jp, filled


def _cand_sv_dr(eta, phi, s_eta, s_phi):
    """deltaR(candidate, SV) as in ``mindrsvpfcand``."""
    return np.hypot(eta - s_eta, _wrap(phi - s_phi))


def _link_kinematics(pt, eta, phi, puppi, drmin, jpt, jeta, jphi, is_weighted_jet):
    """Per jet-candidate link (``jpt``/``jeta``/``jphi`` of the link's jet): ptrel, the float sort keys
    on ptrel and drminsv (SortingClass stores floats), deta, dphi and deltaR to the jet axis."""
    weight = puppi if is_weighted_jet else 1.0
    ptrel = (pt * weight) / jpt
    key_ptrel = _desc_key((pt * weight).astype(np.float32) / jpt.astype(np.float32))
    key_drmin = _desc_key(-drmin.astype(np.float32))
    deta = eta - jeta
    dphi = _wrap(phi - jphi)
    return ptrel, key_ptrel, key_drmin, deta, dphi, np.hypot(deta, dphi)


def _charged_order(c, jet, key_ptrel, key_drmin, sip2sig):
    """Charged links ``c`` grouped by ``jet`` (ascending), each jet's in CMSSW's order."""
    return c[np.lexsort((key_ptrel[c], key_drmin[c], _desc_key(sip2sig[c].astype(np.float32)), jet[c]))]


def _neutral_order(n, jet, key_ptrel, key_drmin):
    """Neutral links ``n`` grouped by ``jet`` (ascending), each jet's in CMSSW's order."""
    return n[np.lexsort((key_ptrel[n], key_drmin[n], jet[n]))]


def _sv_sort_key(dxysig):
    """Ascending key of ``sv_vertex_comparator`` (dxy significance descending)."""
    return _desc_key(_catch_infs(dxysig, 0.0).astype(np.float32))


def _sv_jet_delta(s_eta, s_phi, jeta, jphi):
    """(deta, dphi, dR^2) of SV and jet axis."""
    sdeta = s_eta - jeta
    sdphi = _wrap(s_phi - jphi)
    return sdeta, sdphi, sdeta**2 + sdphi**2


def _cpf_features(cx, cy, cz, ux, uy, uz, delta_r, btag, ptrel, drmin, vtx_ass, puppi, chi2, quality, jet_radius):
    """Bounded ``input_1`` rows (float64, :data:`CPF_FEATURES` order) of charged candidates; ``ux``..``uz``:
    their jet's direction, ``btag``: the link's :data:`_BTAG_FIELDS` values."""
    p = np.sqrt(cx * cx + cy * cy + cz * cz)
    ppar = cx * ux + cy * uy + cz * uz
    crx = cy * uz - cz * uy
    cry = cz * ux - cx * uz
    crz = cx * uy - cy * ux
    e_pi = np.sqrt(p * p + _PION_MASS**2)
    raw = np.empty((len(cx), len(CPF_FEATURES)))
    raw[:, 0] = 0.5 * np.log((e_pi + ppar) / (e_pi - ppar))  # reco::btau::etaRel
    raw[:, 1] = np.sqrt(crx * crx + cry * cry + crz * crz)  # trackPtRel = |p x jetdir|
    raw[:, 2] = ppar  # trackPPar
    raw[:, 3] = delta_r  # trackDeltaR
    raw[:, 4] = ppar / p  # trackPParRatio
    for i, values in enumerate(btag):
        raw[:, 5 + i] = values
    raw[:, 10] = ptrel
    raw[:, 11] = drmin
    raw[:, 12] = vtx_ass
    raw[:, 13] = puppi
    raw[:, 14] = chi2
    raw[:, 15] = quality
    spec = _CPF_SPEC.copy()
    spec[1:, 11] = (-jet_radius, 0.0, -jet_radius)
    return _bound_columns(raw, spec)


def _npf_features(ptrel, deta, dphi, delta_r, pdg_id, hcal_fraction, drmin, puppi, jet_radius):
    """Bounded ``input_2`` rows (float64, :data:`NPF_FEATURES` order) of neutral candidates."""
    raw = np.empty((len(ptrel), len(NPF_FEATURES)))
    raw[:, 0] = ptrel
    raw[:, 1] = np.abs(deta)
    raw[:, 2] = np.abs(dphi)
    raw[:, 3] = delta_r
    raw[:, 4] = np.abs(pdg_id) == 22
    raw[:, 5] = hcal_fraction
    raw[:, 6] = drmin
    raw[:, 7] = puppi
    spec = _NPF_SPEC.copy()
    spec[1:, 6] = (-jet_radius, 0.0, -jet_radius)
    return _bound_columns(raw, spec)


def _sv_features(pt, sdr2, mass, sdeta, sdphi, ntracks, normchi2, ndof, dxy, dxysig, dlen, dlensig, pangle, energy,
                 jet_energy):
    """Bounded ``input_3`` rows (float64, :data:`SV_FEATURES` order) of jet-matched SVs."""
    chi2 = normchi2 * ndof  # NanoAOD stores the normalized chi2
    raw = np.empty((len(pt), len(SV_FEATURES)))
    raw[:, 0] = pt
    raw[:, 1] = np.sqrt(sdr2) - 0.5
    raw[:, 2] = mass
    raw[:, 3] = np.abs(sdeta) - 0.5
    raw[:, 4] = np.abs(sdphi) - 0.5
    raw[:, 5] = ntracks
    raw[:, 6] = chi2
    raw[:, 7] = chi2 / ndof
    raw[:, 8] = dxy
    raw[:, 9] = dxysig
    raw[:, 10] = dlen
    raw[:, 11] = dlensig
    raw[:, 12] = np.cos(pangle)  # vertexDdotP
    raw[:, 13] = energy / jet_energy
    return _bound_columns(raw, _SV_SPEC)


# ----------------------------------------------------------------------------------- the builder
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
    je, ux, uy, uz, filled = _jet_frame(jpt, jeta, jphi, jmass, min_jet_pt, max_jet_eta)

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
    px, py, pz, energy = _p4(pt, eta, phi, mass)

    # ---- secondary vertices (all of the event)
    s_pt = _get(ev, "SV_pt")
    s_eta = _get(ev, "SV_eta")
    s_phi = _get(ev, "SV_phi")

    # mindrsvpfcand: min dR to any SV of the event, starting at 0.4
    if len(s_pt) and len(lc):
        dr = _cand_sv_dr(eta[:, None], phi[:, None], s_eta[None, :], s_phi[None, :])
        drmin = np.minimum(dr.min(axis=1), _MINDR_START)
    else:
        drmin = np.full(len(lc), _MINDR_START)

    ptrel_raw, key_ptrel, key_drmin, deta, dphi, delta_r = _link_kinematics(
        pt, eta, phi, puppi, drmin, jpt[lj], jeta[lj], jphi[lj], is_weighted_jet)
    is_ch = charge != 0

    # ---- charged candidates
    sip2sig = _get(ev, "JetPFCands_btagSip2dSig")[link_sel]
    c = _charged_order(np.flatnonzero(is_ch), lj, key_ptrel, key_drmin, sip2sig)
    cj = lj[c]
    crank = _rank_in_group(cj)
    n_c_jet = np.bincount(cj, minlength=n_jets)
    n_cpf = _slots(n_c_jet, max_cpf, min_slots, pad_to_event_max)
    keep = crank < n_cpf
    c, cj, crank = c[keep], cj[keep], crank[keep]
    cand = lc[c]
    links = link_sel[c]

    cx, cy, cz = px[c], py[c], pz[c]
    x1 = np.zeros((n_jets, n_cpf, len(CPF_FEATURES)), np.float32)
    x4 = np.zeros((n_jets, n_cpf, 4), np.float32)
    x1[cj, crank] = _cpf_features(
        cx, cy, cz, ux[cj], uy[cj], uz[cj], delta_r[c], [_get(ev, "JetPFCands_" + f)[links] for f in _BTAG_FIELDS],
        ptrel_raw[c], drmin[c], _get(ev, "PFCands_pvAssocQuality")[cand], puppi[c], _get(ev, "PFCands_trkChi2")[cand],
        _get(ev, "PFCands_trkQuality")[cand], jet_radius)
    x4[cj, crank, 0] = cx
    x4[cj, crank, 1] = cy
    x4[cj, crank, 2] = cz
    x4[cj, crank, 3] = energy[c]

    # ---- neutral candidates
    n = _neutral_order(np.flatnonzero(~is_ch), lj, key_ptrel, key_drmin)
    nj = lj[n]
    nrank = _rank_in_group(nj)
    n_n_jet = np.bincount(nj, minlength=n_jets)
    n_npf = _slots(n_n_jet, max_npf, min_slots, pad_to_event_max)
    keep = nrank < n_npf
    n, nj, nrank = n[keep], nj[keep], nrank[keep]
    ncand = lc[n]
    x2 = np.zeros((n_jets, n_npf, len(NPF_FEATURES)), np.float32)
    x5 = np.zeros((n_jets, n_npf, 4), np.float32)
    x2[nj, nrank] = _npf_features(
        ptrel_raw[n], deta[n], dphi[n], delta_r[n], _get(ev, "PFCands_pdgId", np.int64)[ncand],
        _get(ev, "PFCands_hcalFraction")[ncand], drmin[n], puppi[n], jet_radius)
    x5[nj, nrank, 0] = px[n]
    x5[nj, nrank, 1] = py[n]
    x5[nj, nrank, 2] = pz[n]
    x5[nj, nrank, 3] = energy[n]

    # ---- secondary vertices: sorted by dxy significance (sv_vertex_comparator), matched by dR <= R
    s_order = np.argsort(_sv_sort_key(_get(ev, "SV_dxySig")), kind="stable")
    s_pt, s_eta, s_phi = s_pt[s_order], s_eta[s_order], s_phi[s_order]
    s_mass = _get(ev, "SV_mass")[s_order]
    s_px, s_py, s_pz, s_e = _p4(s_pt, s_eta, s_phi, s_mass)
    sdeta, sdphi, sdr2 = _sv_jet_delta(s_eta[None, :], s_phi[None, :], jeta[:, None], jphi[:, None])
    match = (sdr2 <= jet_radius * jet_radius) & filled[:, None]
    srank_all = np.cumsum(match, axis=1) - 1
    n_sv = _slots(match.sum(axis=1), max_sv, min_slots, pad_to_event_max)
    sj, si = np.nonzero(match & (srank_all < n_sv))
    srank = srank_all[sj, si]
    sv = s_order[si]
    x3 = np.zeros((n_jets, n_sv, len(SV_FEATURES)), np.float32)
    x6 = np.zeros((n_jets, n_sv, 4), np.float32)
    x3[sj, srank] = _sv_features(
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
