"""Generator of LArTPC-like neutrino events in the pynuml (columnar) HDF5 layout, for NuGraph tests and benchmarks.

``generate_nugraph(path, n_events, seed)`` writes ``event_table``, ``hit_table`` and ``spacepoint_table`` as
:class:`framework.io.hdf5source.NuMLSource` reads them (and as pynuml writes them: one dataset per column,
``event_id`` and ``event_id.seq_cnt`` per table). Event ``i`` draws from ``default_rng([seed, i])``: the content
depends on the arguments only, and the first events of a larger sample are those of a smaller one.

The physics is a toy in a MicroBooNE-like geometry, kept consistent:

* TPC: x (drift) 0-256 cm, y -116.5..116.5 cm, z 0-1037 cm; three wire planes with 0.3 cm pitch: u and v at
  +-60 degrees to the vertical (2400 wires each), y vertical (3456 wires; wire = z / 0.3); time in 0.5 us ticks
  with 0.055 cm drift per tick (800 ticks at x = 0): the position scaling of DESIGN.md section 11.
* Interactions at a vertex in the fiducial volume: CC numu 55% (muon), CC nue 15% (electron shower), NC 30%;
  neutrino energy 0.2 GeV + Gamma(2, 0.3 GeV). Final states: protons (hadron), charged pions, rare kaons, pi0s
  (two photon showers converting after Exp(18 cm)). Track lengths from CSDA-like ranges in argon
  (proton 0.0022 KE^1.77 cm, muon and pion ~KE / 2.2 MeV/cm, pions also ended by interactions); multiple
  scattering as a random walk of the direction; dE/dx = max(2.1 MeV/cm, A R^-0.42) (Bragg rise with the
  residual range R, A by species). Stopping muons give a Michel electron (E <= 53 MeV) in 75% of the cases.
* Showers: 0.5 deposits per MeV with longitudinal depth Gamma(b t_max + 1, 1 / b) X0 (X0 = 14 cm, t_max = ln(E/32 MeV)),
  lateral spread growing with depth. Diffuse: small blobs (0.3-3 MeV) around the vertex (de-excitation gammas,
  neutron scatters). Background (filter label 0, semantic -1): a cosmic-muon segment in 35% of events and
  random noise hits near the activity.
* Hits: every deposit is projected on each plane (wire, time with 0.5-tick diffusion); deposits on the same wire
  within 4 ticks form one hit (split every 20 ticks), with integral = charge x gain (130/135/160 ADC/MeV for
  u/v/y) x LogNormal(0, 0.12) and rms = sqrt(rms0^2 + time spread^2) (rms0 3.3-3.7 ticks); truth = the label
  (and particle) with most charge in the hit. Hits are ordered y, v, u (as in the real files), by wire and
  time within a plane; hit_id = row in the event.
* Space points: the distinct (u, v, y) hit triples of the deposits, at most a random 40-110% of the hit count,
  12% missing one plane (-1: u or y mostly); position = mean of their deposits.
Events with fewer than 100 hits of the interaction, or more than 1500 hits with the noise, are drawn again (the
next draws of the same generator). Hit labels come out about 15% background, 15% pion, 24% muon, 1% kaon,
14% hadron, 23% shower, 2.5% michel, 5% diffuse; 300-1400 hits per event (5-95%), 0.3-0.6 space points per hit.
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..exceptions import ConfigurationError, InputError

__all__ = ["generate_nugraph", "generate_event", "main"]

log = logging.getLogger(__name__)

# geometry (cm, ticks)
TPC_LO = np.array([0.0, -116.5, 0.0])
TPC_HI = np.array([256.35, 116.5, 1036.8])
WIRE_PITCH = 0.3
TICK_CM = 0.055
T0_TICKS = 800.0
N_WIRES = np.array([2400, 2400, 3456])
_S60, _C60 = np.sqrt(3.0) / 2, 0.5
PLANE_AY = np.array([-_S60, _S60, 0.0])  # wire coordinate s = ay*y + az*z + c
PLANE_AZ = np.array([_C60, _C60, 1.0])
PLANE_C = np.array([116.5 * _S60, 116.5 * _S60, 0.0])
GAIN = np.array([130.0, 135.0, 160.0])  # ADC per MeV
RMS0 = np.array([3.7, 3.4, 3.3])  # ticks
HIT_GAP, HIT_MAXLEN = 4.0, 20.0  # ticks
MIN_HITS, MAX_HITS = 100, 1500

# labels: the 7 semantic classes, then background (filter 0)
PION, MUON, KAON, HADRON, SHOWER, MICHEL, DIFFUSE, NOISE = range(8)
STEP = 0.25  # cm between track deposits (< pitch: every wire crossed gets one)
X0 = 14.0
# per track species: Bragg constant A (MeV/cm at R = 1 cm), scattering per step (rad)
_BRAGG = {MUON: 8.0, PION: 8.5, KAON: 13.0, HADRON: 17.0, MICHEL: 0.0, NOISE: 0.0}
_SCATTER = {MUON: 0.006, PION: 0.012, KAON: 0.01, HADRON: 0.01, MICHEL: 0.06, NOISE: 0.003}


def _unit(rng: np.random.Generator, n: int) -> np.ndarray:
    v = rng.normal(size=(n, 3))
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _forward(rng: np.random.Generator, n: int, spread: float) -> np.ndarray:
    """Directions around the beam (+z), wider for larger *spread*."""
    v = rng.normal(size=(n, 3)) * spread + np.array([0.0, 0.0, 1.0])
    return v / np.linalg.norm(v, axis=1, keepdims=True)


class _Particles:
    """Particles of one event: tracks (start, direction, length, label) and showers (start, direction, MeV)."""

    def __init__(self) -> None:
        self.tracks: list[tuple[np.ndarray, np.ndarray, float, int]] = []
        self.showers: list[tuple[np.ndarray, np.ndarray, float]] = []
        self.n_tracks = 0  # tracks including Michel electrons, once their deposits are made


def _interaction(rng: np.random.Generator) -> tuple[dict, _Particles]:
    """The neutrino interaction: truth and particles."""
    vtx = TPC_LO + 15 + rng.random(3) * (TPC_HI - TPC_LO - 30)
    e_nu = 0.2 + rng.gamma(2.0, 0.3)  # GeV
    kind = rng.choice(3, p=[0.55, 0.15, 0.3])  # CC numu, CC nue, NC
    parts = _Particles()
    lep = 0.0
    if kind == 0:
        lep = e_nu * rng.uniform(0.3, 0.8)
        ke = max(lep * 1000 - 105.7, 30.0)
        parts.tracks.append((vtx, _forward(rng, 1, 0.5)[0], ke / 2.2, MUON))
    elif kind == 1:
        lep = e_nu * rng.uniform(0.3, 0.8)
        parts.showers.append((vtx, _forward(rng, 1, 0.5)[0], lep * 1000))
    had = e_nu * 1000 - lep * 1000  # MeV left for hadrons
    n_p = rng.poisson(1.0 + had / 800)
    for ke in rng.uniform(25, 250, n_p):
        parts.tracks.append((vtx, _unit(rng, 1)[0], 0.0022 * ke**1.77, HADRON))
    for ke in rng.uniform(40, 400, rng.poisson(0.4 + had / 1500)):
        parts.tracks.append((vtx, _unit(rng, 1)[0], min(ke / 2.2, rng.exponential(80.0) + 5), PION))
    if rng.random() < 0.05:
        parts.tracks.append((vtx, _unit(rng, 1)[0], 0.0035 * rng.uniform(50, 300) ** 1.7, KAON))
    for _ in range(rng.poisson(0.5 + (kind == 2) * 0.4)):  # pi0 -> 2 photons
        e = rng.uniform(135, 500)
        f = rng.uniform(0.15, 0.85)
        for frac, d in zip((f, 1 - f), _unit(rng, 2)):
            parts.showers.append((vtx + d * rng.exponential(18.0), d, e * frac))
    truth = {
        "is_cc": int(kind != 2),
        "nu_pdg": (14, 12, int(rng.choice([14, 12], p=[0.9, 0.1])))[kind],
        "nu_energy": e_nu,
        "lep_energy": lep,
        "nu_vtx": vtx,
    }
    return truth, parts


def _track_points(rng: np.random.Generator, parts: _Particles) -> list[np.ndarray]:
    """Deposits of the tracks (and Michel electrons of stopping muons): columns x, y, z, dE, label, particle."""
    tracks = list(parts.tracks)
    out = []
    pid = 0
    while pid < len(tracks):
        start, d, length, label = tracks[pid]
        n = max(2, int(length / STEP))
        s = (np.arange(n) + 0.5) * STEP
        e1 = np.cross(d, [0.0, 1.0, 0.0] if abs(d[1]) < 0.9 else [1.0, 0.0, 0.0])
        e1 /= np.linalg.norm(e1)
        e2 = np.cross(d, e1)
        kicks = rng.normal(0.0, _SCATTER[label], size=(n, 2))
        walk = np.cumsum(np.cumsum(kicks, axis=0), axis=0) * STEP  # angle random walk -> transverse offset
        pos = start + s[:, None] * d + walk[:, :1] * e1 + walk[:, 1:] * e2
        inside = np.all((pos >= TPC_LO) & (pos <= TPC_HI), axis=1)
        stop = int(np.argmin(inside)) if not inside.all() else n  # the track leaves the TPC: cut there
        pos, s = pos[:stop], s[:stop]
        dedx = np.maximum(2.1, _BRAGG[label] * np.maximum(length - s, 0.05) ** -0.42)
        dedx = np.minimum(dedx, 30.0)
        out.append(np.column_stack([pos, dedx * STEP, np.full(len(s), label), np.full(len(s), pid)]))
        if label == MUON and stop == n and rng.random() < 0.75:  # stopped muon -> Michel electron
            e = 52.8 * rng.beta(3.0, 1.4)
            tracks.append((pos[-1] if len(pos) else start, _unit(rng, 1)[0], e / 2.1, MICHEL))
        pid += 1
    parts.n_tracks = len(tracks)
    return out


def _shower_points(rng: np.random.Generator, parts: _Particles, first_pid: int) -> list[np.ndarray]:
    out = []
    for i, (start, d, e) in enumerate(parts.showers):
        n = max(5, int(e * 0.5))
        t_max = max(np.log(e / 32.0), 0.2)
        depth = rng.gamma(0.5 * t_max + 1.0, 2.0, n) * X0
        e1 = np.cross(d, [0.0, 1.0, 0.0] if abs(d[1]) < 0.9 else [1.0, 0.0, 0.0])
        e1 /= np.linalg.norm(e1)
        e2 = np.cross(d, e1)
        r = rng.exponential(1.0, n) * (0.3 + depth / 12.0)
        phi = rng.uniform(0, 2 * np.pi, n)
        pos = start + depth[:, None] * d + (r * np.cos(phi))[:, None] * e1 + (r * np.sin(phi))[:, None] * e2
        de = np.full(n, 0.7 * e / n)
        out.append(np.column_stack([pos, de, np.full(n, SHOWER), np.full(n, first_pid + i)]))
    return out


def _background_points(rng: np.random.Generator, vtx: np.ndarray, e_nu: float, first_pid: int) -> list[np.ndarray]:
    """Diffuse blobs around the vertex and, sometimes, a cosmic-muon segment (background)."""
    nb = rng.poisson(4 + 6 * e_nu)
    centres = vtx + _unit(rng, nb) * rng.exponential(40.0, (nb, 1))
    per = rng.integers(1, 5, nb)
    c = np.repeat(centres, per, axis=0) + rng.normal(0, 0.3, (per.sum(), 3))
    de = np.repeat(rng.uniform(0.3, 3.0, nb) / per, per)
    out = [np.column_stack([c, de, np.full(len(c), DIFFUSE), first_pid + np.repeat(np.arange(nb), per)])]
    if rng.random() < 0.35:
        mid = TPC_LO + rng.random(3) * (TPC_HI - TPC_LO)
        d = np.array([rng.normal(0, 0.5), -1.0, rng.normal(0, 0.5)])
        d /= np.linalg.norm(d)
        half = rng.uniform(5, 30)
        n = int(2 * half / STEP)
        pos = mid + (np.arange(n) * STEP - half)[:, None] * d
        pos = pos[np.all((pos >= TPC_LO) & (pos <= TPC_HI), axis=1)]
        out.append(np.column_stack([pos, np.full(len(pos), 2.1 * STEP), np.full(len(pos), NOISE),
                                    np.full(len(pos), first_pid + nb)]))
    return out


def _hits(rng: np.random.Generator, pts: np.ndarray) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Project deposits *pts* on the planes and form hits; returns the hit columns and, per deposit and
    plane, the index of its hit (-1 outside the plane)."""
    n = len(pts)
    x, y, z, de = pts[:, 0], pts[:, 1], pts[:, 2], pts[:, 3]
    wire = np.floor((PLANE_AY[:, None] * y + PLANE_AZ[:, None] * z + PLANE_C[:, None]) / WIRE_PITCH).astype(np.int64)
    valid = (wire >= 0) & (wire < N_WIRES[:, None])  # (3, n)
    t = T0_TICKS + x / TICK_CM + rng.normal(0, 0.5, (3, n))
    plane = np.broadcast_to(np.arange(3)[:, None], (3, n))
    dep = np.broadcast_to(np.arange(n), (3, n))
    sel = valid.ravel()
    P, W, T, D = plane.ravel()[sel], wire.ravel()[sel], t.ravel()[sel], dep.ravel()[sel]
    Q = de[D] * GAIN[P]
    key = (2 - P) * 4096 + W  # y plane first, then v, u (as in the real files)
    order = np.lexsort((T, key))
    P, W, T, D, Q, key = P[order], W[order], T[order], D[order], Q[order], key[order]
    new = np.ones(len(key), dtype=bool)
    new[1:] = (key[1:] != key[:-1]) | (np.diff(T) > HIT_GAP)
    gid = np.cumsum(new) - 1
    sub = np.floor((T - T[new][gid]) / HIT_MAXLEN)
    new[1:] |= sub[1:] != sub[:-1]
    gid = np.cumsum(new) - 1
    nh = int(gid[-1]) + 1 if len(gid) else 0
    q = np.bincount(gid, Q, nh)
    tm = np.bincount(gid, Q * T, nh) / q
    tvar = np.maximum(np.bincount(gid, Q * T * T, nh) / q - tm * tm, 0.0)
    lab = pts[D, 4].astype(np.int64)
    label = np.bincount(gid * 8 + lab, Q, nh * 8).reshape(nh, 8).argmax(1)
    first = np.flatnonzero(new)
    hp = P[first]
    cols = {
        "local_plane": hp,
        "local_wire": W[first],
        "local_time": tm,
        "integral": q * rng.lognormal(0.0, 0.12, nh),
        "rms": np.sqrt((RMS0[hp] * rng.lognormal(0.0, 0.12, nh)) ** 2 + tvar),
        "label": label,
        "particle": pts[D[np.lexsort((-Q, gid))[first]], 5].astype(np.int64),
    }
    dep_hit = np.full((3, n), -1, dtype=np.int64)
    dep_hit[P, D] = gid  # several deposits of a plane may share a hit
    return cols, dep_hit


