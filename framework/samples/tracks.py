"""Track stages of the event generator (:mod:`framework.samples.events`): impact parameters and vertex
association of the candidates, the b-tagging link features of a candidate w.r.t. a jet, the reconstructed
secondary vertices."""

from __future__ import annotations

import numpy as np

from .kinematics import PION_MASS, p3, pt_eta_phi, round_mantissa, seg_sum

__all__ = ["track_parameters", "link_features", "secondary_vertices"]


def track_parameters(rng: np.random.Generator, parts: dict[str, np.ndarray], pv: np.ndarray,
                     pu_mask: np.ndarray) -> dict[str, np.ndarray]:
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


def link_features(pt: np.ndarray, eta: np.ndarray, phi: np.ndarray, mass: np.ndarray, charge: np.ndarray,
                  d0: np.ndarray, dz: np.ndarray, d0err: np.ndarray, dzerr: np.ndarray, jpt: np.ndarray,
                  jeta: np.ndarray, jphi: np.ndarray) -> dict[str, np.ndarray]:
    """PFNano JetPFCands b-tag features of charged candidates w.r.t. a jet axis (0 for neutrals).

    Same definitions as CMSSW's TrackInfoBuilder (reco::btau::etaRel with the pion mass, IPTools signed
    impact parameters with the sign of (PCA - PV) . jet direction, jetTrackDistance), in the straight-line
    approximation: the track passes through the point (d0 * n_perp, dz) relative to the PV.
    """
    pt, eta, phi, mass = (np.asarray(a, np.float64) for a in (pt, eta, phi, mass))
    d0, dz, d0err, dzerr = (np.asarray(a, np.float64) for a in (d0, dz, d0err, dzerr))
    px, py, pz = p3(pt, eta, phi)
    p = np.sqrt(px * px + py * py + pz * pz)
    jx, jy, jz = p3(np.asarray(jpt, np.float64), np.asarray(jeta, np.float64), np.asarray(jphi, np.float64))
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


def secondary_vertices(rng: np.random.Generator, parts: dict[str, np.ndarray], pt: np.ndarray, energy: np.ndarray,
                       vertices: dict[str, np.ndarray], pv: np.ndarray,
                       E: int) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """The reconstructed ``SV`` table from the true displaced *vertices* and their member tracks.

    Returns ``(sv, rv, sev)``: the table (event order), the index of each SV in *vertices*, its event."""
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
    svx = seg_sum(mvi, parts["px"][mi], V)
    svy = seg_sum(mvi, parts["py"][mi], V)
    svz = seg_sum(mvi, parts["pz"][mi], V)
    sve = seg_sum(mvi, energy[mi], V)
    svq = seg_sum(mvi, parts["charge"][mi].astype(np.float64), V)
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
    s_pt, s_eta, s_phi = pt_eta_phi(svx[rv], svy[rv], svz[rv])
    s_p = np.sqrt(svx[rv] ** 2 + svy[rv] ** 2 + svz[rv] ** 2)
    s_mass = np.sqrt(np.maximum(sve[rv] ** 2 - s_p**2, 0.0))
    cosang = (svx[rv] * dxyz[:, 0] + svy[rv] * dxyz[:, 1] + svz[rv] * dxyz[:, 2]) / (s_p * dlen)
    ntr = nin[rv]
    ndof = 2.0 * ntr - 3.0
    sv = {
        "pt": round_mantissa(s_pt, 12),
        "eta": round_mantissa(s_eta, 12),
        "phi": round_mantissa(s_phi, 12),
        "mass": round_mantissa(s_mass, 12),
        "chi2": round_mantissa(rng.chisquare(ndof) / ndof, 10) if S else np.zeros(0, np.float32),
        "ndof": ndof.astype(np.float32),
        "dxy": round_mantissa(dxy, 12),
        "dxySig": round_mantissa(dxy / err_dxy, 12),
        "dlen": round_mantissa(dlen, 12),
        "dlenSig": round_mantissa(dlen / err_dlen, 12),
        "pAngle": round_mantissa(np.arccos(np.clip(cosang, -1.0, 1.0)), 12),
        "x": pos[:, 0].astype(np.float32),
        "y": pos[:, 1].astype(np.float32),
        "z": pos[:, 2].astype(np.float32),
        "ntracks": ntr.astype(np.int32),
        "charge": np.rint(svq[rv]).astype(np.int32),
    }
    return sv, rv, sev
