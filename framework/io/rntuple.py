"""RNTuple output with uproot: the output formats, and the mapping of the TTree writer's data to RNTuple fields.

The TTree writer hands uproot ``mktree``/``extend`` a dict whose jagged collections are records (``Jet`` with the
fields ``pt``, ``eta``) or lone jagged arrays; uproot writes them NanoAOD-style as a counter ``nJet`` (int32) and
the branches ``Jet_pt``, ``Jet_eta``. An RNTuple gets the same content under the same names, one top-level field
per TTree branch: ``nJet`` (int32), ``Jet_pt`` (a list of float per entry), ... So a reader (uproot, ROOT's
``RNTupleReader``/``RDataFrame``, the framework's own ``RootSource``) finds the TTree's branch names, types and
values. (An RNTuple stores each list's offsets itself; the counter is kept so that code written for NanoAOD's
``nJet`` works unchanged, as does the ``RootSource`` grouping of ``Jet_*`` by ``nJet``.)

Entries are appended with uproot's ``WritableNTuple.extend``: one cluster per flush of the output module.
"""

from __future__ import annotations

from typing import Any

import awkward as ak
import numpy as np

from ..exceptions import ConfigurationError, did_you_mean

FORMATS = ("TTree", "RNTuple")
"""The output formats: ``TTree`` (the default) and ``RNTuple``."""

RNTUPLE_CLASS = "ROOT::RNTuple"
"""uproot's class name of an RNTuple anchor (``file.classnames()``)."""

COUNTER_DTYPE = np.int32  # uproot's TTree writer makes the counters nX int32


def check_format(value: str, where: str) -> str:
    """*value* when it is one of :data:`FORMATS`, else a :class:`ConfigurationError` naming *where* and them."""
    if value not in FORMATS:
        raise ConfigurationError(
            f"{where}: output format {value!r} is not known; use one of {', '.join(FORMATS)} "
            f"(outputFormat=RNTuple on the command line, or format=cms.untracked.string('RNTuple') on the output "
            f"module).{did_you_mean(str(value), list(FORMATS))}")
    return value


def rntuple_columns(data: dict[str, Any]) -> dict[str, Any]:
    """The TTree writer's *data* as RNTuple fields named as the TTree's branches: a record ``Jet`` becomes
    ``nJet`` and ``Jet_<field>``; a lone jagged array ``X`` becomes ``nX`` and ``X``; flat columns stay."""
    out: dict[str, Any] = {}
    for name, col in data.items():
        if isinstance(col, np.ndarray):
            out[name] = col
            continue
        counts = np.asarray(ak.num(col, axis=1), dtype=COUNTER_DTYPE)
        out[f"n{name}"] = counts
        if col.fields:
            for field in col.fields:
                out[f"{name}_{field}"] = _list_of(col[field], counts)
        else:
            out[name] = _list_of(col, counts)
    return out


def _list_of(col: ak.Array, counts: np.ndarray) -> ak.Array:
    """*col* as a plain list array (no record parameters, no option type) with the given counts."""
    return ak.unflatten(ak.to_numpy(ak.flatten(col, axis=1)), counts)


def field_types(columns: dict[str, Any]) -> dict[str, Any]:
    """uproot ``mkrntuple`` types of *columns*: numpy dtypes and awkward list types."""
    return {k: v.dtype if isinstance(v, np.ndarray) else v.type.content for k, v in columns.items()}


class RNTupleTable:
    """An RNTuple being written, extended with the TTree writer's data (see :func:`rntuple_columns`)."""

    def __init__(self, directory: Any, name: str, data: dict[str, Any]):
        self.ntuple = directory.mkrntuple(name, field_types(rntuple_columns(data)))

    def extend(self, data: dict[str, Any]) -> None:
        """Append *data* (one cluster)."""
        self.ntuple.extend(rntuple_columns(data))


def read_columns(ntuple: Any, entry_start: int | None = None, entry_stop: int | None = None) -> dict[str, Any]:
    """The fields of an RNTuple written by :class:`RNTupleTable` (read with uproot), in order, as
    :meth:`RNTupleTable.extend`'s flat columns take them: numpy arrays and jagged awkward arrays."""
    arrays = ntuple.arrays(ntuple.keys(), entry_start=entry_start, entry_stop=entry_stop, library="ak")
    return {k: ak.to_numpy(arrays[k]) if arrays[k].ndim == 1 else arrays[k] for k in ntuple.keys()}


def is_rntuple(file: Any, name: str) -> bool:
    """Whether *name* in the uproot *file* is an RNTuple."""
    return file.classnames(cycle=False).get(name) == RNTUPLE_CLASS
