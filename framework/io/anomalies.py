"""Bad luminosity sections for data-quality monitoring studies, applied by :mod:`framework.io.generate`.

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

import re
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from framework.exceptions import did_you_mean
from framework.io.schema import Branch

__all__ = ["ANOMALIES", "EXTRA_BRANCHES", "LumiPlan", "parse_bad_lumis", "add_met_extras", "finish_met_extras",
           "add_met_noise", "remove_jets_in_region"]

#: anomaly name -> bit in the ``anomalies`` branch of the truth tree (``LuminosityBlocks``)
ANOMALIES: dict[str, int] = {"met-tail": 1, "dead-region": 2}

MET_TAIL_FRACTION = 0.4
MET_TAIL_PT0 = 30.0
MET_TAIL_PT_MEAN = 60.0
DEAD_ETA = (0.0, 1.6)
DEAD_PHI = (-3.2 + 15 * 6.4 / 24, -3.2 + 20 * 6.4 / 24)  # [0.8, 2.133): bins 16-20 of the 24 phi bins
MET_SIG_RESOLUTION = 0.7  # GeV^(1/2): sigma(MET) = 0.7 * sqrt(sumEt)

#: branches written only when selected (``branches=`` of :func:`framework.io.generate.generate`)
EXTRA_BRANCHES: dict[str, Branch] = {
    "MET_sumEt": Branch("MET_sumEt", "float32", "scalar sum of the PF candidates' pt (GeV), + noise in met-tail "
                        "sections"),
    "MET_significance": Branch("MET_significance", "float32", "toy MET significance: MET_pt^2 / (0.7^2 GeV * "
                               "MET_sumEt)"),
}


# ------------------------------------------------------------------------------------ which sections
def _anomaly_set(names: str | Iterable[str], where: str) -> frozenset[str]:
    items = [n for n in re.split(r"[+,]", names)] if isinstance(names, str) else list(names)
    items = [n.strip() for n in items if n.strip()]
    if not items:
        raise ValueError(f"{where}: no anomaly given; known: {', '.join(ANOMALIES)}")
    for n in items:
        if n not in ANOMALIES:
            raise ValueError(f"{where}: unknown anomaly {n!r}.{did_you_mean(n, ANOMALIES)} Known: {', '.join(ANOMALIES)}")
    return frozenset(items)


def parse_bad_lumis(spec: str, default: str = "met-tail") -> dict[tuple[int | None, int], frozenset[str]]:
    """``"3,7"`` (lumis 3 and 7 of every run), ``"2:3,2:9=dead-region"`` (run 2, lumi 3 with *default*; run 2,
    lumi 9 dead), ``"4:5=met-tail+dead-region"`` -> ``{(run or None, lumi): anomalies}``."""
    out: dict[tuple[int | None, int], frozenset[str]] = {}
    for item in (s.strip() for s in spec.split(",")):
        if not item:
            continue
        where, _, names = item.partition("=")
        m = re.fullmatch(r"(?:(\d+):)?(\d+)", where.strip())
        if m is None:
            raise ValueError(f"bad lumi {item!r}: write LUMI, RUN:LUMI, optionally =ANOMALY[+ANOMALY] "
                             f"(e.g. 3, 2:7, 2:7=dead-region); anomalies: {', '.join(ANOMALIES)}")
        run = int(m.group(1)) if m.group(1) else None
        out[(run, int(m.group(2)))] = _anomaly_set(names or default, f"bad lumi {item!r}")
    return out


class LumiPlan:
    """Run, lumi and event numbers of a generated file, and which of its sections are bad.

    Without ``lumis_per_run`` the file is one run with lumis of ``events_per_lumi`` events (the generator's
    default numbering); with it, runs ``run, run + 1, ...`` of ``lumis_per_run`` lumis each, event numbers
    starting at 1 in each run. ``bad_lumis`` maps ``(run, lumi)`` -- or ``lumi`` / ``(None, lumi)`` for that
    lumi of every run -- to an anomaly name or names; a bare iterable of them gets ``anomaly``.
    """

    def __init__(self, n_events: int, run: int, events_per_lumi: int, lumis_per_run: int | None = None,
                 bad_lumis: Mapping[Any, Any] | Iterable[Any] | str | None = None, anomaly: str | Iterable[str] = "met-tail"):
        if lumis_per_run is not None and lumis_per_run < 1:
            raise ValueError(f"lumis_per_run must be >= 1, got {lumis_per_run}")
        self.n_events = n_events
        self.run = run
        self.events_per_lumi = events_per_lumi
        self.lumis_per_run = lumis_per_run
        idx = np.arange(n_events, dtype=np.int64)
        runs, lumis, _ = self.ids(idx)
        codes = np.unique((runs.astype(np.int64) << 32) | lumis.astype(np.int64))
        present = list(zip((codes >> 32).tolist(), (codes & 0xFFFFFFFF).tolist()))
        last_run = self.run if lumis_per_run is None else self.run + max(0, n_events - 1) // (lumis_per_run * events_per_lumi)
        if last_run >= 2**32:
            raise ValueError(f"run numbers up to {last_run} do not fit in uint32")
        self.lumis = present  # (run, lumi) in file order
        self.bad: dict[tuple[int, int], frozenset[str]] = {}
        for (r, lumi), names in self._normalise(bad_lumis, anomaly).items():
            matches = [k for k in present if k[1] == lumi and (r is None or k[0] == r)]
            if not matches:
                what = f"run {r}, lumi {lumi}" if r is not None else f"lumi {lumi}"
                raise ValueError(f"bad lumi {what} is not in the file: it has {self._describe()}")
            for k in matches:
                self.bad[k] = self.bad.get(k, frozenset()) | names

    @staticmethod
    def _normalise(bad: Any, anomaly: str | Iterable[str]) -> dict[tuple[int | None, int], frozenset[str]]:
        if bad is None:
            return {}
        if isinstance(bad, str):
            default = anomaly if isinstance(anomaly, str) else "+".join(anomaly)
            return parse_bad_lumis(bad, default)
        items = bad.items() if isinstance(bad, Mapping) else ((k, anomaly) for k in bad)
        out: dict[tuple[int | None, int], frozenset[str]] = {}
        for key, names in items:
            r, lumi = (None, key) if isinstance(key, (int, np.integer)) else key
            out[(None if r is None else int(r), int(lumi))] = _anomaly_set(names, f"bad lumi {key!r}")
        return out

    def _describe(self) -> str:
        if not self.lumis:
            return "no events"
        runs = sorted({r for r, _ in self.lumis})
        return (f"run{'s' if len(runs) > 1 else ''} {runs[0]}{'-' + str(runs[-1]) if len(runs) > 1 else ''} with "
                f"lumis 1-{max(lumi for _, lumi in self.lumis)}")

    @property
    def multi_run(self) -> bool:
        return self.lumis_per_run is not None

    def ids(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(run, luminosityBlock, event)`` of the events with global indices *idx*."""
        epl = self.events_per_lumi
        if self.lumis_per_run is None:
            return (np.full(len(idx), self.run, np.uint32), (1 + idx // epl).astype(np.uint32),
                    (idx + 1).astype(np.uint64))
        per_run = self.lumis_per_run * epl
        within = idx % per_run
        return ((self.run + idx // per_run).astype(np.uint32), (1 + within // epl).astype(np.uint32),
                (within + 1).astype(np.uint64))

    def event_anomalies(self, runs: np.ndarray, lumis: np.ndarray) -> dict[str, np.ndarray]:
        """Anomaly name -> mask of the events (of these run/lumi numbers) in sections with it."""
        out = {name: np.zeros(len(runs), bool) for name in ANOMALIES}
        for (r, lumi), names in self.bad.items():
            sel = (runs == r) & (lumis == lumi)
            for name in names:
                out[name] |= sel
        return out

    def truth(self, counts: Mapping[tuple[int, int], int]) -> dict[str, np.ndarray]:
        """The ``LuminosityBlocks`` tree of the file: ``run``, ``luminosityBlock``, ``nEvents``, ``isBad``,
        ``anomalies`` (bit mask of :data:`ANOMALIES`)."""
        keys = self.lumis
        masks = [sum(ANOMALIES[n] for n in self.bad.get(k, ())) for k in keys]
        return {
            "run": np.asarray([r for r, _ in keys], np.uint32),
            "luminosityBlock": np.asarray([lumi for _, lumi in keys], np.uint32),
            "nEvents": np.asarray([counts.get(k, 0) for k in keys], np.uint32),
            "isBad": np.asarray([m != 0 for m in masks], bool),
            "anomalies": np.asarray(masks, np.uint8),
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
