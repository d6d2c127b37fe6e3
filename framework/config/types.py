"""Typed parameters of the config language (``cms.double``, ``cms.InputTag``, ``cms.PSet``, ...).

Plain Python values are accepted everywhere a typed parameter is; the typed wrappers exist so that
configs read like CMSSW ones and so that a wrong value fails at configuration time.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..exceptions import ConfigurationError


class _Parameter:
    """A typed value. ``value()`` gives the plain Python value."""

    _pytype: type | tuple[type, ...] = object
    _name = "parameter"

    def __init__(self, value: Any):
        self._value = self._check(value)

    @classmethod
    def _check(cls, value: Any) -> Any:
        if isinstance(value, _Parameter):
            value = value.value()
        if isinstance(value, bool) and cls._pytype in (int, float):
            raise ConfigurationError(f"cms.{cls._name} expects a number, got the bool {value!r}")
        if cls._pytype is float and isinstance(value, int):
            return float(value)
        if not isinstance(value, cls._pytype):
            raise ConfigurationError(f"cms.{cls._name} expects {_describe(cls._pytype)}, got {value!r}")
        return value

    def value(self) -> Any:
        return self._value

    def setValue(self, value: Any) -> None:
        self._value = self._check(value)

    def copy(self) -> _Parameter:
        return type(self)(self._value)

    def dumpPython(self, indent: int = 0) -> str:
        return f"cms.{self._name}({self._value!r})"

    def __repr__(self) -> str:
        return self.dumpPython()

    def __eq__(self, other: object) -> bool:
        other_value = other.value() if isinstance(other, _Parameter) else other
        return self._value == other_value

    __hash__ = None  # type: ignore[assignment]


def _describe(t: type | tuple[type, ...]) -> str:
    if isinstance(t, tuple):
        return " or ".join(x.__name__ for x in t)
    return t.__name__


class double(_Parameter):
    _pytype = float
    _name = "double"


class int32(_Parameter):
    _pytype = int
    _name = "int32"


class uint32(int32):
    _name = "uint32"

    @classmethod
    def _check(cls, value: Any) -> Any:
        value = super()._check(value)
        if value < 0:
            raise ConfigurationError(f"cms.uint32 expects a non-negative integer, got {value!r}")
        return value


class int64(int32):
    _name = "int64"


class uint64(uint32):
    _name = "uint64"


class bool_(_Parameter):
    _pytype = bool
    _name = "bool"


class string(_Parameter):
    _pytype = str
    _name = "string"


class InputTag(_Parameter):
    """A product reference: ``"label"`` or ``"label:instance"`` (or ``InputTag(label, instance)``)."""

    _pytype = str
    _name = "InputTag"

    def __init__(self, label: Any, instance: str = ""):
        if isinstance(label, InputTag):
            label = label.value()
        if instance:
            label = f"{label}:{instance}"
        super().__init__(label)

    @property
    def label(self) -> str:
        return self._value.split(":", 1)[0]

    @property
    def instance(self) -> str:
        parts = self._value.split(":", 1)
        return parts[1] if len(parts) > 1 else ""


class _Vector(_Parameter):
    _item: type[_Parameter] = _Parameter

    def __init__(self, *values: Any):
        if len(values) == 1 and isinstance(values[0], (list, tuple)):
            values = tuple(values[0])
        self._value = self._check(list(values))

    @classmethod
    def _check(cls, value: Any) -> Any:
        if isinstance(value, _Parameter):
            value = value.value()
        if not isinstance(value, (list, tuple)):
            raise ConfigurationError(f"cms.{cls._name} expects a list, got {value!r}")
        return [cls._item._check(v) for v in value]

    def copy(self) -> _Vector:
        return type(self)(*self._value)

    def dumpPython(self, indent: int = 0) -> str:
        return f"cms.{self._name}(" + ", ".join(repr(v) for v in self._value) + ")"

    def __iter__(self):
        return iter(self._value)

    def __len__(self) -> int:
        return len(self._value)

    def __getitem__(self, i: int) -> Any:
        return self._value[i]

    def append(self, v: Any) -> None:
        self._value.append(self._item._check(v))

    def extend(self, vs: Iterable[Any]) -> None:
        for v in vs:
            self.append(v)


class vdouble(_Vector):
    _item = double
    _name = "vdouble"


class vint32(_Vector):
    _item = int32
    _name = "vint32"


class vuint32(_Vector):
    _item = uint32
    _name = "vuint32"


class vstring(_Vector):
    _item = string
    _name = "vstring"


class VInputTag(_Vector):
    _item = InputTag
    _name = "VInputTag"


class PSet:
    """A nested parameter set. Attributes are its parameters."""

    def __init__(self, **params: Any):
        object.__setattr__(self, "_params", {})
        for k, v in params.items():
            setattr(self, k, v)

    def __setattr__(self, name: str, value: Any) -> None:
        if name.startswith("_"):
            object.__setattr__(self, name, value)
            return
        old = self._params.get(name)
        if isinstance(old, _Parameter) and not isinstance(value, (_Parameter, PSet, VPSet)):
            old = old.copy()
            old.setValue(value)
            value = old
        self._params[name] = value

    def __getattr__(self, name: str) -> Any:
        params = object.__getattribute__(self, "_params")
        if name in params:
            return params[name]
        raise AttributeError(f"{type(self).__name__} has no parameter '{name}'. It has: {', '.join(params) or 'none'}")

    def __delattr__(self, name: str) -> None:
        if name in self._params:
            del self._params[name]
        else:
            object.__delattr__(self, name)

    def __contains__(self, name: str) -> bool:
        return name in self._params

    def parameterNames_(self) -> list[str]:
        return list(self._params)

    def parameters_(self) -> dict[str, Any]:
        """The parameters as a plain dict (nested typed values are kept)."""
        return dict(self._params)

    def value(self) -> dict[str, Any]:
        return {k: plain(v) for k, v in self._params.items()}

    def copy(self) -> PSet:
        return type(self)(**{k: copy_value(v) for k, v in self._params.items()})

    def dumpPython(self, indent: int = 0) -> str:
        return dump_call(f"cms.{type(self).__name__}", [], self._params, indent)

    def __repr__(self) -> str:
        return self.dumpPython()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PSet) and self.value() == other.value()

    __hash__ = None  # type: ignore[assignment]


class VPSet:
    """A list of PSets."""

    def __init__(self, *psets: PSet):
        for p in psets:
            if not isinstance(p, PSet):
                raise ConfigurationError(f"cms.VPSet expects cms.PSet items, got {p!r}")
        self._value = list(psets)

    def value(self) -> list[dict[str, Any]]:
        return [p.value() for p in self._value]

    def copy(self) -> VPSet:
        return VPSet(*(p.copy() for p in self._value))

    def __iter__(self):
        return iter(self._value)

    def __len__(self) -> int:
        return len(self._value)

    def __getitem__(self, i: int) -> PSet:
        return self._value[i]

    def append(self, p: PSet) -> None:
        self._value.append(p)

    def dumpPython(self, indent: int = 0) -> str:
        if not self._value:
            return "cms.VPSet()"
        pad = " " * (indent + 4)
        inner = (",\n").join(pad + p.dumpPython(indent + 4) for p in self._value)
        return "cms.VPSet(\n" + inner + "\n" + " " * indent + ")"

    def __repr__(self) -> str:
        return self.dumpPython()


class _Untracked:
    """``cms.untracked.int32(3)``: accepted for CMSSW compatibility; tracking has no effect here."""

    def __getattr__(self, name: str) -> Any:
        return globals()[name if name != "bool" else "bool_"]


untracked = _Untracked()


def plain(v: Any) -> Any:
    """The plain Python value of a (possibly typed) parameter."""
    if isinstance(v, (_Parameter, PSet, VPSet)):
        return v.value()
    if isinstance(v, list):
        return [plain(x) for x in v]
    if isinstance(v, dict):
        return {k: plain(x) for k, x in v.items()}
    return v


def copy_value(v: Any) -> Any:
    if isinstance(v, (_Parameter, PSet, VPSet)):
        return v.copy()
    if isinstance(v, list):
        return [copy_value(x) for x in v]
    if isinstance(v, dict):
        return {k: copy_value(x) for k, x in v.items()}
    return v


def dump_value(v: Any, indent: int = 0) -> str:
    if isinstance(v, (_Parameter, PSet, VPSet)):
        return v.dumpPython(indent)
    return repr(v)


def dump_call(head: str, args: list[str], params: dict[str, Any], indent: int) -> str:
    """``head(args..., name = value, ...)`` as ``dumpPython`` writes it, one parameter a line past *indent*."""
    if not params:
        return f"{head}({', '.join(args)})"
    pad = " " * (indent + 4)
    lines = [pad + a for a in args]
    lines += [f"{pad}{k} = {dump_value(v, indent + 4)}" for k, v in params.items()]
    return f"{head}(\n" + ",\n".join(lines) + "\n" + " " * indent + ")"
