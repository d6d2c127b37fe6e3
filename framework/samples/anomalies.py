"""Bad luminosity sections for data-quality monitoring studies, applied by :mod:`framework.samples.lumi`.

A generated file can span several runs of ``lumis_per_run`` luminosity sections; chosen sections are made
*bad* with one or more anomalies, applied to the generated events after the physics (so the good sections are
the very events a file without anomalies has):

``met-tail``
    noisy MET tail: in :data:`MET_TAIL_FRACTION` of the section's events a spurious deposit (HCAL-noise-like,
    not a PF candidate) of transverse momentum ``MET_TAIL_PT0 + Exp(MET_TAIL_PT_MEAN)`` GeV in a random
    direction is added to the PF MET: ``MET_pt``, ``MET_phi``, ``MET_sumEt`` and ``MET_significance``
    change (``PuppiMET`` does not).
``dead-region``
    a dead detector region: the jets with ``eta`` in [:data:`DEAD_ETA`) and ``phi`` in [:data:`DEAD_PHI`) are
    removed with their ``JetPFCands`` / ``JetSVs`` links (indices of the remaining jets renumbered); the PF
    candidates and MET stay. The edges are bin edges of the DQM jet occupancy map (``PhiVSEta``: 50 bins in
    eta over [-5, 5], 24 in phi over [-3.2, 3.2]), so the region's bins are empty.

Two per-event branches that NanoAOD has and the default schema lacks can be written on request
(:data:`EXTRA_BRANCHES`): ``MET_sumEt`` (scalar sum of the PF candidates' pt) and ``MET_significance``, a toy
of NanoAOD's: ``MET_pt**2 / (MET_SIG_RESOLUTION**2 * MET_sumEt)`` (resolution ~ sqrt(sumEt); median ~2 and a
tail to ~50 for these ttbar-like events, where real MET from neutrinos is common).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np

from ..io.schema import Branch

__all__ = ["ANOMALIES", "EXTRA_BRANCHES", "add_met_extras", "finish_met_extras", "add_met_noise",
           "remove_jets_in_region"]

#: anomaly name -> bit in the ``anomalies`` branch of the truth tree (``LuminosityBlocks``)
ANOMALIES: dict[str, int] = {"met-tail": 1, "dead-region": 2}

MET_TAIL_FRACTION = 0.4
MET_TAIL_PT0 = 30.0
MET_TAIL_PT_MEAN = 60.0
DEAD_ETA = (0.0, 1.6)
DEAD_PHI = (-3.2 + 15 * 6.4 / 24, -3.2 + 20 * 6.4 / 24)  # [0.8, 2.133): bins 16-20 of the 24 phi bins
MET_SIG_RESOLUTION = 0.7  # GeV^(1/2): sigma(MET) = 0.7 * sqrt(sumEt)

#: branches written only when selected (``branches=`` of :func:`framework.samples.writer.generate`)
EXTRA_BRANCHES: dict[str, Branch] = {
    "MET_sumEt": Branch("MET_sumEt", "float32", "scalar sum of the PF candidates' pt (GeV), + noise in met-tail "
                        "sections"),
    "MET_significance": Branch("MET_significance", "float32", "toy MET significance: MET_pt^2 / (0.7^2 GeV * "
                               "MET_sumEt)"),
}


# ------------------------------------------------------------------------------------ what they do
def _event_of(counts: np.ndarray) -> np.ndarray:
    return np.repeat(np.arange(len(counts)), counts)


def add_met_extras(flat: dict[str, np.ndarray]) -> None:
    """``MET_sumEt`` from the PF candidates (no random numbers drawn)."""
    n = len(flat["MET_pt"])
    pt = flat["PFCands_pt"].astype(np.float64)
    flat["MET_sumEt"] = np.bincount(_event_of(flat["nPFCands"]), weights=pt, minlength=n)[:n]


def finish_met_extras(flat: dict[str, np.ndarray]) -> None:
    """``MET_significance`` from the final ``MET_pt`` and ``MET_sumEt``; both stored as float32."""
    met = flat["MET_pt"].astype(np.float64)
    sumet = np.asarray(flat["MET_sumEt"], np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        sig = np.where(sumet > 0, met**2 / (MET_SIG_RESOLUTION**2 * sumet), 0.0)
    flat["MET_sumEt"] = sumet.astype(np.float32)
    flat["MET_significance"] = sig.astype(np.float32)


def add_met_noise(flat: dict[str, np.ndarray], events: np.ndarray, rng: np.random.Generator) -> None:
    """The ``met-tail`` anomaly for the events of mask *events* (draws for all events, so the result of an
    event does not depend on which others are bad)."""
    n = len(events)
    hit = (rng.random(n) < MET_TAIL_FRACTION) & events
    pt = MET_TAIL_PT0 + rng.exponential(MET_TAIL_PT_MEAN, n)
    phi = rng.uniform(-np.pi, np.pi, n)
    met, mphi = flat["MET_pt"].astype(np.float64), flat["MET_phi"].astype(np.float64)
    # the deposit adds to the visible sum, so MET moves by minus its vector
    mx = met * np.cos(mphi) - np.where(hit, pt * np.cos(phi), 0.0)
    my = met * np.sin(mphi) - np.where(hit, pt * np.sin(phi), 0.0)
    flat["MET_pt"] = np.hypot(mx, my).astype(np.float32)
    flat["MET_phi"] = np.arctan2(my, mx).astype(np.float32)
    flat["MET_sumEt"] = flat["MET_sumEt"] + np.where(hit, pt, 0.0)


def remove_jets_in_region(flat: dict[str, np.ndarray], events: np.ndarray,
                          fields: Mapping[str, Iterable[str]]) -> None:
    """The ``dead-region`` anomaly: drop the jets of the events of mask *events* inside the region, with
    their links; *fields* maps ``Jet``, ``JetPFCands``, ``JetSVs`` to their field names."""
    nj = np.asarray(flat["nJet"], np.int64)
    jev = _event_of(nj)
    eta, phi = flat["Jet_eta"], flat["Jet_phi"]
    dead = (events[jev] & (eta >= DEAD_ETA[0]) & (eta < DEAD_ETA[1]) & (phi >= DEAD_PHI[0]) & (phi < DEAD_PHI[1]))
    if not dead.any():
        return
    keep = ~dead
    first = np.zeros(len(nj) + 1, np.int64)
    np.cumsum(nj, out=first[1:])
    kept_upto = np.concatenate([[0], np.cumsum(keep)])
    new_local = kept_upto[1:] - 1 - kept_upto[first[:-1]][jev]  # index among the kept jets of the event
    for f in fields["Jet"]:
        flat[f"Jet_{f}"] = flat[f"Jet_{f}"][keep]
    flat["nJet"] = np.bincount(jev[keep], minlength=len(nj)).astype(flat["nJet"].dtype)
    for coll in ("JetPFCands", "JetSVs"):
        counts = np.asarray(flat[f"n{coll}"], np.int64)
        lev = _event_of(counts)
        gj = first[lev] + flat[f"{coll}_jetIdx"].astype(np.int64)
        k = keep[gj]
        for f in fields[coll]:
            flat[f"{coll}_{f}"] = flat[f"{coll}_{f}"][k]
        flat[f"{coll}_jetIdx"] = new_local[gj[k]].astype(np.int32)
        flat[f"n{coll}"] = np.bincount(lev[k], minlength=len(counts)).astype(flat[f"n{coll}"].dtype)
