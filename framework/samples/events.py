"""One chunk of generated events: the stages of :mod:`~framework.samples.jets`,
:mod:`~framework.samples.particles` and :mod:`~framework.samples.tracks` in their drawing order, then MET and
the flat per-branch arrays of the schema (:mod:`framework.io.schema`).

The order of the stages is the order of the random draws: it is part of the sample definition (a file is a
function of its arguments only; ``tests/test_samples_identical.py`` checks every array bit for bit).
"""

from __future__ import annotations

import numpy as np

from ..io.schema import BRANCHES
from .jets import NJET_PROBS, gen_jets, jet_links, jet_svs, reco_jets
from .kinematics import concat, offsets, p3, seg_sum
from .particles import candidates, jet_particles, pf_candidates, pileup, recoil, underlying_event, w_leptons
from .tracks import secondary_vertices

__all__ = ["CHUNK_EVENTS", "generate_chunk"]

#: events generated (and written as one basket) at a time; part of the sample definition
CHUNK_EVENTS = 250


def generate_chunk(rng: np.random.Generator, n_events: int, first_index: int, run: int,
                   events_per_lumi: int) -> dict[str, np.ndarray]:
    """Generate ``n_events`` events; returns flat arrays per branch plus ``n<Collection>`` counts."""
    E = n_events
    idx = np.arange(first_index, first_index + E, dtype=np.int64)

    # ---- event level
    npv = np.clip(rng.poisson(35, E), 1, 90)
    pv = np.stack([rng.normal(0.0107, 0.0012, E), rng.normal(0.0418, 0.0012, E), rng.normal(0.3, 3.5, E)], 1)
    nj = rng.choice(len(NJET_PROBS), size=E, p=NJET_PROBS)

    # ---- particles: jets, W leptons, underlying event, recoil, pileup
    gen = gen_jets(rng, nj, E)
    frag, tracks, hphotons, vertices, (nu_ev, nu_h) = jet_particles(rng, gen, pv)
    wleps, wnux, wnuy = w_leptons(rng, E, pv)
    nux = wnux + seg_sum(nu_ev, nu_h[:, 0], E)
    nuy = wnuy + seg_sum(nu_ev, nu_h[:, 1], E)
    ue = underlying_event(rng, E, pv)
    soft = recoil(rng, concat([frag, tracks, hphotons, wleps, ue]), nux, nuy, E, pv)
    parts_pu = pileup(rng, npv, E)

    # ---- all candidates, grouped by event (PV particles first, then pileup)
    parts, pu_mask = candidates(rng, [frag, tracks, hphotons, wleps, ue, soft] + parts_pu)
    pf, pt, eta, phi = pf_candidates(rng, parts, pv, pu_mask)
    n_pf = np.bincount(parts["ev"], minlength=E)
    pf_local = np.arange(len(pt)) - offsets(n_pf)[parts["ev"]]
    energy = np.sqrt(parts["px"] ** 2 + parts["py"] ** 2 + parts["pz"] ** 2 + parts["mass"] ** 2)

    # ---- reco jets, their candidates, secondary vertices
    jets = reco_jets(rng, gen, parts, pf, eta, phi, energy, E)
    links, n_links, n_const = jet_links(jets, parts, pf, pf_local, E)
    sv, rv, sev = secondary_vertices(rng, parts, pt, energy, vertices, pv, E)
    n_sv = np.bincount(sev, minlength=E)
    jetsvs, n_jetsvs, n_svs_jet = jet_svs(jets, sv, vertices["gen_jet"][rv], sev, n_sv, E)
    jorder = jets.order
    jet_table = {
        "pt": jets.pt32[jorder],
        "eta": jets.eta32[jorder],
        "phi": jets.phi32[jorder],
        "mass": jets.mass32[jorder],
        "hadronFlavour": gen.flav[jorder].astype(np.int32),
        "partonFlavour": gen.parton[jorder].astype(np.int32),
        "nConstituents": n_const.astype(np.int32),
        "nSVs": n_svs_jet.astype(np.int32),
    }

    # ---- MET
    fpx, fpy, _ = p3(pf["pt"].astype(np.float64), pf["eta"].astype(np.float64), pf["phi"].astype(np.float64))
    mx = -seg_sum(parts["ev"], fpx, E)
    my = -seg_sum(parts["ev"], fpy, E)
    w = pf["puppiWeight"].astype(np.float64)
    qx = -seg_sum(parts["ev"], w * fpx, E)
    qy = -seg_sum(parts["ev"], w * fpy, E)

    out: dict[str, np.ndarray] = {
        "run": np.full(E, run, np.uint32),
        "luminosityBlock": (1 + idx // events_per_lumi).astype(np.uint32),
        "event": (idx + 1).astype(np.uint64),
        "nPFCands": n_pf,
        "nJet": jets.n,
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
    for coll, table in (("PFCands", pf), ("Jet", jet_table), ("JetPFCands", links), ("SV", sv), ("JetSVs", jetsvs)):
        for field, arr in table.items():
            out[f"{coll}_{field}"] = arr
    # dtypes exactly as the schema says
    for name, br in BRANCHES.items():
        out[name] = np.asarray(out[name]).astype(br.dtype, copy=False)
    return out
