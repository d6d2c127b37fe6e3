"""Merging the work items' output parts into one ROOT file, and their reports into one.

Trees are rewritten with uproot, branch for branch, in the parts' order (the work items' order, so the input
order): a jagged group (``nJet``, ``Jet_pt``, ...) is read and written as the record uproot made it from, so
names, counters and types stay the sequential job's. ``Events`` is concatenated. In ``LuminosityBlocks`` and
``Runs`` a block that continues from one part into the next (a run spans many work items; a lumi only when it is
longer than a work item) is one row when the tree holds the IDs alone (as in the sequential job); with products
it is one row per part, each with its part's products, as ``hadd`` of NanoAOD files keeps them (products cannot
be combined generically: a count adds up, a mean does not; a warning names the blocks). Histograms under ``DQMData/`` with the same path in several parts are summed, as ``hadd`` and DQM
harvesting do. Parts written as RNTuples (``outputFormat=RNTuple``) are merged into RNTuples the same way, field
for field (the fields are the TTree's branch names, counters included: :mod:`framework.io.rntuple`). The result
is written to a temporary file and renamed, so the output appears complete or not at all.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Any

import awkward as ak
import numpy as np
import uproot

from ..exceptions import FrameworkError
from ..io.output import branch_types
from ..io.output import compression as uproot_compression
from ..io.rntuple import field_types, is_rntuple, read_columns

log = logging.getLogger("framework.executor")

EVENTS_STEP = 20_000  # entries of Events read and written at a time
BLOCK_TREES = {"LuminosityBlocks": ("run", "luminosityBlock"), "Runs": ("run",)}
HISTOGRAM_CLASSES = ("TH1", "TH2", "TH3", "TProfile")

Layout = list[tuple[str, list[str] | None]]  # (name, None) for a flat branch; (group, [branches]) for a jagged group


class MergeError(FrameworkError):
    """The parts of the work items cannot be merged into one output."""


def tree_layout(tree: Any) -> Layout:
    """The tree's branches as uproot ``mktree`` wants them: flat branches, and jagged groups named by their
    counter (``nJet`` -> ``Jet``: ``Jet_pt``, ``Jet_eta``, ...), in the tree's order."""
    members: dict[str, list[str]] = {}
    for b in tree.branches:
        counter = b.count_branch
        if counter is not None:
            members.setdefault(counter.name, []).append(b.name)
    layout: Layout = []
    for b in tree.branches:
        if b.name in members:
            layout.append((b.name[1:] if b.name.startswith("n") else b.name, members[b.name]))
        elif b.count_branch is None:
            layout.append((b.name, None))
    return layout


def _branches(layout: Layout) -> list[str]:
    return [n for name, group in layout for n in (group if group is not None else [name])]


def layout_data(layout: Layout, arrays: Any) -> dict[str, Any]:
    """What ``mktree``/``extend`` take for *arrays* read with ``library="ak"``: jagged groups zipped back into
    records, flat branches as numpy arrays."""
    data: dict[str, Any] = {}
    for name, group in layout:
        if group is None:
            data[name] = ak.to_numpy(arrays[name])
        elif group == [name]:
            data[name] = arrays[name]
        else:
            fields = {b[len(name) + 1:]: arrays[b] for b in group}
            data[name] = ak.zip(fields, depth_limit=None) if len(fields) > 1 else ak.zip(fields)
    return data


def _check_layout(reference: Layout, layout: Layout, part: str, tree: str) -> None:
    ref, have = set(_branches(reference)), set(_branches(layout))
    missing = sorted(ref - have)
    if missing:
        raise MergeError(
            f"the {tree} tree of {part} lacks {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}, which "
            "earlier work items wrote: a product made only in some events. Make it in every event (an empty array "
            "where there is nothing).")
    extra = sorted(have - ref)
    if extra:
        log.warning("%s tree of %s: %s not written (the earlier work items made no such product; a sequential job "
                    "would not write it either)", tree, part, ", ".join(extra))


def merge_parts(parts: Sequence[str], output: str, compression: str = "ZLIB:1",
                names: Sequence[str] | None = None) -> list[str]:
    """Merge the part files *parts* (in order) into *output*, atomically; return the warnings. *names* describe
    the parts in messages (default: their paths)."""
    names = list(names) if names is not None else list(parts)
    if len(parts) == 1:  # the part is the output
        os.replace(parts[0], output)
        return []
    directory = os.path.dirname(os.path.abspath(output))
    tmp = os.path.join(directory, f".{os.path.basename(output)}.tmp-merge-{os.getpid()}")
    warnings: list[str] = []
    files = [uproot.open(p) for p in parts]
    try:
        fmt = _format(files, names)
        with uproot.recreate(tmp, compression=uproot_compression(compression)) as out:
            _merge_events(files, names, out, fmt=fmt)
            for name, keys in BLOCK_TREES.items():
                warnings += _merge_blocks(files, names, out, name, keys, fmt)
            warnings += _merge_objects(files, names, out)
        os.replace(tmp, output)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    finally:
        for f in files:
            f.close()
    return warnings


