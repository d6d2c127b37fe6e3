"""Particle stages of the event generator (:mod:`framework.samples.events`), in the order they draw: the
b/c-hadron decays and fragmentation of the jets, fake vertices, W leptons, underlying event, the soft recoil that
balances the PV system, pileup; then all candidates with the calorimeter response, and the PF-candidate table
(track parameters, PUPPI weights, HCAL fractions)."""

from __future__ import annotations

from typing import Any

import numpy as np

from .jets import GenJets
from .kinematics import (
    ELECTRON_MASS,
    FRAG,
    HDECAY,
    HPHOTON,
    MUON_MASS,
    PION_MASS,
    PU,
    RECOIL,
    UE,
    WLEP,
    concat,
    offsets,
    p3,
    particle_table,
    pt_eta_phi,
    round_mantissa,
    seg_sum,
    wrap_phi,
)
from .tracks import track_parameters

Table = dict[str, np.ndarray]

__all__ = ["soft_particles", "heavy_decays", "fragmentation", "fake_vertices", "jet_particles", "w_leptons",
           "underlying_event", "recoil", "pileup", "candidates", "pf_candidates"]


def _neutral_species(rng: np.random.Generator, eta: np.ndarray, p_photon_central: float) -> np.ndarray:
    """pdgId of neutral candidates by detector region: 22/130 in |eta|<3, HF 2/1 beyond."""
    u = rng.random(len(eta))
    central = np.where(u < p_photon_central, 22, 130)
    forward = np.where(u < 0.45, 2, 1)
    return np.where(np.abs(eta) < 3.0, central, forward)


def soft_particles(rng: np.random.Generator, ev: np.ndarray, eta: np.ndarray, pt: np.ndarray, p_charged: float,
                   origin: int, vx: Any, vy: Any, vz: Any) -> Table:
    """Soft candidates (UE, recoil, pileup): charged in the tracker, photons/neutral hadrons/HF outside."""
    n = len(ev)
    phi = rng.uniform(-np.pi, np.pi, n)
    charged = (rng.random(n) < p_charged) & (np.abs(eta) < 2.5)
    charge = np.where(charged, rng.choice([-1, 1], n), 0)
    pdg = np.where(charged, 211 * charge, _neutral_species(rng, eta, 0.68))
    mass = np.where(charged, PION_MASS, 0.0)
    px, py, pz = p3(pt, eta, phi)
    return particle_table(
        n, ev=ev, px=px, py=py, pz=pz, mass=mass, charge=charge, pdg=pdg, vx=vx, vy=vy, vz=vz, origin=origin
    )


