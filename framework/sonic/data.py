"""Named inputs and outputs of a Triton model, as a SONIC producer sees them (CMSSW's ``TritonInputData`` /
``TritonOutputData``).

In ``acquire(event, input)`` a producer fills the inputs::

    input["INPUT"].toServer(array)          # array [batch, *dims] (the outer dimension is the batch)
    input.set("INPUT", array)               # the same

and in ``produce(event, output)`` it reads the outputs::

    scores = output["OUTPUT"].fromServer()  # numpy array [batch, *dims]

Dims that are ``-1`` in the model's configuration take their size from the array given (or from
:meth:`TritonInputData.setShape`). In *ragged* batch mode each batch entry may have its own shape: give a list
of per-entry arrays (without the batch dimension); outputs then come back as a list of per-entry arrays. Shapes
and dtypes are checked when the data is given, the batch size (by the client, which owns the request) before
anything is sent; an error names the model, the input, the event, and what was expected. Control flows one way:
the client fills and reads these objects, they never call the client.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..exceptions import did_you_mean
from .errors import TritonDataError

RECTANGULAR = "Rectangular"
RAGGED = "Ragged"


def triton_dtype_to_numpy(datatype: str) -> np.dtype:
    """numpy dtype of a Triton datatype name (``FP32``, ``INT64``, ``BYTES``, ...)."""
    from tritonclient.utils import triton_to_np_dtype

    dt = triton_to_np_dtype(datatype)
    if dt is None:
        raise TritonDataError(f"Triton datatype {datatype!r} has no numpy equivalent")
    return np.dtype(dt)


def config_dtype_to_triton(data_type: str) -> str:
    """``TYPE_FP32`` (config.pbtxt) -> ``FP32`` (metadata); ``TYPE_STRING`` -> ``BYTES``."""
    name = data_type[5:] if data_type.startswith("TYPE_") else data_type
    return "BYTES" if name == "STRING" else name


@dataclass(frozen=True)
class TensorInfo:
    """One input or output of a model as the server describes it. ``dims`` exclude the batch dimension
    when the model batches; ``-1`` is a variable dimension."""

    name: str
    datatype: str
    dims: tuple[int, ...]

    @property
    def dtype(self) -> np.dtype:
        return triton_dtype_to_numpy(self.datatype)

    @property
    def variableDims(self) -> bool:
        return any(d < 0 for d in self.dims)

    def describe(self) -> str:
        return f"{self.datatype} {list(self.dims)}"


def _fmt_shape(shape: Sequence[int]) -> str:
    return "[" + ", ".join(str(int(d)) for d in shape) + "]"


class _TensorData:
    """One named tensor of the model. It knows only its own description (``info``) and whether the model
    batches; the client owns the request and tells the tensor where it is used (:meth:`setContext`)."""

    def __init__(self, info: TensorInfo, batched: bool = True, owner: str = ""):
        self.info = info
        self.name = info.name
        self.datatype = info.datatype
        self.dtype = info.dtype
        self.dims = info.dims
        self.batched = batched
        """False for a model without batching (``max_batch_size: 0``): data has the model's dims exactly."""
        self.variableDims = info.variableDims
        """True when some dimension is ``-1`` (its size is given per event)."""
        self._owner = owner
        self._where = ""

    def setContext(self, where: str) -> None:
        """Where the data is used (``event.where()``), for messages."""
        self._where = where

    def _context(self, what: str) -> str:
        where = f" on {self._where}" if self._where else ""
        return f"{self._owner}, {what} '{self.name}'{where}"


