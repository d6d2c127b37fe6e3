"""``RootOutputModule``: writes selected products and passed-through input branches to a ROOT
file with uproot (as TTrees, or RNTuples with ``format="RNTuple"``), in input order, atomically (the
file appears complete at the end of the job, or not at all)."""

from __future__ import annotations

import fnmatch
import logging
import os
from typing import Any

import awkward as ak
import numpy as np
import uproot

from ..core.event import Event
from ..core.module import OutputModule
from ..core.registry import register
from ..exceptions import ConfigurationError, InputError
from .rntuple import RNTupleTable, check_format

log = logging.getLogger(__name__)


ID_BRANCHES = (("run", np.uint32), ("luminosityBlock", np.uint32), ("event", np.uint64))


def parse_output_commands(commands: list[str]) -> list[tuple[bool, str]]:
    """``["drop *", "keep Jet_*"]`` -> ``[(False, "*"), (True, "Jet_*")]``."""
    rules = []
    for c in commands:
        parts = c.split()
        if len(parts) != 2 or parts[0] not in ("keep", "drop"):
            raise ConfigurationError(
                f"outputCommands entry {c!r} must be 'keep PATTERN' or 'drop PATTERN' (glob patterns, e.g. 'keep Jet_*')"
            )
        rules.append((parts[0] == "keep", parts[1]))
    return rules


def kept(name: str, rules: list[tuple[bool, str]]) -> bool:
    """Later rules override earlier ones (CMSSW semantics); nothing is kept by default."""
    keep = False
    for k, pattern in rules:
        if fnmatch.fnmatchcase(name, pattern):
            keep = k
    return keep


def product_branch_name(label: str, instance: str) -> str:
    return f"{label}_{instance}" if instance else label


