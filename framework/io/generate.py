"""Sample generator: AOD-like ttbar events in NanoAOD/PFNano naming, deterministic from a seed.

``generate(path, n_events, seed)`` writes a ROOT file (uproot, TTree ``Events``) with the branches of
:mod:`framework.io.schema`: PF candidates with pileup, AK4 jets with their candidate links and b-tagging
link features, secondary vertices, MET, primary vertex.

The physics is a toy, but every number is derived from one consistent picture:

* each event has a primary vertex (PV) and ``PV_npvs - 1`` pileup vertices; pileup and underlying-event
  candidates (the large majority, several hundred to ~1500 per event) are soft and not in jets;
* 0-8 jets (ttbar-like: ~28% b, ~10% c, the rest light quarks / gluons) fragment into candidates within
  dR < 0.4 of the jet axis; the jet 4-vector is the sum of its linked candidates;
* b (c) jets contain a b (c) hadron that flies ``L ~ Exp(beta*gamma*c*tau)`` and decays into 2-5 (1-3)
  charged tracks of visible mass 1.3-4.8 GeV (0.5-1.8 GeV), photons, and in semileptonic decays an
  electron or muon plus a neutrino; the tracks originate at the decay point, so their impact parameters
  and the link features (Sip2d/3d, JetDist) follow from straight-line geometry; a secondary vertex (SV)
  is reconstructed from them in ~70% (b) / ~30% (c) of the jets; light jets get a fake 2-track SV in ~3%;
* impact parameters are smeared with pt-dependent resolutions with non-Gaussian tails;
* neutrinos (W -> l nu and semileptonic decays) make ``GenMET``; the PV system is balanced by a soft
  recoil, so ``MET`` (all candidates) scatters around ``GenMET`` by the pileup and calorimeter response,
  and ``PuppiMET`` (puppi-weighted) is closer to it.

Floating-point values are stored with a reduced mantissa, as MiniAOD packs PackedCandidates; this keeps
files small. Generation is vectorised over chunks of :data:`CHUNK_EVENTS` events; chunk ``i`` draws
from ``SeedSequence(seed, spawn_key=(i,))``, so the content is a function of the arguments only (never of
the machine or the compression), and complete chunks do not depend on ``n_events``.
"""

from __future__ import annotations

import argparse
import fnmatch
import logging
import os
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np

from framework.exceptions import did_you_mean
from framework.io.anomalies import (
    ANOMALIES,
    EXTRA_BRANCHES,
    LumiPlan,
    add_met_extras,
    add_met_noise,
    finish_met_extras,
    remove_jets_in_region,
)
from framework.io.schema import BRANCHES, COLLECTIONS, TREE_NAME, collection_fields

__all__ = ["generate", "main", "CHUNK_EVENTS"]

log = logging.getLogger(__name__)

#: events generated (and written as one basket) at a time; part of the sample definition
CHUNK_EVENTS = 250

PION_MASS = 0.13957
ELECTRON_MASS = 0.000511
MUON_MASS = 0.10566

# origin codes of generated particles (internal)
_FRAG, _HDECAY, _HPHOTON, _WLEP, _UE, _RECOIL, _PU = range(7)

_NJET_PROBS = np.array([0.05, 0.08, 0.12, 0.17, 0.20, 0.16, 0.11, 0.07, 0.04])


# ----------------------------------------------------------------------------------------- helpers
def _wrap_phi(phi: np.ndarray) -> np.ndarray:
    return (phi + np.pi) % (2.0 * np.pi) - np.pi


def _delta_r(eta1, phi1, eta2, phi2):
    return np.hypot(eta1 - eta2, _wrap_phi(phi1 - phi2))


def _p3(pt, eta, phi):
    return pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)


def _pt_eta_phi(px, py, pz):
    pt = np.hypot(px, py)
    with np.errstate(divide="ignore", invalid="ignore"):
        eta = np.where(pt > 0, np.arcsinh(pz / np.where(pt > 0, pt, 1.0)), 0.0)
    return pt, eta, np.arctan2(py, px)


def _seg_sum(seg: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    return np.bincount(seg, weights=values, minlength=n)[:n]


def _offsets(counts: np.ndarray) -> np.ndarray:
    out = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=out[1:])
    return out


def _round_mantissa(x: np.ndarray, bits: int) -> np.ndarray:
    """float32 copy of ``x`` keeping ``bits`` mantissa bits (round to nearest), like MiniAOD packing."""
    a = np.ascontiguousarray(x, dtype=np.float32)
    drop = 23 - bits
    if drop <= 0:
        return a
    u = a.view(np.uint32).astype(np.uint64)
    u = (u + (1 << (drop - 1))) & ~np.uint64((1 << drop) - 1)
    return u.astype(np.uint32).view(np.float32)


