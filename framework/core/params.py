"""Module parameters: what a module type accepts (its ``parameters`` class attribute) and the
checks that make a misspelled or mistyped parameter fail at configuration time."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..config.types import plain
from ..constraints import Constraint, check_constraints
from ..exceptions import ConfigurationError, did_you_mean


class Required:
    """Marks a parameter that has no default: ``parameters = {"src": Required(str, "the jets")}``."""

    def __init__(self, type_: type | tuple[type, ...] = object, help: str = ""):
        self.type = type_
        self.help = help

    def __repr__(self) -> str:
        return "Required(" + getattr(self.type, "__name__", str(self.type)) + ")"


class AnyPSet(dict):
    """A nested parameter set whose keys are not checked (``parameters = {"extra": AnyPSet()}``)."""


class Params(Mapping):
    """The checked parameters of a module: attribute and item access to plain Python values."""

    def __init__(self, values: Mapping[str, Any]):
        self._values = {k: Params(v) if isinstance(v, dict) else v for k, v in values.items()}

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self._values[name]
        except KeyError:
            raise AttributeError(f"no parameter '{name}'.{did_you_mean(name, self._values)}") from None

    def __getitem__(self, name: str) -> Any:
        return self._values[name]

    def __iter__(self):
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def to_dict(self) -> dict[str, Any]:
        return {k: v.to_dict() if isinstance(v, Params) else v for k, v in self._values.items()}

    def __repr__(self) -> str:
        return f"Params({self.to_dict()!r})"


def _type_ok(value: Any, expected: type | tuple[type, ...]) -> bool:
    if expected is object:
        return True
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return True
    if isinstance(value, bool) and expected in (int, float):
        return False
    return isinstance(value, expected)


def check_parameters(spec: Mapping[str, Any], given: Mapping[str, Any], where: str) -> dict[str, Any]:
    """Check *given* (plain values) against *spec* (defaults / :class:`Required`); return the
    complete parameter dict. *where* names the module for error messages."""
    result: dict[str, Any] = {}
    valid = list(spec)
    for key in given:
        if key not in spec:
            raise ConfigurationError(
                f"{where}: unknown parameter '{key}'.{did_you_mean(key, valid)} "
                f"Valid parameters: {', '.join(valid) or '(none)'}"
            )
    for key, default in spec.items():
        if key not in given:
            if isinstance(default, Required):
                help_ = f" ({default.help})" if default.help else ""
                raise ConfigurationError(f"{where}: missing required parameter '{key}'{help_}")
            result[key] = _copy_default(default)
            continue
        value = plain(given[key])
        if isinstance(default, Required):
            expected: Any = default.type
        elif default is None:
            expected = object
        elif isinstance(default, AnyPSet):
            expected = dict
        elif isinstance(default, dict):
            if not isinstance(value, dict):
                raise ConfigurationError(f"{where}: parameter '{key}' must be a cms.PSet, got {value!r}")
            result[key] = check_parameters(default, value, f"{where}.{key}")
            continue
        elif isinstance(default, float):
            expected = float
        elif isinstance(default, bool):
            expected = bool
        elif isinstance(default, int):
            expected = int
        elif isinstance(default, (list, tuple)):
            expected = (list, tuple)
            if isinstance(value, dict) and list(value) == [key]:
                # CMSSW's nested idiom: SelectEvents = cms.untracked.PSet(SelectEvents = cms.vstring('p'))
                value = value[key]
        else:
            expected = type(default)
        if not _type_ok(value, expected):
            tname = expected.__name__ if isinstance(expected, type) else "/".join(t.__name__ for t in expected)
            raise ConfigurationError(
                f"{where}: parameter '{key}' must be of type {tname}, got {value!r} ({type(value).__name__})"
            )
        if isinstance(default, float) and isinstance(value, int):
            value = float(value)
        if isinstance(default, list) and default and isinstance(default[0], dict) and not isinstance(default[0], AnyPSet):
            value = [check_parameters(default[0], v, f"{where}.{key}[{i}]") for i, v in enumerate(value)]
        result[key] = value
    return result


def _copy_default(default: Any) -> Any:
    if isinstance(default, AnyPSet):
        return {}
    if isinstance(default, dict):
        return {k: _copy_default(v) for k, v in default.items() if not isinstance(v, Required)}
    if isinstance(default, list):
        return list(default) if not (default and isinstance(default[0], dict)) else []
    return default


__all__ = ["AnyPSet", "Constraint", "Params", "Required", "check_constraints", "check_parameters"]
