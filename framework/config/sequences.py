"""Paths, EndPaths, Sequences and Tasks."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ..exceptions import ConfigurationError
from .modules import SCHEDULABLE, ModuleDecl


def _check_item(item: Any, where: str) -> Any:
    if isinstance(item, (ModuleDecl, Sequenceable)):
        return item
    raise ConfigurationError(f"{where} accepts modules, Sequences and Tasks, got {item!r}")


class Sequenceable:
    """Something holding an ordered list of modules and nested sequences/tasks."""

    def __init__(self, *items: Any):
        self._items: list[Any] = []
        self._tasks: list[Task] = []
        self._label: str | None = None
        for item in items:
            self._add(item)

    def _add(self, item: Any) -> None:
        item = _check_item(item, type(self).__name__)
        if isinstance(item, Task) and not isinstance(self, Task):
            self._tasks.append(item)
        else:
            self._items.append(item)

    def setLabel(self, label: str | None) -> None:
        self._label = label

    def label_(self) -> str | None:
        return self._label

    def __add__(self, other: Any) -> Sequenceable:
        new = type(self)(*self._items, *self._tasks)
        new._add(other)
        return new

    __mul__ = __add__

    def __iadd__(self, other: Any) -> Sequenceable:
        self._add(other)
        return self

    def associate(self, *tasks: Task) -> None:
        for t in tasks:
            if not isinstance(t, Task):
                raise ConfigurationError(f"associate() takes Tasks, got {t!r}")
            self._tasks.append(t)

    def add(self, *items: Any) -> None:
        for i in items:
            self._add(i)

    def remove(self, item: Any) -> bool:
        """Remove *item* (a module or sequence) wherever it appears; True if found."""
        found = False
        for lst in (self._items, self._tasks):
            for x in list(lst):
                if x is item:
                    lst.remove(x)
                    found = True
                elif isinstance(x, Sequenceable):
                    found = x.remove(item) or found
        return found

    def replace(self, old: Any, new: Any) -> bool:
        found = False
        for lst in (self._items, self._tasks):
            for i, x in enumerate(lst):
                if x is old:
                    lst[i] = new
                    found = True
                elif isinstance(x, Sequenceable):
                    found = x.replace(old, new) or found
        return found

    def moduleSequence(self) -> Iterator[ModuleDecl]:
        """The scheduled modules in order (nested Sequences flattened, Tasks excluded)."""
        for x in self._items:
            if isinstance(x, ModuleDecl):
                yield x
            elif isinstance(x, Sequence):
                yield from x.moduleSequence()

    def taskModules(self) -> Iterator[ModuleDecl]:
        """All modules of the Tasks associated (directly or through nested sequences)."""
        for t in self._tasks:
            yield from t.moduleSequence()
        for x in self._items:
            if isinstance(x, Sequenceable):
                yield from x.taskModules()

    @staticmethod
    def _ref(x: Any) -> str:
        label = x.label_()
        return f"process.{label}" if label else x.dumpPython()

    def dumpPython(self, indent: int = 0) -> str:
        parts = [self._ref(x) for x in self._items + self._tasks]
        return f"cms.{type(self).__name__}(" + ", ".join(parts) + ")"

    def __repr__(self) -> str:
        return self.dumpPython()

    def __iter__(self):
        return iter(self._items + self._tasks)


class Sequence(Sequenceable):
    """An ordered group of modules to reuse in Paths."""


class Path(Sequenceable):
    """Modules run in order; a filter returning False stops the path for that event."""

    def _add(self, item: Any) -> None:
        super()._add(item)
        if isinstance(item, ModuleDecl) and not isinstance(item, SCHEDULABLE):
            raise ConfigurationError(f"a Path holds producers, filters, analyzers and outputs, not {item!r}")


class EndPath(Path):
    """A path for output modules and analyzers, run after all Paths."""


class Task(Sequenceable):
    """An unordered group of producers run on demand (unscheduled): a producer in a Task runs
    when its product is first asked for."""

    def moduleSequence(self) -> Iterator[ModuleDecl]:
        for x in self._items:
            if isinstance(x, ModuleDecl):
                yield x
            else:
                yield from x.moduleSequence()
                yield from x.taskModules()


class Schedule(list):
    """An explicit order of Paths and EndPaths (``process.schedule``)."""

    def __init__(self, *paths: Path, tasks: list[Task] | None = None):
        super().__init__(paths)
        self.tasks = list(tasks or [])

    def associate(self, *tasks: Task) -> None:
        self.tasks.extend(tasks)