def _concat(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    keys = parts[0].keys()
    return {k: np.concatenate([p[k] for p in parts]) for k in keys}


def _particles(n: int, **fields) -> dict[str, np.ndarray]:
    """Particle table with defaults for the fields not given."""
    defaults = {
        "ev": np.zeros(n, np.int64),
        "px": np.zeros(n),
        "py": np.zeros(n),
        "pz": np.zeros(n),
        "mass": np.zeros(n),
        "charge": np.zeros(n, np.int64),
        "pdg": np.zeros(n, np.int64),
        "vx": np.zeros(n),
        "vy": np.zeros(n),
        "vz": np.zeros(n),
        "origin": np.zeros(n, np.int64),
        "gen_jet": np.full(n, -1, np.int64),
        "vtx": np.full(n, -1, np.int64),
    }
    for k, v in fields.items():
        if k not in defaults:
            raise KeyError(k)
        defaults[k] = np.broadcast_to(np.asarray(v, dtype=defaults[k].dtype), (n,)).copy()
    return defaults


def _neutral_species(rng, eta: np.ndarray, p_photon_central: float) -> np.ndarray:
    """pdgId of neutral candidates by detector region: 22/130 in |eta|<3, HF 2/1 beyond."""
    u = rng.random(len(eta))
    central = np.where(u < p_photon_central, 22, 130)
    forward = np.where(u < 0.45, 2, 1)
    return np.where(np.abs(eta) < 3.0, central, forward)


def _soft_particles(rng, ev, eta, pt, p_charged, origin, vx, vy, vz):
    """Soft candidates (UE, recoil, pileup): charged in the tracker, photons/neutral hadrons/HF outside."""
    n = len(ev)
    phi = rng.uniform(-np.pi, np.pi, n)
    charged = (rng.random(n) < p_charged) & (np.abs(eta) < 2.5)
    charge = np.where(charged, rng.choice([-1, 1], n), 0)
    pdg = np.where(charged, 211 * charge, _neutral_species(rng, eta, 0.68))
    mass = np.where(charged, PION_MASS, 0.0)
    px, py, pz = _p3(pt, eta, phi)
    return _particles(
        n, ev=ev, px=px, py=py, pz=pz, mass=mass, charge=charge, pdg=pdg, vx=vx, vy=vy, vz=vz, origin=origin
    )


# ------------------------------------------------------------------------------------ the physics
def _separate_jets(rng, jev, eta, phi, n_events, min_dr=0.6, tries=8):
    """Redraw jet directions that overlap (dR < min_dr) with an earlier jet of the event; drop the rest."""
    nj = np.bincount(jev, minlength=n_events)
    if len(jev) == 0:
        return np.ones(0, bool)
    off = _offsets(nj)
    local = np.arange(len(jev)) - off[jev]
    m = int(nj.max())
    conflict = np.zeros(len(jev), bool)
    for _ in range(tries):
        peta = np.full((n_events, m), np.nan)
        pphi = np.full((n_events, m), np.nan)
        peta[jev, local] = eta
        pphi[jev, local] = phi
        dr = _delta_r(peta[:, :, None], pphi[:, :, None], peta[:, None, :], pphi[:, None, :])
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


def _heavy_decays(rng, hj, flav, P, eta0, phi0, jev, pv):
    """b/c hadron decays in jets ``hj``: charged tracks from the decay point, photons, neutrinos."""
    H = len(hj)
    isb = flav[hj] == 5
    x_h = np.where(isb, rng.beta(7.0, 3.0, H), rng.beta(5.0, 4.0, H))
    pt_h = x_h * P[hj]
    eta_h = eta0[hj] + rng.normal(0, 0.02, H)
    phi_h = _wrap_phi(phi0[hj] + rng.normal(0, 0.02, H))
    ph = np.stack(_p3(pt_h, eta_h, phi_h), axis=1)
    pmag = np.linalg.norm(ph, axis=1)
    m_h = np.where(isb, 5.279, 1.865)
    ctau = np.where(isb, 0.0455, 0.025)
    flight = np.minimum(rng.exponential(1.0, H) * pmag / m_h * ctau, 20.0)
    ev = jev[hj]
    decay_pos = pv[ev] + flight[:, None] * ph / pmag[:, None]

    nch = np.where(isb, rng.choice([2, 3, 4, 5], H, p=[0.22, 0.33, 0.28, 0.17]),
                   rng.choice([1, 2, 3], H, p=[0.3, 0.5, 0.2]))
    semilep = rng.random(H) < np.where(isb, 0.20, 0.10)
    lep_abs = np.where(rng.random(H) < 0.5, 11, 13)
    f_nu = np.where(semilep, rng.uniform(0.1, 0.3, H), 0.0)
    f_ch = np.minimum(rng.uniform(0.45, 0.8, H), 0.95 - f_nu)
    m_vis = np.where(isb, 1.3 + 3.5 * rng.beta(2.0, 2.5, H), 0.5 + 1.3 * rng.beta(2.0, 2.0, H))

    # tracks: rest-frame momenta with sum 0 and total energy m_vis, then boost
    T = int(nch.sum())
    tdec = np.repeat(np.arange(H), nch)
    first = _offsets(nch)[:-1]
    is_first = np.zeros(T, bool)
    is_first[first] = True
    is_lep = is_first & semilep[tdec]
    charge = rng.choice([-1, 1], T)
    tmass = np.where(is_lep, np.where(lep_abs[tdec] == 11, ELECTRON_MASS, MUON_MASS), PION_MASS)
    pdg = np.where(is_lep, -charge * lep_abs[tdec], 211 * charge)
    msum = _seg_sum(tdec, tmass, H)
    multi = nch >= 2
    m_vis = np.where(multi, np.maximum(m_vis, msum + 0.1), msum)

    dirs = rng.normal(size=(T, 3))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    q = rng.uniform(0.3, 1.0, T)[:, None] * dirs
    for c in range(3):
        q[:, c] -= (_seg_sum(tdec, q[:, c], H) / nch)[tdec]
    qq = np.sum(q * q, axis=1)
    sumq = _seg_sum(tdec, np.sqrt(qq), H)
    k = np.where(multi, m_vis / np.maximum(sumq, 1e-12), 0.0)
    for _ in range(40):  # Newton from above: sum sqrt(k^2 q^2 + m^2) = m_vis, convex and increasing in k
        e = np.sqrt(k[tdec] ** 2 * qq + tmass**2)
        f = _seg_sum(tdec, e, H) - m_vis
        fp = _seg_sum(tdec, k[tdec] * qq / e, H)
        k = np.where(multi & (fp > 0), k - f / np.where(fp > 0, fp, 1.0), k)
    pstar = k[tdec, None] * q
    estar = np.sqrt(np.sum(pstar * pstar, axis=1) + tmass**2)
    pc = f_ch[:, None] * ph
    ec = np.sqrt(np.sum(pc * pc, axis=1) + m_vis**2)
    beta = pc / ec[:, None]
    gamma = ec / m_vis
    b = beta[tdec]
    g = gamma[tdec]
    b2 = np.sum(b * b, axis=1)
    bp = np.sum(b * pstar, axis=1)
    coef = np.where(b2 > 0, (g - 1.0) * bp / np.where(b2 > 0, b2, 1.0), 0.0) + g * estar
    plab = pstar + coef[:, None] * b

    tracks = _particles(
        T, ev=ev[tdec], px=plab[:, 0], py=plab[:, 1], pz=plab[:, 2], mass=tmass, charge=charge, pdg=pdg,
        vx=decay_pos[tdec, 0], vy=decay_pos[tdec, 1], vz=decay_pos[tdec, 2], origin=_HDECAY,
        gen_jet=hj[tdec], vtx=tdec,
    )

    # neutrinos of semileptonic decays
    nu_pt = f_nu * pt_h
    nu_phi = _wrap_phi(phi_h + rng.normal(0, 0.15, H))
    nu = np.stack([nu_pt * np.cos(nu_phi), nu_pt * np.sin(nu_phi)], axis=1)

    # the rest goes into one or two photons close to the hadron direction
    prem = ph - pc - np.concatenate([nu, (f_nu * ph[:, 2])[:, None]], axis=1)
    r_pt, r_eta, r_phi = _pt_eta_phi(prem[:, 0], prem[:, 1], prem[:, 2])
    ngam = np.where(r_pt > 0.5, 1 + (r_pt > 4.0), 0)
    G = int(ngam.sum())
    gdec = np.repeat(np.arange(H), ngam)
    gfirst = np.zeros(G, bool)
    gfirst[_offsets(ngam)[:-1][ngam > 0]] = True
    split = rng.uniform(0.3, 0.7, H)[gdec]
    frac = np.where(ngam[gdec] == 1, 1.0, np.where(gfirst, split, 1.0 - split))
    gpt = frac * r_pt[gdec]
    geta = r_eta[gdec] + rng.normal(0, 0.03, G)
    gphi = _wrap_phi(r_phi[gdec] + rng.normal(0, 0.03, G))
    gx, gy, gz = _p3(gpt, geta, gphi)
    photons = _particles(
        G, ev=ev[gdec], px=gx, py=gy, pz=gz, pdg=22, vx=pv[ev[gdec], 0], vy=pv[ev[gdec], 1],
        vz=pv[ev[gdec], 2], origin=_HPHOTON, gen_jet=hj[gdec],
    )
    vertices = {
        "ev": ev,
        "gen_jet": hj,
        "kind": np.where(isb, 5, 4),
        "pos": decay_pos,
        "flight": flight,
    }
    return tracks, photons, nu, x_h, vertices


def _fragmentation(rng, fj, p_frag, eta0, phi0, jev, pv):
    """Prompt fragmentation candidates of jets ``fj`` sharing ``p_frag`` GeV of transverse momentum."""
    n = np.minimum(1 + rng.poisson(4.0 + 0.16 * p_frag), 80)
    F = int(n.sum())
    seg = np.repeat(np.arange(len(fj)), n)
    g = rng.gamma(0.6, size=F) + 1e-12
    frac = g / _seg_sum(seg, g, len(fj))[seg]
    pt = np.maximum(frac * p_frag[seg], 0.2 * rng.uniform(0.8, 1.25, F))
    sigma = 0.015 + 0.12 / np.sqrt(1.0 + pt)
    deta = rng.normal(0, 1, F) * sigma
    dphi = rng.normal(0, 1, F) * sigma
    r = np.hypot(deta, dphi)
    big = r > 0.36
    scale = np.where(big, rng.uniform(0.15, 0.36, F) / np.where(big, r, 1.0), 1.0)
    jets = fj[seg]
    eta = eta0[jets] + deta * scale
    phi = _wrap_phi(phi0[jets] + dphi * scale)
    u = rng.random(F)
    charged = (u < 0.60) & (np.abs(eta) < 2.5)
    charge = np.where(charged, rng.choice([-1, 1], F), 0)
    pdg = np.where(charged, 211 * charge, np.where(u < 0.86, 22, 130))
    mass = np.where(charged, PION_MASS, 0.0)
    px, py, pz = _p3(pt, eta, phi)
    ev = jev[jets]
    return _particles(
        F, ev=ev, px=px, py=py, pz=pz, mass=mass, charge=charge, pdg=pdg, vx=pv[ev, 0], vy=pv[ev, 1],
        vz=pv[ev, 2], origin=_FRAG, gen_jet=jets,
    )


def _fake_vertices(rng, frag, light_jets, pv, first_vtx):
    """Displace the two leading charged tracks of ~3% of light jets: fake (V0/material-like) SVs."""
    chosen = light_jets[rng.random(len(light_jets)) < 0.03]
    if len(chosen) == 0:
        return frag, None
    is_chosen = np.zeros(frag["gen_jet"].max() + 1 if len(frag["gen_jet"]) else 1, bool)
    is_chosen[chosen] = True
    pt = np.hypot(frag["px"], frag["py"])
    cand = np.flatnonzero((frag["charge"] != 0) & (pt > 0.95) & is_chosen[np.maximum(frag["gen_jet"], 0)]
                          & (frag["gen_jet"] >= 0))
    if len(cand) == 0:
        return frag, None
    order = cand[np.lexsort((-pt[cand], frag["gen_jet"][cand]))]
    jets = frag["gen_jet"][order]
    start = np.r_[True, jets[1:] != jets[:-1]]
    rank = np.arange(len(order)) - np.maximum.accumulate(np.where(start, np.arange(len(order)), 0))
    top2 = order[rank < 2]
    tj = frag["gen_jet"][top2]
    ujets, counts = np.unique(tj, return_counts=True)
    ok = ujets[counts == 2]
    if len(ok) == 0:
        return frag, None
    members = top2[np.isin(tj, ok)]
    vid = np.searchsorted(ok, frag["gen_jet"][members])
    V = len(ok)
    psum = np.stack([_seg_sum(vid, frag[c][members], V) for c in ("px", "py", "pz")], axis=1)
    ev = frag["ev"][members][np.r_[True, vid[1:] != vid[:-1]]]
    flight = 0.02 + rng.exponential(0.08, V)
    pos = pv[ev] + flight[:, None] * psum / np.linalg.norm(psum, axis=1, keepdims=True)
    frag = dict(frag)
    for c, i in (("vx", 0), ("vy", 1), ("vz", 2)):
        frag[c] = frag[c].copy()
        frag[c][members] = pos[vid, i]
    frag["vtx"] = frag["vtx"].copy()
    frag["vtx"][members] = first_vtx + vid
    vertices = {"ev": ev, "gen_jet": ok, "kind": np.zeros(V, np.int64), "pos": pos, "flight": flight}
    return frag, vertices


def _track_parameters(rng, parts, pv, pu_mask):
    """d0/dz (w.r.t. the PV, straight lines), their errors and smearing, track chi2/quality, fromPV."""
    n = len(parts["px"])
    charged = parts["charge"] != 0
    ev = parts["ev"]
    px, py, pz = parts["px"], parts["py"], parts["pz"]
    pt = np.hypot(px, py)
    dx = parts["vx"] - pv[ev, 0]
    dy = parts["vy"] - pv[ev, 1]
    dzv = parts["vz"] - pv[ev, 2]
    d0_true = (-dx * py + dy * px) / pt
    dz_true = dzv - (dx * px + dy * py) / pt * pz / pt
    eta = np.arcsinh(pz / pt)
    s_d0 = np.sqrt(0.0015**2 + (0.009 / pt) ** 2) * (1.0 + 0.1 * np.abs(eta))
    s_dz = np.sqrt(0.0030**2 + (0.012 / pt) ** 2) * np.cosh(eta) ** 0.6
    tail = np.where(rng.random(n) < 0.03, rng.uniform(3.0, 6.0, n), 1.0)
    d0 = d0_true + rng.normal(0, 1, n) * s_d0 * tail
    dz = dz_true + rng.normal(0, 1, n) * s_dz * tail
    d0err = s_d0 * rng.uniform(0.9, 1.1, n)
    dzerr = s_dz * rng.uniform(0.9, 1.1, n)
    chi2 = rng.chisquare(10, n) / 10.0 * np.where(rng.random(n) < 0.02, 3.0, 1.0)
    quality = np.where(rng.random(n) < 0.94, 4, 0)

    # vertex association, as pat::PackedCandidate
    sig = np.hypot(d0 / d0err, dz / dzerr)
    u = rng.random(n)
    from_pv_prompt = np.where((sig < 4.0) & (u < 0.92), 3, np.where(sig < 30.0, 2, 1))
    close = np.abs(dz) < 0.2
    from_pv_pu = np.where(close, 1, 0)
    from_pv = np.where(pu_mask, from_pv_pu, from_pv_prompt)
    v = rng.random(n)
    assoc = np.select(
        [from_pv == 3, from_pv == 2, from_pv == 1],
        [np.where(v < 0.85, 7, 6), np.where(v < 0.6, 5, 4), np.where(v < 0.5, 1, 5)],
        default=np.where(v < 0.7, 7, np.where(v < 0.85, 6, 5)),
    )
    puppi_charged = np.where(from_pv >= 2, 1.0, 0.0)
    loose = from_pv == 1
    puppi_charged[loose] = rng.beta(2.0, 2.0, int(loose.sum()))

    z = np.zeros(n)
    return {
        "d0": np.where(charged, d0, z),
        "dz": np.where(charged, dz, z),
        "d0Err": np.where(charged, d0err, z),
        "dzErr": np.where(charged, dzerr, z),
        "trkChi2": np.where(charged, chi2, z),
        "trkQuality": np.where(charged, quality, 0),
        "fromPV": np.where(charged, from_pv, 3),
        "pvAssocQuality": np.where(charged, assoc, 7),
        "puppi_charged": puppi_charged,
    }


def _link_features(pt, eta, phi, mass, charge, d0, dz, d0err, dzerr, jpt, jeta, jphi):
    """PFNano JetPFCands b-tag features of charged candidates w.r.t. a jet axis (0 for neutrals).

    Same definitions as CMSSW's TrackInfoBuilder (reco::btau::etaRel with the pion mass, IPTools signed
    impact parameters with the sign of (PCA - PV) . jet direction, jetTrackDistance), in the straight-line
    approximation: the track passes through the point (d0 * n_perp, dz) relative to the PV.
    """
    pt, eta, phi, mass = (np.asarray(a, np.float64) for a in (pt, eta, phi, mass))
    d0, dz, d0err, dzerr = (np.asarray(a, np.float64) for a in (d0, dz, d0err, dzerr))
    px, py, pz = _p3(pt, eta, phi)
    p = np.sqrt(px * px + py * py + pz * pz)
    jx, jy, jz = _p3(np.asarray(jpt, np.float64), np.asarray(jeta, np.float64), np.asarray(jphi, np.float64))
    jn = np.sqrt(jx * jx + jy * jy + jz * jz)
    jx, jy, jz = jx / jn, jy / jn, jz / jn
    ppar = px * jx + py * jy + pz * jz
    cx, cy, cz = py * jz - pz * jy, pz * jx - px * jz, px * jy - py * jx
    pperp = np.sqrt(cx * cx + cy * cy + cz * cz)
    energy = np.sqrt(p * p + PION_MASS**2)
    with np.errstate(divide="ignore", invalid="ignore"):
        eta_rel = 0.5 * np.log((energy + ppar) / (energy - ppar))
        pt_ratio = pperp / p
        ppar_ratio = ppar / p
    # impact parameters: reference point A = d0 * n + dz * z_hat, n = (-sin phi, cos phi, 0)
    nx, ny = -np.sin(phi), np.cos(phi)
    ux, uy, uz = px / p, py / p, pz / p
    s2 = 1.0 - uz * uz
    ip3 = np.sqrt(d0 * d0 + dz * dz * s2)
    a3x = d0 * nx - dz * uz * ux
    a3y = d0 * ny - dz * uz * uy
    a3z = dz - dz * uz * uz
    sign2 = np.where(d0 * (nx * jx + ny * jy) >= 0, 1.0, -1.0)
    sign3 = np.where(a3x * jx + a3y * jy + a3z * jz >= 0, 1.0, -1.0)
    sip2 = sign2 * np.abs(d0)
    sip3 = sign3 * ip3
    with np.errstate(divide="ignore", invalid="ignore"):
        err3 = np.where(
            ip3 > 1e-7,
            np.sqrt((d0 * d0err) ** 2 + (dz * s2 * dzerr) ** 2) / np.where(ip3 > 1e-7, ip3, 1.0),
            np.hypot(d0err, np.sqrt(s2) * dzerr) / np.sqrt(2.0),
        )
        sig2 = np.where(d0err > 0, sip2 / d0err, 0.0)
        sig3 = np.where(err3 > 0, sip3 / err3, 0.0)
    # distance between the track line (through A, along u) and the jet axis (through the PV)
    wx, wy, wz = uy * jz - uz * jy, uz * jx - ux * jz, ux * jy - uy * jx
    wn = np.sqrt(wx * wx + wy * wy + wz * wz)
    ax, ay, az = d0 * nx, d0 * ny, dz
    with np.errstate(divide="ignore", invalid="ignore"):
        dist = np.where(wn > 1e-9, np.abs(ax * wx + ay * wy + az * wz) / np.where(wn > 1e-9, wn, 1.0), ip3)
    charged = np.asarray(charge) != 0
    out = {
        "btagEtaRel": eta_rel,
        "btagPtRatio": pt_ratio,
        "btagPParRatio": ppar_ratio,
        "btagSip2dVal": sip2,
        "btagSip2dSig": sig2,
        "btagSip3dVal": sip3,
        "btagSip3dSig": sig3,
        "btagJetDistVal": -dist,
    }
    return {k: np.where(charged & np.isfinite(v), v, 0.0) for k, v in out.items()}


def _generate_chunk(rng: np.random.Generator, n_events: int, first_index: int, run: int,
                    events_per_lumi: int) -> dict[str, np.ndarray]:
    """Generate ``n_events`` events; returns flat arrays per branch plus ``n<Collection>`` counts."""
    E = n_events
    idx = np.arange(first_index, first_index + E, dtype=np.int64)

    # ---- event level
    npv = np.clip(rng.poisson(35, E), 1, 90)
    pv = np.stack([rng.normal(0.0107, 0.0012, E), rng.normal(0.0418, 0.0012, E), rng.normal(0.3, 3.5, E)], 1)
    nj = rng.choice(len(_NJET_PROBS), size=E, p=_NJET_PROBS)

    # ---- jets (generator level)
    J = int(nj.sum())
    jev = np.repeat(np.arange(E), nj)
    P = np.minimum(20.0 + rng.exponential(45.0, J), 1500.0)
    eta0 = rng.normal(0, 1.1, J)
    out_eta = np.abs(eta0) > 2.4
    eta0[out_eta] = rng.uniform(-2.4, 2.4, int(out_eta.sum()))
    phi0 = rng.uniform(-np.pi, np.pi, J)
    keep = _separate_jets(rng, jev, eta0, phi0, E)
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

    # ---- heavy-flavour decays, fragmentation, fake vertices
    hj = np.flatnonzero((flav > 0) & ~empty)
    tracks, hphotons, nu_h, x_h, hvtx = _heavy_decays(rng, hj, flav, P, eta0, phi0, jev, pv)
    xfrac = np.zeros(J)
    xfrac[hj] = x_h
    fj = np.flatnonzero(~empty)
    frag = _fragmentation(rng, fj, P[fj] * (1.0 - xfrac[fj]), eta0, phi0, jev, pv)
    frag, fvtx = _fake_vertices(rng, frag, np.flatnonzero((flav == 0) & ~empty), pv, len(hj))
    vtx_parts = [hvtx] + ([fvtx] if fvtx is not None else [])
    vertices = {k: np.concatenate([vp[k] for vp in vtx_parts]) for k in hvtx}

    # ---- W leptons and neutrinos
    nw = rng.choice(3, size=E, p=[0.45, 0.44, 0.11])
    W = int(nw.sum())
    wev = np.repeat(np.arange(E), nw)
    lpt = 25.0 + rng.exponential(30.0, W)
    leta = np.clip(rng.normal(0, 1.2, W), -2.4, 2.4)
    lphi = rng.uniform(-np.pi, np.pi, W)
    lcharge = rng.choice([-1, 1], W)
    labs = np.where(rng.random(W) < 0.5, 11, 13)
    lx, ly, lz = _p3(lpt, leta, lphi)
    wleps = _particles(
        W, ev=wev, px=lx, py=ly, pz=lz, mass=np.where(labs == 11, ELECTRON_MASS, MUON_MASS), charge=lcharge,
        pdg=-lcharge * labs, vx=pv[wev, 0], vy=pv[wev, 1], vz=pv[wev, 2], origin=_WLEP,
    )
    nupt = 20.0 + rng.exponential(25.0, W)
    nuphi = rng.uniform(-np.pi, np.pi, W)
    nux = _seg_sum(wev, nupt * np.cos(nuphi), E) + _seg_sum(jev[hj], nu_h[:, 0], E)
    nuy = _seg_sum(wev, nupt * np.sin(nuphi), E) + _seg_sum(jev[hj], nu_h[:, 1], E)

    # ---- underlying event from the PV
    nue = rng.poisson(60, E)
    uev = np.repeat(np.arange(E), nue)
    U = len(uev)
    ue = _soft_particles(rng, uev, rng.uniform(-4.7, 4.7, U), 0.2 + rng.exponential(0.6, U), 0.6, _UE,
                         pv[uev, 0], pv[uev, 1], pv[uev, 2])

    # ---- soft recoil balancing the PV system (so that MET scatters around GenMET)
    hard = _concat([frag, tracks, hphotons, wleps, ue])
    ix = _seg_sum(hard["ev"], hard["px"], E) + nux
    iy = _seg_sum(hard["ev"], hard["py"], E) + nuy
    imb = np.hypot(ix, iy)
    nr = np.minimum(15 + (imb / 3.0).astype(np.int64), 150)
    rev = np.repeat(np.arange(E), nr)
    R = len(rev)
    rdir = np.arctan2(-iy, -ix)[rev]
    rphi = _wrap_phi(rdir + rng.normal(0, 0.8, R))
    reta = rng.uniform(-3.0, 3.0, R)
    rpt = (imb / nr)[rev] * rng.exponential(1.0, R)
    rx, ry = rpt * np.cos(rphi), rpt * np.sin(rphi)
    rx += ((-ix - _seg_sum(rev, rx, E)) / np.maximum(nr, 1))[rev]
    ry += ((-iy - _seg_sum(rev, ry, E)) / np.maximum(nr, 1))[rev]
    rpt = np.maximum(np.hypot(rx, ry), 1e-3)
    recoil = _soft_particles(rng, rev, reta, rpt, 0.6, _RECOIL, pv[rev, 0], pv[rev, 1], pv[rev, 2])
    rphi = np.arctan2(ry, rx)
    recoil["px"], recoil["py"], recoil["pz"] = _p3(rpt, reta, rphi)

    # ---- pileup
    npu = npv - 1
    pvz_pu = rng.normal(0.3, 3.5, int(npu.sum()))
    pu_off = _offsets(npu)
    n_pu_ch = rng.poisson(8.0 * npu)
    n_pu_ne = rng.poisson(7.0 * npu)
    parts_pu = []
    for n_pu, is_charged in ((n_pu_ch, True), (n_pu_ne, False)):
        pev = np.repeat(np.arange(E), n_pu)
        K = len(pev)
        which = pu_off[pev] + np.minimum((rng.random(K) * npu[pev]).astype(np.int64), np.maximum(npu[pev] - 1, 0))
        if is_charged:
            peta = rng.uniform(-2.5, 2.5, K)
            ppt = 0.2 + rng.exponential(0.5, K)
        else:
            peta = rng.uniform(-4.7, 4.7, K)
            ppt = 0.3 + rng.exponential(0.5, K)
        parts_pu.append(_soft_particles(
            rng, pev, peta, ppt, 1.0 if is_charged else 0.0, _PU,
            0.0107 + rng.normal(0, 0.0012, K), 0.0418 + rng.normal(0, 0.0012, K), pvz_pu[which] if K else 0.0,
        ))

    # ---- all candidates, grouped by event (PV particles first, then pileup)
    parts = _concat([frag, tracks, hphotons, wleps, ue, recoil] + parts_pu)
    pu_mask = parts["origin"] == _PU
    # calorimeter response of neutrals (after the balance: it is a detector effect)
    neutral = parts["charge"] == 0
    resp = np.where(neutral, np.where(np.abs(parts["pdg"]) == 22, rng.normal(1.0, 0.05, len(neutral)),
                                      rng.normal(1.0, 0.15, len(neutral))), 1.0)
    resp = np.clip(resp, 0.3, 2.0)
    for c in ("px", "py", "pz"):
        parts[c] = parts[c] * resp
    order = np.argsort(parts["ev"], kind="stable")
    parts = {k: a[order] for k, a in parts.items()}
    pu_mask = pu_mask[order]
    N = len(order)
    pt, eta, phi = _pt_eta_phi(parts["px"], parts["py"], parts["pz"])
    trk = _track_parameters(rng, parts, pv, pu_mask)
    charged = parts["charge"] != 0
    pdg = parts["pdg"]
    apdg = np.abs(pdg)
    puppi = trk["puppi_charged"].copy()
    neutral_classes = (
        (~charged & pu_mask, (0.5, 6.0)),  # pileup neutrals: mostly rejected
        (~charged & ~pu_mask & ((parts["origin"] <= _WLEP) | (parts["origin"] == _RECOIL)), (6.0, 1.0)),
        (~charged & (parts["origin"] == _UE), (1.5, 2.0)),  # soft PV neutrals
    )
    for mask, (alpha, beta) in neutral_classes:
        puppi[mask] = rng.beta(alpha, beta, int(mask.sum()))
    hcal = np.zeros(N)
    for code, (alpha, beta) in ((130, (8.0, 1.5)), (1, (8.0, 2.0))):
        mask = apdg == code
        hcal[mask] = rng.beta(alpha, beta, int(mask.sum()))

    pf = {
        "pt": _round_mantissa(pt, 12),
        "eta": _round_mantissa(eta, 12),
        "phi": _round_mantissa(phi, 12),
        "mass": _round_mantissa(parts["mass"], 12),
        "charge": parts["charge"].astype(np.int32),
        "pdgId": pdg.astype(np.int32),
        "d0": _round_mantissa(trk["d0"], 10),
        "dz": _round_mantissa(trk["dz"], 10),
        "d0Err": _round_mantissa(trk["d0Err"], 8),
        "dzErr": _round_mantissa(trk["dzErr"], 8),
        "puppiWeight": _round_mantissa(puppi, 8),
        "fromPV": trk["fromPV"].astype(np.int32),
        "pvAssocQuality": trk["pvAssocQuality"].astype(np.int32),
        "trkChi2": _round_mantissa(trk["trkChi2"], 8),
        "trkQuality": trk["trkQuality"].astype(np.int32),
        "hcalFraction": _round_mantissa(hcal, 8),
    }
    n_pf = np.bincount(parts["ev"], minlength=E)
    pf_off = _offsets(n_pf)
    pf_local = np.arange(N) - pf_off[parts["ev"]]

    # ---- reco jets: sum of the candidates within dR < 0.4 of the axis
    gj = parts["gen_jet"]
    injet = gj >= 0
    pj = np.flatnonzero(injet)
    gjp = gj[pj]
    energy = np.sqrt(parts["px"] ** 2 + parts["py"] ** 2 + parts["pz"] ** 2 + parts["mass"] ** 2)

    def jet_sum(sel):
        cols = [_seg_sum(gjp[sel], parts[c][pj][sel], J) for c in ("px", "py", "pz")]
        return cols + [_seg_sum(gjp[sel], energy[pj][sel], J)]

    d1 = _delta_r(eta[pj], phi[pj], eta0[gjp], phi0[gjp])
    sx, sy, sz, _ = jet_sum(d1 < 0.4)
    a_pt, a_eta, a_phi = _pt_eta_phi(sx, sy, sz)
    a_eta = np.where(a_pt > 0, a_eta, eta0)
    a_phi = np.where(a_pt > 0, a_phi, phi0)
    link = _delta_r(eta[pj], phi[pj], a_eta[gjp], a_phi[gjp]) < 0.4
    sx, sy, sz, se = jet_sum(link)
    jpt, jeta, jphi = _pt_eta_phi(sx, sy, sz)
    jmass = np.sqrt(np.maximum(se**2 - sx**2 - sy**2 - sz**2, 0.0))
    no_cands = jpt <= 0
    jpt = np.where(no_cands, P, jpt)
    jeta = np.where(no_cands, eta0, jeta)
    jphi = np.where(no_cands, phi0, jphi)
    jmass = np.where(no_cands, P * rng.uniform(0.06, 0.18, J), jmass)
    jpt32, jeta32, jphi32 = (_round_mantissa(a, 14) for a in (jpt, jeta, jphi))
    jmass32 = _round_mantissa(jmass, 14)
    # strictly within the cone of the stored axis
    link &= _delta_r(pf["eta"][pj].astype(np.float64), pf["phi"][pj].astype(np.float64),
                     jeta32[gjp].astype(np.float64), jphi32[gjp].astype(np.float64)) < 0.4
    keepj = jpt32 >= 15.0
    link &= keepj[gjp]
    # order jets by pt within the event
    kj = np.flatnonzero(keepj)
    jorder = kj[np.lexsort((-jpt32[kj], jev[kj]))]
    new_index = np.full(J, -1, np.int64)
    nj_out = np.bincount(jev[jorder], minlength=E)
    j_off = _offsets(nj_out)
    new_index[jorder] = np.arange(len(jorder))

    # ---- links JetPFCands: by jet, then candidate pt descending
    lp = pj[link]
    lj = new_index[gj[lp]]
    lorder = np.lexsort((-pf["pt"][lp], lj))
    lp, lj = lp[lorder], lj[lorder]
    lf = _link_features(
        pf["pt"][lp], pf["eta"][lp], pf["phi"][lp], pf["mass"][lp], pf["charge"][lp], pf["d0"][lp],
        pf["dz"][lp], pf["d0Err"][lp], pf["dzErr"][lp], jpt32[jorder][lj], jeta32[jorder][lj],
        jphi32[jorder][lj],
    )
    lev = parts["ev"][lp]
    links = {
        "jetIdx": (lj - j_off[lev]).astype(np.int32),
        "pFCandsIdx": pf_local[lp].astype(np.int32),
    }
    links.update({k: _round_mantissa(a, 12) for k, a in lf.items()})
    n_links = np.bincount(lev, minlength=E)
    n_const = np.bincount(lj, minlength=len(jorder))

    # ---- secondary vertices
    V = len(vertices["ev"])
    member = np.flatnonzero(parts["vtx"] >= 0)
    mv = parts["vtx"][member]
    inc = (rng.random(len(member)) < 0.92) & (pt[member] > 0.8)
    nin = np.bincount(mv[inc], minlength=V)
    kind = vertices["kind"]
    flight = vertices["flight"]
    u = rng.random(V)
    eff = np.select([kind == 5, kind == 4], [(u < 0.85) & (flight > 0.01), (u < 0.5) & (flight > 0.008)],
                    default=True)
    reco = (nin >= 2) & eff
    mi = member[inc & reco[mv]]
    mvi = parts["vtx"][mi]
    svx = _seg_sum(mvi, parts["px"][mi], V)
    svy = _seg_sum(mvi, parts["py"][mi], V)
    svz = _seg_sum(mvi, parts["pz"][mi], V)
    sve = _seg_sum(mvi, energy[mi], V)
    svq = _seg_sum(mvi, parts["charge"][mi].astype(np.float64), V)
    rv = np.flatnonzero(reco)
    rv = rv[np.argsort(vertices["ev"][rv], kind="stable")]
    sev = vertices["ev"][rv]
    S = len(rv)
    sig_xy = rng.uniform(0.004, 0.015, S)
    sig_z = sig_xy * rng.uniform(1.2, 2.0, S)
    pos = vertices["pos"][rv] + rng.normal(0, 1, (S, 3)) * np.stack([sig_xy, sig_xy, sig_z], 1)
    dxyz = pos - pv[sev]
    dxy = np.hypot(dxyz[:, 0], dxyz[:, 1])
    dlen = np.linalg.norm(dxyz, axis=1)
    err_dxy = np.hypot(sig_xy, 0.0015)
    err_dlen = np.sqrt(((dxy / dlen) * sig_xy) ** 2 + ((dxyz[:, 2] / dlen) * sig_z) ** 2 + 0.002**2)
    s_pt, s_eta, s_phi = _pt_eta_phi(svx[rv], svy[rv], svz[rv])
    s_p = np.sqrt(svx[rv] ** 2 + svy[rv] ** 2 + svz[rv] ** 2)
    s_mass = np.sqrt(np.maximum(sve[rv] ** 2 - s_p**2, 0.0))
    cosang = (svx[rv] * dxyz[:, 0] + svy[rv] * dxyz[:, 1] + svz[rv] * dxyz[:, 2]) / (s_p * dlen)
    ntr = nin[rv]
    ndof = 2.0 * ntr - 3.0
    sv = {
        "pt": _round_mantissa(s_pt, 12),
        "eta": _round_mantissa(s_eta, 12),
        "phi": _round_mantissa(s_phi, 12),
        "mass": _round_mantissa(s_mass, 12),
        "chi2": _round_mantissa(rng.chisquare(ndof) / ndof, 10) if S else np.zeros(0, np.float32),
        "ndof": ndof.astype(np.float32),
        "dxy": _round_mantissa(dxy, 12),
        "dxySig": _round_mantissa(dxy / err_dxy, 12),
        "dlen": _round_mantissa(dlen, 12),
        "dlenSig": _round_mantissa(dlen / err_dlen, 12),
        "pAngle": _round_mantissa(np.arccos(np.clip(cosang, -1.0, 1.0)), 12),
        "x": pos[:, 0].astype(np.float32),
        "y": pos[:, 1].astype(np.float32),
        "z": pos[:, 2].astype(np.float32),
        "ntracks": ntr.astype(np.int32),
        "charge": np.rint(svq[rv]).astype(np.int32),
    }
    n_sv = np.bincount(sev, minlength=E)
    sv_local = np.arange(S) - _offsets(n_sv)[sev]
    # JetSVs: the vertex of a kept jet, within its cone
    sgj = vertices["gen_jet"][rv]
    ok = keepj[sgj]
    ok &= _delta_r(sv["eta"].astype(np.float64), sv["phi"].astype(np.float64), jeta32[sgj], jphi32[sgj]) < 0.4
    sl = np.flatnonzero(ok)
    slj = new_index[sgj[sl]]
    so = np.lexsort((sl, slj))
    sl, slj = sl[so], slj[so]
    jetsvs = {
        "jetIdx": (slj - j_off[sev[sl]]).astype(np.int32),
        "sVIdx": sv_local[sl].astype(np.int32),
    }
    n_jetsvs = np.bincount(sev[sl], minlength=E)
    n_svs_jet = np.bincount(slj, minlength=len(jorder))

    jets = {
        "pt": jpt32[jorder],
        "eta": jeta32[jorder],
        "phi": jphi32[jorder],
        "mass": jmass32[jorder],
        "hadronFlavour": flav[jorder].astype(np.int32),
        "partonFlavour": parton[jorder].astype(np.int32),
        "nConstituents": n_const.astype(np.int32),
        "nSVs": n_svs_jet.astype(np.int32),
    }

    # ---- MET
    fpx, fpy, _ = _p3(pf["pt"].astype(np.float64), pf["eta"].astype(np.float64), pf["phi"].astype(np.float64))
    mx = -_seg_sum(parts["ev"], fpx, E)
    my = -_seg_sum(parts["ev"], fpy, E)
    w = pf["puppiWeight"].astype(np.float64)
    qx = -_seg_sum(parts["ev"], w * fpx, E)
    qy = -_seg_sum(parts["ev"], w * fpy, E)

    out: dict[str, np.ndarray] = {
        "run": np.full(E, run, np.uint32),
        "luminosityBlock": (1 + idx // events_per_lumi).astype(np.uint32),
        "event": (idx + 1).astype(np.uint64),
        "nPFCands": n_pf,
        "nJet": nj_out,
        "nJetPFCands": n_links,
        "nSV": n_sv,
        "nJetSVs": n_jetsvs,
        "MET_pt": np.hypot(mx, my).astype(np.float32),
        "MET_phi": np.arctan2(my, mx).astype(np.float32),
        "PuppiMET_pt": np.hypot(qx, qy).astype(np.float32),
        "PuppiMET_phi": np.arctan2(qy, qx).astype(np.float32),
        "GenMET_pt": np.hypot(nux, nuy).astype(np.float32),
        "GenMET_phi": np.arctan2(nuy, nux).astype(np.float32),
        "PV_npvs": npv.astype(np.int32),
        "PV_x": pv[:, 0].astype(np.float32),
        "PV_y": pv[:, 1].astype(np.float32),
        "PV_z": pv[:, 2].astype(np.float32),
    }
    for coll, table in (("PFCands", pf), ("Jet", jets), ("JetPFCands", links), ("SV", sv), ("JetSVs", jetsvs)):
        for field, arr in table.items():
            out[f"{coll}_{field}"] = arr
    # dtypes exactly as the schema says
    for name, br in BRANCHES.items():
        out[name] = np.asarray(out[name]).astype(br.dtype, copy=False)
    return out


# ------------------------------------------------------------------------------------------ writing
def _select_branches(patterns: Sequence[str] | None) -> list[str]:
    """The branches to write, in writing order: the schema (``None``), or the IDs and the schema or
    :data:`~framework.io.anomalies.EXTRA_BRANCHES` branches matching one of the glob *patterns*."""
    if patterns is None:
        return list(BRANCHES)
    available = list(BRANCHES) + list(EXTRA_BRANCHES)
    chosen = {"run", "luminosityBlock", "event"}
    for pattern in patterns:
        matched = {n for n in available if fnmatch.fnmatchcase(n, pattern)}
        if not matched:
            raise ValueError(f"branches: {pattern!r} matches no branch.{did_you_mean(pattern, available)} "
                             "Glob patterns over the schema (framework.io.schema) and MET_sumEt, MET_significance")
        chosen |= matched
    return [n for n in available if n in chosen]


def _layout(names: Sequence[str]) -> tuple[list[str], dict[str, list[str]]]:
    """Per-event branches and ``{collection: fields}`` of *names* (a counter is written by its collection;
    alone only if none of the collection's fields is chosen)."""
    fields: dict[str, list[str]] = {}
    for name in names:
        br = BRANCHES.get(name)
        if br is not None and br.collection is not None:
            fields.setdefault(br.collection, []).append(br.field)
    counters = {COLLECTIONS[c] for c in fields}
    plain = [n for n in names if (n not in BRANCHES or BRANCHES[n].collection is None) and n not in counters]
    return plain, fields


def _branch_dtype(name: str) -> str:
    return (BRANCHES.get(name) or EXTRA_BRANCHES[name]).dtype


def _tree_types(names: Sequence[str] | None = None) -> dict[str, object]:
    """uproot ``mktree`` branch types in schema order: per-event dtypes and one record type per collection."""
    if names is not None and list(names) != list(BRANCHES):
        plain, fields = _layout(names)
        types: dict[str, object] = {n: np.dtype(_branch_dtype(n)) for n in plain}
        for coll, fs in fields.items():
            dtypes = collection_fields(coll)
            spec = ", ".join(f"{f}: {dtypes[f]}" for f in fs)
            types[coll] = ak.types.from_datashape(f"var * {{{spec}}}", highlevel=False)
        return types
    types = {}
    for name, br in BRANCHES.items():
        if br.collection is not None:
            if br.collection not in types:
                fields = ", ".join(f"{f}: {d}" for f, d in collection_fields(br.collection).items())
                types[br.collection] = ak.types.from_datashape(f"var * {{{fields}}}", highlevel=False)
        elif name not in COLLECTIONS.values():
            types[name] = np.dtype(br.dtype)
    return types


def _to_tree_chunk(flat: dict[str, np.ndarray], names: Sequence[str] | None = None) -> dict[str, object]:
    if names is not None and list(names) != list(BRANCHES):
        plain, fields = _layout(names)
        chunk: dict[str, object] = {n: np.asarray(flat[n]).astype(_branch_dtype(n), copy=False) for n in plain}
        for coll, fs in fields.items():
            record = ak.zip({f: flat[f"{coll}_{f}"] for f in fs})
            chunk[coll] = ak.unflatten(record, np.asarray(flat[COLLECTIONS[coll]], np.int64))
        return chunk
    chunk = {}
    for name, br in BRANCHES.items():
        if br.collection is None and name not in COLLECTIONS.values():
            chunk[name] = flat[name]
    for coll, cname in COLLECTIONS.items():
        counts = np.asarray(flat[cname], np.int64)
        record = ak.zip({f: flat[f"{coll}_{f}"] for f in collection_fields(coll)})
        chunk[coll] = ak.unflatten(record, counts)
    return chunk


def _apply_lumi_plan(flat: dict[str, np.ndarray], plan: LumiPlan, idx: np.ndarray, rng: np.random.Generator,
                     extras: bool) -> None:
    """Run/lumi/event numbers of a several-run file, the anomalies of bad sections, the extra MET branches."""
    if plan.multi_run:
        flat["run"], flat["luminosityBlock"], flat["event"] = plan.ids(idx)
    if not (extras or plan.bad):
        return
    add_met_extras(flat)
    if plan.bad:
        masks = plan.event_anomalies(flat["run"], flat["luminosityBlock"])
        add_met_noise(flat, masks["met-tail"], rng)
        remove_jets_in_region(flat, masks["dead-region"],
                              {c: list(collection_fields(c)) for c in ("Jet", "JetPFCands", "JetSVs")})
    finish_met_extras(flat)


def generate(path: str | os.PathLike, n_events: int, seed: int, *, run: int = 1, events_per_lumi: int = 100,
             compression: str = "zlib", level: int = 1, lumis_per_run: int | None = None,
             bad_lumis: Mapping[Any, Any] | Iterable[Any] | str | None = None, anomaly: str | Sequence[str] = "met-tail",
             branches: Sequence[str] | None = None, first_event: int = 1) -> None:
    """Write ``n_events`` generated events to the ROOT file ``path`` (tree ``Events``).

    The content is a deterministic function of ``seed``, ``run`` and ``events_per_lumi`` (and of the options
    below). The file is written to a temporary file in the same directory and renamed into place, so a failed
    generation leaves no (partial) file behind. ``compression`` is ``"zlib"`` or ``"lzma"`` (``level`` 1-9).

    For data-quality studies (:mod:`framework.io.anomalies`): ``lumis_per_run`` spreads the events over runs
    ``run, run + 1, ...`` of that many lumis; ``bad_lumis`` makes sections bad (``{(run, lumi): "met-tail"}``,
    ``[(run, lumi), lumi, ...]`` with ``anomaly``, or the CLI's text ``"2:7,2:9=dead-region"``); either adds a
    ``LuminosityBlocks`` tree with the truth (``isBad``, ``anomalies`` bit mask, ``nEvents``). ``branches``:
    glob patterns of the branches to write (IDs always; ``MET_sumEt``/``MET_significance`` only this way, e.g.
    ``["*"]``). ``first_event``: the ``event`` number of the first event (the others follow; the physics does not
    change): files meant to be read together get distinct ``(run, luminosityBlock, event)`` this way (or with
    distinct ``run``), else the source skips the repeats (``duplicateCheckMode``). Without these options the output
    is exactly what it was before they existed.
    """
    import uproot  # heavy import, only here

    n_events = int(n_events)
    if n_events < 0:
        raise ValueError(f"n_events must be >= 0, got {n_events}")
    if events_per_lumi < 1:
        raise ValueError(f"events_per_lumi must be >= 1, got {events_per_lumi}")
    if not 0 <= run < 2**32:
        raise ValueError(f"run must fit in uint32, got {run}")
    if first_event < 1:
        raise ValueError(f"first_event must be >= 1, got {first_event}")
    codecs = {"zlib": uproot.ZLIB, "lzma": uproot.LZMA}
    if compression not in codecs:
        raise ValueError(f"compression must be one of {sorted(codecs)}, got {compression!r}")
    plan = LumiPlan(n_events, run, events_per_lumi, lumis_per_run, bad_lumis, anomaly)
    names = _select_branches(branches)
    extras = any(n in EXTRA_BRANCHES for n in names)
    truth = plan.multi_run or bool(plan.bad)
    counts: dict[tuple[int, int], int] = {}

    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    # a unique name next to the target (same filesystem, so os.replace is atomic); created by uproot with
    # the default permissions (umask), unlike tempfile.mkstemp's 0600
    tmp_name = str(target.parent / f".{target.name}.{os.getpid()}.{uuid.uuid4().hex[:12]}.tmp")
    t0 = time.perf_counter()
    try:
        with uproot.recreate(tmp_name, compression=codecs[compression](level)) as fout:
            tree = fout.mktree(TREE_NAME, _tree_types(names), title="generated AOD-like events")
            for ichunk, start in enumerate(range(0, n_events, CHUNK_EVENTS)):
                size = min(CHUNK_EVENTS, n_events - start)
                rng = np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=(ichunk,)))
                flat = _generate_chunk(rng, size, start, run, events_per_lumi)
                if truth or extras:  # anomalies draw from a stream of their own: the physics stays the same
                    arng = np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=(ichunk, 1)))
                    _apply_lumi_plan(flat, plan, np.arange(start, start + size, dtype=np.int64), arng, extras)
                    ids, n_ids = np.unique(np.stack([flat["run"], flat["luminosityBlock"]]), axis=1, return_counts=True)
                    for (r, lumi), n in zip(ids.T.tolist(), n_ids.tolist()):
                        counts[(r, lumi)] = counts.get((r, lumi), 0) + n
                if first_event != 1:
                    flat["event"] = flat["event"] + np.uint64(first_event - 1)
                tree.extend(_to_tree_chunk(flat, names))
                log.debug("generated events %d-%d", start, start + size - 1)
            if truth:
                table = plan.truth(counts)
                fout.mktree("LuminosityBlocks", {k: v.dtype for k, v in table.items()},
                            title="luminosity sections (generator truth: isBad, anomalies)").extend(table)
        os.replace(tmp_name, target)
    except BaseException:
        try:
            os.unlink(tmp_name)
        except FileNotFoundError:
            pass
        raise
    log.info("wrote %d events (seed %d) to %s in %.2f s", n_events, seed, target, time.perf_counter() - t0)


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: ``python -m framework generate --events 1000 --seed 1 sample.root``."""
    parser = argparse.ArgumentParser(
        prog="python -m framework generate",
        description="Generate AOD-like ttbar events (NanoAOD/PFNano naming) into a ROOT file.",
    )
    parser.add_argument("output", help="output ROOT file (written atomically)")
    parser.add_argument("--events", "-n", type=int, default=1000, help="number of events (default 1000)")
    parser.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    parser.add_argument("--run", type=int, default=1, help="run number (default 1)")
    parser.add_argument("--first-event", type=int, default=1,
                        help="event number of the first event (default 1); files read together need distinct "
                             "(run, lumi, event): give each its own --run or --first-event")
    parser.add_argument("--events-per-lumi", type=int, default=100, help="events per luminosity block")
    parser.add_argument("--compression", choices=("zlib", "lzma"), default="zlib")
    parser.add_argument("--level", type=int, default=1, help="compression level 1-9 (default 1)")
    parser.add_argument("--flavour", choices=("generated", "pfnano-released"), default="generated",
                        help="branch layout: this framework's schema (default) or PFNano as released "
                             "(no PFCands_fromPV/hcalFraction, JetPFCands_btagSip2d*; see README 'Real PFNano files')")
    dqm = parser.add_argument_group("luminosity sections for data-quality monitoring (framework/io/anomalies.py)")
    dqm.add_argument("--lumis-per-run", type=int, default=None, metavar="K",
                     help="runs RUN, RUN+1, ... of K lumis each (event numbers restart per run); adds the "
                          "LuminosityBlocks tree")
    dqm.add_argument("--bad-lumis", default=None, metavar="LIST",
                     help="bad sections: LUMI (of every run) or RUN:LUMI, optionally =ANOMALY[+ANOMALY], "
                          "comma-separated, e.g. 3,7 or 2:3,2:9=dead-region; truth in the LuminosityBlocks tree")
    dqm.add_argument("--anomaly", default="met-tail", metavar="NAME",
                     help=f"anomaly of the bad sections that name none: {', '.join(ANOMALIES)} (default met-tail; "
                          "several joined by +)")
    dqm.add_argument("--branches", default=None, metavar="PATTERNS",
                     help="write only these branches (comma-separated globs, IDs always), e.g. 'MET_*,Jet_eta,Jet_phi'; "
                          "'*' = all, with MET_sumEt and MET_significance")
    args = parser.parse_args(argv)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    branches = [b.strip() for b in args.branches.split(",") if b.strip()] if args.branches is not None else None
    try:
        if args.flavour == "generated":
            generate(args.output, args.events, args.seed, run=args.run, events_per_lumi=args.events_per_lumi,
                     compression=args.compression, level=args.level, lumis_per_run=args.lumis_per_run,
                     bad_lumis=args.bad_lumis, anomaly=args.anomaly, branches=branches, first_event=args.first_event)
        elif args.lumis_per_run is not None or args.bad_lumis is not None or branches is not None:
            raise ValueError("--lumis-per-run, --bad-lumis and --branches need --flavour generated")
        else:
            from framework.io.pfnano import write_released

            out = Path(args.output)
            tmp = out.parent / f".{out.name}.{os.getpid()}.generated.tmp"
            try:
                generate(tmp, args.events, args.seed, run=args.run, events_per_lumi=args.events_per_lumi,
                         compression=args.compression, level=args.level, first_event=args.first_event)
                write_released(tmp, out)
            finally:
                tmp.unlink(missing_ok=True)
    except (ValueError, OSError) as exc:
        log.error("generate failed: %s", exc)
        return 1
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
