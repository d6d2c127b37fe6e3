"""ParticleTransformer AK4 inputs for all events of a chunk at once.

:func:`build_part_inputs_chunk` computes, vectorised over the events *and* the jets of a chunk (flat
``content`` + ``offsets`` columns, as :class:`framework.io.chunk.Column` holds them), exactly what
:func:`.features.build_part_inputs` computes for each event alone: same values bit for bit, same dtypes,
same per-event shapes (every jet padded to the event's largest counts clamped to ``[min_slots, max]``).
The per-candidate feature formulas, bounds, sort keys and feature order are the ones of
:mod:`.features` (its ``_*_features`` / ``_*_order`` helpers, elementwise on flat arrays); this module
only replaces the per-event bookkeeping by global indices:

* links, candidates, jets and SVs get chunk-global indices (``offsets[event] + local index``); a global
  jet index orders jets by event, so one ``np.lexsort`` on (jet, CMSSW keys) sorts every jet of every
  event, and ties keep the link order as the per-event sort does;
* ``mindrsvpfcand`` runs over (link, SV of the same event) pairs with ``np.minimum.reduceat``; the SV
  matching over (jet, SV of the same event) pairs in each event's SV order;
* each input is one float32 buffer holding, event after event, that event's ``[nJet, slots, width]``
  block, so :meth:`PartChunkInputs.event` returns views (read-only: they are shared by every caller).

An event whose links are out of range (which :func:`build_part_inputs` rejects with a ``ValueError``) is
left out of the vectorised pass and :meth:`PartChunkInputs.event` runs :func:`build_part_inputs` on it,
so it fails as before; so does the whole chunk when the branches of one collection disagree on their
counts.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from .features import (
    _BTAG_FIELDS,
    _MINDR_START,
    CPF_FEATURES,
    INPUT_BRANCHES,
    INPUT_NAMES,
    MAX_CPF,
    MAX_NPF,
    MAX_SV,
    NPF_FEATURES,
    SV_FEATURES,
    _cand_sv_dr,
    _charged_order,
    _cpf_features,
    _jet_frame,
    _link_kinematics,
    _neutral_order,
    _npf_features,
    _p4,
    _rank_in_group,
    _sv_features,
    _sv_jet_delta,
    _sv_sort_key,
    build_part_inputs,
)

__all__ = ["build_part_inputs_chunk", "PartChunkInputs"]

_WIDTHS = (len(CPF_FEATURES), len(NPF_FEATURES), len(SV_FEATURES), 4, 4, 4)
_COLLECTIONS = ("Jet", "PFCands", "JetPFCands", "SV")


class PartChunkInputs:
    """The ParT AK4 inputs of every event of a chunk; :meth:`event` gives one event's
    ``(inputs, has_candidates)`` as :func:`build_part_inputs` returns them (read-only views)."""

    __slots__ = ("n_events", "_jet_off", "_has", "_buffers", "_row_off", "_slots", "_fallback", "_columns",
                 "_kwargs")

    def __init__(self, n_events, jet_off, has, buffers, row_off, slots, fallback, columns, kwargs):
        self.n_events = n_events
        self._jet_off = jet_off  # list[int], n_events + 1
        self._has = has  # bool [n jets of the chunk]
        self._buffers = buffers  # 6 float32 arrays [rows, width]
        self._row_off = row_off  # 3 lists (cpf, npf, sv) of n_events + 1 row offsets
        self._slots = slots  # 3 lists (cpf, npf, sv) of per-event slot counts
        self._fallback = fallback  # events computed by build_part_inputs (None: all; else a set)
        self._columns = columns
        self._kwargs = kwargs

    def __len__(self) -> int:
        return self.n_events

    def event(self, i: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """``(inputs, has_candidates)`` of event *i* of the chunk (``0 <= i < n_events``)."""
        i = int(i)
        if not 0 <= i < self.n_events:
            raise IndexError(f"event {i} out of range [0, {self.n_events})")
        if self._fallback is None or i in self._fallback:
            return build_part_inputs(_event_branches(self._columns, i), **self._kwargs)
        j0, j1 = self._jet_off[i], self._jet_off[i + 1]
        n_jets = j1 - j0
        inputs = {}
        for k, name in enumerate(INPUT_NAMES):
            g = k % 3
            rows = self._row_off[g]
            inputs[name] = self._buffers[k][rows[i] : rows[i + 1]].reshape(n_jets, self._slots[g][i], _WIDTHS[k])
        return inputs, self._has[j0:j1]


def _event_branches(columns: Mapping, i: int) -> dict[str, np.ndarray]:
    """Event *i* of the columns in the form :func:`build_part_inputs` takes."""
    ev = {}
    for name in INPUT_BRANCHES:
        content, offsets = columns[name]
        ev[name] = content[i] if offsets is None else content[offsets[i] : offsets[i + 1]]
    return ev


def _normalised(columns: Mapping) -> tuple[dict[str, np.ndarray] | None, int]:
    """``(flat, n_events)``: name -> content (offsets starting at 0), and ``"_off_" + collection`` -> its
    int64 offsets; a flat branch counts one value per event. ``flat`` is None when the branches of one
    collection disagree on their counts (the per-event builder then deals with each event)."""
    missing = [b for b in INPUT_BRANCHES if b not in columns]
    if missing:
        raise KeyError(
            f"build_part_inputs_chunk: branch {missing[0]!r} missing from the columns; missing: {missing}. "
            f"Declare producers.particle_transformer_ak4.features.INPUT_BRANCHES as the module's inputs."
        )
    content, offsets = columns[INPUT_BRANCHES[0]]
    n_events = len(content) if offsets is None else max(len(offsets) - 1, 0)
    flat: dict[str, np.ndarray] = {}
    for name in INPUT_BRANCHES:
        content, offsets = columns[name]
        content = np.asarray(content).reshape(-1)
        if offsets is None:
            offsets = np.arange(len(content) + 1, dtype=np.int64)
        key = "_off_" + name.split("_", 1)[0]
        ref = flat.get(key)
        if ref is None or offsets is not ref:
            offsets = np.asarray(offsets, dtype=np.int64)
            if len(offsets) != n_events + 1 or offsets[0] < 0 or offsets[-1] > len(content):
                return None, n_events
            if ref is None:
                if np.any(offsets[1:] < offsets[:-1]):
                    return None, n_events
            elif not np.array_equal(offsets - offsets[0], ref):
                return None, n_events
        flat[name] = content[offsets[0] : offsets[-1]]
        if ref is None:
            flat[key] = offsets - offsets[0]
    return flat, n_events


def build_part_inputs_chunk(
    columns: Mapping[str, tuple[np.ndarray, np.ndarray | None]],
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
) -> PartChunkInputs:
    """:func:`build_part_inputs` for every event of a chunk at once.

    ``columns`` maps each name of :data:`INPUT_BRANCHES` to ``(content, offsets)``: for a jagged branch
    the flat content of the chunk and int64 offsets (``n_events + 1``), for a flat per-event branch the
    content (``n_events``) and None. Keyword arguments as :func:`build_part_inputs`.
    ``result.event(i)`` equals ``build_part_inputs(<event i>, **kwargs)`` exactly.
    """
    if min_slots < 0 or min_slots > min(max_cpf, max_npf, max_sv):
        raise ValueError(f"min_slots must be in [0, min(max_cpf, max_npf, max_sv)], got {min_slots}")
    kwargs = dict(max_cpf=max_cpf, max_npf=max_npf, max_sv=max_sv, min_slots=min_slots,
                  pad_to_event_max=pad_to_event_max, jet_radius=jet_radius, min_candidate_pt=min_candidate_pt,
                  min_jet_pt=min_jet_pt, max_jet_eta=max_jet_eta, is_weighted_jet=is_weighted_jet)
    flat, n_events = _normalised(columns)
    if flat is None:  # inconsistent counts: every event by the per-event builder (which reports the problem)
        return PartChunkInputs(n_events, None, None, None, None, None, None, columns, kwargs)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        return _build_chunk(flat, n_events, columns, kwargs, max_cpf, max_npf, max_sv, min_slots, pad_to_event_max,
                            jet_radius, min_candidate_pt, min_jet_pt, max_jet_eta, is_weighted_jet)


def _build_chunk(flat, n_ev, columns, kwargs, max_cpf, max_npf, max_sv, min_slots, pad_to_event_max, jet_radius,
                 min_candidate_pt, min_jet_pt, max_jet_eta, is_weighted_jet):
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
    je, ux, uy, uz, filled = _jet_frame(jpt, jeta, jphi, jmass, min_jet_pt, max_jet_eta)

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
    px, py, pz, energy = _p4(pt, eta, phi, mass)

    # ---- mindrsvpfcand over (link, SV of its event) pairs
    s_eta, s_phi = get("SV_eta"), get("SV_phi")
    n_links = len(lc)
    ns = scount[le]
    drmin = np.full(n_links, _MINDR_START)
    n_pairs = int(ns.sum())
    if n_pairs:
        pair_link = np.repeat(np.arange(n_links), ns)
        first = np.cumsum(ns) - ns
        pair_sv = (soff[le] - first)[pair_link] + np.arange(n_pairs)
        dr = _cand_sv_dr(eta[pair_link], phi[pair_link], s_eta[pair_sv], s_phi[pair_sv])
        with_sv = ns > 0
        drmin[with_sv] = np.minimum(np.minimum.reduceat(dr, first[with_sv]), _MINDR_START)

    ptrel_raw, key_ptrel, key_drmin, deta, dphi, delta_r = _link_kinematics(
        pt, eta, phi, puppi, drmin, jpt[lj], jeta[lj], jphi[lj], is_weighted_jet)
    is_ch = charge != 0

    # ---- charged candidates
    sip2sig = get("JetPFCands_btagSip2dSig", link_sel)
    c = _charged_order(np.flatnonzero(is_ch), lj, key_ptrel, key_drmin, sip2sig)
    cj = lj[c]
    crank = _rank_in_group(cj)
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
    x1[rows] = _cpf_features(
        cx, cy, cz, ux[cj], uy[cj], uz[cj], delta_r[c], [get("JetPFCands_" + f, links) for f in _BTAG_FIELDS],
        ptrel_raw[c], drmin[c], get("PFCands_pvAssocQuality", cand), puppi[c], get("PFCands_trkChi2", cand),
        get("PFCands_trkQuality", cand), jet_radius)
    x4[rows] = np.stack((cx, cy, cz, energy[c]), axis=1)

    # ---- neutral candidates
    n = _neutral_order(np.flatnonzero(~is_ch), lj, key_ptrel, key_drmin)
    nj = lj[n]
    nrank = _rank_in_group(nj)
    n_n_jet = np.bincount(nj, minlength=n_jets)
    npf_slots = event_slots(n_n_jet, max_npf)
    npf_off, npf_first = jet_rows(npf_slots)
    keep = nrank < npf_slots[jet_ev[nj]]
    n, nj, nrank = n[keep], nj[keep], nrank[keep]
    ncand = lc[n]
    rows = npf_first[nj] + nrank
    x2 = np.zeros((npf_off[-1], _WIDTHS[1]), np.float32)
    x5 = np.zeros((npf_off[-1], 4), np.float32)
    x2[rows] = _npf_features(
        ptrel_raw[n], deta[n], dphi[n], delta_r[n], get("PFCands_pdgId", ncand, np.int64),
        get("PFCands_hcalFraction", ncand), drmin[n], puppi[n], jet_radius)
    x5[rows] = np.stack((px[n], py[n], pz[n], energy[n]), axis=1)

    # ---- secondary vertices: each event's in sv_vertex_comparator order, matched to its jets by dR <= R
    s_order = np.lexsort((_sv_sort_key(get("SV_dxySig")), np.repeat(events, scount)))
    nsj = scount[jet_ev]
    n_pairs = int(nsj.sum())
    pair_jet = np.repeat(np.arange(n_jets), nsj)
    first = np.cumsum(nsj) - nsj
    pair_pos = (soff[jet_ev] - first)[pair_jet] + np.arange(n_pairs)  # position in s_order
    pair_sv = s_order[pair_pos]
    sdeta, sdphi, sdr2 = _sv_jet_delta(s_eta[pair_sv], s_phi[pair_sv], jeta[pair_jet], jphi[pair_jet])
    m = np.flatnonzero((sdr2 <= jet_radius * jet_radius) & filled[pair_jet])
    sj = pair_jet[m]
    srank = _rank_in_group(sj)
    sv_slots = event_slots(np.bincount(sj, minlength=n_jets), max_sv)
    sv_off, sv_first = jet_rows(sv_slots)
    keep = srank < sv_slots[jet_ev[sj]]
    m, sj, srank = m[keep], sj[keep], srank[keep]
    sv = pair_sv[m]
    rows = sv_first[sj] + srank
    s_pt, s_mass = get("SV_pt", sv), get("SV_mass", sv)
    s_px, s_py, s_pz, s_e = _p4(s_pt, s_eta[sv], s_phi[sv], s_mass)
    x3 = np.zeros((sv_off[-1], _WIDTHS[2]), np.float32)
    x6 = np.zeros((sv_off[-1], 4), np.float32)
    x3[rows] = _sv_features(
        s_pt, sdr2[m], s_mass, sdeta[m], sdphi[m], get("SV_ntracks", sv), get("SV_chi2", sv), get("SV_ndof", sv),
        get("SV_dxy", sv), get("SV_dxySig", sv), get("SV_dlen", sv), get("SV_dlenSig", sv), get("SV_pAngle", sv),
        s_e, je[sj])
    x6[rows] = np.stack((s_px, s_py, s_pz, s_e), axis=1)

    has_candidates = filled & ((n_c_jet + n_n_jet) > 0)
    buffers = (x1, x2, x3, x4, x5, x6)
    for array in (*buffers, has_candidates):
        array.flags.writeable = False  # shared by every caller of the chunk's cache
    return PartChunkInputs(
        n_ev, joff.tolist(), has_candidates, buffers, [o.tolist() for o in (cpf_off, npf_off, sv_off)],
        [s.tolist() for s in (cpf_slots, npf_slots, sv_slots)], set(bad_events.tolist()), columns, kwargs)