def heavy_decays(rng: np.random.Generator, hj: np.ndarray, flav: np.ndarray, P: np.ndarray, eta0: np.ndarray,
                 phi0: np.ndarray, jev: np.ndarray,
                 pv: np.ndarray) -> tuple[Table, Table, np.ndarray, np.ndarray, Table]:
    """b/c hadron decays in jets ``hj``: charged tracks from the decay point, photons, neutrinos."""
    H = len(hj)
    isb = flav[hj] == 5
    x_h = np.where(isb, rng.beta(7.0, 3.0, H), rng.beta(5.0, 4.0, H))
    pt_h = x_h * P[hj]
    eta_h = eta0[hj] + rng.normal(0, 0.02, H)
    phi_h = wrap_phi(phi0[hj] + rng.normal(0, 0.02, H))
    ph = np.stack(p3(pt_h, eta_h, phi_h), axis=1)
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
    first = offsets(nch)[:-1]
    is_first = np.zeros(T, bool)
    is_first[first] = True
    is_lep = is_first & semilep[tdec]
    charge = rng.choice([-1, 1], T)
    tmass = np.where(is_lep, np.where(lep_abs[tdec] == 11, ELECTRON_MASS, MUON_MASS), PION_MASS)
    pdg = np.where(is_lep, -charge * lep_abs[tdec], 211 * charge)
    msum = seg_sum(tdec, tmass, H)
    multi = nch >= 2
    m_vis = np.where(multi, np.maximum(m_vis, msum + 0.1), msum)

    dirs = rng.normal(size=(T, 3))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    q = rng.uniform(0.3, 1.0, T)[:, None] * dirs
    for c in range(3):
        q[:, c] -= (seg_sum(tdec, q[:, c], H) / nch)[tdec]
    qq = np.sum(q * q, axis=1)
    sumq = seg_sum(tdec, np.sqrt(qq), H)
    k = np.where(multi, m_vis / np.maximum(sumq, 1e-12), 0.0)
    for _ in range(40):  # Newton from above: sum sqrt(k^2 q^2 + m^2) = m_vis, convex and increasing in k
        e = np.sqrt(k[tdec] ** 2 * qq + tmass**2)
        f = seg_sum(tdec, e, H) - m_vis
        fp = seg_sum(tdec, k[tdec] * qq / e, H)
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

    tracks = particle_table(
        T, ev=ev[tdec], px=plab[:, 0], py=plab[:, 1], pz=plab[:, 2], mass=tmass, charge=charge, pdg=pdg,
        vx=decay_pos[tdec, 0], vy=decay_pos[tdec, 1], vz=decay_pos[tdec, 2], origin=HDECAY,
        gen_jet=hj[tdec], vtx=tdec,
    )

    # neutrinos of semileptonic decays
    nu_pt = f_nu * pt_h
    nu_phi = wrap_phi(phi_h + rng.normal(0, 0.15, H))
    nu = np.stack([nu_pt * np.cos(nu_phi), nu_pt * np.sin(nu_phi)], axis=1)

    # the rest goes into one or two photons close to the hadron direction
    prem = ph - pc - np.concatenate([nu, (f_nu * ph[:, 2])[:, None]], axis=1)
    r_pt, r_eta, r_phi = pt_eta_phi(prem[:, 0], prem[:, 1], prem[:, 2])
    ngam = np.where(r_pt > 0.5, 1 + (r_pt > 4.0), 0)
    G = int(ngam.sum())
    gdec = np.repeat(np.arange(H), ngam)
    gfirst = np.zeros(G, bool)
    gfirst[offsets(ngam)[:-1][ngam > 0]] = True
    split = rng.uniform(0.3, 0.7, H)[gdec]
    frac = np.where(ngam[gdec] == 1, 1.0, np.where(gfirst, split, 1.0 - split))
    gpt = frac * r_pt[gdec]
    geta = r_eta[gdec] + rng.normal(0, 0.03, G)
    gphi = wrap_phi(r_phi[gdec] + rng.normal(0, 0.03, G))
    gx, gy, gz = p3(gpt, geta, gphi)
    photons = particle_table(
        G, ev=ev[gdec], px=gx, py=gy, pz=gz, pdg=22, vx=pv[ev[gdec], 0], vy=pv[ev[gdec], 1],
        vz=pv[ev[gdec], 2], origin=HPHOTON, gen_jet=hj[gdec],
    )
    vertices = {
        "ev": ev,
        "gen_jet": hj,
        "kind": np.where(isb, 5, 4),
        "pos": decay_pos,
        "flight": flight,
    }
    return tracks, photons, nu, x_h, vertices


def fragmentation(rng: np.random.Generator, fj: np.ndarray, p_frag: np.ndarray, eta0: np.ndarray, phi0: np.ndarray,
                  jev: np.ndarray, pv: np.ndarray) -> Table:
    """Prompt fragmentation candidates of jets ``fj`` sharing ``p_frag`` GeV of transverse momentum."""
    n = np.minimum(1 + rng.poisson(4.0 + 0.16 * p_frag), 80)
    F = int(n.sum())
    seg = np.repeat(np.arange(len(fj)), n)
    g = rng.gamma(0.6, size=F) + 1e-12
    frac = g / seg_sum(seg, g, len(fj))[seg]
    pt = np.maximum(frac * p_frag[seg], 0.2 * rng.uniform(0.8, 1.25, F))
    sigma = 0.015 + 0.12 / np.sqrt(1.0 + pt)
    deta = rng.normal(0, 1, F) * sigma
    dphi = rng.normal(0, 1, F) * sigma
    r = np.hypot(deta, dphi)
    big = r > 0.36
    scale = np.where(big, rng.uniform(0.15, 0.36, F) / np.where(big, r, 1.0), 1.0)
    jets = fj[seg]
    eta = eta0[jets] + deta * scale
    phi = wrap_phi(phi0[jets] + dphi * scale)
    u = rng.random(F)
    charged = (u < 0.60) & (np.abs(eta) < 2.5)
    charge = np.where(charged, rng.choice([-1, 1], F), 0)
    pdg = np.where(charged, 211 * charge, np.where(u < 0.86, 22, 130))
    mass = np.where(charged, PION_MASS, 0.0)
    px, py, pz = p3(pt, eta, phi)
    ev = jev[jets]
    return particle_table(
        F, ev=ev, px=px, py=py, pz=pz, mass=mass, charge=charge, pdg=pdg, vx=pv[ev, 0], vy=pv[ev, 1],
        vz=pv[ev, 2], origin=FRAG, gen_jet=jets,
    )


