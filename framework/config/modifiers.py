"""Process modifiers: ``Modifier``, ``ModifierChain``, ``toModify``, ``toReplaceWith``,
``makeProcessModifier``, ``&``, ``|``, ``~`` -- with CMSSW's semantics.

**Immediate or never.** ``m.toModify(obj, ...)`` / ``m.toReplaceWith(a, b)`` act at the moment they
are called if *m* is chosen, and never otherwise: nothing is remembered and replayed later. As in
CMSSW, a config therefore creates its ``Process`` first and then loads the fragments that use the
modifiers (``part.add(process, ...)``, ``process.load(...)``).

**Chosen for one process.** A modifier is chosen *for a Process*: the ones passed to
``Process(name, *modifiers)`` (chains expanded), plus the extra ones of the load that creates it
(``load_config(path, modifiers=...)``, ``procModifiers=``). "Is *m* chosen?" is asked of the
*process being configured*, held in a :mod:`contextvars` variable:

- creating a ``Process`` makes it the process being configured (in the current scope);
- :func:`configuring` opens a scope (``load_config`` opens one per load): inside it, Processes are
  created with the scope's extra modifiers too, and on exit the process being configured is the one
  from before the scope (none at top level). So a config loaded after another one -- as
  ``compare`` does -- never sees the modifiers of the first, and nothing is left chosen after a load;
- with no process being configured (e.g. a fragment calling ``toModify`` before the Process exists)
  a modification is dropped with a warning -- ``~m`` included, since there is no process to ask;
- :class:`ProcessModifier` and ``Modifier.toModifyProcess`` act on a given process: they ask whether
  the modifier is chosen for *that* process.

There is no state on the modifiers themselves: a ``Modifier`` is a name, and one defined in a shared
module (``framework.modifiers``) can be chosen for one Process and not for the next.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from ..exceptions import ConfigurationError
from .modules import ModuleDecl
from .types import PSet

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Scope:
    process: Any | None  # the Process being configured (None: none yet)
    extra: tuple[Modifier, ...]  # chosen for every Process created in this scope


_scope: ContextVar[_Scope | None] = ContextVar("framework_modifier_scope", default=None)


@contextlib.contextmanager
def configuring(process: Any | None = None, *, extra: Iterable[Modifier] = ()) -> Iterator[None]:
    """A scope for loading one config: *process* (if given) is the process being configured, and
    every Process created inside is created with *extra* chosen too (added to those of an enclosing
    scope). On exit the state from before the scope comes back."""
    extra = tuple(extra)
    for m in extra:
        check_modifier(m)
    outer = _scope.get()
    token = _scope.set(_Scope(process, (outer.extra if outer else ()) + extra))
    try:
        yield
    finally:
        _scope.reset(token)


def process_created(process: Any) -> tuple[Modifier, ...]:
    """Called by ``Process.__init__``: *process* is now the one being configured; returns the extra
    modifiers of the current scope, to be chosen for it."""
    outer = _scope.get()
    extra = outer.extra if outer else ()
    _scope.set(_Scope(process, extra))
    return extra


def current_process() -> Any | None:
    """The Process being configured in this context (None when there is none)."""
    scope = _scope.get()
    return scope.process if scope else None


def reset_all() -> None:
    """Forget the process being configured in this context (test isolation)."""
    _scope.set(None)


def check_modifier(modifier: Any) -> None:
    """A :class:`ConfigurationError` unless *modifier* is a ``cms.Modifier`` or ``cms.ModifierChain``."""
    if not isinstance(modifier, Modifier):
        raise ConfigurationError(f"Process modifiers must be cms.Modifier or cms.ModifierChain, got {modifier!r}")


def chosen_set(modifiers: Iterable[Modifier]) -> set[Modifier]:
    """*modifiers* with the members of every ModifierChain among them, recursively."""
    out: set[Modifier] = set()
    todo = list(modifiers)
    while todo:
        m = todo.pop()
        if m not in out:
            out.add(m)
            if isinstance(m, ModifierChain):
                todo.extend(m._modifiers)
    return out


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


class ModifierBase:
    """What Modifier and ModifierChain share: whether they are chosen for a Process."""

    def _isChosenIn(self, chosen: set[Modifier]) -> bool:
        raise NotImplementedError

    def isChosen(self, process: Any | None = None) -> bool:
        """Whether this modifier is chosen for *process* (default: the process being configured)."""
        process = process if process is not None else current_process()
        if process is None:
            return False
        return self._isChosenIn(chosen_set(process.modifiers_()))

    def _do(self, what: str, op: Callable[[], None]) -> None:
        process = current_process()
        if process is None:
            log.warning(
                "%s called while no cms.Process is being configured: it never acts. Create the Process first, "
                "then the objects the modifiers change (CMSSW semantics: a modifier acts at once or never)", what,
            )
            return
        if self._isChosenIn(chosen_set(process.modifiers_())):
            op()

    def toModify(self, obj: Any, func: Callable[[Any], None] | None = None, **changes: Any) -> ModifierBase:
        """If chosen, change *obj* now: call ``func(obj)`` and set the given parameters (``None``
        removes a parameter; a dict edits a nested PSet). Otherwise nothing, ever."""
        if func is not None and not callable(func):
            raise ConfigurationError(f"toModify: the second argument must be a function, got {func!r}")

        def op() -> None:
            if func is not None:
                func(obj)
            _apply_changes(obj, changes)

        self._do("toModify", op)
        return self

    def toReplaceWith(self, toObj: Any, fromObj: Any) -> ModifierBase:
        """If chosen, replace *toObj* by *fromObj* in place now, keeping *toObj*'s label (and so its
        place in every Path and Task and the names of its products). Otherwise nothing, ever."""
        if isinstance(toObj, ModuleDecl):
            if not isinstance(fromObj, ModuleDecl):
                raise ConfigurationError(f"toReplaceWith: {fromObj!r} is not a module")
            if type(toObj) is not type(fromObj):
                raise ConfigurationError(
                    f"toReplaceWith: cannot replace a {type(toObj).__name__} by a {type(fromObj).__name__}; "
                    "the replacement must be of the same kind"
                )
            self._do("toReplaceWith", lambda: toObj._replaceWith(fromObj))
        elif hasattr(toObj, "_items") and hasattr(fromObj, "_items"):
            if type(toObj) is not type(fromObj):
                raise ConfigurationError(
                    f"toReplaceWith: cannot replace a {type(toObj).__name__} by a {type(fromObj).__name__}"
                )

            def op() -> None:
                toObj._items = list(fromObj._items)
                toObj._tasks = list(fromObj._tasks)

            self._do("toReplaceWith", op)
        else:
            raise ConfigurationError(f"toReplaceWith works on modules, Paths, Sequences and Tasks, not {toObj!r}")
        return self

    def makeProcessModifier(self, func: Callable[[Any], None]) -> ProcessModifier:
        """A :class:`ProcessModifier`: attached to a process (``process.x = pm``), it calls
        ``func(process)`` if this modifier is chosen for that process."""
        return ProcessModifier(self, func)

    def __and__(self, other: ModifierBase) -> ModifierBase:
        return _BinaryModifier(self, other, all)

    def __or__(self, other: ModifierBase) -> ModifierBase:
        return _BinaryModifier(self, other, any)

    def __invert__(self) -> ModifierBase:
        return _NotModifier(self)


class Modifier(ModifierBase):
    """A named switch of the configuration, chosen for a Process by passing it to ``Process``."""

    def __init__(self) -> None:
        self._process_funcs: list[Callable[[Any], None]] = []

    def _isChosenIn(self, chosen: set[Modifier]) -> bool:
        return self in chosen

    def toModifyProcess(self, func: Callable[[Any], None]) -> Modifier:
        """Part of this modifier's definition: ``func(process)`` is called for each Process this
        modifier is chosen for, when it is chosen (and now for the process being configured if it
        is chosen there), e.g. to add a Service."""
        self._process_funcs.append(func)
        process = current_process()
        if process is not None and self.isChosen(process):
            func(process)
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

    def __init__(self, *modifiers: ModifierBase):
        super().__init__()
        for m in modifiers:
            if not isinstance(m, Modifier):
                raise ConfigurationError(f"ModifierChain takes Modifiers, got {m!r}")
        self._modifiers: list[Modifier] = list(modifiers)  # type: ignore[arg-type]

    def _applyToProcess(self, process: Any) -> None:
        for m in self._modifiers:
            m._applyToProcess(process)
        super()._applyToProcess(process)

    def copyAndExclude(self, toExclude: list[Modifier]) -> ModifierChain:
        return ModifierChain(*(m for m in self._modifiers if m not in toExclude))

    def modifiers(self) -> list[Modifier]:
        return list(self._modifiers)


class PluginModifierChain(ModifierChain):
    """A ModifierChain whose members are its own plus every modifier the installed packages attach to it: the
    entry points of group *group* (name = the modifier's name, value = ``package.module:modifier``), read when
    the chain is first asked for its members (a config choosing it, ``dump``)."""

    def __init__(self, group: str, *modifiers: ModifierBase):
        self._group = group
        self._attached: list[Modifier] | None = None
        super().__init__(*modifiers)

    @property
    def _modifiers(self) -> list[Modifier]:  # type: ignore[override]
        if self._attached is None:
            self._attached = self._load()
        return [*self._own, *(m for m in self._attached if m not in self._own)]

    @_modifiers.setter
    def _modifiers(self, value: list[Modifier]) -> None:
        self._own = list(value)

    def _load(self) -> list[Modifier]:
        from ..core.registry import entry_points, load_entry_point

        found = []
        for name, ep in sorted(entry_points(self._group).items()):
            value = load_entry_point(ep, f"modifier attached to {self._group}")
            if not isinstance(value, Modifier):
                raise ConfigurationError(f"entry point '{name}' of group {self._group} ({ep.value}) names {value!r}, "
                                         "not a Modifier")
            found.append(value)
        return found

    def copyAndExclude(self, toExclude: list[Modifier]) -> ModifierChain:
        return ModifierChain(*(m for m in self._modifiers if m not in toExclude))


class _BinaryModifier(ModifierBase):
    """``a & b``, ``a | b``."""

    def __init__(self, a: ModifierBase, b: ModifierBase, how: Callable) -> None:
        self._parts = (a, b)
        self._how = how

    def _isChosenIn(self, chosen: set[Modifier]) -> bool:
        return self._how(p._isChosenIn(chosen) for p in self._parts)


class _NotModifier(ModifierBase):
    """``~m``: acts when *m* is not chosen for the process being configured."""

    def __init__(self, m: ModifierBase) -> None:
        self._m = m

    def _isChosenIn(self, chosen: set[Modifier]) -> bool:
        return not self._m._isChosenIn(chosen)


class ProcessModifier:
    """Calls ``func(process)`` once per process it is attached to, if its modifier is chosen for
    that process (CMSSW's ``ProcessModifier``)."""

    def __init__(self, modifier: ModifierBase, func: Callable[[Any], None]):
        self._modifier = modifier
        self._func = func

    def apply(self, process: Any) -> None:
        """Attached to *process*: act now if the modifier is chosen for it, else never."""
        applied = process.__dict__.setdefault("_applied_process_modifiers", set())
        if self._modifier.isChosen(process) and id(self) not in applied:
            applied.add(id(self))
            self._func(process)
