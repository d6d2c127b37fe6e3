"""``NuMLSource``: liquid-argon TPC events from NuML HDF5 files (NuGraph's input), read with h5py.

Two layouts are recognised per file:

* **pynuml (columnar)**: one group per table (``hit_table``, ``spacepoint_table``, ``event_table``, ...), one
  dataset per column of shape ``(rows, k)``, every table's rows ordered by event with ``event_id`` ``(rows, 3)``
  = run, subrun, event and ``event_id.seq_cnt`` ``(events with rows, 2)`` = (event sequence number, rows).
  Events are the rows of ``event_table``. The generator (:mod:`framework.samples.nugraph`) writes it.
* **pandas HDFStore, "fixed" format** (one event per file): one group per DataFrame with ``axis0`` (column
  names), ``axis1`` (row index) and ``block<i>_items`` / ``block<i>_values`` (columns grouped by dtype).
  Blocks of Python objects (pickled strings) are not read.

Each event gets the columns of ``hit_table`` and ``spacepoint_table`` as jagged columns named
``<table>_<column>`` (``hit_table_integral``), in the file's row order (the network's output rows follow it),
the columns of ``event_table`` as flat columns (``event_table_nu_pdg``), and the IDs ``run``,
``luminosityBlock`` (subrun), ``event``. A ``(rows, k)`` dataset is split into ``k`` columns: ``hit_id`` into
``_u``, ``_v``, ``_y`` (planes), positions and directions into ``_x``, ``_y``, ``_z``, others into ``_0``...
(pandas' names for the same columns). The inputs of the NuGraph3 server (:data:`SERVER_INPUTS`) are read in
its dtypes. Other tables (particles, energy depositions, optical hits) are not read.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterable
from typing import Any

import numpy as np

from ..core.module import Source
from ..core.registry import register
from ..exceptions import InputError, did_you_mean, nearest
from . import duplicates
from .chunk import Chunk, Column, SourceEvent

log = logging.getLogger(__name__)

#: per-event tables read as jagged columns, and the event-level table read as flat columns
HIT_TABLES = ("hit_table", "spacepoint_table")
EVENT_TABLE = "event_table"

#: the NuGraph3 server's inputs and their dtypes (DESIGN.md section 11)
SERVER_INPUTS: dict[str, type] = {
    "hit_table_hit_id": np.int32,
    "hit_table_local_plane": np.int32,
    "hit_table_local_time": np.float32,
    "hit_table_local_wire": np.int32,
    "hit_table_integral": np.float32,
    "hit_table_rms": np.float32,
    "spacepoint_table_spacepoint_id": np.int32,
    "spacepoint_table_hit_id_u": np.int32,
    "spacepoint_table_hit_id_v": np.int32,
    "spacepoint_table_hit_id_y": np.int32,
}

#: semantic classes of NuGraph3, in the order of its output columns (labels 0..6)
SEMANTIC_CLASSES = ("pion", "muon", "kaon", "hadron", "shower", "michel", "diffuse")

#: event-ID columns (NanoAOD names and dtypes); luminosityBlock is the subrun
ID_COLUMNS = {"run": np.uint32, "luminosityBlock": np.uint32, "event": np.uint64}


def _h5py() -> Any:
    from .. import extras

    return extras.h5py("reading NuML HDF5 files")


def split_names(name: str, k: int) -> list[str]:
    """Column names of a ``(rows, k)`` dataset *name*: itself for ``k == 1``; ``hit_id`` -> ``hit_id_u/v/y``;
    positions, vertices and directions -> ``_x/_y/_z``; otherwise ``_0``, ``_1``, ..."""
    if k == 1:
        return [name]
    if k == 3 and name == "hit_id":
        return [f"{name}_{p}" for p in "uvy"]
    if k == 3 and "wire" not in name and any(w in name for w in ("vtx", "dir", "position")):
        return [f"{name}_{c}" for c in "xyz"]
    return [f"{name}_{i}" for i in range(k)]


# ---------------------------------------------------------------------------------------------- layouts
class _Layout:
    """What one file holds: its layout, events, columns (name -> where), event IDs; reads a range of events."""

    kind = ""

    def __init__(self, path: str):
        self.path = path
        self.n_events = 0
        self.columns: dict[str, tuple] = {}  # name -> (table, dataset, index in its second axis)
        self.offsets: dict[str, np.ndarray] = {}  # jagged table -> (n_events + 1) row offsets
        self.ids: np.ndarray | None = None  # (n_events, 3) run, subrun, event
        self.tables: list[str] = []
        self.unreadable: dict[str, str] = {}  # column -> why it cannot be read

    def read(self, f: Any, names: list[str], start: int, stop: int) -> dict[str, Column]:
        by_dataset: dict[tuple[str, str], list[tuple[str, int]]] = {}
        for n in names:
            table, dataset, j = self.columns[n]
            by_dataset.setdefault((table, dataset), []).append((n, j))
        out: dict[str, Column] = {}
        for (table, dataset), wanted in by_dataset.items():
            offsets = self.offsets.get(table)
            lo, hi = (int(offsets[start]), int(offsets[stop])) if offsets is not None else (start, stop)
            values = self._values(f, table, dataset, lo, hi)
            for n, j in wanted:
                content = np.ascontiguousarray(values[:, j] if values.ndim == 2 else values)
                if n in SERVER_INPUTS:
                    content = content.astype(SERVER_INPUTS[n], copy=False)
                out[n] = Column(content, None if offsets is None else offsets[start : stop + 1] - offsets[start])
        return out

    def _values(self, f: Any, table: str, dataset: str, lo: int, hi: int) -> np.ndarray:
        return f[table][dataset][lo:hi]


class _Pynuml(_Layout):
    kind = "pynuml (columnar)"

    def __init__(self, path: str, f: Any):
        super().__init__(path)
        self.tables = sorted(k for k in f if _is_group(f[k]))
        if EVENT_TABLE not in f:
            raise InputError(f"{path} (pynuml layout) has no '{EVENT_TABLE}' (one row per event); tables in the file: "
                             f"{', '.join(self.tables)}. Write the file with pynuml or python -m framework generate-nugraph")
        ev = f[EVENT_TABLE]
        if "event_id" not in ev:
            raise InputError(f"{path}: '{EVENT_TABLE}' has no 'event_id' dataset (run, subrun, event of each event)")
        self.ids = np.asarray(ev["event_id"][:], dtype=np.int64).reshape(-1, 3)
        self.n_events = len(self.ids)
        for table in (*HIT_TABLES, EVENT_TABLE):
            if table not in f:
                continue
            g = f[table]
            if table != EVENT_TABLE:
                self.offsets[table] = self._offsets(table, g)
            for dataset in g:
                ds = g[dataset]
                if dataset.startswith("event_id") or not hasattr(ds, "shape") or len(ds.shape) not in (1, 2):
                    continue
                k = 1 if len(ds.shape) == 1 else ds.shape[1]
                for j, name in enumerate(split_names(dataset, k)):
                    col = f"{table}_{name}"
                    if ds.dtype.kind not in "biuf":
                        self.unreadable[col] = f"its dtype is {ds.dtype} (not numeric)"
                    else:
                        self.columns[col] = (table, dataset, j)
                if table == EVENT_TABLE and ds.shape[0] != self.n_events:
                    raise InputError(f"{path}: {table}/{dataset} has {ds.shape[0]} rows for {self.n_events} events; "
                                     "the file is corrupt")

    def _offsets(self, table: str, g: Any) -> np.ndarray:
        """Row offsets of each event in *table* from its ``event_id.seq_cnt`` (events without rows are absent)."""
        where = f"{self.path}: {table}"
        if "event_id.seq_cnt" not in g:
            raise InputError(f"{where} has no 'event_id.seq_cnt' (rows per event); datasets: {', '.join(g)}. "
                             "It is not a pynuml file, or a damaged one")
        sc = np.asarray(g["event_id.seq_cnt"][:], dtype=np.int64).reshape(-1, 2)
        seq, cnt = sc[:, 0], sc[:, 1]
        rows = _rows(g)
        if (len(seq) and (seq.min() < 0 or seq.max() >= self.n_events)) or np.any(np.diff(seq) <= 0) \
                or np.any(cnt < 0) or int(cnt.sum()) != rows:
            raise InputError(f"{where}: event_id.seq_cnt does not describe its {rows} rows for {self.n_events} events "
                             "(event sequence numbers out of order or range, or counts not adding up); the file is corrupt")
        counts = np.zeros(self.n_events, dtype=np.int64)
        counts[seq] = cnt
        offsets = np.zeros(self.n_events + 1, dtype=np.int64)
        np.cumsum(counts, out=offsets[1:])
        return offsets


class _PandasFixed(_Layout):
    kind = "pandas HDFStore (fixed)"

    def __init__(self, path: str, f: Any):
        super().__init__(path)
        self.tables = sorted(k for k in f if _is_group(f[k]))
        self.n_events = 1
        for table in (*HIT_TABLES, EVENT_TABLE):
            if table not in f:
                continue
            g = f[table]
            ptype = _attr(g, "pandas_type")
            if ptype == "frame_table":
                raise InputError(f"{path}: '{table}' is a pandas HDFStore in 'table' format, which is read only in the "
                                 "'fixed' format; rewrite it with DataFrame.to_hdf(path, key=..., format='fixed')")
            if ptype != "frame":
                raise InputError(f"{path}: '{table}' is a pandas '{ptype}', not a DataFrame in the 'fixed' format")
            nrows = int(g["axis1"].shape[0])
            if table == EVENT_TABLE:
                if nrows != 1:
                    raise InputError(f"{path}: '{table}' has {nrows} rows; a per-event pandas file has one")
            else:
                self.offsets[table] = np.array([0, nrows], dtype=np.int64)
            for i in range(int(_attr(g, "nblocks") or 0)):
                items = [x.decode() if isinstance(x, bytes) else str(x) for x in g[f"block{i}_items"][:]]
                values = g[f"block{i}_values"]
                for j, item in enumerate(items):
                    col = f"{table}_{item}"
                    if values.dtype.kind not in "biuf":
                        self.unreadable[col] = "it is stored as pickled Python objects (pandas object dtype)"
                    else:
                        self.columns[col] = (table, f"block{i}_values", j)
        ev = {c[len(EVENT_TABLE) + 1 :]: c for c in self.columns if c.startswith(EVENT_TABLE + "_")}
        if all(k in ev for k in ("run", "subrun", "event")):
            self.ids = np.array([[int(self.read(f, [ev[k]], 0, 1)[ev[k]].content[0]) for k in ("run", "subrun", "event")]])

    def _values(self, f: Any, table: str, dataset: str, lo: int, hi: int) -> np.ndarray:
        ds = f[table][dataset]
        if ds.ndim == 2 and ds.shape[0] != int(f[table]["axis1"].shape[0]):  # stored (items, rows)
            return ds[:, lo:hi].T
        return ds[lo:hi]


def _is_group(obj: Any) -> bool:
    return hasattr(obj, "keys") and not hasattr(obj, "dtype")


def _attr(g: Any, name: str) -> Any:
    v = g.attrs.get(name)
    return v.decode() if isinstance(v, bytes) else v


def _rows(g: Any) -> int:
    """Rows of a pynuml table (its event_id dataset, else the first column)."""
    for name in ("event_id", *g):
        ds = g.get(name)
        if ds is not None and hasattr(ds, "shape") and not name.endswith(".seq_cnt"):
            return int(ds.shape[0])
    return 0


def open_file(path: str) -> Any:
    """Open *path* with h5py, with a clear :class:`InputError` for a missing, empty or unreadable file."""
    h5py = _h5py()
    if not os.path.exists(path):
        parent = os.path.dirname(os.path.abspath(path))
        hint = ""
        if os.path.isdir(parent):
            near = nearest(os.path.basename(path), [f for f in os.listdir(parent) if f.endswith((".h5", ".hdf5"))])
            if near:
                hint = f" Files nearby: {', '.join(near)}."
        raise InputError(f"input file not found: {path}.{hint} Check inputFiles= (comma-separated paths).")
    if os.path.isdir(path):
        raise InputError(f"input file {path} is a directory; give HDF5 files in inputFiles=")
    if os.path.getsize(path) == 0:
        raise InputError(f"input file {path} is empty (0 bytes). Regenerate or re-copy it.")
    try:
        return h5py.File(path, "r")
    except Exception as e:  # noqa: BLE001 - h5py raises OSError with HDF5's message
        with open(path, "rb") as raw:
            root = raw.read(4) == b"root"
        how = ("It is a ROOT file: read it with cms.Source('RootSource', ...)." if root else
               "The file may be truncated or not HDF5; re-copy or regenerate it.")
        raise InputError(
            f"cannot read {path} as an HDF5 file ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}). {how}"
        ) from None


def describe(path: str, f: Any) -> _Layout:
    """The layout of the open file *f*; an :class:`InputError` naming what the file has if it is neither."""
    try:
        groups = {k: f[k] for k in f}
        if "hit_table" in groups and _is_group(groups["hit_table"]):
            g = groups["hit_table"]
            if _attr(g, "pandas_type") is not None:
                return _PandasFixed(path, f)
            if "event_id.seq_cnt" in g or "event_id" in g:
                return _Pynuml(path, f)
    except InputError:
        raise
    except Exception as e:  # noqa: BLE001 - damaged metadata
        raise InputError(f"cannot read the structure of {path} ({type(e).__name__}: {e}); the file may be corrupt") from None
    has = ", ".join(f"{k}/ ({', '.join(list(v)[:6])}{', ...' if len(v) > 6 else ''})" if _is_group(v) else k
                    for k, v in groups.items()) or "nothing"
    raise InputError(
        f"{path} is not a NuML file in a known layout: it has {has}. Expected a 'hit_table' group, either pynuml's "
        "(one dataset per column plus event_id.seq_cnt) or a pandas HDFStore DataFrame (axis0, block0_items, "
        "block0_values); see framework/io/hdf5source.py"
    )


def _locate(path: str) -> str:
    from ..paths import locate

    return locate(path)


# ---------------------------------------------------------------------------------------------- source
@register("NuMLSource")
class NuMLSource(Source):
    """Reads NuML HDF5 files (pynuml columnar or pandas HDFStore layout, recognised per file) in chunks of
    ``chunkSize`` events; only the columns that modules and outputs use are read."""

    parameters = {
        "fileNames": [],
        "skipEvents": 0,
        "chunkSize": 100,
        "duplicateCheckMode": duplicates.DEFAULT_MODE,  # repeated (run, subrun, event): see framework/io/duplicates.py
    }

    def __init__(self, label, params, globalCache=None):
        super().__init__(label, params, globalCache)
        duplicates.check_mode(params.get("duplicateCheckMode", duplicates.DEFAULT_MODE), f"source '{label}' (NuMLSource)")
        self.paths: list[str] = [_locate(f) for f in params.fileNames]
        self._lock = threading.RLock()
        self._open: tuple[str, Any] | None = None
        self._layouts: list[_Layout] = []

    def open(self, skip: int = 0, max_events: int = -1) -> None:
        if not self.paths:
            raise InputError("no input files: give inputFiles=a.h5,b.h5 (or fileNames on the source)")
        if skip < 0:
            raise InputError(f"skipEvents must be >= 0, got {skip}")
        self._layouts = []
        for path in self.paths:
            with open_file(path) as f:
                self._layouts.append(describe(path, f))
        entries = [lay.n_events for lay in self._layouts]
        total = sum(entries)
        available = max(0, total - skip)
        expected = available if max_events < 0 else min(available, max_events)
        self._warnings: list[str] = []
        if total == 0:
            self._warnings.append(f"the input ({', '.join(self.paths)}) holds no events")
        elif skip >= total:
            self._warnings.append(f"skipEvents={skip} skips all {total} input events; nothing processed")
        elif max_events > available:
            self._warnings.append(f"maxEvents={max_events} asked for, but the input has only {available} events"
                                  f"{f' after skipEvents={skip}' if skip else ''}: processed {available}")
        # the chunks to read, in order: (file index, first entry, stop entry)
        self._plan: list[tuple[int, int, int]] = []
        first = np.concatenate([[0], np.cumsum(entries)])  # events before each file
        size = max(1, int(self.params.chunkSize))
        self._duplicates = duplicates.DuplicateChecker(
            self.params.get("duplicateCheckMode", duplicates.DEFAULT_MODE), self.paths,
            f"source '{self.label}' (NuMLSource)")
        self._max_events = max_events
        self._delivered = 0
        # with the check on, repeats skipped do not count toward maxEvents: plan to the end, stop in next()
        lo, hi = skip, (skip + available if self._duplicates.active else skip + expected)
        for i in range(len(entries)):
            a, b = max(lo, first[i]) - first[i], min(hi, first[i + 1]) - first[i]
            self._plan += [(i, s, min(b, s + size)) for s in range(int(a), int(b), size)]
        self._first = first
        self._expected = expected
        self._required: list[str] = []
        self._chunk_iter = iter(self._plan)
        self._chunk: Chunk | None = None
        self._local = 0

    def branchNames(self) -> list[str]:
        """The first file's columns (the ID columns, which outputs write from the event IDs, not listed)."""
        return list(self._layouts[0].columns) if self._layouts else []

    def require(self, names: Iterable[str] | dict[str, list[str]]) -> None:
        """Check that every file has the columns *names* (optionally mapped to the modules reading them, for
        the message) and read them ahead with each chunk."""
        users = names if isinstance(names, dict) else {}
        names = sorted(set(names))
        for lay in self._layouts:
            missing = [n for n in names if n not in lay.columns and n not in ID_COLUMNS]
            if missing:
                raise InputError(self._missing_message(lay, missing, users))
        self._required = names

    def _missing_message(self, lay: _Layout, missing: list[str], users: dict[str, list[str]]) -> str:
        n = missing[0]
        who = f" Needed by module {', '.join(users[n])}." if users.get(n) else ""
        more = f" Also missing: {', '.join(missing[1:4])}{', ...' if len(missing) > 4 else ''}." if len(missing) > 1 else ""
        known = [*ID_COLUMNS, *lay.columns]
        if n in lay.unreadable:
            why = f" The file has it, but {lay.unreadable[n]}."
        else:
            table = next((t for t in (*HIT_TABLES, EVENT_TABLE) if n.startswith(t + "_")), None)
            if table is not None and table not in lay.tables:
                why = f" The file has no table '{table}'; its tables: {', '.join(lay.tables)}."
            else:
                same = [c for c in known if table and c.startswith(table + "_")]
                why = did_you_mean(n, known) + (f" Columns of {table}: {', '.join(same)}." if same else "")
        return f"column '{n}' not found in {lay.path} ({lay.kind} layout).{who}{why}{more}"

    def expected_events(self) -> int:
        return self._expected

    def warnings(self) -> list[str]:
        summary = self._duplicates.summary() if hasattr(self, "_duplicates") else None
        return list(self._warnings) + ([summary] if summary else [])

    # ------------------------------------------------------------------ reading
    def _reader(self, index: int):
        lay = self._layouts[index]

        def read(names: list[str], start: int, stop: int) -> dict[str, Column]:
            out = {n: self._id_column(index, n, start, stop) for n in names if n in ID_COLUMNS}
            rest = [n for n in names if n not in ID_COLUMNS]
            unknown = [n for n in rest if n not in lay.columns]
            if unknown:
                raise InputError(self._missing_message(lay, unknown, {}))
            if rest:
                with self._lock:
                    f = self._file(lay.path)
                    try:
                        out.update(lay.read(f, rest, start, stop))
                    except InputError:
                        raise
                    except Exception as e:  # noqa: BLE001 - HDF5 errors on damaged data
                        raise InputError(f"cannot read {', '.join(rest[:3])} (events {start}-{stop}) of {lay.path}: "
                                         f"{type(e).__name__}: {e}. The file may be corrupt.") from None
            return out

        return read

    def _id_column(self, index: int, name: str, start: int, stop: int) -> Column:
        lay = self._layouts[index]
        if lay.ids is not None:
            values = lay.ids[start:stop, list(ID_COLUMNS).index(name)]
        elif name == "event":  # no IDs in the file: run 1, subrun 1, event = position in the input (from 1)
            values = np.arange(start, stop) + int(self._first[index]) + 1
        else:
            values = np.ones(stop - start)
        return Column(np.asarray(values, dtype=ID_COLUMNS[name]))

    def _file(self, path: str) -> Any:
        if self._open is None or self._open[0] != path:
            self._close_current()
            self._open = (path, open_file(path))
        return self._open[1]

    def _close_current(self) -> None:
        if self._open is not None:
            try:
                self._open[1].close()
            finally:
                self._open = None

    def next(self) -> SourceEvent | None:
        while self._max_events < 0 or self._delivered < self._max_events:
            c = self._chunk
            if c is None or self._local >= len(c):
                plan = next(self._chunk_iter, None)
                if plan is None:
                    return None
                index, start, stop = plan
                c = self._chunk = Chunk(self._layouts[index].path, start, stop, self._reader(index))
                c.preload([*self._required, *(n for n in ID_COLUMNS if n not in self._required)])
                self._local = 0
                self._chunk_file = index
            local = self._local
            self._local += 1
            ids = tuple(int(c.column(n).content[local]) for n in ID_COLUMNS)
            if (self._layouts[self._chunk_file].ids is not None and self._duplicates.active
                    and self._duplicates.is_duplicate(ids, self._chunk_file, c.start + local)):
                continue
            self._delivered += 1
            return SourceEvent(c, local, c.start + local, c.file_name, ids)
        return None

    def close(self) -> None:
        with self._lock:
            self._close_current()