def fake_vertices(rng: np.random.Generator, frag: Table, light_jets: np.ndarray, pv: np.ndarray,
                  first_vtx: int) -> tuple[Table, Table | None]:
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
    psum = np.stack([seg_sum(vid, frag[c][members], V) for c in ("px", "py", "pz")], axis=1)
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


def jet_particles(rng: np.random.Generator, jets: GenJets,
                  pv: np.ndarray) -> tuple[Table, Table, Table, Table, tuple[np.ndarray, np.ndarray]]:
    """The particles of the jets: heavy-flavour decays, fragmentation, fake vertices.

    Returns ``(frag, tracks, photons, vertices, (nu_ev, nu_h))``: particle tables, the true displaced vertices
    and the neutrinos of the semileptonic decays (event index, ``(px, py)``)."""
    hj = np.flatnonzero((jets.flav > 0) & ~jets.empty)
    tracks, hphotons, nu_h, x_h, hvtx = heavy_decays(rng, hj, jets.flav, jets.P, jets.eta0, jets.phi0, jets.jev, pv)
    xfrac = np.zeros(jets.J)
    xfrac[hj] = x_h
    fj = np.flatnonzero(~jets.empty)
    frag = fragmentation(rng, fj, jets.P[fj] * (1.0 - xfrac[fj]), jets.eta0, jets.phi0, jets.jev, pv)
    frag, fvtx = fake_vertices(rng, frag, np.flatnonzero((jets.flav == 0) & ~jets.empty), pv, len(hj))
    vtx_parts = [hvtx] + ([fvtx] if fvtx is not None else [])
    vertices = {k: np.concatenate([vp[k] for vp in vtx_parts]) for k in hvtx}
    return frag, tracks, hphotons, vertices, (jets.jev[hj], nu_h)


def w_leptons(rng: np.random.Generator, E: int, pv: np.ndarray) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """0-2 W -> l nu per event: the charged leptons and the neutrinos' ``(px, py)`` summed per event."""
    nw = rng.choice(3, size=E, p=[0.45, 0.44, 0.11])
    W = int(nw.sum())
    wev = np.repeat(np.arange(E), nw)
    lpt = 25.0 + rng.exponential(30.0, W)
    leta = np.clip(rng.normal(0, 1.2, W), -2.4, 2.4)
    lphi = rng.uniform(-np.pi, np.pi, W)
    lcharge = rng.choice([-1, 1], W)
    labs = np.where(rng.random(W) < 0.5, 11, 13)
    lx, ly, lz = p3(lpt, leta, lphi)
    wleps = particle_table(
        W, ev=wev, px=lx, py=ly, pz=lz, mass=np.where(labs == 11, ELECTRON_MASS, MUON_MASS), charge=lcharge,
        pdg=-lcharge * labs, vx=pv[wev, 0], vy=pv[wev, 1], vz=pv[wev, 2], origin=WLEP,
    )
    nupt = 20.0 + rng.exponential(25.0, W)
    nuphi = rng.uniform(-np.pi, np.pi, W)
    return wleps, seg_sum(wev, nupt * np.cos(nuphi), E), seg_sum(wev, nupt * np.sin(nuphi), E)


def underlying_event(rng: np.random.Generator, E: int, pv: np.ndarray) -> dict[str, np.ndarray]:
    """Soft candidates of the underlying event, from the PV."""
    nue = rng.poisson(60, E)
    uev = np.repeat(np.arange(E), nue)
    U = len(uev)
    return soft_particles(rng, uev, rng.uniform(-4.7, 4.7, U), 0.2 + rng.exponential(0.6, U), 0.6, UE,
                          pv[uev, 0], pv[uev, 1], pv[uev, 2])


def recoil(rng: np.random.Generator, hard: dict[str, np.ndarray], nux: np.ndarray, nuy: np.ndarray, E: int,
           pv: np.ndarray) -> dict[str, np.ndarray]:
    """Soft recoil balancing the PV system *hard* and the neutrinos (so that MET scatters around GenMET)."""
    ix = seg_sum(hard["ev"], hard["px"], E) + nux
    iy = seg_sum(hard["ev"], hard["py"], E) + nuy
    imb = np.hypot(ix, iy)
    nr = np.minimum(15 + (imb / 3.0).astype(np.int64), 150)
    rev = np.repeat(np.arange(E), nr)
    R = len(rev)
    rdir = np.arctan2(-iy, -ix)[rev]
    rphi = wrap_phi(rdir + rng.normal(0, 0.8, R))
    reta = rng.uniform(-3.0, 3.0, R)
    rpt = (imb / nr)[rev] * rng.exponential(1.0, R)
    rx, ry = rpt * np.cos(rphi), rpt * np.sin(rphi)
    rx += ((-ix - seg_sum(rev, rx, E)) / np.maximum(nr, 1))[rev]
    ry += ((-iy - seg_sum(rev, ry, E)) / np.maximum(nr, 1))[rev]
    rpt = np.maximum(np.hypot(rx, ry), 1e-3)
    out = soft_particles(rng, rev, reta, rpt, 0.6, RECOIL, pv[rev, 0], pv[rev, 1], pv[rev, 2])
    rphi = np.arctan2(ry, rx)
    out["px"], out["py"], out["pz"] = p3(rpt, reta, rphi)
    return out