@register("RootOutputModule")
class RootOutputModule(OutputModule):
    """Writes a flat ``Events`` tree. Input branches and products are chosen with
    ``outputCommands`` (``keep``/``drop`` glob patterns over branch names; a product
    ``label:instance`` is the branch ``label_instance``). Jagged branches are grouped NanoAOD-style:
    ``Jet_pt`` with counter ``nJet``; a per-jet product ``tagger:probb`` becomes ``tagger_probb``
    with counter ``ntagger``. ``format`` is ``TTree`` (the default) or ``RNTuple``: the same content as
    RNTuples (one field per TTree branch, :mod:`.rntuple`); the command line's ``outputFormat=`` sets it."""

    parameters = {
        "fileName": "output.root",
        "outputCommands": ["keep *"],
        "SelectEvents": [],
        "treeName": "Events",
        "flushEvents": 2000,
        "compression": "ZLIB:1",
        "format": "TTree",
    }

    def __init__(self, label, params, globalCache=None):
        super().__init__(label, params, globalCache)
        self.rules = parse_output_commands(list(params.outputCommands))
        self.path = params.fileName
        if not self.path:
            raise ConfigurationError(f"output module '{label}': fileName is empty; give outputFile=out.root")
        self.format = check_format(str(params.format), f"output module '{label}' (RootOutputModule)")
        self._events: list[Event] = []
        self._file = None
        self._tree_written = False
        self._inputs: list[str] = []
        self._product_keys: list[tuple[str, str]] | None = None
        self._warned: set[tuple[str, str]] = set()
        self._grouping: dict[str, bool] = {}  # product label -> its jagged products share one counter (first flush)
        self._blocks: dict[str, list[tuple[dict[str, Any], dict[tuple[str, str], Any]]]] = {
            "LuminosityBlocks": [], "Runs": []}
        self.n_written = 0

    # ------------------------------------------------------------------ set-up
    def selectedPaths(self) -> list[str]:
        return list(self.params.SelectEvents)

    def consumesLabels(self, labels: list[str]) -> list[str]:
        return [lab for lab in labels if kept(lab, self.rules) or kept(lab + "_\x00", self.rules)]

    def selectBranches(self, available: list[str]) -> list[str]:
        self._inputs = [b for b in available if kept(b, self.rules)]
        return list(self._inputs)

    def beginJob(self) -> None:
        directory = os.path.dirname(os.path.abspath(self.path))
        if not os.path.isdir(directory):
            raise InputError(f"output directory {directory} does not exist (outputFile={self.path})")
        self._tmp = os.path.join(directory, f".{os.path.basename(self.path)}.tmp-{os.getpid()}-{id(self):x}")
        self._file = uproot.recreate(self._tmp, compression=compression(self.params.compression))

    # ------------------------------------------------------------------ writing
    def write(self, event: Event) -> None:
        self._events.append(event)
        if len(self._events) >= self.params.flushEvents:
            self._flush()

    def _select_products(self, events: list[Event]) -> list[tuple[str, str]]:
        """The kept products of these events (the union: a product may be missing in some events, e.g.
        behind a filter; those events get an empty list or 0)."""
        keys = {k for ev in events for k in ev.products() if kept(product_branch_name(*k), self.rules)}
        return sorted(keys)

    def _flush(self) -> None:
        events, self._events = self._events, []
        if not events:  # nothing to add (endJob writes an empty tree if none was written)
            return
        if self._product_keys is None:
            self._product_keys = self._select_products(events)
        else:
            new = set(self._select_products(events)) - set(self._product_keys) - self._warned
            if new:  # the tree's branches are fixed at its first flush
                self._warned |= new
                log.warning("output '%s': products %s first appear after the first %d events and are not written; "
                            "make them in every event (an empty array where there is nothing)",
                            self.label, sorted(product_branch_name(*k) for k in new), self.n_written)
        data = self._id_data(events)
        data.update(self._input_data(events))
        data.update(self._product_data(events))
        if not self._tree_written:
            self._tree = make_table(self._file, self.params.treeName, data, self.format)
            self._tree_written = True
        self._tree.extend(data)
        self.n_written += len(events)

    def _id_data(self, events: list[Event]) -> dict[str, Any]:
        """Every output has the event IDs (as NanoAOD), from the input when kept, else from the event."""
        ids: dict[str, Any] = {}
        for i, (name, dtype) in enumerate(ID_BRANCHES):
            if name not in self._inputs:
                ids[name] = np.fromiter((ev.id[i] for ev in events), dtype=dtype, count=len(events))
        return ids

    def _input_data(self, events: list[Event]) -> dict[str, Any]:
        if not self._inputs:
            return {}
        columns: dict[str, list[Any]] = {b: [] for b in self._inputs}
        # consecutive events of the same chunk are taken with one fancy index per branch
        groups: list[tuple[Any, list[int]]] = []
        for ev in events:
            chunk = ev.batch
            if groups and groups[-1][0] is chunk:
                groups[-1][1].append(ev.batchIndex)
            else:
                groups.append((chunk, [ev.batchIndex]))
        for chunk, idx in groups:
            ia = np.asarray(idx, dtype=np.int64)
            for b in self._inputs:
                columns[b].append(chunk.column(b).take(ia))
        merged = {b: _concat(parts) for b, parts in columns.items()}
        return _group_jagged(merged, counters=self._counter_names())

    def _counter_names(self) -> set[str]:
        return {b for b in self._inputs if b.startswith("n") and b[1:2].isupper()}

    def _product_data(self, events: list[Event]) -> dict[str, Any]:
        if not self._product_keys:
            return {}
        out: dict[str, Any] = {}
        for key in self._product_keys:
            values = [ev.products().get(key) for ev in events]
            out[product_branch_name(*key)] = _to_column(values, key)
        return _group_jagged(out, counters=set(), group_by_label=self._product_keys, decided=self._grouping)

    # ------------------------------------------------------------------ runs and luminosity blocks
    def writeLuminosityBlock(self, lumi: Any) -> None:
        """Keep the lumi's kept products for the ``LuminosityBlocks`` tree (written at the end)."""
        self._blocks["LuminosityBlocks"].append(
            ({"run": np.uint32(lumi.run), "luminosityBlock": np.uint32(lumi.luminosityBlock)}, dict(lumi.products())))

    def writeRun(self, run: Any) -> None:
        """Keep the run's kept products for the ``Runs`` tree (written at the end)."""
        self._blocks["Runs"].append(({"run": np.uint32(run.run)}, dict(run.products())))

    def _write_blocks(self) -> None:
        """The ``LuminosityBlocks`` and ``Runs`` trees, as NanoAOD has them: the IDs, then each kept product
        ``label:instance`` as the branch ``label_instance`` (numbers and 1-D arrays; other products are
        written by :meth:`writeObjects`)."""
        for tree, rows in self._blocks.items():
            if not rows:
                continue
            data = {k: np.asarray([ids[k] for ids, _ in rows]) for k in rows[0][0]}
            keys = sorted({k for _, products in rows for k, v in products.items()
                           if kept(product_branch_name(*k), self.rules) and _is_array_like(v)})
            columns = {product_branch_name(*k): _to_column([p.get(k) for _, p in rows], k) for k in keys}
            data.update(_group_jagged(columns, counters=set(), group_by_label=keys))
            make_table(self._file, tree, data, self.format).extend(data)
            objects = [(ids, k, v) for ids, products in rows for k, v in products.items()
                       if kept(product_branch_name(*k), self.rules) and not _is_array_like(v)]
            self.writeObjects(objects)

    def writeObjects(self, objects: list[tuple[dict[str, Any], tuple[str, str], Any]]) -> None:
        """Run and lumi products that are not numbers or arrays (``(ids, (label, instance), value)``): objects
        uproot can write (histograms: ``hist.Hist``, ``TH1``...) go where DQM's file saver puts monitoring
        elements (:func:`dqm_key`); an instance with a '/' is the ME's DQM path, otherwise ``<label>/<instance>``."""
        written: dict[str, str] = {}
        for ids, (label, instance), value in objects:
            me = instance if "/" in instance else f"{label}/{instance}" if instance else label
            key = dqm_key(me, int(ids["run"]), int(ids["luminosityBlock"]) if "luminosityBlock" in ids else None)
            if key in written:
                raise ConfigurationError(
                    f"output '{self.label}': the products '{written[key]}' and '{label}:{instance}' would both be "
                    f"written to {key!r} (the same DQM path {me!r}); give them different names")
            written[key] = f"{label}:{instance}"
            try:
                self._file[key] = value
            except Exception as e:  # noqa: BLE001
                raise ConfigurationError(
                    f"output '{self.label}': cannot write the product '{label}:{instance}' ({type(value).__name__}) of "
                    f"run {int(ids['run'])}: {type(e).__name__}: {e}. Write numbers, 1-D arrays or histograms, or drop "
                    "it with outputCommands") from None

    def endJob(self) -> None:
        if self._file is None:
            return
        self._flush()
        self._write_blocks()
        if not self._tree_written:
            self._write_empty_tree()
        self._file.close()
        self._file = None
        os.replace(self._tmp, self.path)
        log.info("wrote %d events to %s", self.n_written, self.path)

    def _write_empty_tree(self) -> None:
        """No event was written: an empty tree with the kept input branches, correctly typed."""
        source = getattr(self, "source", None)
        files = getattr(source, "files", None)
        if self._inputs and files:
            from .chunk import Column
            from .source import open_tree

            f, tree = open_tree(files[0], getattr(source.params, "treeName", "Events"))
            try:
                arrays = tree.arrays(self._inputs, entry_start=0, entry_stop=0, library="ak")
                empty = np.zeros(0, dtype=np.int64)
                cols = {b: Column.from_awkward(arrays[b]).take(empty) for b in self._inputs}
            finally:
                f.close()
            data = _group_jagged(cols, counters=self._counter_names())
        else:
            data = {}
        data = {**self._id_data([]), **data}
        make_table(self._file, self.params.treeName, data, self.format)

    def abort(self) -> None:
        if self._file is not None:
            try:
                self._file.close()
            except Exception:  # noqa: BLE001
                pass
            self._file = None
        tmp = getattr(self, "_tmp", None)
        if tmp and os.path.exists(tmp):
            os.unlink(tmp)
            log.info("job failed: no output written to %s", self.path)


