"""The ParticleTransformer AK4 input spec (names, features, slots, branches) and CMSSW's per-candidate
feature formulas, as elementwise numpy functions on flat arrays.

:mod:`.features` builds the model inputs of a batch of events from these; ``tests/part_oracle.py`` builds
one event's with the same formulas and its own per-event bookkeeping, as the test oracle. Sources of each
formula: see :mod:`.features`.
"""

from __future__ import annotations

import numpy as np

from framework.ml.jagged import rank_in_group  # noqa: F401 - part of the formulas used by the builders

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

PION_MASS = 0.13957  # reco::ParticleMasses::piPlus, used by reco::btau::etaRel
MINDR_START = 0.4  # default ``mindr`` of btagbtvdeep::mindrsvpfcand


# ------------------------------------------------------------------------- CMSSW deep_helpers.cc
def catch_infs(x: np.ndarray, replace: float = 0.0) -> np.ndarray:
    """``btagbtvdeep::catch_infs``: non-finite or |x| > 1e32 -> ``replace``."""
    return np.where(np.isfinite(x) & (x >= -1e32) & (x <= 1e32), x, replace)


_NO_BOUND = (np.nan, -np.inf, np.inf, 0.0)


def bound_columns(values: np.ndarray, spec: np.ndarray) -> np.ndarray:
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


def wrap(dphi: np.ndarray) -> np.ndarray:
    return (dphi + np.pi) % (2.0 * np.pi) - np.pi


def desc_key(v: np.ndarray) -> np.ndarray:
    """Ascending sort key for a descending sort where non-finite values rank last (SortingClass)."""
    return np.where(np.isfinite(v), -v, np.inf)




def p4(pt, eta, phi, mass):
    px, py, pz = pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)
    return px, py, pz, np.sqrt(px * px + py * py + pz * pz + mass * mass)


# ------------------------------------------------------------- feature formulas on flat arrays
# Every function below is elementwise over its (broadcast) arguments, so the values do not depend on how
# the elements are grouped (one event, a chunk of events).
BTAG_FIELDS = ("btagSip2dVal", "btagSip2dSig", "btagSip3dVal", "btagSip3dSig", "btagJetDistVal")


def jet_frame(jpt, jeta, jphi, jmass, min_jet_pt, max_jet_eta):
    """Jet energy, unit momentum direction (``jet.momentum().Unit()``) and the tag-info selection."""
    jpx, jpy, jpz, je = p4(jpt, jeta, jphi, jmass)
    jp = np.sqrt(jpx * jpx + jpy * jpy + jpz * jpz)
    filled = (jpt >= min_jet_pt) & (np.abs(jeta) <= max_jet_eta)
    return je, jpx / jp, jpy / jp, jpz / jp, filled


def cand_sv_dr(eta, phi, s_eta, s_phi):
    """deltaR(candidate, SV) as in ``mindrsvpfcand``."""
    return np.hypot(eta - s_eta, wrap(phi - s_phi))


def link_kinematics(pt, eta, phi, puppi, drmin, jpt, jeta, jphi, is_weighted_jet):
    """Per jet-candidate link (``jpt``/``jeta``/``jphi`` of the link's jet): ptrel, the float sort keys
    on ptrel and drminsv (SortingClass stores floats), deta, dphi and deltaR to the jet axis."""
    weight = puppi if is_weighted_jet else 1.0
    ptrel = (pt * weight) / jpt
    key_ptrel = desc_key((pt * weight).astype(np.float32) / jpt.astype(np.float32))
    key_drmin = desc_key(-drmin.astype(np.float32))
    deta = eta - jeta
    dphi = wrap(phi - jphi)
    return ptrel, key_ptrel, key_drmin, deta, dphi, np.hypot(deta, dphi)


def charged_order(c, jet, key_ptrel, key_drmin, sip2sig):
    """Charged links ``c`` grouped by ``jet`` (ascending), each jet's in CMSSW's order."""
    return c[np.lexsort((key_ptrel[c], key_drmin[c], desc_key(sip2sig[c].astype(np.float32)), jet[c]))]


def neutral_order(n, jet, key_ptrel, key_drmin):
    """Neutral links ``n`` grouped by ``jet`` (ascending), each jet's in CMSSW's order."""
    return n[np.lexsort((key_ptrel[n], key_drmin[n], jet[n]))]


def sv_sort_key(dxysig):
    """Ascending key of ``sv_vertex_comparator`` (dxy significance descending)."""
    return desc_key(catch_infs(dxysig, 0.0).astype(np.float32))


def sv_jet_delta(s_eta, s_phi, jeta, jphi):
    """(deta, dphi, dR^2) of SV and jet axis."""
    sdeta = s_eta - jeta
    sdphi = wrap(s_phi - jphi)
    return sdeta, sdphi, sdeta**2 + sdphi**2


def cpf_features(cx, cy, cz, ux, uy, uz, delta_r, btag, ptrel, drmin, vtx_ass, puppi, chi2, quality, jet_radius):
    """Bounded ``input_1`` rows (float64, :data:`CPF_FEATURES` order) of charged candidates; ``ux``..``uz``:
    their jet's direction, ``btag``: the link's :data:`BTAG_FIELDS` values."""
    p = np.sqrt(cx * cx + cy * cy + cz * cz)
    ppar = cx * ux + cy * uy + cz * uz
    crx = cy * uz - cz * uy
    cry = cz * ux - cx * uz
    crz = cx * uy - cy * ux
    e_pi = np.sqrt(p * p + PION_MASS**2)
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
    return bound_columns(raw, spec)


def npf_features(ptrel, deta, dphi, delta_r, pdg_id, hcal_fraction, drmin, puppi, jet_radius):
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
    return bound_columns(raw, spec)


def sv_features(pt, sdr2, mass, sdeta, sdphi, ntracks, normchi2, ndof, dxy, dxysig, dlen, dlensig, pangle, energy,
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
    return bound_columns(raw, _SV_SPEC)
