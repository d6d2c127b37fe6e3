"""Run, lumi and event numbers of a generated file and its bad luminosity sections (:class:`LumiPlan`), and
their application to a generated chunk (:func:`apply_lumi_plan`; the anomalies are in
:mod:`framework.samples.anomalies`)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from ..exceptions import did_you_mean
from ..io.schema import collection_fields
from .anomalies import ANOMALIES, add_met_extras, add_met_noise, finish_met_extras, remove_jets_in_region

__all__ = ["LumiPlan", "parse_bad_lumis", "apply_lumi_plan"]


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


def apply_lumi_plan(flat: dict[str, np.ndarray], plan: LumiPlan, idx: np.ndarray, rng: np.random.Generator,
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
