"""Kinematics and table helpers of the event generator (:mod:`framework.samples.events`): vectorised over
flat arrays with an event (or jet) index, no random numbers."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["PION_MASS", "ELECTRON_MASS", "MUON_MASS", "FRAG", "HDECAY", "HPHOTON", "WLEP", "UE", "RECOIL", "PU",
           "wrap_phi", "delta_r", "p3", "pt_eta_phi", "seg_sum", "offsets", "round_mantissa", "concat",
           "particle_table"]

PION_MASS = 0.13957
ELECTRON_MASS = 0.000511
MUON_MASS = 0.10566

# origin codes of generated particles (the ``origin`` field of :func:`particle_table`)
FRAG, HDECAY, HPHOTON, WLEP, UE, RECOIL, PU = range(7)


def wrap_phi(phi: np.ndarray) -> np.ndarray:
    """Angle in [-pi, pi)."""
    return (phi + np.pi) % (2.0 * np.pi) - np.pi


def delta_r(eta1: np.ndarray, phi1: np.ndarray, eta2: np.ndarray, phi2: np.ndarray) -> np.ndarray:
    """Distance in (eta, phi)."""
    return np.hypot(eta1 - eta2, wrap_phi(phi1 - phi2))


def p3(pt: np.ndarray, eta: np.ndarray, phi: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(px, py, pz)`` of ``(pt, eta, phi)``."""
    return pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)


def pt_eta_phi(px: np.ndarray, py: np.ndarray, pz: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(pt, eta, phi)`` of ``(px, py, pz)`` (eta 0 where pt is 0)."""
    pt = np.hypot(px, py)
    with np.errstate(divide="ignore", invalid="ignore"):
        eta = np.where(pt > 0, np.arcsinh(pz / np.where(pt > 0, pt, 1.0)), 0.0)
    return pt, eta, np.arctan2(py, px)


def seg_sum(seg: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    """Sum of *values* per segment index *seg* (``n`` segments)."""
    return np.bincount(seg, weights=values, minlength=n)[:n]


def offsets(counts: np.ndarray) -> np.ndarray:
    """``[0, cumsum(counts)...]`` (int64, one longer than *counts*)."""
    out = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=out[1:])
    return out


def round_mantissa(x: np.ndarray, bits: int) -> np.ndarray:
    """float32 copy of ``x`` keeping ``bits`` mantissa bits (round to nearest), like MiniAOD packing."""
    a = np.ascontiguousarray(x, dtype=np.float32)
    drop = 23 - bits
    if drop <= 0:
        return a
    u = a.view(np.uint32).astype(np.uint64)
    u = (u + (1 << (drop - 1))) & ~np.uint64((1 << drop) - 1)
    return u.astype(np.uint32).view(np.float32)


def concat(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Tables with the same keys, concatenated."""
    keys = parts[0].keys()
    return {k: np.concatenate([p[k] for p in parts]) for k in keys}


def particle_table(n: int, **fields: Any) -> dict[str, np.ndarray]:
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
