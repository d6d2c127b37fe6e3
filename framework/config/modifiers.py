"""Process modifiers: ``Modifier``, ``ModifierChain``, ``toModify``, ``toReplaceWith``,
``makeProcessModifier``.

A modifier acts only when it is passed to the :class:`~framework.config.process.Process`
(directly or through a chain). Modifications asked for before that are kept and applied when the
modifier is chosen, so the order of imports in a config does not matter.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

from ..exceptions import ConfigurationError
from .modules import _Module
from .types import PSet


def _apply_changes(obj: Any, changes: dict[str, Any]) -> None:
    for key, value in changes.items():
        if value is None:
            if isinstance(obj, PSet) and key in obj:
                delattr(obj, key)
            continue
        current = getattr(obj, key, None) if isinstance(obj, PSet) and key in obj else None
        if isinstance(value, dict) and isinstance(current, PSet):
            _apply_changes(current, value)
        elif isinstance(value, dict) and not isinstance(current, PSet) and isinstance(obj, PSet) and key not in obj:
            setattr(obj, key, PSet(**value))
        else:
            setattr(obj, key, value)


class _ModifierBase:
    def __init__(self) -> None:
        self._pending: list[Callable[[], None]] = []
        self._dependents: list[_ModifierBase] = []

    def _isChosen(self) -> bool:
        raise NotImplementedError

    def isChosen(self) -> bool:
        return self._isChosen()

    def _do(self, op: Callable[[], None]) -> None:
        if self._isChosen():
            op()
        else:
            self._pending.append(op)

    def _recheck(self) -> None:
        if self._isChosen():
            pending, self._pending = self._pending, []
            for op in pending:
                op()
        for d in self._dependents:
            d._recheck()

    def toModify(self, obj: Any, func: Callable[[Any], None] | None = None, **changes: Any) -> _ModifierBase:
        """Change *obj* when this modifier is chosen: call ``func(obj)`` and set the given parameters
        (``None`` removes a parameter; a dict edits a nested PSet)."""
        if func is not None and not callable(func):
            raise ConfigurationError(f"toModify: the second argument must be a function, got {func!r}")

        def op() -> None:
            if func is not None:
                func(obj)
            _apply_changes(obj, changes)

        self._do(op)
        return self

    def toReplaceWith(self, toObj: Any, fromObj: Any) -> _ModifierBase:
        """Replace *toObj* by *fromObj* in place when chosen, keeping *toObj*'s label (and so its
        place in every Path and Task and the names of its products)."""
        if isinstance(toObj, _Module):
            if not isinstance(fromObj, _Module):
                raise ConfigurationError(f"toReplaceWith: {fromObj!r} is not a module")
            if type(toObj) is not type(fromObj):
                raise ConfigurationError(
                    f"toReplaceWith: cannot replace a {type(toObj).__name__} by a {type(fromObj).__name__}; "
                    "the replacement must be of the same kind"
                )
            self._do(lambda: toObj._replaceWith(fromObj))
        elif hasattr(toObj, "_items") and hasattr(fromObj, "_items"):
            if type(toObj) is not type(fromObj):
                raise ConfigurationError(
                    f"toReplaceWith: cannot replace a {type(toObj).__name__} by a {type(fromObj).__name__}"
                )

            def op() -> None:
                toObj._items = list(fromObj._items)
                toObj._tasks = list(fromObj._tasks)

            self._do(op)
        else:
            raise ConfigurationError(f"toReplaceWith works on modules, Paths, Sequences and Tasks, not {toObj!r}")
        return self

    def makeProcessModifier(self, func: Callable[[Any], None]) -> ProcessModifier:
        """A :class:`ProcessModifier` calling ``func(process)`` when this modifier is chosen."""
        return ProcessModifier(self, func)

    def __and__(self, other: _ModifierBase) -> _ModifierBase:
        return _BinaryModifier(self, other, all)

    def __or__(self, other: _ModifierBase) -> _ModifierBase:
        return _BinaryModifier(self, other, any)

    def __invert__(self) -> _ModifierBase:
        return _NotModifier(self)


_ALL_MODIFIERS: weakref.WeakSet = weakref.WeakSet()


# `~m` modifications asked for before any Process exists: decided when the next Process is created
_PENDING_NOT: list[tuple[_ModifierBase, Callable[[], None]]] = []
_state = {"process_created": False}


def reset_all() -> None:
    """Un-choose every modifier and forget pending modifications (a new config is being loaded)."""
    for m in list(_ALL_MODIFIERS):
        m._chosen = False
        m._pending = []
    _PENDING_NOT.clear()
    _state["process_created"] = False


def unchoose_all() -> None:
    """A new Process is being created: only the modifiers passed to it count from now on."""
    for m in list(_ALL_MODIFIERS):
        m._chosen = False


def process_created() -> None:
    """Called by Process once its modifiers are chosen: decide the pending ``~m`` modifications."""
    _state["process_created"] = True
    pending = list(_PENDING_NOT)
    _PENDING_NOT.clear()
    for mod, op in pending:
        if mod._isChosen():
            op()


class Modifier(_ModifierBase):
    """A named switch of the configuration, chosen by passing it to ``Process``."""

    def __init__(self) -> None:
        super().__init__()
        self._chosen = False
        self._process_funcs: list[Callable[[Any], None]] = []
        _ALL_MODIFIERS.add(self)

    def _isChosen(self) -> bool:
        return self._chosen

    def _setChosen(self) -> None:
        if not self._chosen:
            self._chosen = True
            self._recheck()

    def toModifyProcess(self, func: Callable[[Any], None]) -> Modifier:
        """Call ``func(process)`` when a Process is created with this modifier (e.g. to add a Service)."""
        self._process_funcs.append(func)
        return self

    def _applyToProcess(self, process: Any) -> None:
        applied = process.__dict__.setdefault("_applied_modifiers", set())
        if id(self) in applied:
            return
        applied.add(id(self))
        for f in self._process_funcs:
            f(process)

    def dumpPython(self, indent: int = 0) -> str:
        return "cms.Modifier()"


class ModifierChain(Modifier):
    """Several modifiers chosen together."""

    def __init__(self, *modifiers: _ModifierBase):
        super().__init__()
        for m in modifiers:
            if not isinstance(m, Modifier):
                raise ConfigurationError(f"ModifierChain takes Modifiers, got {m!r}")
        self._modifiers = list(modifiers)

    def _setChosen(self) -> None:
        for m in self._modifiers:
            m._setChosen()
        super()._setChosen()

    def _applyToProcess(self, process: Any) -> None:
        for m in self._modifiers:
            m._applyToProcess(process)
        super()._applyToProcess(process)

    def copyAndExclude(self, toExclude: list[Modifier]) -> ModifierChain:
        return ModifierChain(*(m for m in self._modifiers if m not in toExclude))

    def modifiers(self) -> list[Modifier]:
        return list(self._modifiers)


class _BinaryModifier(_ModifierBase):
    def __init__(self, a: _ModifierBase, b: _ModifierBase, how: Callable) -> None:
        super().__init__()
        self._parts = (a, b)
        self._how = how
        a._dependents.append(self)
        b._dependents.append(self)

    def _isChosen(self) -> bool:
        return self._how(p._isChosen() for p in self._parts)


class _NotModifier(_ModifierBase):
    """``~m``: acts when *m* is not chosen. Asked before any Process exists, it is decided when the
    Process is created; afterwards at once."""

    def __init__(self, m: _ModifierBase) -> None:
        super().__init__()
        self._m = m

    def _isChosen(self) -> bool:
        return not self._m._isChosen()

    def _do(self, op: Callable[[], None]) -> None:
        if not _state["process_created"]:
            _PENDING_NOT.append((self, op))
        elif self._isChosen():
            op()


class ProcessModifier:
    """Calls ``func(process)`` once when its modifier is chosen and it is attached to a process."""

    def __init__(self, modifier: _ModifierBase, func: Callable[[Any], None]):
        self._modifier = modifier
        self._func = func
        self._applied_to: set[int] = set()

    def apply(self, process: Any) -> None:
        """Attached to *process*: act now if the modifier is chosen (modifiers are chosen when the
        Process is created, so there is nothing to wait for)."""
        if self._modifier._isChosen() and id(process) not in self._applied_to:
            self._applied_to.add(id(process))
            self._func(process)