def _format(files: list[Any], parts: Sequence[str]) -> str:
    """``RNTuple`` when the parts' ``Events`` are RNTuples, ``TTree`` when TTrees; a mix is a :class:`MergeError`."""
    kinds = ["RNTuple" if is_rntuple(f, "Events") else "TTree" for f in files]
    if len(set(kinds)) > 1:
        other = next(i for i, k in enumerate(kinds) if k != kinds[0])
        raise MergeError(f"{parts[0]} holds its events as a {kinds[0]} but {parts[other]} as a {kinds[other]}: "
                         "the work items must write one format (outputFormat=)")
    return kinds[0]


def _layout(tree: Any, fmt: str) -> Layout:
    """:func:`tree_layout`; an RNTuple's fields are flat entries (jagged fields are lists with their counters)."""
    return [(k, None) for k in tree.keys()] if fmt == "RNTuple" else tree_layout(tree)


def _read(tree: Any, layout: Layout, fmt: str, start: int | None = None, stop: int | None = None) -> dict[str, Any]:
    """Entries *start*..*stop* of *tree* as :func:`_create`'s and ``extend``'s data, in *layout*'s order."""
    if fmt == "RNTuple":
        columns = read_columns(tree, start, stop)
        return {name: columns[name] for name, _ in layout}
    return layout_data(layout, tree.arrays(_branches(layout), entry_start=start, entry_stop=stop, library="ak"))


def _create(out: Any, name: str, data: dict[str, Any], fmt: str) -> None:
    if fmt == "RNTuple":
        out.mkrntuple(name, field_types(data))
    else:
        out.mktree(name, branch_types(data))


def _merge_events(files: list[Any], parts: Sequence[str], out: Any, name: str = "Events", fmt: str = "TTree") -> None:
    trees = [f[name] for f in files]
    filled = [i for i, t in enumerate(trees) if t.num_entries > 0]
    ref = _layout(trees[filled[0] if filled else 0], fmt)
    if not filled:  # no events anywhere: the first part's (typed, empty) tree
        _create(out, name, _read(trees[0], ref, fmt), fmt)
        return
    made = False
    for i in filled:
        _check_layout(ref, _layout(trees[i], fmt), parts[i], name)
        for start in range(0, trees[i].num_entries, EVENTS_STEP):
            data = _read(trees[i], ref, fmt, start, min(start + EVENTS_STEP, trees[i].num_entries))
            if not made:
                _create(out, name, data, fmt)
                made = True
            out[name].extend(data)


def _merge_blocks(files: list[Any], parts: Sequence[str], out: Any, name: str, keys: tuple[str, ...],
                  fmt: str = "TTree") -> list[str]:
    """Concatenate the block trees; a block continuing from one part into the next becomes one row when its
    products are equal, else one row per part (named in the returned warning)."""
    present = [i for i, f in enumerate(files) if name in f]
    if not present:
        return []
    ref = _layout(files[present[0]][name], fmt)
    chunks, owner = [], []
    for i in present:
        tree = files[i][name]
        _check_layout(ref, _layout(tree, fmt), parts[i], name)
        chunks.append(_read(tree, ref, fmt))
        owner += [i] * tree.num_entries
    data = {k: np.concatenate([c[k] for c in chunks]) if isinstance(chunks[0][k], np.ndarray)
            else ak.concatenate([c[k] for c in chunks]) for k in chunks[0]}
    products = [b for b in _branches(ref) if b not in keys]
    keep: list[int] = []
    spanning: dict[tuple[int, ...], None] = {}
    for row in range(len(owner)):
        if keep and owner[row] != owner[keep[-1]] and all(data[k][row] == data[k][keep[-1]] for k in keys):
            if not products:  # the IDs alone: the block continues
                continue
            spanning[tuple(int(data[k][row]) for k in keys)] = None
        keep.append(row)
    index = np.asarray(keep, dtype=np.int64)
    data = {k: v[index] for k, v in data.items()}
    _create(out, name, data, fmt)
    out[name].extend(data)
    if not spanning:
        return []
    what = "runs" if name == "Runs" else "lumis (run, lumi)"
    blocks = ", ".join(str(b[0] if len(b) == 1 else b) for b in list(spanning)[:5])
    return [f"{name}: {what} {blocks}{' ...' if len(spanning) > 5 else ''} span several work items; the {name} tree "
            f"holds one row per work item for them, each with that item's products ({', '.join(products[:3])}"
            f"{', ...' if len(products) > 3 else ''}), as hadd of NanoAOD files does: sum or combine them downstream"]


def _merge_objects(files: list[Any], parts: Sequence[str], out: Any) -> list[str]:
    """Objects under ``DQMData/``: histograms of the same path summed, other objects taken from the first part."""
    found: dict[str, list[tuple[int, str]]] = {}
    for i, f in enumerate(files):
        for path, cls in f.classnames(recursive=True, cycle=False).items():
            if path.startswith("DQMData/") and cls != "TDirectory":
                found.setdefault(path, []).append((i, cls))
    warnings = []
    for path, where in found.items():
        objects = [files[i][path] for i, _ in where]
        if len(objects) == 1:
            out[path] = objects[0]
        elif where[0][1].startswith(HISTOGRAM_CLASSES):
            total = objects[0].to_hist()
            for obj in objects[1:]:
                total = total + obj.to_hist()
            out[path] = total
        else:
            out[path] = objects[0]
            warnings.append(f"{path} ({where[0][1]}) is in {len(objects)} work items' outputs and cannot be summed: "
                            f"kept the first ({parts[where[0][0]]})")
    return warnings
