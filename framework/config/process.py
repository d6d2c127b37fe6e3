"""``Process``: the whole configuration of a job."""

from __future__ import annotations

import importlib
from typing import Any

from ..exceptions import ConfigurationError, did_you_mean
from .modifiers import Modifier, ModifierBase, ProcessModifier, check_modifier, process_created
from .modules import (
    EDAnalyzer,
    EDFilter,
    EDProducer,
    ModuleDecl,
    OutputModule,
    Service,
    Source,
)
from .sequences import EndPath, Path, Schedule, Sequence, Sequenceable, Task
from .types import PSet, plain

OPTIONS_DEFAULTS: dict[str, Any] = {
    "numberOfThreads": 1,
    "numberOfStreams": 0,
    "wantSummary": False,
    "eventChunkSize": 0,
}
MAXEVENTS_DEFAULTS: dict[str, Any] = {"input": -1}


class Process:
    """The configuration of a job: source, modules, paths, services and options.

    ``Process(name, *modifiers)``: the modifiers given here, and the extra ones of the load that
    creates it (``load_config(path, modifiers=...)``, ``procModifiers=``), are chosen for this
    process; creating it makes it the process being configured (see :mod:`.modifiers`).
    """

    def __init__(self, name: str, *modifiers: ModifierBase):
        if not isinstance(name, str) or not name.isidentifier():
            raise ConfigurationError(f"Process name must be an identifier, got {name!r}")
        d = self.__dict__
        d["_name"] = name
        d["_modifiers"] = []
        d["_order"] = []  # labels in definition order
        d["_objects"] = {}  # label -> module / sequence / path / task
        d["_services"] = {}  # type name -> Service
        d["_process_modifiers"] = []
        d["source"] = None
        d["schedule"] = None
        d["options"] = PSet(**OPTIONS_DEFAULTS)
        d["maxEvents"] = PSet(**MAXEVENTS_DEFAULTS)
        for m in modifiers:
            check_modifier(m)
        for m in list(modifiers) + list(process_created(self)):
            self.applyModifier(m)

    # ---------------------------------------------------------------- attributes
    def name_(self) -> str:
        return self._name

    def applyModifier(self, modifier: ModifierBase) -> None:
        """Choose *modifier* for this process (``Process(name, modifier)`` does this): from now on
        it acts on what is modified while this process is being configured."""
        check_modifier(modifier)
        if modifier not in self._modifiers:
            self._modifiers.append(modifier)
            modifier._applyToProcess(self)

    def __setattr__(self, label: str, value: Any) -> None:
        if label in ("source", "schedule"):
            if label == "source" and value is not None and not isinstance(value, Source):
                raise ConfigurationError(f"process.source must be a cms.Source, got {value!r}")
            if label == "schedule" and value is not None and not isinstance(value, (Schedule, list, tuple)):
                raise ConfigurationError(f"process.schedule must be a cms.Schedule, got {value!r}")
            if isinstance(value, Source):
                value.setLabel("source")
            self.__dict__[label] = value
            return
        if label in ("options", "maxEvents"):
            self.__dict__[label] = self._merge_defaults(label, value)
            return
        if label.startswith("_"):
            raise ConfigurationError(f"process attribute names may not start with '_': {label!r}")
        if isinstance(value, ProcessModifier):
            self.__dict__["_process_modifiers"].append(value)
            value.apply(self)
            return
        if isinstance(value, Service):
            value.setLabel(value.type_())
            self._services[value.type_()] = value
            return
        if not isinstance(value, (ModuleDecl, Sequenceable, Task)):
            raise ConfigurationError(
                f"process.{label}: only modules, Paths, Sequences, Tasks and Services can be attached, got {value!r}"
            )
        old = self._objects.get(label)
        if value.label_() not in (None, label) and isinstance(value, ModuleDecl):
            value = value.clone()  # the same declaration attached twice: a copy under the new label
        value.setLabel(label)
        if old is not None and old is not value:
            for obj in self._objects.values():
                if isinstance(obj, Sequenceable):
                    obj.replace(old, value)
        else:
            self._order.append(label)
        self._objects[label] = value

    def __getattr__(self, label: str) -> Any:
        objects = self.__dict__.get("_objects", {})
        if label in objects:
            return objects[label]
        services = self.__dict__.get("_services", {})
        if label in services:
            return services[label]
        known = list(objects) + list(services) + ["source", "options", "maxEvents", "schedule"]
        raise AttributeError(f"process has no attribute '{label}'.{did_you_mean(label, known)}")

    def __delattr__(self, label: str) -> None:
        if label in self._objects:
            obj = self._objects.pop(label)
            self._order.remove(label)
            for other in self._objects.values():
                if isinstance(other, Sequenceable):
                    other.remove(obj)
            obj.setLabel(None)
        elif label in self._services:
            del self._services[label]
        else:
            raise AttributeError(f"process has no attribute '{label}'")

    def __contains__(self, label: str) -> bool:
        return label in self._objects or label in self._services

    def add_(self, value: Any) -> None:
        """Attach a Service (CMSSW's ``process.add_(cms.Service(...))``)."""
        if isinstance(value, Service):
            setattr(self, value.type_(), value)
        else:
            raise ConfigurationError(f"process.add_ takes a cms.Service, got {value!r}")

    def load(self, module_name: str) -> None:
        """Import a Python module and attach every labelled object it defines (``process.load``)."""
        module = importlib.import_module(module_name)
        self.extend(module)

    def extend(self, module: Any) -> None:
        """Attach every module, sequence, path, task and service defined in *module*."""
        for name, value in vars(module).items():
            if name.startswith("_"):
                continue
            if isinstance(value, (ModuleDecl, Sequenceable, Task)) and not isinstance(value, Source):
                setattr(self, name, value)

    def _merge_defaults(self, which: str, value: Any) -> PSet:
        defaults = OPTIONS_DEFAULTS if which == "options" else MAXEVENTS_DEFAULTS
        if isinstance(value, dict):
            value = PSet(**value)
        if not isinstance(value, PSet):
            raise ConfigurationError(f"process.{which} must be a cms.PSet, got {value!r}")
        merged = PSet(**defaults)
        for k, v in value.parameters_().items():
            if k not in defaults:
                raise ConfigurationError(
                    f"process.{which} has no parameter '{k}'.{did_you_mean(k, defaults)} Valid: {', '.join(defaults)}"
                )
            setattr(merged, k, v)
        return merged

    # ---------------------------------------------------------------- views
    def modules_(self) -> dict[str, ModuleDecl]:
        return {k: v for k, v in self._objects.items() if isinstance(v, ModuleDecl)}

    def producers_(self) -> dict[str, EDProducer]:
        return {k: v for k, v in self._objects.items() if isinstance(v, EDProducer)}

    def filters_(self) -> dict[str, EDFilter]:
        return {k: v for k, v in self._objects.items() if isinstance(v, EDFilter)}

    def analyzers_(self) -> dict[str, EDAnalyzer]:
        return {k: v for k, v in self._objects.items() if isinstance(v, EDAnalyzer)}

    def outputModules_(self) -> dict[str, OutputModule]:
        return {k: v for k, v in self._objects.items() if isinstance(v, OutputModule)}

    def paths_(self) -> dict[str, Path]:
        return {k: v for k, v in self._objects.items() if type(v) is Path}

    def endpaths_(self) -> dict[str, EndPath]:
        return {k: v for k, v in self._objects.items() if isinstance(v, EndPath)}

    def sequences_(self) -> dict[str, Sequence]:
        return {k: v for k, v in self._objects.items() if isinstance(v, Sequence)}

    def tasks_(self) -> dict[str, Task]:
        return {k: v for k, v in self._objects.items() if isinstance(v, Task)}

    def services_(self) -> dict[str, Service]:
        return dict(self._services)

    def modifiers_(self) -> list[Modifier]:
        return list(self._modifiers)

    def scheduledPaths_(self) -> list[tuple[str, Path]]:
        """Paths then EndPaths, in schedule order (or definition order without a schedule)."""
        if self.schedule is not None:
            result = []
            for p in self.schedule:
                if not isinstance(p, Path) or not p.label_():
                    raise ConfigurationError(f"process.schedule holds Paths attached to the process, got {p!r}")
                result.append((p.label_(), p))
            paths = [r for r in result if type(r[1]) is Path]
            ends = [r for r in result if isinstance(r[1], EndPath)]
            return paths + ends
        return list(self.paths_().items()) + list(self.endpaths_().items())

    def unscheduledModules_(self) -> list[ModuleDecl]:
        """Modules of Tasks associated with scheduled paths or with the schedule."""
        seen: dict[int, ModuleDecl] = {}
        for _, p in self.scheduledPaths_():
            for m in p.taskModules():
                seen.setdefault(id(m), m)
        if self.schedule is not None:
            for t in getattr(self.schedule, "tasks", []):
                for m in t.moduleSequence():
                    seen.setdefault(id(m), m)
        return list(seen.values())

    def maxEventsValue(self) -> int:
        return int(plain(self.maxEvents.input))

    def optionValue(self, name: str) -> Any:
        return plain(getattr(self.options, name))

    # ---------------------------------------------------------------- printing
    def dumpPython(self) -> str:
        """The final configuration (after modifiers) as runnable Python."""
        out = ["import framework.config as cms", "", f"process = cms.Process({self._name!r})", ""]
        if self.source is not None:
            out.append(f"process.source = {self.source.dumpPython()}")
        out.append(f"process.maxEvents = {self.maxEvents.dumpPython()}")
        out.append(f"process.options = {self.options.dumpPython()}")
        for name, svc in self._services.items():
            out.append(f"process.{name} = {svc.dumpPython()}")
        out.append("")
        for label in self._order:  # modules first, then Tasks, Sequences and Paths in definition order
            obj = self._objects[label]
            if isinstance(obj, ModuleDecl):
                out.append(f"process.{label} = {obj.dumpPython()}")
        emitted: set[str] = set()

        def emit(label: str) -> None:  # a Sequence/Task/Path after the labelled ones it refers to
            if label in emitted:
                return
            emitted.add(label)
            obj = self._objects[label]

            def visit(seq: Sequenceable) -> None:
                for x in list(seq._items) + list(seq._tasks):
                    if isinstance(x, Sequenceable):
                        if x.label_() in self._objects and self._objects[x.label_()] is x:
                            emit(x.label_())
                        else:
                            visit(x)

            visit(obj)
            out.append(f"process.{label} = {obj.dumpPython()}")

        for label in self._order:
            if not isinstance(self._objects[label], ModuleDecl):
                emit(label)
        if self.schedule is not None:
            refs = ", ".join(f"process.{p.label_()}" for p in self.schedule)
            tasks = getattr(self.schedule, "tasks", [])
            extra = ""
            if tasks:
                extra = ", tasks=[" + ", ".join(Sequenceable._ref(t) for t in tasks) + "]"
            out.append(f"process.schedule = cms.Schedule({refs}{extra})")
        return "\n".join(out) + "\n"

    def __repr__(self) -> str:
        return f"<Process {self._name!r}: {len(self.modules_())} modules, {len(self.paths_())} paths>"


__all__ = ["Process"]
