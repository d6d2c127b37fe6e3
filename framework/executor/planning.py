"""Work items of a job over many files, planned the way coffea's executor does.

First each file's metadata (entries, the tree's cluster boundaries from uproot's ``common_entry_offsets``, and the
entries where the luminosity block changes, from the ``run`` / ``luminosityBlock`` branches when the file has
them); then each file's entry range (after the job's ``skipEvents`` / ``maxEvents``, counted over the files in
order) is cut into ``max(1, round(entries / chunkSize))`` items of about equal size. Each cut is moved to the
nearest luminosity-block boundary within half an item (so a lumi is normally in one item, and its
``LuminosityBlocks`` row is the sequential job's), else to the nearest cluster boundary within half an item (a
work item then reads whole baskets), else stays where it is.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ..exceptions import InputError
from ..io import duplicates

DEFAULT_CHUNK_SIZE = 100_000  # coffea's default chunksize


@dataclass(frozen=True)
class WorkItem:
    """Entries ``[start, stop)`` of one input file; ``first``/``last`` are the (run, lumi) of its first and last
    entry (from the file's ID branches, or the source's default (1, 1))."""

    index: int
    file: str
    file_index: int
    start: int
    stop: int
    first: tuple[int, int] = (1, 1)
    last: tuple[int, int] = (1, 1)
    skip: tuple[int, ...] = ()  # entries of [start, stop) not processed: repeats of events read before

    @property
    def entries(self) -> int:
        return self.stop - self.start

    @property
    def events(self) -> int:
        """The events it processes (its entries less the repeats skipped)."""
        return self.entries - len(self.skip)

    def describe(self) -> str:
        return f"work item {self.index} ({self.file}, entries {self.start}-{self.stop})"


@dataclass
class FileInfo:
    """What planning learned about one input file."""

    path: str
    entries: int
    clusters: list[int]
    lumi_starts: list[int]  # entries (> 0) where (run, luminosityBlock) changes
    ids: np.ndarray | None = None  # (entries, 2) run and lumi per entry, when the file has them
    events: np.ndarray | None = None  # event number per entry, when the file has all three ID branches


@dataclass(frozen=True)
class BadFile:
    """An input file skipped with ``skipBadFiles=1``, and why."""

    path: str
    reason: str


@dataclass
class Plan:
    items: list[WorkItem]
    files: list[FileInfo] = field(default_factory=list)
    bad: list[BadFile] = field(default_factory=list)
    duplicates: str | None = None  # the summary line of the repeats skipped (duplicateCheckMode), None if none

    @property
    def entries(self) -> int:
        return sum(i.entries for i in self.items)


def inspect_file(path: str, tree_name: str, with_events: bool = False) -> FileInfo:
    """Entries, cluster boundaries and lumi boundaries of *path*'s tree, with *with_events* the event numbers too
    (an :class:`InputError` when it cannot be read)."""
    from ..io.source import ID_BRANCHES, open_tree

    f, tree = open_tree(path, tree_name)
    try:
        n = int(tree.num_entries)
        try:
            clusters = [int(x) for x in tree.common_entry_offsets()]
        except Exception:  # noqa: BLE001 - no usable cluster information: cut anywhere
            clusters = [0, n]
        ids = events = None
        if n and all(b in tree for b in ID_BRANCHES[:2]):
            names = list(ID_BRANCHES if with_events and ID_BRANCHES[2] in tree else ID_BRANCHES[:2])
            try:
                arrays = tree.arrays(names, library="np")
            except Exception as e:  # noqa: BLE001
                raise InputError(f"cannot read the {', '.join(names)} branches of {path} ({type(e).__name__}: "
                                 f"{e}). The file may be corrupt; re-copy or regenerate it.") from None
            ids = np.stack([arrays["run"].astype(np.int64), arrays["luminosityBlock"].astype(np.int64)], axis=1)
            if ID_BRANCHES[2] in arrays:
                events = arrays[ID_BRANCHES[2]].astype(np.int64)
    finally:
        f.close()
    lumi_starts: list[int] = []
    if ids is not None and n > 1:
        changed = np.any(ids[1:] != ids[:-1], axis=1)
        lumi_starts = [int(i) + 1 for i in np.flatnonzero(changed)]
    return FileInfo(path, n, clusters, lumi_starts, ids, events)


def _nearest(candidates: Sequence[int], target: int, lo: int, hi: int, window: float) -> int | None:
    """The candidate in ``(lo, hi)`` nearest to *target* and within *window* of it (the smaller on a tie)."""
    best = None
    for c in candidates:
        if lo < c < hi and abs(c - target) <= window and (best is None or abs(c - target) < abs(best - target)):
            best = c
    return best


def cut_range(info: FileInfo, lo: int, hi: int, chunk_size: int) -> list[int]:
    """Boundaries ``[lo, ..., hi]`` of the work items of entries ``[lo, hi)`` of one file."""
    n = hi - lo
    k = max(1, round(n / max(1, chunk_size)))
    bounds = [lo]
    window = n / (2 * k)
    for i in range(1, k):
        target = lo + round(i * n / k)
        cut = _nearest(info.lumi_starts, target, bounds[-1], hi, window)
        if cut is None:
            cut = _nearest(info.clusters, target, bounds[-1], hi, window)
        if cut is None:
            cut = target
        if bounds[-1] < cut < hi:
            bounds.append(cut)
    bounds.append(hi)
    return bounds


def plan(files: Sequence[str], tree_name: str = "Events", *, chunk_size: int = DEFAULT_CHUNK_SIZE, skip: int = 0,
         max_events: int = -1, skip_bad: bool = False, duplicate_mode: str = duplicates.DEFAULT_MODE) -> Plan:
    """Work items over *files* (in order) for a job with ``skipEvents=skip`` and ``maxEvents=max_events`` (-1: all),
    counted over the readable files. A file that cannot be read is an :class:`InputError` naming it, or, with
    *skip_bad*, a :class:`BadFile` of the plan.

    *duplicate_mode* (the source's ``duplicateCheckMode``): the repeated (run, lumi, event) IDs are found here, in
    the order the sequential job reads them, and each item is told which of its entries to skip (``skip``; they do
    not count toward ``maxEvents``); one warning at the first, the count in :attr:`Plan.duplicates`; with
    ``failOnDuplicate`` the first is an :class:`InputError`."""
    if chunk_size < 1:
        raise InputError(f"chunkSize={chunk_size}: the entries per work item must be >= 1")
    checker = duplicates.DuplicateChecker(duplicate_mode, [], "source")
    infos: list[FileInfo] = []
    bad: list[BadFile] = []
    for path in files:
        try:
            infos.append(inspect_file(path, tree_name, with_events=checker.active))
        except InputError as e:
            if not skip_bad:
                raise
            bad.append(BadFile(path, str(e)))
    checker.files = [i.path for i in infos]
    begin = max(0, skip)
    items: list[WorkItem] = []
    offset = 0
    delivered = 0  # events processed before the file (repeats skipped not counted)
    for file_index, info in enumerate(infos):
        lo = min(info.entries, max(0, begin - offset))
        offset += info.entries
        left = None if max_events < 0 else max(0, max_events - delivered)
        repeats: list[int] = []
        if checker.active and info.events is not None and left != 0:
            hi = lo
            for e in range(lo, info.entries):
                if left is not None and delivered >= max_events:
                    break
                event_id = (int(info.ids[e, 0]), int(info.ids[e, 1]), int(info.events[e]))
                if checker.is_duplicate(event_id, file_index, e):
                    repeats.append(e)
                else:
                    delivered += 1
                hi = e + 1
        else:
            hi = info.entries if left is None else min(info.entries, lo + left)
            delivered += max(0, hi - lo)
        if hi <= lo:
            continue
        bounds = cut_range(info, lo, hi, chunk_size)
        for a, b in zip(bounds[:-1], bounds[1:]):
            skipped = tuple(e for e in repeats if a <= e < b)
            gone = set(skipped)
            kept = [e for e in range(a, b) if e not in gone] if skipped else [a, b - 1]
            first = tuple(int(x) for x in info.ids[kept[0]]) if info.ids is not None and kept else (1, 1)
            last = tuple(int(x) for x in info.ids[kept[-1]]) if info.ids is not None and kept else (1, 1)
            items.append(WorkItem(len(items), os.path.abspath(info.path), file_index, a, b, first, last, skipped))
    return Plan(items, infos, bad, checker.summary())


def count_blocks(items: Sequence[WorkItem], runs_and_lumis: Sequence[tuple[int, int]]) -> tuple[int, int]:
    """Runs and lumis of the whole job from each item's counts: a run (lumi) that continues from one item into the
    next is counted once, as the sequential job does."""
    runs = sum(r for r, _ in runs_and_lumis)
    lumis = sum(lu for _, lu in runs_and_lumis)
    items = [i for i, (r, _) in zip(items, runs_and_lumis) if r]  # an item of repeats only saw no run
    for prev, cur in zip(items[:-1], items[1:]):
        if prev.last[0] == cur.first[0]:
            runs -= 1
            if prev.last == cur.first:
                lumis -= 1
    return runs, lumis
