"""Event sources: ``RootSource`` (NanoAOD-style flat trees, read with uproot) and ``EmptySource``."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterable

import uproot

from ..core.module import Source
from ..core.registry import register
from ..exceptions import InputError, did_you_mean, nearest
from . import duplicates, pfnano
from .chunk import Chunk, Column, SourceEvent

log = logging.getLogger(__name__)

ID_BRANCHES = ("run", "luminosityBlock", "event")


def open_tree(path: str, tree_name: str) -> tuple[object, object]:
    """Open *path* and return ``(file, tree)``, with a clear :class:`InputError` for a missing,
    empty or corrupt file and for a file without the tree."""
    if not os.path.exists(path):
        parent = os.path.dirname(os.path.abspath(path))
        hint = ""
        if os.path.isdir(parent):
            near = nearest(os.path.basename(path), [f for f in os.listdir(parent) if f.endswith(".root")])
            if near:
                hint = f" Files nearby: {', '.join(near)}."
        raise InputError(f"input file not found: {path}.{hint} Check inputFiles= (comma-separated paths).")
    if os.path.isdir(path):
        raise InputError(f"input file {path} is a directory; give ROOT files in inputFiles=")
    if os.path.getsize(path) == 0:
        raise InputError(f"input file {path} is empty (0 bytes). Regenerate or re-copy it.")
    try:
        f = uproot.open(path)
    except Exception as e:  # noqa: BLE001 - uproot raises many kinds on bad files
        raise InputError(
            f"cannot read {path} as a ROOT file ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}). "
            "The file may be truncated or not a ROOT file; re-copy or regenerate it."
        ) from None
    try:
        keys = f.keys(cycle=False)
    except Exception as e:  # noqa: BLE001
        f.close()
        raise InputError(f"cannot list the contents of {path} ({type(e).__name__}: {e}); the file may be corrupt") from None
    if tree_name not in keys:
        trees = [k for k, c in f.classnames(cycle=False).items() if c.startswith("TTree")]
        f.close()
        raise InputError(
            f"{path} has no tree '{tree_name}'.{did_you_mean(tree_name, keys)} "
            f"Trees in the file: {', '.join(trees) or 'none'}; set treeName= on the source."
        )
    try:
        tree = f[tree_name]
        _ = tree.num_entries
    except Exception as e:  # noqa: BLE001
        f.close()
        raise InputError(f"cannot read tree '{tree_name}' of {path} ({type(e).__name__}: {e}); the file may be corrupt") from None
    return f, tree


def _some(names: list[str], n: int = 3) -> str:
    """``branch 'a'`` or ``74 branches ('a', 'b', 'c', ...)``: short enough for an error message."""
    if len(names) == 1:
        return f"branch '{names[0]}'"
    shown = ", ".join(repr(x) for x in names[:n])
    return f"{len(names)} branches ({shown}{', ...' if len(names) > n else ''})"


def _locate(path: str) -> str:
    """A relative path that is not found here is looked up in the repository (bundled samples)."""
    from ..paths import locate

    return locate(path)


@register("RootSource")
class RootSource(Source):
    """Reads flat trees (NanoAOD ``Events``) from one or more ROOT files, in chunks of
    ``chunkSize`` entries; only the branches that modules and outputs use are read.

    ``duplicateCheckMode``: what to do with an event whose (run, luminosityBlock, event) was read before
    (:mod:`.duplicates`: ``checkAllFilesOpened``, the default, skips it; ``checkEachFile``, ``noDuplicateCheck``,
    ``failOnDuplicate``). ``entriesToSkip``: entries (counted over the input files, as ``skipEvents``) not
    processed and not counted toward ``maxEvents``; ``executor=dask`` gives each work item the repeats it found."""

    parameters = {
        "fileNames": [],
        "treeName": "Events",
        "skipEvents": 0,
        "chunkSize": 1000,
        "duplicateCheckMode": duplicates.DEFAULT_MODE,
        "entriesToSkip": [],
    }

    def __init__(self, label, params, globalCache=None):
        super().__init__(label, params, globalCache)
        duplicates.check_mode(params.get("duplicateCheckMode", duplicates.DEFAULT_MODE), f"source '{label}' (RootSource)")
        self.files: list[str] = [_locate(f) for f in params.fileNames]
        self._warnings: list[str] = []
        self._derived: dict[str, dict[str, pfnano.Derivation]] = {}  # per file: canonical branches it derives
        self._open: tuple[object, object] | None = None
        self._read_lock = threading.RLock()

    # ------------------------------------------------------------------ set-up
    def open(self, skip: int = 0, max_events: int = -1) -> None:
        if not self.files:
            raise InputError("no input files: give inputFiles=a.root,b.root (or fileNames on the source)")
        if skip < 0:
            raise InputError(f"skipEvents must be >= 0, got {skip}")
        self._entries: list[int] = []
        self._branches: list[list[str]] = []
        for i, path in enumerate(self.files):
            f, tree = open_tree(path, self.params.treeName)
            self._entries.append(int(tree.num_entries))
            self._branches.append(list(tree.keys()))
            if i == 0:  # kept open for reading (opening a NanoAOD file with ~1000 branches costs ~1 s)
                self._open = (path, (f, tree))
            else:
                f.close()
        total = sum(self._entries)
        self.skip = skip
        self.max_events = max_events
        available = max(0, total - skip)
        self._expected = available if max_events < 0 else min(available, max_events)
        if skip >= total and total > 0:
            self._warnings.append(f"skipEvents={skip} skips all {total} input events; nothing processed")
        elif max_events > available:
            self._warnings.append(
                f"maxEvents={max_events} asked for, but the input has only {available} events"
                f"{f' after skipEvents={skip}' if skip else ''}: processed {available}"
            )
        if total == 0:
            self._warnings.append(f"the input ({', '.join(self.files)}) holds no events")
        self._required: list[str] = []
        self._file_index = 0
        self._entry = 0
        self._to_skip = skip
        self._delivered = 0
        self._chunk: Chunk | None = None
        self._before = [sum(self._entries[:i]) for i in range(len(self._entries))]  # entries before each file
        self._skip_entries = {int(e) for e in self.params.get("entriesToSkip", [])}
        self._duplicates = duplicates.DuplicateChecker(
            self.params.get("duplicateCheckMode", duplicates.DEFAULT_MODE), self.files,
            f"source '{self.label}' (RootSource)")

    def branchNames(self) -> list[str]:
        return list(self._branches[0]) if self._branches else []

    def require(self, names: Iterable[str] | dict[str, list[str]]) -> None:
        """Check that every file has the branches *names* (optionally mapped to the modules that read
        them, for the message) or, for a PFNano file as released, can derive them (:mod:`.pfnano`), and
        read them ahead with each chunk. Each derivation used is named once in :meth:`warnings`."""
        users = names if isinstance(names, dict) else {}
        names = sorted(set(names))
        self._derived = {}
        used: dict[str, list[str]] = {}
        for path, branches in zip(self.files, self._branches):
            derived, missing = pfnano.plan(branches, names)
            if missing:
                raise InputError(self._missing_message(path, branches, missing, users))
            self._derived[path] = derived
            for name in derived:
                used.setdefault(name, []).append(path)
        for name, paths in used.items():
            d = self._derived[paths[0]][name]
            files = f"{len(paths)} of {len(self.files)} input files (PFNano as released)"
            if d.replaces:
                text = (f"{name} of {files} converted to this framework's convention: {d.summary}; outputs that "
                        f"keep {name} write the converted values; see README 'Real PFNano files'")
            else:
                text = (f"{name} is not stored in {files}: derived from {', '.join(d.inputs)} ({d.summary}); "
                        "see README 'Real PFNano files'")
            if text not in self._warnings:
                self._warnings.append(text)
        self._required = names
        self._has_ids = [all(b in set(br) for b in ID_BRANCHES) for br in self._branches]

    def _missing_message(self, path: str, branches: list[str], missing: list[str], users: dict[str, list[str]]) -> str:
        """Why the branches *missing* cannot be read from *path*, and how to fix it."""
        tree = self.params.treeName
        cand_missing = [m for m in missing if m.startswith(pfnano.CANDIDATE_PREFIXES)]
        if cand_missing and pfnano.has_candidates(branches) and pfnano.recognise(branches) is None:
            return pfnano.unknown_flavour_message(path, tree, branches, cand_missing, users)
        n = missing[0]
        who = f" Needed by module {', '.join(users[n])}." if users.get(n) else ""
        more = f" Missing in all: {_some(missing)}." if len(missing) > 1 else ""
        pf = ("; it has no PF candidates (PFCands_*, JetPFCands_*): use a PFNano-style file, e.g. one from "
              "python -m framework generate" if cand_missing and not pfnano.has_candidates(branches) else "")
        return (f"branch '{n}' not found in tree '{tree}' of {path}.{who}"
                f"{did_you_mean(n, branches)}{more} The file has {len(branches)} branches{pf}.")

    def expected_events(self) -> int:
        return self._expected

    def warnings(self) -> list[str]:
        summary = self._duplicates.summary() if hasattr(self, "_duplicates") else None
        return list(self._warnings) + ([summary] if summary else [])

    # ------------------------------------------------------------------ reading
    def _reader(self, path: str):
        def read(names: list[str], start: int, stop: int) -> dict[str, Column]:
            with self._read_lock:
                return _read(names, start, stop)

        def _read(names: list[str], start: int, stop: int) -> dict[str, Column]:
            if self._open is None or self._open[0] != path:
                self._close_current()
                f, tree = open_tree(path, self.params.treeName)
                self._open = (path, (f, tree))
            tree = self._open[1][1]
            derived = self._derived.get(path, {})
            wanted = [n for n in names if n in derived]
            raw = list(dict.fromkeys([n for n in names if n not in derived] + [i for n in wanted for i in derived[n].inputs]))
            missing = [n for n in raw if n not in tree]
            if missing:
                n = missing[0]
                raise InputError(
                    f"branch '{n}' not found in tree '{self.params.treeName}' of {path}.{did_you_mean(n, tree.keys())}"
                )
            try:
                arrays = tree.arrays(raw, entry_start=start, entry_stop=stop, library="ak")
            except Exception as e:  # noqa: BLE001
                raise InputError(
                    f"cannot read {_some(raw)} (entries {start}-{stop}) of {path}: {type(e).__name__}: {e}. "
                    "The file may be corrupt."
                ) from None
            stored = {n: Column.from_awkward(arrays[n]) for n in raw}
            # canonical branches the file lacks (or stores in another convention), from the stored columns
            columns = {n: derived[n].compute(stored) for n in wanted}
            return {n: columns[n] if n in columns else stored[n] for n in names}

        return read

    def _close_current(self) -> None:
        if self._open is not None:
            try:
                self._open[1][0].close()
            finally:
                self._open = None

    def next(self) -> SourceEvent | None:
        if self.max_events >= 0 and self._delivered >= self.max_events:
            return None
        while self._file_index < len(self.files):
            n = self._entries[self._file_index]
            if self._to_skip > 0:
                step = min(self._to_skip, n - self._entry)
                self._to_skip -= step
                self._entry += step
            if self._entry >= n:
                self._file_index += 1
                self._entry = 0
                self._chunk = None
                continue
            path = self.files[self._file_index]
            c = self._chunk
            if c is None or not (c.start <= self._entry < c.stop):
                size = max(1, int(self.params.chunkSize))
                stop = min(n, self._entry + size)
                if self.max_events >= 0:
                    stop = min(stop, self._entry + (self.max_events - self._delivered))
                c = Chunk(path, self._entry, stop, self._reader(path))
                pre = list(self._required)
                if self._has_ids[self._file_index]:
                    pre += [b for b in ID_BRANCHES if b not in pre]
                c.preload(pre)
                self._chunk = c
            entry = self._entry
            self._entry += 1
            if self._skip_entries and self._before[self._file_index] + entry in self._skip_entries:
                continue
            if self._has_ids[self._file_index]:
                event = SourceEvent(c, entry - c.start, entry, path)
                if self._duplicates.active and self._duplicates.is_duplicate(event.event_id(), self._file_index, entry):
                    continue
            else:  # no IDs in the file: made up from the entry, not checked for repeats
                event = SourceEvent(c, entry - c.start, entry, path, (1, 1, entry + 1))
            self._delivered += 1
            return event
        return None

    def close(self) -> None:
        self._close_current()


@register("EmptySource")
class EmptySource(Source):
    """Events with no input branches (for tests and generators): IDs only."""

    parameters = {
        "firstRun": 1,
        "firstLuminosityBlock": 1,
        "firstEvent": 1,
        "numberEventsInRun": 0,
        "numberEventsInLuminosityBlock": 0,
        "skipEvents": 0,
    }

    def open(self, skip: int = 0, max_events: int = -1) -> None:
        if max_events < 0:
            raise InputError("EmptySource makes events forever: set maxEvents= to a number >= 0")
        self.skip = skip
        self.max_events = max_events
        self._i = 0

    def branchNames(self) -> list[str]:
        return []

    def require(self, names: Iterable[str]) -> None:
        names = list(names)
        if names:
            raise InputError(f"modules read input branches ({', '.join(sorted(names)[:5])}...), but the source is EmptySource")

    def expected_events(self) -> int:
        return self.max_events

    def warnings(self) -> list[str]:
        return []

    def next(self) -> SourceEvent | None:
        if self._i >= self.max_events:
            return None
        n = self._i + self.skip
        self._i += 1
        p = self.params
        run, lumi = p.firstRun, p.firstLuminosityBlock
        if p.numberEventsInRun > 0:
            run += n // p.numberEventsInRun
        if p.numberEventsInLuminosityBlock > 0:
            lumi += n // p.numberEventsInLuminosityBlock
        return SourceEvent(None, 0, n, "", (run, lumi, p.firstEvent + n))

    def close(self) -> None:
        pass
