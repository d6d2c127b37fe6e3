"""Module declarations of the config language: ``cms.EDProducer("TypeName", param=...)`` etc."""

from __future__ import annotations

from typing import Any

from ..exceptions import ConfigurationError
from .types import PSet, copy_value, dump_call


class ModuleDecl(PSet):
    """A declared module: a C++-style type name plus parameters. The label is the attribute name
    under which it is attached to the :class:`Process`."""

    _kind = "module"

    def kind_(self) -> str:
        """What the declaration is: "producer", "filter", "analyzer", "output", "source", "service", ..."""
        return self._kind

    def __init__(self, type_: str, *args: Any, **params: Any):
        if not isinstance(type_, str) or not type_:
            raise ConfigurationError(f"cms.{type(self).__name__} needs a type name string first, got {type_!r}")
        object.__setattr__(self, "_type", type_)
        object.__setattr__(self, "_label", None)
        super().__init__()
        for a in args:  # cms.EDProducer("T", somePSet, x=1): PSets given positionally are merged
            if not isinstance(a, PSet):
                raise ConfigurationError(f"positional arguments of cms.{type(self).__name__} must be cms.PSet, got {a!r}")
            for k, v in a.parameters_().items():
                setattr(self, k, copy_value(v))
        for k, v in params.items():
            setattr(self, k, v)

    def type_(self) -> str:
        return self._type

    def label_(self) -> str | None:
        return self._label

    def hasLabel_(self) -> bool:
        return self._label is not None

    def setLabel(self, label: str | None) -> None:
        object.__setattr__(self, "_label", label)

    def clone(self, *args: Any, **changes: Any) -> ModuleDecl:
        """A copy with some parameters changed; a value of ``None`` removes the parameter."""
        new = type(self)(self._type, **{k: copy_value(v) for k, v in self._params.items()})
        for a in args:
            for k, v in a.parameters_().items():
                setattr(new, k, copy_value(v))
        for k, v in changes.items():
            if v is None:
                if k in new._params:
                    delattr(new, k)
            else:
                setattr(new, k, v)
        return new

    def _replaceWith(self, other: ModuleDecl) -> None:
        """Become *other* in place (type and parameters), keeping the label."""
        if type(other) is not type(self):
            raise ConfigurationError(
                f"toReplaceWith: cannot replace {type(self).__name__} '{self._label}' by a "
                f"{type(other).__name__}; the replacement must be of the same kind"
            )
        object.__setattr__(self, "_type", other._type)
        object.__setattr__(self, "_params", {k: copy_value(v) for k, v in other._params.items()})

    def copy(self) -> ModuleDecl:
        return self.clone()

    def dumpPython(self, indent: int = 0) -> str:
        return dump_call(f"cms.{type(self).__name__}", [repr(self._type)], self._params, indent)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ModuleDecl) and self._type == other._type and self.value() == other.value()

    __hash__ = object.__hash__  # modules are identified by object (used in sets of paths/tasks)


class EDProducer(ModuleDecl):
    _kind = "producer"


class EDFilter(ModuleDecl):
    _kind = "filter"


class EDAnalyzer(ModuleDecl):
    _kind = "analyzer"


class OutputModule(ModuleDecl):
    _kind = "output"


class Source(ModuleDecl):
    _kind = "source"


class Service(ModuleDecl):
    _kind = "service"


class ESProducer(ModuleDecl):
    _kind = "esproducer"


SCHEDULABLE = (EDProducer, EDFilter, EDAnalyzer, OutputModule)