def dqm_key(me: str, run: int, lumi: int | None = None) -> str:
    """Where DQM's file saver (DQMFileSaver ``saveForOffline``) writes the monitoring element *me*
    (``Subsystem/folders/name``): ``DQMData/Run <run>/<Subsystem>/Run summary/<folders/name>`` for a run,
    ``DQMData/Run <run>/<Subsystem>/By Lumi Section <lumi>-<lumi>/<folders/name>`` for one lumi section."""
    top, _, rest = me.partition("/")
    scope = "Run summary" if lumi is None else f"By Lumi Section {lumi}-{lumi}"
    return f"DQMData/Run {run}/{top}/{scope}/{rest or top}"


def _is_array_like(value: Any) -> bool:
    """A number or a numeric 1-D array (a branch), as opposed to an object such as a histogram."""
    return isinstance(value, (int, float, bool, np.number, np.bool_)) or (
        isinstance(value, np.ndarray) and value.ndim <= 1 and value.dtype.kind in "biuf")


def compression(spec: str) -> Any:
    """The uproot compression of *spec* (``ZLIB:1``, ``LZ4:4``, ``ZSTD:5``, ``LZMA:9`` or ``NONE``)."""
    if not spec or spec.upper() == "NONE":
        return None
    name, _, level = spec.partition(":")
    try:
        cls = {"ZLIB": uproot.ZLIB, "LZ4": uproot.LZ4, "ZSTD": uproot.ZSTD, "LZMA": uproot.LZMA}[name.upper()]
    except KeyError:
        raise ConfigurationError(f"compression {spec!r}: use ZLIB:N, LZ4:N, ZSTD:N, LZMA:N or NONE") from None
    return cls(int(level or 1))


