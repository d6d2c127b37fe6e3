"""Writing a generated sample: the branch selection and tree layout, and :func:`generate`, which writes the
chunks of :func:`~framework.samples.events.generate_chunk` (with the lumi plan of
:mod:`framework.samples.lumi`) atomically into a ROOT file."""

from __future__ import annotations

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

from ..exceptions import did_you_mean
from ..io.schema import BRANCHES, COLLECTIONS, TREE_NAME, collection_fields
from .anomalies import EXTRA_BRANCHES
from .events import CHUNK_EVENTS, generate_chunk
from .lumi import LumiPlan, apply_lumi_plan

__all__ = ["generate"]

log = logging.getLogger(__name__)


def _select_branches(patterns: Sequence[str] | None) -> list[str]:
    """The branches to write, in writing order: the schema (``None``), or the IDs and the schema or
    :data:`~framework.samples.anomalies.EXTRA_BRANCHES` branches matching one of the glob *patterns*."""
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


def generate(path: str | os.PathLike, n_events: int, seed: int, *, run: int = 1, events_per_lumi: int = 100,
             compression: str = "zlib", level: int = 1, lumis_per_run: int | None = None,
             bad_lumis: Mapping[Any, Any] | Iterable[Any] | str | None = None, anomaly: str | Sequence[str] = "met-tail",
             branches: Sequence[str] | None = None, first_event: int = 1) -> None:
    """Write ``n_events`` generated events to the ROOT file ``path`` (tree ``Events``).

    The content is a deterministic function of ``seed``, ``run`` and ``events_per_lumi`` (and of the options
    below). The file is written to a temporary file in the same directory and renamed into place, so a failed
    generation leaves no (partial) file behind. ``compression`` is ``"zlib"`` or ``"lzma"`` (``level`` 1-9).

    For data-quality studies (:mod:`framework.samples.anomalies`): ``lumis_per_run`` spreads the events over runs
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
                flat = generate_chunk(rng, size, start, run, events_per_lumi)
                if truth or extras:  # anomalies draw from a stream of their own: the physics stays the same
                    arng = np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=(ichunk, 1)))
                    apply_lumi_plan(flat, plan, np.arange(start, start + size, dtype=np.int64), arng, extras)
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