class TritonInputData(_TensorData):
    """One named input of the model for the current event: one array ``[batch, *dims]``, or one array per
    batch entry (entries of different shapes are sent one request each, the *ragged* mode)."""

    def __init__(self, info: TensorInfo, batched: bool = True, owner: str = ""):
        super().__init__(info, batched, owner)
        self.reset()

    def reset(self) -> None:
        """Forget the data of the previous event."""
        self._array: np.ndarray | None = None
        self._entries: list[np.ndarray] | None = None
        self._shapes: dict[int, tuple[int, ...]] = {}

    # ------------------------------------------------------------------ shape
    def setShape(self, shape: Sequence[int], entry: int = 0) -> None:
        """Set the concrete shape (without the batch dimension) of this input for batch entry *entry*
        (only needed for ``-1`` dims, and only as a check: the shape is otherwise taken from the data)."""
        shape = tuple(int(d) for d in shape)
        self._check_entry_shape(shape, None, what="setShape got")
        self._shapes[int(entry)] = shape

    def shape(self, entry: int = 0) -> tuple[int, ...]:
        """The concrete shape of batch entry *entry* (without the batch dimension)."""
        if self._entries is not None:
            return tuple(self._entries[entry].shape)
        if self._array is not None:
            return tuple(self._array.shape[1:]) if self.batched else tuple(self._array.shape)
        return self._shapes.get(entry, self.dims)

    @property
    def isSet(self) -> bool:
        """True when data was given for this event."""
        return self._array is not None or self._entries is not None

    @property
    def byteSize(self) -> int:
        """Bytes of the data given for this event."""
        if self._array is not None:
            return int(self._array.nbytes)
        if self._entries is not None:
            return int(sum(e.nbytes for e in self._entries))
        return 0

    @property
    def entryCount(self) -> int:
        """The batch size this input's data implies (0 when not set)."""
        if self._entries is not None:
            return len(self._entries)
        if self._array is not None:
            return int(self._array.shape[0]) if self.batched else 1
        return 0

    @property
    def isRagged(self) -> bool:
        """True when the data was given as entries of different shapes."""
        entries = self._entries
        return entries is not None and any(e.shape != entries[0].shape for e in entries[1:])

    def array(self) -> np.ndarray:
        """The data as one array ``[batch, *dims]`` (``dims`` for a model without batching)."""
        if self._array is not None:
            return self._array
        entries = self._entries or []
        if not self.batched:
            return entries[0]
        return np.stack(entries) if entries else np.empty((0, *[max(d, 0) for d in self.dims]), self.dtype)

    def entries(self) -> list[np.ndarray]:
        """The data as one array per batch entry (without the batch dimension)."""
        if self._entries is not None:
            return self._entries
        if self._array is None:
            return []
        return list(self._array) if self.batched else [self._array]

    # ------------------------------------------------------------------ data
    def toServer(self, data: Any) -> None:
        """Give the data of this input for the current event.

        A numpy array ``[batch, *dims]`` (``dims`` alone for a model without batching), or a list of
        per-entry arrays ``[*dims]``: entries of one shape are stacked into one batch; entries of different
        shapes (``-1`` dims that differ) are sent one request per entry (ragged mode). numpy arrays must
        have the model's dtype; Python lists are converted to it. Shapes and dtypes are checked here; the
        batch size (equal for every input, at most ``max_batch_size``) when the request is made.
        """
        if isinstance(data, (list, tuple)):
            entries = [self._as_array(x, i) for i, x in enumerate(data)]
            for i, e in enumerate(entries):
                self._check_entry_shape(tuple(e.shape), i)
            if self.batched and entries and all(e.shape == entries[0].shape for e in entries[1:]):
                self._array, self._entries = np.stack(entries), None
            elif not self.batched and len(entries) == 1:
                self._array, self._entries = entries[0], None
            elif not entries:
                shape = (0, *[max(d, 0) for d in self.dims]) if self.batched else tuple(self.dims)
                self._array, self._entries = np.empty(shape, dtype=self.dtype), None
            else:
                self._array, self._entries = None, entries
            return
        array = self._as_array(data, None)
        if self.batched:
            if array.ndim != len(self.dims) + 1:
                self._bad_rank(array.shape, len(self.dims) + 1)
            self._check_entry_shape(tuple(array.shape[1:]), None)
        else:
            self._check_entry_shape(tuple(array.shape), None)
        self._array, self._entries = array, None

    def _as_array(self, data: Any, entry: int | None) -> np.ndarray:
        if isinstance(data, (np.ndarray, np.generic)):
            array = np.asarray(data)
            if array.dtype != self.dtype:
                where = f" (entry {entry})" if entry is not None else ""
                raise TritonDataError(
                    f"{self._context('input')}{where}: expected dtype {self.datatype} ({self.dtype}), "
                    f"given {array.dtype}.\n  Convert it first, e.g. array.astype(np.{self.dtype.name}).")
            return array
        try:
            return np.asarray(data, dtype=self.dtype)
        except (TypeError, ValueError) as exc:
            raise TritonDataError(
                f"{self._context('input')}: cannot convert the given {type(data).__name__} to a "
                f"{self.dtype} array ({exc})") from exc

    def _bad_rank(self, given: Sequence[int], expected_ndim: int) -> None:
        batch = "batch, " if self.batched else ""
        raise TritonDataError(
            f"{self._context('input')}: expected shape [{batch}{', '.join(map(str, self.dims))}] "
            f"({expected_ndim} dims), given {_fmt_shape(given)} ({len(given)} dims).")

    def _check_entry_shape(self, shape: tuple[int, ...], entry: int | None, what: str = "given") -> None:
        if shape == self.dims and not self._shapes:
            return  # fixed dims, as the model wants them
        dims = self.dims
        wanted = self._shapes.get(entry if entry is not None else 0) if what == "given" else None
        bad = len(shape) != len(dims) or any(d >= 0 and s != d for s, d in zip(shape, dims, strict=False))
        if not bad and wanted is not None and tuple(wanted) != tuple(shape):
            raise TritonDataError(
                f"{self._context('input')}: setShape said {_fmt_shape(wanted)}"
                f"{'' if entry is None else f' for entry {entry}'}, but the data has shape {_fmt_shape(shape)}.")
        if bad or any(s < 0 for s in shape):
            where = "" if entry is None else f" (entry {entry})"
            batch = "[batch] + " if self.batched and entry is None and what == "given" else ""
            raise TritonDataError(
                f"{self._context('input')}{where}: expected shape {batch}{_fmt_shape(dims)} "
                f"(-1 = any size), {what} {_fmt_shape(shape)}.\n  The model's dims come from its config.pbtxt; "
                "pad or reshape the data to them.")

    def __repr__(self) -> str:
        state = "set" if self.isSet else "empty"
        return f"<TritonInputData {self.name} {self.info.describe()} {state}>"