def branch_types(data: dict[str, Any]) -> dict[str, Any]:
    """uproot ``mktree`` types of *data* (numpy arrays, jagged records): always a TTree (assigning a dict to a
    directory would make an RNTuple)."""
    return {k: v.dtype if isinstance(v, np.ndarray) else v.type.content for k, v in data.items()}


def make_table(directory: Any, name: str, data: dict[str, Any], fmt: str = "TTree") -> Any:
    """A new, empty tree *name* in the uproot *directory*, typed by *data* (the TTree writer's dict: numpy
    arrays, jagged collections as records), as a TTree or an RNTuple (*fmt*: :data:`.rntuple.FORMATS`); append
    with its ``extend(data)``."""
    if fmt == "RNTuple":
        return RNTupleTable(directory, name, data)
    return directory.mktree(name, branch_types(data))


def _concat(parts: list[Any]) -> Any:
    if len(parts) == 1:
        return parts[0]
    if isinstance(parts[0], np.ndarray):
        return np.concatenate(parts)
    return ak.concatenate(parts)


def _to_column(values: list[Any], key: tuple[str, str]) -> Any:
    name = product_branch_name(*key)
    first = next((v for v in values if v is not None), None)
    if first is None:
        return np.zeros(len(values), dtype=np.float32)
    if np.ndim(first) == 0:
        dtype = np.asarray(first).dtype
        return np.asarray([0 if v is None else v for v in values], dtype=dtype)
    arrays = [np.asarray(v) if v is not None else np.zeros(0, dtype=np.asarray(first).dtype) for v in values]
    if any(a.ndim != 1 for a in arrays):
        raise ConfigurationError(
            f"product '{name}' is a {arrays[0].ndim}-D array; RootOutputModule writes numbers and 1-D arrays per event. "
            "Put one product per column (e.g. one per score) or drop it with outputCommands"
        )
    counts = np.fromiter((len(a) for a in arrays), dtype=np.int64, count=len(arrays))
    flat = np.concatenate(arrays) if arrays else np.zeros(0, dtype=np.float32)
    return ak.unflatten(flat, counts)


def _group_jagged(columns: dict[str, Any], counters: set[str], group_by_label: list[tuple[str, str]] | None = None,
                  decided: dict[str, bool] | None = None) -> dict[str, Any]:
    """Group jagged columns NanoAOD-style: ``Jet_pt``, ``Jet_eta`` -> record ``Jet`` (uproot then
    writes ``nJet`` and ``Jet_pt``...). Columns that do not fit a group are written alone."""
    out: dict[str, Any] = {}
    groups: dict[str, dict[str, Any]] = {}
    for name, col in columns.items():
        if isinstance(col, np.ndarray):
            if name in counters and any(n.startswith(name[1:] + "_") for n in columns):
                continue  # uproot writes the counter of the group
            out[name] = col
            continue
        if group_by_label is not None:
            prefix, _, field = name.partition("_")
            label = next((lab for lab, inst in group_by_label if product_branch_name(lab, inst) == name), prefix)
            field = name[len(label) + 1 :] if name != label else ""
            prefix = label
        else:
            prefix, _, field = name.partition("_")
        if not field:
            out[name] = col
            continue
        groups.setdefault(prefix, {})[field] = col
    for prefix, fields in groups.items():
        counts = None
        same = True
        for col in fields.values():
            c = np.asarray(ak.num(col, axis=1))
            if counts is None:
                counts = c
            elif len(c) != len(counts) or not np.array_equal(c, counts):
                same = False
                break
        if decided is not None:  # the tree's layout is fixed at its first flush: keep the first decision
            if decided.setdefault(prefix, same) and not same:
                raise ConfigurationError(
                    f"the jagged products of '{prefix}' had equal lengths in every event of the first "
                    f"{len(next(iter(fields.values())))}-event block written, so they share one counter "
                    f"n{prefix}, but not in a later block. Give them different labels, or make them equal in length")
            same = decided[prefix]
        if same and prefix not in out:
            out[prefix] = ak.zip(fields, depth_limit=None) if len(fields) > 1 else ak.zip(fields)
        else:
            for field, col in fields.items():
                out[f"{prefix}_{field}"] = col
    return out
