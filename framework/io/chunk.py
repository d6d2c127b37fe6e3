"""Columns of a block of events, held as flat numpy arrays (+ offsets for jagged branches), so that
one event's value is a cheap slice."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any

import awkward as ak
import numpy as np


class Column:
    """One branch over a chunk of entries: ``content`` and, for a jagged branch, ``offsets``."""

    __slots__ = ("content", "offsets")

    def __init__(self, content: np.ndarray, offsets: np.ndarray | None = None):
        self.content = content
        self.offsets = offsets

    @classmethod
    def from_awkward(cls, array: ak.Array) -> Column:
        layout = ak.to_layout(array)
        if layout.purelist_depth == 1:
            return cls(np.asarray(ak.to_numpy(array)))
        counts = np.asarray(ak.num(array, axis=1), dtype=np.int64)
        offsets = np.zeros(len(counts) + 1, dtype=np.int64)
        np.cumsum(counts, out=offsets[1:])
        content = np.asarray(ak.to_numpy(ak.flatten(array, axis=1)))
        return cls(content, offsets)

    def value(self, i: int) -> Any:
        if self.offsets is None:
            return self.content[i]
        return self.content[self.offsets[i] : self.offsets[i + 1]]

    def take(self, idx: np.ndarray) -> ak.Array | np.ndarray:
        """The values of entries *idx* (numpy for flat branches, awkward for jagged)."""
        if self.offsets is None:
            return self.content[idx]
        layout = ak.contents.ListOffsetArray(ak.index.Index64(self.offsets), ak.contents.NumpyArray(self.content))
        return ak.Array(layout)[idx]


def columns_of(arrays: Any, names: Iterable[str]) -> dict[str, Column]:
    """``{name: Column}`` of the awkward arrays ``arrays[name]`` (e.g. ``tree.arrays(names)`` of uproot): what the
    feature builders take, for a batch of events read outside the framework (training, benchmarks)."""
    return {n: Column.from_awkward(arrays[n]) for n in names}


class _CacheEntry:
    """One value of :meth:`Chunk.cached`: computed once, under its own lock."""

    __slots__ = ("lock", "done", "value")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.done = False
        self.value: Any = None


class Chunk:
    """A block of consecutive entries of one file; branches are read on first use. :meth:`cached` keeps
    values derived from the whole chunk (e.g. a producer's inputs for all its events), freed with it."""

    def __init__(self, file_name: str, start: int, stop: int, reader: Callable[[list[str], int, int], dict[str, Column]]):
        self.file_name = file_name
        self.start = start
        self.stop = stop
        self._reader = reader
        self._columns: dict[str, Column] = {}
        self._cache: dict[Any, _CacheEntry] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        """Number of events (entries) in the chunk."""
        return self.stop - self.start

    @property
    def loaded(self) -> frozenset[str]:
        """Names of the branches read so far for this chunk."""
        return frozenset(self._columns)

    def columns(self, names: Iterable[str]) -> dict[str, Column]:
        """Several branches over the chunk, by name."""
        return {n: self.column(n) for n in names}

    def preload(self, names: Iterable[str]) -> None:
        missing = [n for n in names if n not in self._columns]
        if missing:
            self._columns.update(self._reader(missing, self.start, self.stop))

    def column(self, name: str) -> Column:
        col = self._columns.get(name)
        if col is None:
            with self._lock:
                col = self._columns.get(name)
                if col is None:
                    self._columns.update(self._reader([name], self.start, self.stop))
                    col = self._columns[name]
        return col

    def cached(self, key: Any, factory: Callable[[Chunk], Any]) -> Any:
        """``factory(self)``, computed once per chunk and (hashable) *key*, however many streams ask for it
        at the same time: the first caller computes it, the others wait for its value. A factory that
        raises caches nothing (the next caller tries again). The factory may read columns
        (:meth:`column`) and other cached values of other keys."""
        entry = self._cache.get(key)
        if entry is None or not entry.done:
            with self._lock:  # the chunk's lock only to find or add the entry, not during the computation
                entry = self._cache.get(key)
                if entry is None:
                    entry = self._cache[key] = _CacheEntry()
            with entry.lock:
                if not entry.done:
                    entry.value = factory(self)
                    entry.done = True
        return entry.value


def _no_branches(names: list[str], start: int, stop: int) -> dict[str, Column]:
    from ..exceptions import InputError

    raise InputError(f"branch '{names[0]}' asked for, but the source (EmptySource) has no input branches")


class SourceEvent:
    """Where an event's input lives: a chunk and the entry in it (``local``: its index in the chunk).
    A source without input branches (EmptySource) gives no chunk; :attr:`batch` is then a batch of this
    one event whose branches do not exist."""

    __slots__ = ("chunk", "local", "entry", "file_name", "_id")

    def __init__(self, chunk: Chunk | None, local: int, entry: int, file_name: str, event_id: tuple[int, int, int] | None = None):
        self.chunk = chunk
        self.local = local
        self.entry = entry
        self.file_name = file_name
        self._id = event_id

    @property
    def batch(self) -> Chunk:
        if self.chunk is None:
            self.chunk = Chunk(self.file_name, self.entry, self.entry + 1, _no_branches)
            self.local = 0
        return self.chunk

    def branch(self, name: str) -> Any:
        return self.batch.column(name).value(self.local)

    def event_id(self) -> tuple[int, int, int]:
        if self._id is None:
            c = self.chunk
            try:
                self._id = (
                    int(c.column("run").value(self.local)),
                    int(c.column("luminosityBlock").value(self.local)),
                    int(c.column("event").value(self.local)),
                )
            except Exception:  # noqa: BLE001 - files without the ID branches
                self._id = (1, 1, self.entry + 1)
        return self._id