class TritonOutputData(_TensorData):
    """One named output of the model for the current event (after the server answered)."""

    def __init__(self, info: TensorInfo, batched: bool = True, owner: str = ""):
        super().__init__(info, batched, owner)
        self.reset()

    def reset(self) -> None:
        self._result: np.ndarray | list[np.ndarray] | None = None

    def setResult(self, result: np.ndarray | list[np.ndarray]) -> None:
        """Set by the client when the server answered."""
        self._result = result

    @property
    def isSet(self) -> bool:
        return self._result is not None

    def fromServer(self) -> Any:
        """The output: a numpy array ``[batch, *dims]`` (``dims`` alone for a model without batching), or in
        ragged mode a list with one array per entry. Arrays that came over the network are read-only views of
        the response; copy them to modify them."""
        if self._result is None:
            raise TritonDataError(
                f"{self._context('output')}: no result yet. Outputs are available in produce(event, output), "
                "after the server answered.")
        return self._result

    @property
    def shape(self) -> tuple[int, ...]:
        result = self.fromServer()
        if isinstance(result, list):
            raise TritonDataError(f"{self._context('output')}: ragged output; look at the shape of each entry")
        return tuple(result.shape)

    def __array__(self, dtype: Any = None) -> np.ndarray:
        result = self.fromServer()
        if isinstance(result, list):
            raise TritonDataError(f"{self._context('output')}: a ragged output is a list of arrays, not an array")
        return np.asarray(result, dtype=dtype)

    def __repr__(self) -> str:
        return f"<TritonOutputData {self.name} {self.info.describe()} {'set' if self.isSet else 'empty'}>"


class _TensorMap(Mapping):
    _what = "tensor"

    def __init__(self, items: dict[str, Any], owner: str = ""):
        self._items = items
        self._owner = owner

    def __getitem__(self, name: str) -> Any:
        try:
            return self._items[name]
        except KeyError:
            raise TritonDataError(
                f"{self._owner} has no {self._what} '{name}'.{did_you_mean(name, self._items)} "
                f"Its {self._what}s: {', '.join(self._items) or 'none'}.") from None

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def get(self, name: str, default: Any = None) -> Any:
        return self._items.get(name, default)

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({list(self._items.values())!r})"


class TritonInputs(_TensorMap):
    """The model's inputs by name (``input["x"]``)."""

    _what = "input"

    def set(self, name: str, data: Any) -> None:
        """``input.set(name, data)`` is ``input[name].toServer(data)``."""
        self[name].toServer(data)


class TritonOutputs(_TensorMap):
    """The model's (requested) outputs by name (``output["y"].fromServer()``)."""

    _what = "output"

    def arrays(self) -> dict[str, Any]:
        """All outputs: name -> array (or list of arrays in ragged mode)."""
        return {name: out.fromServer() for name, out in self._items.items()}


__all__ = [
    "RAGGED",
    "RECTANGULAR",
    "TensorInfo",
    "TritonInputData",
    "TritonInputs",
    "TritonOutputData",
    "TritonOutputs",
    "config_dtype_to_triton",
    "triton_dtype_to_numpy",
]
