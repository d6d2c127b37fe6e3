"""ParticleTransformer AK4 (CMS Run 3) inputs from NanoAOD/PFNano-style flat columns of a batch of events.

The one builder of the algorithm's inputs: :func:`build_part_inputs` computes them for every event of a
batch (an input chunk) at once, vectorised over the events *and* their jets, and
:class:`ParticleTransformerAK4TagInfoProducer <.taginfo_producer.ParticleTransformerAK4TagInfoProducer>`
puts each event's share as a product that the ONNX and SONIC producers consume (CMSSW's TagInfo split).
It reproduces what CMSSW does in

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

Bookkeeping over a batch: links, candidates, jets and SVs get batch-global indices (``offsets[event] +
local index``); a global jet index orders jets by event, so one ``np.lexsort`` on (jet, CMSSW keys) sorts
every jet of every event, and ties keep the link order; ``mindrsvpfcand`` runs over (link, SV of the same
event) pairs with ``np.minimum.reduceat``, the SV matching over (jet, SV of the same event) pairs in each
event's SV order; each input is one float32 buffer holding, event after event, that event's
``[nJet, slots, width]`` block, so :meth:`PartInputs.event` returns read-only views.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, NamedTuple

import numpy as np

from .formulas import (
    BTAG_FIELDS,
    CPF_FEATURES,
    FLAV_NAMES,
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

__all__ = [
    "build_part_inputs",
    "PartConfig",
    "PartInputs",
    "PartTagInfo",
    "INPUT_BRANCHES",
    "INPUT_NAMES",
    "FLAV_NAMES",
    "CPF_FEATURES",
    "NPF_FEATURES",
    "SV_FEATURES",
    "MAX_CPF",
    "MAX_NPF",
    "MAX_SV",
]


@dataclass(frozen=True)
class PartConfig:
    """How the inputs are built (CMSSW's tag-info and producer settings).

    Slot counts: with ``pad_to_event_max`` (as CMSSW's SONIC producer) every jet is padded to its event's
    largest count clamped to ``[min_slots, max]``; otherwise to ``max_cpf``/``max_npf``/``max_sv``.
    ``is_weighted_jet`` multiplies the candidate pt by its PUPPI weight in ``ptrel`` (PUPPI jets).
    """

    max_cpf: int = MAX_CPF
    max_npf: int = MAX_NPF
    max_sv: int = MAX_SV
    min_slots: int = 1
    pad_to_event_max: bool = True
    jet_radius: float = 0.4
    min_candidate_pt: float = 0.95
    min_jet_pt: float = 15.0
    max_jet_eta: float = 2.5
    is_weighted_jet: bool = False

    def __post_init__(self) -> None:
        if self.min_slots < 0 or self.min_slots > min(self.max_cpf, self.max_npf, self.max_sv):
            raise ValueError(f"min_slots must be in [0, min(max_cpf, max_npf, max_sv)], got {self.min_slots}")

    @classmethod
    def from_params(cls, params: Any) -> PartConfig:
        """The settings found in a module's parameters (others keep their defaults)."""
        return cls(**{k: getattr(params, k) for k in cls.__dataclass_fields__ if k in params})


class PartTagInfo(NamedTuple):
    """One event's ParT inputs (the product of the tag-info producer): ``inputs`` maps ``input_1`` ..
    ``input_6`` to float32 arrays ``[nJet, n_cpf, 16]``, ``[nJet, n_npf, 8]``, ``[nJet, n_sv, 14]`` and the
    three 4-vector blocks (zero padded, read-only); ``has_candidates`` [nJet] is True where the jet passes
    the tag-info selection and has at least one candidate (the model returns NaN for a jet without any;
    CMSSW's producers write -1 for unfilled jets)."""

    inputs: dict[str, np.ndarray]
    has_candidates: np.ndarray


_WIDTHS = (len(CPF_FEATURES), len(NPF_FEATURES), len(SV_FEATURES), 4, 4, 4)
_COLLECTIONS = ("Jet", "PFCands", "JetPFCands", "SV")


class PartInputs:
    """The ParT AK4 inputs of every event of a batch; :meth:`event` gives one event's :class:`PartTagInfo`."""

    __slots__ = ("n_events", "_jet_off", "_has", "_buffers", "_row_off", "_slots", "_bad")

    def __init__(self, n_events, jet_off, has, buffers, row_off, slots, bad):
        self.n_events = n_events
        self._jet_off = jet_off  # list[int], n_events + 1
        self._has = has  # bool [n jets of the batch]
        self._buffers = buffers  # 6 float32 arrays [rows, width]
        self._row_off = row_off  # 3 lists (cpf, npf, sv) of n_events + 1 row offsets
        self._slots = slots  # 3 lists (cpf, npf, sv) of per-event slot counts
        self._bad = bad  # event -> why its inputs cannot be built (links out of range)

    def __len__(self) -> int:
        return self.n_events

    def event(self, i: int) -> PartTagInfo:
        """The inputs of event *i* of the batch (``0 <= i < n_events``); a ``ValueError`` for an event whose
        candidate links point outside its jets or candidates."""
        i = int(i)
        if not 0 <= i < self.n_events:
            raise IndexError(f"event {i} out of range [0, {self.n_events})")
        if i in self._bad:
            raise ValueError(self._bad[i])
        j0, j1 = self._jet_off[i], self._jet_off[i + 1]
        n_jets = j1 - j0
        inputs = {}
        for k, name in enumerate(INPUT_NAMES):
            g = k % 3
            rows = self._row_off[g]
            inputs[name] = self._buffers[k][rows[i] : rows[i + 1]].reshape(n_jets, self._slots[g][i], _WIDTHS[k])
        return PartTagInfo(inputs, self._has[j0:j1])


def _column(value: Any) -> tuple[np.ndarray, np.ndarray | None]:
    """A :class:`framework.io.chunk.Column` or a ``(content, offsets)`` pair -> the pair."""
    if isinstance(value, tuple):
        return value
    return value.content, value.offsets


def _normalised(columns: Mapping) -> tuple[dict[str, np.ndarray], int]:
    """``(flat, n_events)``: name -> content (offsets starting at 0), and ``"_off_" + collection`` -> its
    int64 offsets; a flat branch counts one value per event. Raises ``ValueError`` when the branches of one
    collection disagree on their counts (NanoAOD gives them one counter, so the file is broken)."""
    missing = [b for b in INPUT_BRANCHES if b not in columns]
    if missing:
        raise KeyError(
            f"build_part_inputs: branch {missing[0]!r} missing from the columns; missing: {missing}. "
            f"Declare producers.particle_transformer_ak4.features.INPUT_BRANCHES as the module's inputs."
        )
    content, offsets = _column(columns[INPUT_BRANCHES[0]])
    n_events = len(content) if offsets is None else max(len(offsets) - 1, 0)
    flat: dict[str, np.ndarray] = {}
    first: dict[str, str] = {}
    for name in INPUT_BRANCHES:
        content, offsets = _column(columns[name])
        content = np.asarray(content).reshape(-1)
        if offsets is None:
            offsets = np.arange(len(content) + 1, dtype=np.int64)
        collection = name.split("_", 1)[0]
        key = "_off_" + collection
        ref = flat.get(key)
        if ref is None or offsets is not ref:
            offsets = np.asarray(offsets, dtype=np.int64)
            if len(offsets) != n_events + 1 or offsets[0] < 0 or offsets[-1] > len(content) or np.any(
                    offsets[1:] < offsets[:-1]):
                raise ValueError(f"build_part_inputs: branch {name!r} has malformed offsets for {n_events} events")
            if ref is not None and not np.array_equal(offsets - offsets[0], ref):
                counts, ref_counts = np.diff(offsets), np.diff(ref)
                ev = int(np.flatnonzero(counts != ref_counts)[0])
                raise ValueError(
                    f"branches of the {collection} collection disagree on their counts: {name!r} has "
                    f"{counts[ev]} values and {first[collection]!r} has {ref_counts[ev]} in event {ev} of the batch. "
                    "NanoAOD gives a collection one counter; the input file is inconsistent: regenerate it.")
        flat[name] = content[offsets[0] : offsets[-1]]
        if ref is None:
            flat[key] = offsets - offsets[0]
            first[collection] = name
    return flat, n_events


def build_part_inputs(columns: Mapping[str, Any], config: PartConfig | None = None) -> PartInputs:
    """ParT AK4 inputs ``input_1`` .. ``input_6`` of every event of a batch.

    ``columns`` maps each name of :data:`INPUT_BRANCHES` to a :class:`framework.io.chunk.Column` or a
    ``(content, offsets)`` pair: for a jagged branch the flat content of the batch and int64 offsets
    (``n_events + 1``), for a flat per-event branch the content (``n_events``) and None. Returns a
    :class:`PartInputs`; ``result.event(i)`` is event *i*'s :class:`PartTagInfo`.
    """
    config = config or PartConfig()
    flat, n_events = _normalised(columns)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        return _build_chunk(flat, n_events, **asdict(config))


def _build_chunk(flat, n_ev, *, max_cpf, max_npf, max_sv, min_slots, pad_to_event_max, jet_radius, min_candidate_pt,
                 min_jet_pt, max_jet_eta, is_weighted_jet):
    def get(name, idx=None, dtype=np.float64):
        """Branch *name* (at the chunk-global indices *idx*) as *dtype*; gathering first converts less."""
        values = flat[name] if idx is None else flat[name][idx]
        return values.astype(dtype, copy=False)

    joff, poff, loff, soff = (flat["_off_" + c] for c in _COLLECTIONS)
    jcount, pcount, lcount, scount = (np.diff(o) for o in (joff, poff, loff, soff))
    events = np.arange(n_ev)

    # ---- jets (chunk-global index; jet_ev: the event of each jet)
    jpt, jeta, jphi, jmass = get("Jet_pt"), get("Jet_eta"), get("Jet_phi"), get("Jet_mass")
    n_jets = len(jpt)
    jet_ev = np.repeat(events, jcount)
    je, ux, uy, uz, filled = jet_frame(jpt, jeta, jphi, jmass, min_jet_pt, max_jet_eta)

    def event_slots(per_jet, maximum):
        """Slots of each event: its largest per-jet count clamped to [min_slots, maximum]."""
        if not pad_to_event_max:
            return np.full(n_ev, maximum, np.int64)
        largest = np.zeros(n_ev, np.int64)
        nonempty = jcount > 0
        if n_jets:
            largest[nonempty] = np.maximum.reduceat(per_jet, joff[:-1][nonempty])
        return np.maximum(min_slots, np.minimum(largest, maximum))

    def jet_rows(slots):
        """Row offsets of each event's [nJet, slots] block and the first row of each jet."""
        row_off = np.zeros(n_ev + 1, np.int64)
        np.cumsum(jcount * slots, out=row_off[1:])
        first = row_off[jet_ev] + (np.arange(n_jets) - joff[jet_ev]) * slots[jet_ev]
        return row_off, first

    # ---- links: events whose links are out of range are left to the per-event builder
    link_ev = np.repeat(events, lcount)
    lj = get("JetPFCands_jetIdx", dtype=np.int64)
    lc = get("JetPFCands_pFCandsIdx", dtype=np.int64)
    bad_link = (lj < 0) | (lj >= jcount[link_ev]) | (lc < 0) | (lc >= pcount[link_ev])
    bad_events = np.unique(link_ev[bad_link])
    ok = np.flatnonzero(~np.isin(link_ev, bad_events)) if len(bad_events) else np.arange(len(lj))
    lj = joff[link_ev[ok]] + lj[ok]
    lc = poff[link_ev[ok]] + lc[ok]
    pt = get("PFCands_pt", lc)
    sel = np.flatnonzero(filled[lj] & (pt >= min_candidate_pt))
    link_sel, lj, lc, pt = ok[sel], lj[sel], lc[sel], pt[sel]
    le = link_ev[link_sel]

    eta = get("PFCands_eta", lc)
    phi = get("PFCands_phi", lc)
    mass = get("PFCands_mass", lc)
    charge = get("PFCands_charge", lc, np.int64)
    puppi = get("PFCands_puppiWeight", lc)
    px, py, pz, energy = p4(pt, eta, phi, mass)

    # ---- mindrsvpfcand over (link, SV of its event) pairs
    s_eta, s_phi = get("SV_eta"), get("SV_phi")
    n_links = len(lc)
    ns = scount[le]
    drmin = np.full(n_links, MINDR_START)
    n_pairs = int(ns.sum())
    if n_pairs:
        pair_link = np.repeat(np.arange(n_links), ns)
        first = np.cumsum(ns) - ns
        pair_sv = (soff[le] - first)[pair_link] + np.arange(n_pairs)
        dr = cand_sv_dr(eta[pair_link], phi[pair_link], s_eta[pair_sv], s_phi[pair_sv])
        with_sv = ns > 0
        drmin[with_sv] = np.minimum(np.minimum.reduceat(dr, first[with_sv]), MINDR_START)

    ptrel_raw, key_ptrel, key_drmin, deta, dphi, delta_r = link_kinematics(
        pt, eta, phi, puppi, drmin, jpt[lj], jeta[lj], jphi[lj], is_weighted_jet)
    is_ch = charge != 0

    # ---- charged candidates
    sip2sig = get("JetPFCands_btagSip2dSig", link_sel)
    c = charged_order(np.flatnonzero(is_ch), lj, key_ptrel, key_drmin, sip2sig)
    cj = lj[c]
    crank = rank_in_group(cj)
    n_c_jet = np.bincount(cj, minlength=n_jets)
    cpf_slots = event_slots(n_c_jet, max_cpf)
    cpf_off, cpf_first = jet_rows(cpf_slots)
    keep = crank < cpf_slots[jet_ev[cj]]
    c, cj, crank = c[keep], cj[keep], crank[keep]
    cand = lc[c]
    links = link_sel[c]
    rows = cpf_first[cj] + crank
    x1 = np.zeros((cpf_off[-1], _WIDTHS[0]), np.float32)
    x4 = np.zeros((cpf_off[-1], 4), np.float32)
    cx, cy, cz = px[c], py[c], pz[c]
    x1[rows] = cpf_features(
        cx, cy, cz, ux[cj], uy[cj], uz[cj], delta_r[c], [get("JetPFCands_" + f, links) for f in BTAG_FIELDS],
        ptrel_raw[c], drmin[c], get("PFCands_pvAssocQuality", cand), puppi[c], get("PFCands_trkChi2", cand),
        get("PFCands_trkQuality", cand), jet_radius)
    x4[rows] = np.stack((cx, cy, cz, energy[c]), axis=1)

    # ---- neutral candidates
    n = neutral_order(np.flatnonzero(~is_ch), lj, key_ptrel, key_drmin)
    nj = lj[n]
    nrank = rank_in_group(nj)
    n_n_jet = np.bincount(nj, minlength=n_jets)
    npf_slots = event_slots(n_n_jet, max_npf)
    npf_off, npf_first = jet_rows(npf_slots)
    keep = nrank < npf_slots[jet_ev[nj]]
    n, nj, nrank = n[keep], nj[keep], nrank[keep]
    ncand = lc[n]
    rows = npf_first[nj] + nrank
    x2 = np.zeros((npf_off[-1], _WIDTHS[1]), np.float32)
    x5 = np.zeros((npf_off[-1], 4), np.float32)
    x2[rows] = npf_features(
        ptrel_raw[n], deta[n], dphi[n], delta_r[n], get("PFCands_pdgId", ncand, np.int64),
        get("PFCands_hcalFraction", ncand), drmin[n], puppi[n], jet_radius)
    x5[rows] = np.stack((px[n], py[n], pz[n], energy[n]), axis=1)

    # ---- secondary vertices: each event's in sv_vertex_comparator order, matched to its jets by dR <= R
    s_order = np.lexsort((sv_sort_key(get("SV_dxySig")), np.repeat(events, scount)))
    nsj = scount[jet_ev]
    n_pairs = int(nsj.sum())
    pair_jet = np.repeat(np.arange(n_jets), nsj)
    first = np.cumsum(nsj) - nsj
    pair_pos = (soff[jet_ev] - first)[pair_jet] + np.arange(n_pairs)  # position in s_order
    pair_sv = s_order[pair_pos]
    sdeta, sdphi, sdr2 = sv_jet_delta(s_eta[pair_sv], s_phi[pair_sv], jeta[pair_jet], jphi[pair_jet])
    m = np.flatnonzero((sdr2 <= jet_radius * jet_radius) & filled[pair_jet])
    sj = pair_jet[m]
    srank = rank_in_group(sj)
    sv_slots = event_slots(np.bincount(sj, minlength=n_jets), max_sv)
    sv_off, sv_first = jet_rows(sv_slots)
    keep = srank < sv_slots[jet_ev[sj]]
    m, sj, srank = m[keep], sj[keep], srank[keep]
    sv = pair_sv[m]
    rows = sv_first[sj] + srank
    s_pt, s_mass = get("SV_pt", sv), get("SV_mass", sv)
    s_px, s_py, s_pz, s_e = p4(s_pt, s_eta[sv], s_phi[sv], s_mass)
    x3 = np.zeros((sv_off[-1], _WIDTHS[2]), np.float32)
    x6 = np.zeros((sv_off[-1], 4), np.float32)
    x3[rows] = sv_features(
        s_pt, sdr2[m], s_mass, sdeta[m], sdphi[m], get("SV_ntracks", sv), get("SV_chi2", sv), get("SV_ndof", sv),
        get("SV_dxy", sv), get("SV_dxySig", sv), get("SV_dlen", sv), get("SV_dlenSig", sv), get("SV_pAngle", sv),
        s_e, je[sj])
    x6[rows] = np.stack((s_px, s_py, s_pz, s_e), axis=1)

    has_candidates = filled & ((n_c_jet + n_n_jet) > 0)
    buffers = (x1, x2, x3, x4, x5, x6)
    for array in (*buffers, has_candidates):
        array.flags.writeable = False  # shared by every caller of the chunk's cache
    return PartInputs(
        n_ev, joff.tolist(), has_candidates, buffers, [o.tolist() for o in (cpf_off, npf_off, sv_off)],
        [s.tolist() for s in (cpf_slots, npf_slots, sv_slots)], _link_errors(bad_events, flat, loff, jcount, pcount))


def _link_errors(bad_events, flat, loff, jcount, pcount) -> dict[int, str]:
    """Why each event of *bad_events* has no inputs: the first of its link columns out of range."""
    errors = {}
    for e in bad_events.tolist():
        for name, n in (("JetPFCands_jetIdx", jcount[e]), ("JetPFCands_pFCandsIdx", pcount[e])):
            idx = flat[name][loff[e] : loff[e + 1]]
            if idx.min() < 0 or idx.max() >= n:
                errors[e] = f"{name} out of range [0, {n}): min {idx.min()}, max {idx.max()}"
                break
    return errors
