"""Jet stages of the event generator (:mod:`framework.samples.events`): generator-level jets (directions,
flavours), reconstructed jets (sums of their candidates, pt order), the ``JetPFCands`` and ``JetSVs`` links."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .kinematics import delta_r, offsets, pt_eta_phi, round_mantissa, seg_sum
from .tracks import link_features

__all__ = ["NJET_PROBS", "GenJets", "RecoJets", "separate_jets", "gen_jets", "reco_jets", "jet_links", "jet_svs"]

#: probabilities of 0-8 generator-level jets per event
NJET_PROBS = np.array([0.05, 0.08, 0.12, 0.17, 0.20, 0.16, 0.11, 0.07, 0.04])


@dataclass
class GenJets:
    """Generator-level jets (flat over the chunk): event, momentum, axis, flavours, empty (no particles)."""

    jev: np.ndarray
    P: np.ndarray
    eta0: np.ndarray
    phi0: np.ndarray
    flav: np.ndarray
    empty: np.ndarray
    parton: np.ndarray

    @property
    def J(self) -> int:
        """Number of jets."""
        return len(self.jev)


@dataclass
class RecoJets:
    """Reconstructed jets at stored precision (indexed like :class:`GenJets`), the kept ones in output order
    (``order``, ``new_index``, per-event ``n`` and ``offsets``), and the candidate-jet links (``pj``, ``link``)."""

    pt32: np.ndarray
    eta32: np.ndarray
    phi32: np.ndarray
    mass32: np.ndarray
    keep: np.ndarray
    order: np.ndarray
    new_index: np.ndarray
    n: np.ndarray
    offsets: np.ndarray
    pj: np.ndarray
    link: np.ndarray


def separate_jets(rng: np.random.Generator, jev: np.ndarray, eta: np.ndarray, phi: np.ndarray, n_events: int,
                  min_dr: float = 0.6, tries: int = 8) -> np.ndarray:
    """Redraw jet directions that overlap (dR < min_dr) with an earlier jet of the event; drop the rest."""
    nj = np.bincount(jev, minlength=n_events)
    if len(jev) == 0:
        return np.ones(0, bool)
    off = offsets(nj)
    local = np.arange(len(jev)) - off[jev]
    m = int(nj.max())
    conflict = np.zeros(len(jev), bool)
    for _ in range(tries):
        peta = np.full((n_events, m), np.nan)
        pphi = np.full((n_events, m), np.nan)
        peta[jev, local] = eta
        pphi[jev, local] = phi
        dr = delta_r(peta[:, :, None], pphi[:, :, None], peta[:, None, :], pphi[:, None, :])
        earlier = np.tril(np.ones((m, m), bool), k=-1)  # [i, k]: k < i
        with np.errstate(invalid="ignore"):
            bad = np.any((dr < min_dr) & earlier[None], axis=2)
        conflict = bad[jev, local]
        if not conflict.any():
            break
        k = int(conflict.sum())
        eta[conflict] = rng.uniform(-2.4, 2.4, k)
        phi[conflict] = rng.uniform(-np.pi, np.pi, k)
    return ~conflict


def gen_jets(rng: np.random.Generator, nj: np.ndarray, E: int) -> GenJets:
    """*nj* jets per event: momentum, separated directions, hadron flavour (~28% b, ~10% c), parton flavour."""
    J = int(nj.sum())
    jev = np.repeat(np.arange(E), nj)
    P = np.minimum(20.0 + rng.exponential(45.0, J), 1500.0)
    eta0 = rng.normal(0, 1.1, J)
    out_eta = np.abs(eta0) > 2.4
    eta0[out_eta] = rng.uniform(-2.4, 2.4, int(out_eta.sum()))
    phi0 = rng.uniform(-np.pi, np.pi, J)
    keep = separate_jets(rng, jev, eta0, phi0, E)
    jev, P, eta0, phi0 = jev[keep], P[keep], eta0[keep], phi0[keep]
    J = len(jev)
    u = rng.random(J)
    flav = np.where(u < 0.28, 5, np.where(u < 0.38, 4, 0))
    empty = rng.random(J) < 0.01
    sgn = rng.choice([-1, 1], J)
    v = rng.random(J)
    parton = np.select(
        [flav == 5, flav == 4],
        [np.where(v < 0.9, 5 * sgn, 21), np.where(v < 0.85, 4 * sgn, 21)],
        default=np.where(v < 0.40, 21, np.where(v < 0.95, sgn * rng.integers(1, 4, J), 0)),
    )
    return GenJets(jev, P, eta0, phi0, flav, empty, parton)


def reco_jets(rng: np.random.Generator, gen: GenJets, parts: dict[str, np.ndarray], pf: dict[str, np.ndarray], eta: np.ndarray,
              phi: np.ndarray, energy: np.ndarray, E: int) -> RecoJets:
    """Reco jets: the sum of the candidates within dR < 0.4 of the axis; kept with pt >= 15, ordered by pt."""
    J = gen.J
    P, eta0, phi0, jev = gen.P, gen.eta0, gen.phi0, gen.jev
    gj = parts["gen_jet"]
    injet = gj >= 0
    pj = np.flatnonzero(injet)
    gjp = gj[pj]

    def jet_sum(sel):
        cols = [seg_sum(gjp[sel], parts[c][pj][sel], J) for c in ("px", "py", "pz")]
        return cols + [seg_sum(gjp[sel], energy[pj][sel], J)]

    d1 = delta_r(eta[pj], phi[pj], eta0[gjp], phi0[gjp])
    sx, sy, sz, _ = jet_sum(d1 < 0.4)
    a_pt, a_eta, a_phi = pt_eta_phi(sx, sy, sz)
    a_eta = np.where(a_pt > 0, a_eta, eta0)
    a_phi = np.where(a_pt > 0, a_phi, phi0)
    link = delta_r(eta[pj], phi[pj], a_eta[gjp], a_phi[gjp]) < 0.4
    sx, sy, sz, se = jet_sum(link)
    jpt, jeta, jphi = pt_eta_phi(sx, sy, sz)
    jmass = np.sqrt(np.maximum(se**2 - sx**2 - sy**2 - sz**2, 0.0))
    no_cands = jpt <= 0
    jpt = np.where(no_cands, P, jpt)
    jeta = np.where(no_cands, eta0, jeta)
    jphi = np.where(no_cands, phi0, jphi)
    jmass = np.where(no_cands, P * rng.uniform(0.06, 0.18, J), jmass)
    jpt32, jeta32, jphi32 = (round_mantissa(a, 14) for a in (jpt, jeta, jphi))
    jmass32 = round_mantissa(jmass, 14)
    # strictly within the cone of the stored axis
    link &= delta_r(pf["eta"][pj].astype(np.float64), pf["phi"][pj].astype(np.float64),
                    jeta32[gjp].astype(np.float64), jphi32[gjp].astype(np.float64)) < 0.4
    keepj = jpt32 >= 15.0
    link &= keepj[gjp]
    # order jets by pt within the event
    kj = np.flatnonzero(keepj)
    jorder = kj[np.lexsort((-jpt32[kj], jev[kj]))]
    new_index = np.full(J, -1, np.int64)
    nj_out = np.bincount(jev[jorder], minlength=E)
    j_off = offsets(nj_out)
    new_index[jorder] = np.arange(len(jorder))
    return RecoJets(jpt32, jeta32, jphi32, jmass32, keepj, jorder, new_index, nj_out, j_off, pj, link)


def jet_links(jets: RecoJets, parts: dict[str, np.ndarray], pf: dict[str, np.ndarray], pf_local: np.ndarray,
              E: int) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """The ``JetPFCands`` table (by jet, then candidate pt descending), its counts per event and per jet."""
    jorder = jets.order
    lp = jets.pj[jets.link]
    lj = jets.new_index[parts["gen_jet"][lp]]
    lorder = np.lexsort((-pf["pt"][lp], lj))
    lp, lj = lp[lorder], lj[lorder]
    lf = link_features(
        pf["pt"][lp], pf["eta"][lp], pf["phi"][lp], pf["mass"][lp], pf["charge"][lp], pf["d0"][lp],
        pf["dz"][lp], pf["d0Err"][lp], pf["dzErr"][lp], jets.pt32[jorder][lj], jets.eta32[jorder][lj],
        jets.phi32[jorder][lj],
    )
    lev = parts["ev"][lp]
    links = {
        "jetIdx": (lj - jets.offsets[lev]).astype(np.int32),
        "pFCandsIdx": pf_local[lp].astype(np.int32),
    }
    links.update({k: round_mantissa(a, 12) for k, a in lf.items()})
    n_links = np.bincount(lev, minlength=E)
    n_const = np.bincount(lj, minlength=len(jorder))
    return links, n_links, n_const


def jet_svs(jets: RecoJets, sv: dict[str, np.ndarray], sv_jet: np.ndarray, sev: np.ndarray, n_sv: np.ndarray,
            E: int) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """The ``JetSVs`` table: the vertex of a kept jet (*sv_jet*: its generator-level jet), within its cone;
    with its counts per event and per jet (*n_sv*: the SVs per event)."""
    sv_local = np.arange(len(sev)) - offsets(n_sv)[sev]
    sgj = sv_jet
    ok = jets.keep[sgj]
    ok &= delta_r(sv["eta"].astype(np.float64), sv["phi"].astype(np.float64), jets.eta32[sgj], jets.phi32[sgj]) < 0.4
    sl = np.flatnonzero(ok)
    slj = jets.new_index[sgj[sl]]
    so = np.lexsort((sl, slj))
    sl, slj = sl[so], slj[so]
    jetsvs = {
        "jetIdx": (slj - jets.offsets[sev[sl]]).astype(np.int32),
        "sVIdx": sv_local[sl].astype(np.int32),
    }
    n_jetsvs = np.bincount(sev[sl], minlength=E)
    n_svs_jet = np.bincount(slj, minlength=len(jets.order))
    return jetsvs, n_jetsvs, n_svs_jet