def _noise_hits(rng: np.random.Generator, hits: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Random noise hits within 100 wires and 200 ticks of the *hits* (no space points), up to MAX_HITS in all."""
    n = min(rng.poisson(5 + 0.08 * len(hits["local_plane"])), max(MAX_HITS - len(hits["local_plane"]), 0))
    p = rng.integers(0, 3, n)
    lo = np.array([hits["local_wire"][hits["local_plane"] == k].min(initial=N_WIRES[k]) for k in range(3)])
    hi = np.array([hits["local_wire"][hits["local_plane"] == k].max(initial=0) for k in range(3)])
    wlo, whi = np.maximum(lo[p] - 100, 0), np.minimum(np.maximum(hi[p], lo[p]) + 100, N_WIRES[p] - 1)
    tlo, thi = hits["local_time"].min(initial=T0_TICKS) - 200, hits["local_time"].max(initial=T0_TICKS) + 200
    return {
        "local_plane": p,
        "local_wire": (wlo + rng.random(n) * (whi - wlo + 1)).astype(np.int64),
        "local_time": rng.uniform(tlo, thi, n),
        "integral": rng.lognormal(np.log(25.0), 0.6, n),
        "rms": RMS0[p] * rng.lognormal(0.0, 0.25, n),
        "label": np.full(n, NOISE),
        "particle": np.full(n, -1),
    }


def _spacepoints(rng: np.random.Generator, pts: np.ndarray, dep_hit: np.ndarray, n_hits: int) -> dict[str, np.ndarray]:
    """Space points from the (u, v, y) hits of the deposits (see the module docstring)."""
    ok = np.all(dep_hit >= 0, axis=0)
    h = dep_hit[:, ok]
    key = (h[0] << 42) | (h[1] << 21) | h[2]
    uniq, inv = np.unique(key, return_inverse=True)
    m = len(uniq)
    pos = np.column_stack([np.bincount(inv, pts[ok, c], m) for c in range(3)]) / np.bincount(inv, None, m)[:, None]
    trip = np.column_stack([uniq >> 42, (uniq >> 21) & (2**21 - 1), uniq & (2**21 - 1)])
    keep = np.sort(rng.permutation(m)[: min(m, int(n_hits * rng.uniform(0.4, 1.1)))])
    trip, pos = trip[keep], pos[keep]
    drop = rng.random(len(trip)) < 0.12
    trip[np.flatnonzero(drop), rng.choice(3, int(drop.sum()), p=[0.45, 0.1, 0.45])] = -1
    _, first = np.unique(trip, axis=0, return_index=True)
    first = np.sort(first)
    return {"hit_id": trip[first], "position": pos[first]}


def generate_event(rng: np.random.Generator) -> tuple[dict, dict[str, np.ndarray], dict[str, np.ndarray]]:
    """One event: ``(truth, hit columns, space-point columns)`` (hit columns as in ``hit_table``, plus truth
    ``semantic_label`` (-1 for background), ``filter_label``, ``instance_label``)."""
    for _ in range(50):
        truth, parts = _interaction(rng)
        vtx = truth["nu_vtx"]
        pts = _track_points(rng, parts)
        pts += _shower_points(rng, parts, parts.n_tracks)
        pts += _background_points(rng, vtx, truth["nu_energy"], parts.n_tracks + len(parts.showers))
        pts = np.concatenate([p for p in pts if len(p)] or [np.zeros((0, 6))])
        pts = pts[np.all((pts[:, :3] >= TPC_LO) & (pts[:, :3] <= TPC_HI), axis=1)]
        signal, dep_hit = _hits(rng, pts)
        n_nu = int(np.count_nonzero(signal["label"] != NOISE))
        if MIN_HITS <= n_nu and len(signal["label"]) * 1.1 <= MAX_HITS:
            break
    noise = _noise_hits(rng, signal)
    hits = {k: np.concatenate([signal[k], noise[k]]) for k in signal}
    order = np.lexsort((hits["local_time"], hits["local_wire"], 2 - hits["local_plane"]))
    hits = {k: v[order] for k, v in hits.items()}
    row = np.empty(len(order), dtype=np.int64)
    row[order] = np.arange(len(order))  # old hit index -> row
    dep_hit = np.where(dep_hit >= 0, row[np.maximum(dep_hit, 0)], -1)
    sp = _spacepoints(rng, pts, dep_hit, len(order))
    label = hits.pop("label")
    particle = hits.pop("particle")
    hits["semantic_label"] = np.where(label == NOISE, -1, label)
    hits["filter_label"] = (label != NOISE).astype(np.int64)
    hits["instance_label"] = np.where(label == NOISE, -1, particle)
    hits["hit_id"] = np.arange(len(order))
    vtx = truth["nu_vtx"]
    truth["nu_vtx_wire_pos"] = np.floor((PLANE_AY * vtx[1] + PLANE_AZ * vtx[2] + PLANE_C) / WIRE_PITCH).astype(np.int64)
    truth["nu_vtx_wire_time"] = T0_TICKS + vtx[0] / TICK_CM
    return truth, hits, sp


# ---------------------------------------------------------------------------------------------- writing
_HIT_DTYPES = {"hit_id": np.int32, "local_plane": np.int32, "local_wire": np.int32, "local_time": np.float32,
               "integral": np.float32, "rms": np.float32, "semantic_label": np.int32, "filter_label": np.int32,
               "instance_label": np.int32}
_EVENT_DTYPES = {"is_cc": np.int32, "nu_pdg": np.int32, "nu_energy": np.float32, "lep_energy": np.float32,
                 "nu_vtx": np.float32, "nu_vtx_wire_pos": np.int32, "nu_vtx_wire_time": np.float32}


def generate_nugraph(path: str | os.PathLike, n_events: int, seed: int, *, run: int = 1,
                     events_per_subrun: int = 100, compression: str | None = "gzip") -> Path:
    """Write *n_events* events to *path* (pynuml layout, atomically: a temporary file renamed at the end).
    Run *run*, subrun ``1 + i // events_per_subrun``, event ``i + 1``. Returns the path."""
    from .. import extras

    h5py = extras.h5py("generate-nugraph (writing NuML HDF5 files)")
    if n_events < 0:
        raise ConfigurationError(f"--events must be >= 0, got {n_events}")
    if events_per_subrun < 1:
        raise ConfigurationError(f"events per subrun must be >= 1, got {events_per_subrun}")
    path = Path(path)
    if not path.parent.resolve().is_dir():
        raise InputError(f"output directory {path.parent.resolve()} does not exist")
    t0 = time.perf_counter()
    events = [generate_event(np.random.default_rng([int(seed), i])) for i in range(n_events)]
    ids = np.array([[run, 1 + i // events_per_subrun, i + 1] for i in range(n_events)], dtype=np.int32).reshape(-1, 3)
    tables = {
        "event_table": ([{k: ev[0][k] for k in _EVENT_DTYPES} for ev in events], _EVENT_DTYPES),
        "hit_table": ([ev[1] for ev in events], _HIT_DTYPES),
        "spacepoint_table": ([{"spacepoint_id": np.arange(len(ev[2]["hit_id"])), **ev[2]} for ev in events],
                             {"spacepoint_id": np.int32, "hit_id": np.int32, "position": np.float32}),
    }
    tmp = path.parent / f".{path.name}.{os.getpid()}.tmp"
    opts = {"compression": compression} if compression else {}
    try:
        with h5py.File(tmp, "w") as f:
            for name, (rows, dtypes) in tables.items():
                counts = np.array([len(np.atleast_1d(r[next(iter(dtypes))])) if name != "event_table" else 1
                                   for r in rows], dtype=np.int64)
                g = f.create_group(name)
                g.create_dataset("event_id", data=np.repeat(ids, counts, axis=0), **opts)
                nz = np.flatnonzero(counts)
                g.create_dataset("event_id.seq_cnt", data=np.column_stack([nz, counts[nz]]).astype(np.int64))
                for col, dt in dtypes.items():
                    parts = [np.asarray(r[col], dtype=dt).reshape(counts[i], -1) for i, r in enumerate(rows)]
                    width = 3 if col in ("hit_id", "position", "nu_vtx", "nu_vtx_wire_pos") and name != "hit_table" else 1
                    data = np.concatenate(parts) if parts else np.zeros((0, width), dtype=dt)
                    g.create_dataset(col, data=data, **opts)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    n_hits = sum(len(ev[1]["hit_id"]) for ev in events)
    log.info("wrote %d events (%d hits) to %s in %.1f s", n_events, n_hits, path, time.perf_counter() - t0)
    return path


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: ``python -m framework generate-nugraph --events 1000 --seed 1 events.h5``."""
    parser = argparse.ArgumentParser(
        prog="python -m framework generate-nugraph",
        description="Generate LArTPC-like neutrino events (NuML pynuml HDF5 layout) for NuGraph.",
    )
    parser.add_argument("output", help="output HDF5 file (written atomically)")
    parser.add_argument("--events", "-n", type=int, default=100, help="number of events (default 100)")
    parser.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    parser.add_argument("--run", type=int, default=1, help="run number (default 1)")
    parser.add_argument("--events-per-subrun", type=int, default=100, help="events per subrun (default 100)")
    parser.add_argument("--compression", choices=("gzip", "lzf", "none"), default="gzip")
    args = parser.parse_args(argv)
    generate_nugraph(args.output, args.events, args.seed, run=args.run, events_per_subrun=args.events_per_subrun,
                     compression=None if args.compression == "none" else args.compression)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