def pileup(rng: np.random.Generator, npv: np.ndarray, E: int) -> list[dict[str, np.ndarray]]:
    """Charged and neutral soft candidates of the ``npv - 1`` pileup vertices of each event."""
    npu = npv - 1
    pvz_pu = rng.normal(0.3, 3.5, int(npu.sum()))
    pu_off = offsets(npu)
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
        parts_pu.append(soft_particles(
            rng, pev, peta, ppt, 1.0 if is_charged else 0.0, PU,
            0.0107 + rng.normal(0, 0.0012, K), 0.0418 + rng.normal(0, 0.0012, K), pvz_pu[which] if K else 0.0,
        ))
    return parts_pu


def candidates(rng: np.random.Generator, tables: list[dict[str, np.ndarray]]) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """All candidates grouped by event (in the order of *tables* within an event), with the calorimeter
    response of the neutrals applied; returns them and the mask of the pileup ones."""
    parts = concat(tables)
    pu_mask = parts["origin"] == PU
    # calorimeter response of neutrals (after the balance: it is a detector effect)
    neutral = parts["charge"] == 0
    resp = np.where(neutral, np.where(np.abs(parts["pdg"]) == 22, rng.normal(1.0, 0.05, len(neutral)),
                                      rng.normal(1.0, 0.15, len(neutral))), 1.0)
    resp = np.clip(resp, 0.3, 2.0)
    for c in ("px", "py", "pz"):
        parts[c] = parts[c] * resp
    order = np.argsort(parts["ev"], kind="stable")
    parts = {k: a[order] for k, a in parts.items()}
    return parts, pu_mask[order]


def pf_candidates(rng: np.random.Generator, parts: dict[str, np.ndarray], pv: np.ndarray,
                  pu_mask: np.ndarray) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray, np.ndarray]:
    """The ``PFCands`` table (stored precision) and the float64 ``(pt, eta, phi)`` of the candidates."""
    N = len(parts["ev"])
    pt, eta, phi = pt_eta_phi(parts["px"], parts["py"], parts["pz"])
    trk = track_parameters(rng, parts, pv, pu_mask)
    charged = parts["charge"] != 0
    pdg = parts["pdg"]
    apdg = np.abs(pdg)
    puppi = trk["puppi_charged"].copy()
    neutral_classes = (
        (~charged & pu_mask, (0.5, 6.0)),  # pileup neutrals: mostly rejected
        (~charged & ~pu_mask & ((parts["origin"] <= WLEP) | (parts["origin"] == RECOIL)), (6.0, 1.0)),
        (~charged & (parts["origin"] == UE), (1.5, 2.0)),  # soft PV neutrals
    )
    for mask, (alpha, beta) in neutral_classes:
        puppi[mask] = rng.beta(alpha, beta, int(mask.sum()))
    hcal = np.zeros(N)
    for code, (alpha, beta) in ((130, (8.0, 1.5)), (1, (8.0, 2.0))):
        mask = apdg == code
        hcal[mask] = rng.beta(alpha, beta, int(mask.sum()))

    pf = {
        "pt": round_mantissa(pt, 12),
        "eta": round_mantissa(eta, 12),
        "phi": round_mantissa(phi, 12),
        "mass": round_mantissa(parts["mass"], 12),
        "charge": parts["charge"].astype(np.int32),
        "pdgId": pdg.astype(np.int32),
        "d0": round_mantissa(trk["d0"], 10),
        "dz": round_mantissa(trk["dz"], 10),
        "d0Err": round_mantissa(trk["d0Err"], 8),
        "dzErr": round_mantissa(trk["dzErr"], 8),
        "puppiWeight": round_mantissa(puppi, 8),
        "fromPV": trk["fromPV"].astype(np.int32),
        "pvAssocQuality": trk["pvAssocQuality"].astype(np.int32),
        "trkChi2": round_mantissa(trk["trkChi2"], 8),
        "trkQuality": trk["trkQuality"].astype(np.int32),
        "hcalFraction": round_mantissa(hcal, 8),
    }
    return pf, pt, eta, phi
