"""The event loop: streams, threads, ExternalWork, on-demand producers, ordered output.

``numberOfStreams`` events are in flight at once on a pool of ``numberOfThreads`` threads. Each
event is processed by a generator that walks the Paths; an ExternalWork module's ``acquire``
suspends it, and the thread goes on with other streams' events until the work calls
``holder.doneWaiting()``, which queues the rest of the event on the pool again. Finished events
go to the output modules in input order, whatever order they finish in.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Generator, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from ..config.modules import ModuleDecl
from ..config.process import Process
from ..config.sequences import EndPath
from ..config.types import InputTag, PSet, VInputTag, VPSet
from ..exceptions import ConfigurationError, FrameworkError, ModuleError
from . import services as service_registry
from .module import (
    EDAnalyzer,
    EDFilter,
    ExternalWorkProducer,
    Module,
    OutputModule,
    WaitingTaskHolder,
)
from .params import Params, check_parameters
from .principal import EventPrincipal
from .registry import lookup
from .runlumi import BlockPrincipal, LuminosityBlock, Run
from .timing import ModuleTiming, TimingSummary

log = logging.getLogger(__name__)

# declaration kinds that map to a module base class (registry kinds)
_MODULE_KINDS = ("producer", "filter", "analyzer", "output", "source", "service")


def _input_tags(value: Any) -> Iterable[str]:
    if isinstance(value, InputTag):
        yield value.label
    elif isinstance(value, VInputTag):
        for v in value:
            yield str(v).split(":", 1)[0]
    elif isinstance(value, PSet):
        for v in value.parameters_().values():
            yield from _input_tags(v)
    elif isinstance(value, VPSet):
        for p in value:
            yield from _input_tags(p)


def build_module(decl: ModuleDecl, label: str) -> tuple[type, Params]:
    """Resolve a declaration to its class and checked parameters (configuration-time checks)."""
    kind = decl.kind_() if decl.kind_() in _MODULE_KINDS else None
    cls = lookup(decl.type_(), kind)
    where = f"module '{label}' ({decl.type_()})" if kind not in ("source", "service") else f"{kind} {decl.type_()}"
    values = check_parameters(cls.parameters, decl.parameters_(), where)
    return cls, Params(values)


@dataclass
class ModuleInfo:
    label: str
    decl: ModuleDecl
    cls: type
    params: Params
    consumes: list[str]
    on_demand: bool = False
    global_cache: Any = None
    instances: list[Module] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def kind(self) -> str:
        return self.cls.kind

    @property
    def external(self) -> bool:
        return issubclass(self.cls, ExternalWorkProducer)


@dataclass
class JobReport:
    processed: int = 0
    written: dict[str, int] = field(default_factory=dict)
    path_accepted: dict[str, int] = field(default_factory=dict)
    timing: TimingSummary = field(default_factory=TimingSummary)
    warnings: list[str] = field(default_factory=list)
    runs: int = 0
    lumis: int = 0
    services: list[str] = field(default_factory=list)  # the services' summary lines (e.g. SONIC servers)
    request_timings: list[Any] = field(default_factory=list)  # services' per-model request timing (``timings``)

    def summary(self) -> str:
        lines = [f"TrigReport: events processed = {self.processed}"]
        for p, n in self.path_accepted.items():
            lines.append(f"TrigReport: path {p}: {n} accepted, {self.processed - n} rejected")
        for o, n in self.written.items():
            lines.append(f"TrigReport: output {o}: {n} events written")
        lines.extend(self.services)
        return "\n".join(lines)


class _Failure(Exception):
    pass


class EventProcessor:
    """Runs a :class:`~framework.config.Process`. Construction checks the whole configuration;
    :meth:`run` processes the events."""

    ABANDON_AFTER_S = 30.0

    def __init__(self, process: Process, *, progress: Callable[[int, int | None], None] | None = None):
        self.process = process
        self.progress = progress
        self.n_threads = max(1, int(process.optionValue("numberOfThreads")))
        streams = int(process.optionValue("numberOfStreams"))
        self.n_streams = streams if streams > 0 else self.n_threads
        self.max_events = process.maxEventsValue()
        self.observer: Any = None  # a framework.monitoring.job.JobObserver (metricsPort=), or None
        if self.max_events < -1:
            raise ConfigurationError(f"maxEvents must be -1 (all) or >= 0, got {self.max_events}")
        self._build()

    # ------------------------------------------------------------------ configuration
    def _build(self) -> None:
        p = self.process
        if p.source is None:
            raise ConfigurationError("process.source is not set: add e.g. process.source = cms.Source('RootSource', fileNames=[...])")
        self.source_cls, self.source_params = build_module(p.source, "source")
        self.service_infos: dict[str, tuple[type, Params]] = {}
        for name, decl in p.services_().items():
            self.service_infos[name] = build_module(decl, name)

        self.modules: dict[str, ModuleInfo] = {}
        self.paths: list[tuple[str, list[str], bool]] = []  # (name, labels, is_endpath)
        for name, path in p.scheduledPaths_():
            labels = []
            for decl in path.moduleSequence():
                label = decl.label_()
                if label is None:
                    raise ConfigurationError(f"path '{name}' holds a module not attached to the process: {decl!r}")
                self._add_module(label, decl, on_demand=False)
                labels.append(label)
            self.paths.append((name, labels, isinstance(path, EndPath)))
        for decl in p.unscheduledModules_():
            label = decl.label_()
            if label is None:
                raise ConfigurationError(f"a Task holds a module not attached to the process: {decl!r}")
            if label not in self.modules:
                self._add_module(label, decl, on_demand=True)
        for info in self.modules.values():
            if info.on_demand and info.kind not in ("producer", "filter"):
                raise ConfigurationError(f"module '{info.label}' is a {info.kind}; only producers can be in a Task")
            for dep in info.consumes:
                if dep not in self.modules and dep in p.modules_():
                    raise ConfigurationError(
                        f"module '{info.label}' reads products of '{dep}', which is in no Path or Task. "
                        f"Add it to a Task associated with a Path, e.g. process.p.associate(cms.Task(process.{dep}))"
                    )
        self.outputs = [i for i in self.modules.values() if i.kind == "output"]
        for name, labels, is_end in self.paths:
            for lab in labels:
                if self.modules[lab].kind == "output" and not is_end:
                    raise ConfigurationError(f"output module '{lab}' is on Path '{name}'; put it on an EndPath")
        self.path_names = [n for n, _, end in self.paths if not end]

    def _add_module(self, label: str, decl: ModuleDecl, on_demand: bool) -> None:
        if label in self.modules:
            return
        cls, params = build_module(decl, label)
        consumes = sorted(set(_input_tags_of(decl)) - {label})
        self.modules[label] = ModuleInfo(label, decl, cls, params, consumes, on_demand)

    # ------------------------------------------------------------------ on demand (the events' ProductResolver)
    def resolve(self, principal: EventPrincipal, label: str) -> bool:
        """Run the unscheduled producer *label* now, blocking on its external work if it has any (used
        when a module reads a product it did not declare with a cms.InputTag); False if *label* does not
        run on demand."""
        info = self.modules.get(label)
        if info is None or not info.on_demand:
            return False
        gen = self._run_module(principal, label)
        try:
            holder = next(gen)
            while True:
                holder.wait()
                holder = gen.send(None)
        except StopIteration:
            pass
        return True

    def explain_missing(self, label: str) -> str:
        if label in self.modules:
            return (
                f" Module '{label}' ran but made no such product (or it runs later: modules on a Path run in "
                "order; put producers before their consumers or in a Task)."
            )
        decls = self.process.modules_()
        if label in decls:
            return (
                f" Module '{label}' is configured but in no Path or Task, so it never runs: add it to a Task "
                "associated with a Path."
            )
        from ..exceptions import did_you_mean

        return f" No module is labelled '{label}'.{did_you_mean(label, list(self.modules))}"

    # ------------------------------------------------------------------ running one event
    def _run_module(self, principal: EventPrincipal, label: str) -> Generator[WaitingTaskHolder, None, None]:
        if label in principal.done:
            return
        info = self.modules[label]
        for dep in info.consumes:
            dinfo = self.modules.get(dep)
            if dinfo is not None and dinfo.on_demand and dep not in principal.done:
                yield from self._run_module(principal, dep)
        principal.done.add(label)
        stream = principal.stream
        timing = self._timings[stream].get(label)
        if timing is None:
            timing = self._timings[stream][label] = ModuleTiming(label, info.decl.type_())
        module = info.instances[stream] if len(info.instances) > 1 else info.instances[0]
        event = principal.view(label)
        now = time.perf_counter
        try:
            t0 = now()
            if info.external:
                holder = WaitingTaskHolder()
                module.externalAcquire(event, holder)
                t1 = now()
                timing.acquire += t1 - t0
                if not holder.done:
                    yield holder
                t2 = now()
                timing.wait += max(0.0, (holder.t_done or t2) - t1)
                if holder.exception is not None:
                    raise holder.exception
                module.externalProduce(event)
                t3 = now()
                timing.produce += t3 - t2
                if self.observer is not None:
                    self._observe_external(label, stream, t0, t1, t2, t3)
            elif info.kind == "producer":
                module.produce(event)
                timing.produce += (t1 := now()) - t0
                if self.observer is not None:
                    self.observer.module_phase(label, "produce", stream, t0, t1)
            elif info.kind == "filter":
                principal.filterResults[label] = bool(module.filter(event))
                timing.produce += (t1 := now()) - t0
                if self.observer is not None:
                    self.observer.module_phase(label, "produce", stream, t0, t1)
            elif info.kind == "analyzer":
                with info.lock:
                    module.analyze(event)
                timing.produce += (t1 := now()) - t0
                if self.observer is not None:
                    self.observer.module_phase(label, "produce", stream, t0, t1)
            timing.calls += 1
        except ModuleError:
            raise
        except Exception as e:  # noqa: BLE001 - every module error gets its context
            raise ModuleError(
                _describe_exception(e), label=label, type_=info.decl.type_(), where=f"on {event.where()}", cause=e
            ) from e

    def _observe_external(self, label: str, stream: int, t0: float, t1: float, t2: float, t3: float) -> None:
        obs = self.observer
        obs.module_phase(label, "acquire", stream, t0, t1)
        obs.module_phase(label, "wait", stream, t1, t2)
        obs.module_phase(label, "produce", stream, t2, t3)

    def _process_event(self, event: EventPrincipal) -> Generator[WaitingTaskHolder, None, None]:
        for name, labels, is_end in self.paths:
            accepted = True
            for label in labels:
                info = self.modules[label]
                if info.kind == "output":
                    # products the output keeps are made now by their on-demand producers (CMSSW: the
                    # output module consumes what it keeps)
                    select = info.instances[0].selectedPaths()
                    if not select or any(event.pathResults.get(p, False) for p in select):
                        for dep in self._output_consumes[label]:
                            yield from self._run_module(event, dep)
                    continue
                yield from self._run_module(event, label)
                if info.kind == "filter" and not event.filterResults.get(label, True):
                    accepted = False
                    break
            if not is_end:
                event.pathResults[name] = accepted

    # ------------------------------------------------------------------ job
    def run(self) -> JobReport:
        """Process the events. Raises :class:`FrameworkError` (with the module, event and file
        for a module failure); outputs are then discarded and services stopped."""
        report = JobReport()
        self.report = report
        self._timings: list[dict[str, ModuleTiming]] = [{} for _ in range(self.n_streams)]
        self._failure: BaseException | None = None
        self._stop = False
        started_services: list[Any] = []
        begun: list[Module] = []
        self.source = None
        success = False
        t_start = time.perf_counter()
        try:
            services = {name: cls(name, params) for name, (cls, params) in self.service_infos.items()}
            service_registry.set_active(services)
            self.source = self.source_cls("source", self.source_params)
            self.source.open(skip=self._skip_events(), max_events=self.max_events)
            for info in self.modules.values():
                self._instantiate(info)
            needed: dict[str, list[str]] = {}  # branch -> modules that read it
            for info in self.modules.values():
                first = info.instances[0]
                for b in first.inputBranches():
                    note = first.branchNote(b)
                    needed.setdefault(b, []).append(f"'{info.label}' ({info.decl.type_()}"
                                                    f"{': ' + note if note else ''})")
                if info.kind == "output":
                    info.instances[0].source = self.source
                    for b in info.instances[0].selectBranches(self.source.branchNames()):
                        needed.setdefault(b, []).append(f"'{info.label}' ({info.decl.type_()})")
            self.source.require(needed)
            on_demand = [lab for lab, i in self.modules.items() if i.on_demand]
            self._output_consumes = {
                info.label: info.instances[0].consumesLabels(on_demand) for info in self.outputs
            }
            for svc in services.values():
                started_services.append(svc)  # endJob also after a failed beginJob
                svc.beginJob()
            for info in self.modules.values():
                for inst in info.instances:
                    inst.beginJob()
                    begun.append(inst)
            t_start = time.perf_counter()
            self._loop(report)
            success = self._failure is None
        finally:
            report.timing.wall = time.perf_counter() - t_start
            errors: list[BaseException] = []
            for inst in begun:
                if inst.kind != "output":
                    _collect(errors, inst.endJob)
            for info in self.outputs:
                if not info.instances:  # the job failed before the outputs were made
                    continue
                out = info.instances[0]
                if success and not errors:
                    _collect(errors, out.endJob)
                    if errors:
                        _collect([], out.abort)
                else:
                    _collect(errors, out.abort)
            for svc in started_services:
                _collect(errors, lambda svc=svc: report.services.extend(svc.summary()))
                report.request_timings.extend(getattr(svc, "timings", []))
            for svc in reversed(started_services):
                _collect(errors, svc.endJob)
            if self.source is not None:
                _collect(errors, self.source.close)
            service_registry.clear()
        if self._failure is not None:
            raise self._failure
        if errors:
            raise errors[0]
        self._finish_report(report)
        return report

    def _skip_events(self) -> int:
        return int(self.source_params.get("skipEvents", 0) or 0)

    def _instantiate(self, info: ModuleInfo) -> None:
        try:
            info.global_cache = info.cls.initializeGlobalCache(info.params)
            n = self.n_streams if info.kind in ("producer", "filter") else 1
            info.instances = [info.cls(info.label, info.params, info.global_cache) for _ in range(n)]
        except FrameworkError:
            raise
        except Exception as e:
            raise ModuleError(
                _describe_exception(e), label=info.label, type_=info.decl.type_(), where="while being constructed", cause=e
            ) from e

    def _loop(self, report: JobReport) -> None:
        self._source_lock = threading.RLock()  # re-entrant: a failing transition ends the parked streams under it
        self._out_lock = threading.Lock()
        self._pending: dict[int, EventPrincipal] = {}
        self._next_write = 0
        self._n_read = 0
        self._run: BlockPrincipal | None = None
        self._lumi: BlockPrincipal | None = None
        self._next_src: Any = None  # an event read but not started: the first of the next lumi
        self._parked: list[_StreamState] = []  # streams waiting for a lumi transition
        self._n_runs = self._n_lumis = 0
        self._streams_left = self.n_streams
        self._all_done = threading.Event()
        for name in self.path_names:
            report.path_accepted[name] = 0
        for info in self.outputs:
            report.written[info.label] = 0
        total = self.source.expected_events()
        if self.progress:
            self.progress(0, total)
        pool = ThreadPoolExecutor(max_workers=self.n_threads, thread_name_prefix="stream")
        self._pool = pool
        try:
            for s in range(self.n_streams):
                pool.submit(self._stream_step, _StreamState(s))
            failed_at = None
            while not self._all_done.wait(0.1):
                if self._failure is not None:
                    # after a failure, in-flight external work gets a grace period, then is abandoned
                    failed_at = failed_at or time.monotonic()
                    if time.monotonic() - failed_at > self.ABANDON_AFTER_S:
                        log.warning("abandoning external work still in flight %.0f s after the failure", self.ABANDON_AFTER_S)
                        break
        except KeyboardInterrupt as e:  # Ctrl-C, or SIGTERM (framework.signals.Terminated)
            self._stop = True
            self._release_parked()
            log.warning("%s: finishing the %d events in flight, no output written", str(e) or "interrupted",
                        self._n_read - self.report.processed - len(self._pending))
            from ..signals import grace_wait  # a second signal ends this wait, not the cleanup after it

            grace_wait(self._all_done, 30)
            raise
        finally:
            pool.shutdown(wait=False, cancel_futures=True)
        if self._failure is None and not self._stop:
            self._end_blocks()  # the last lumi and run
        report.lumis, report.runs = self._n_lumis, self._n_runs
        for w in self.source.warnings():
            report.warnings.append(w)

    def _next_event(self, state: _StreamState) -> EventPrincipal | None | _Parked:
        """The next event for stream *state*; None at the end; PARKED when the next event starts a new
        luminosity block while events of the current one are in flight (the stream is resumed after the
        transition, see :meth:`_after_commit`)."""
        if self._stop:
            return None
        with self._source_lock:
            if self._stop:
                return None
            if self._next_src is not None and self._parked:  # a transition is waiting for the events in flight
                self._parked.append(state)
                return PARKED
            try:
                src, self._next_src = (self._next_src or self.source.next()), None
            except BaseException as e:  # noqa: BLE001
                self._fail(e)
                return None
            if src is None:
                return None
            run, lumi, _ = src.event_id()
            if self._lumi is None or (run, lumi) != self._lumi.key:
                if self._n_read > self._next_write:  # events of the ending lumi still in flight
                    self._next_src = src
                    self._parked.append(state)
                    return PARKED
                if not self._transition(run, lumi):
                    return None
            idx = self._n_read
            self._n_read += 1
        return EventPrincipal(idx, src, self, state.stream)

    # ------------------------------------------------------------------ runs and luminosity blocks
    def _after_commit(self) -> None:
        """After events were committed: if a lumi transition waits and every event read is done, make it
        and resume the parked streams."""
        if self._next_src is None:
            return
        with self._source_lock:
            if self._next_src is None or not self._parked or self._n_read > self._next_write or self._stop:
                return
            run, lumi, _ = self._next_src.event_id()
            ok = self._transition(run, lumi)
            parked, self._parked = self._parked, []
        for state in parked:
            if ok:
                self._resume(state)
            else:
                self._stream_done()

    def _release_parked(self) -> None:
        """The job stops: parked streams end."""
        with self._source_lock:
            parked, self._parked = self._parked, []
        for _ in parked:
            self._stream_done()

    def _transition(self, run: int, lumi: int) -> bool:
        """End the current lumi (and run, if *run* is another), begin the new ones. Under the source lock,
        with no event in flight. False (and the job failed) if a module failed."""
        try:
            if self._lumi is not None and self._run is not None and self._run.run != run:
                self._end_blocks()
            elif self._lumi is not None:
                self._end_block(self._lumi)
                self._lumi = None
            if self._run is None:
                self._run = BlockPrincipal("run", run)
                self._n_runs += 1
                self._call_transition("beginRun", self._run)
            self._lumi = BlockPrincipal("lumi", run, lumi)
            self._n_lumis += 1
            self._call_transition("beginLuminosityBlock", self._lumi)
            return True
        except BaseException as e:  # noqa: BLE001
            self._fail(e)
            return False

    def _end_blocks(self) -> None:
        """End the current lumi and run (at a run boundary and at the end of the job)."""
        if self._lumi is not None:
            lumi, self._lumi = self._lumi, None
            self._end_block(lumi)
        if self._run is not None:
            run, self._run = self._run, None
            self._end_block(run)

    def _end_block(self, block: BlockPrincipal) -> None:
        method, write = ("endLuminosityBlock", "writeLuminosityBlock") if block.kind == "lumi" else ("endRun", "writeRun")
        self._call_transition(method, block)
        for info in self.outputs:
            out = info.instances[0]
            view = (LuminosityBlock if block.kind == "lumi" else Run)(block, info.label)
            self._guarded(info, f"writing {block.where()}", getattr(out, write), view)

    def _call_transition(self, method: str, block: BlockPrincipal) -> None:
        """``module.<method>(view)`` for every module (first instance), in configuration order."""
        view_type = LuminosityBlock if block.kind == "lumi" else Run
        for info in self.modules.values():
            if info.kind == "output" and method.startswith("begin"):
                continue
            fn = getattr(info.instances[0], method)
            self._guarded(info, f"in {method} of {block.where()}", fn, view_type(block, info.label))

    def _guarded(self, info: ModuleInfo, where: str, fn: Callable[..., Any], *args: Any) -> None:
        try:
            fn(*args)
        except FrameworkError:
            raise
        except Exception as e:
            raise ModuleError(_describe_exception(e), label=info.label, type_=info.decl.type_(), where=where,
                              cause=e) from e

    def _stream_step(self, state: _StreamState) -> None:
        try:
            while True:
                if state.gen is None:
                    event = self._next_event(state)
                    if event is PARKED:
                        return  # resumed after the lumi transition
                    if event is None:
                        self._stream_done()
                        return
                    state.event = event
                    state.gen = self._process_event(event)
                try:
                    holder = state.gen.send(None)
                except StopIteration:
                    state.gen = None
                    self._event_done(state.event)
                    continue
                if self._stop:
                    holder.wait()
                if holder.add_callback(lambda: self._resume(state)):
                    return
        except BaseException as e:  # noqa: BLE001
            self._fail(e)
            self._stream_done()

    def _resume(self, state: _StreamState) -> None:
        try:
            self._pool.submit(self._stream_step, state)
        except RuntimeError:  # pool shut down (job aborted)
            self._stream_done()

    def _fail(self, e: BaseException) -> None:
        with self._out_lock:
            if self._failure is None:
                self._failure = e
            self._stop = True
        self._release_parked()

    def _stream_done(self) -> None:
        with self._out_lock:
            self._streams_left -= 1
            if self._streams_left <= 0:
                self._all_done.set()

    def _event_done(self, event: EventPrincipal) -> None:
        with self._out_lock:
            if self._failure is not None:
                return
            self._pending[event.index] = event
            while self._next_write in self._pending:
                ev = self._pending.pop(self._next_write)
                self._next_write += 1
                self._commit(ev)
        self._after_commit()
        if self.progress:
            self.progress(self.report.processed, None)

    def _commit(self, event: EventPrincipal) -> None:
        """Called in input order, under the output lock."""
        report = self.report
        report.processed += 1
        if self.observer is not None:
            self.observer.event_done()
        if self._lumi is not None:
            self._lumi.events += 1
            self._run.events += 1
        for name in self.path_names:
            if event.pathResults.get(name, False):
                report.path_accepted[name] += 1
        for info in self.outputs:
            out = info.instances[0]
            select = out.selectedPaths()
            if select and not any(event.pathResults.get(p, False) for p in select):
                continue
            t0 = time.perf_counter()
            view = event.view(info.label)
            try:
                out.write(view)
            except FrameworkError:
                raise
            except Exception as e:
                raise ModuleError(
                    _describe_exception(e), label=info.label, type_=info.decl.type_(), where=f"writing {view.where()}", cause=e
                ) from e
            timing = self._timings[0].setdefault(info.label, ModuleTiming(info.label, info.decl.type_()))
            timing.calls += 1
            timing.produce += time.perf_counter() - t0
            report.written[info.label] += 1

    def _finish_report(self, report: JobReport) -> None:
        merged: dict[str, ModuleTiming] = {}
        for label in self.modules:
            for t in self._timings:
                if label in t:
                    if label not in merged:
                        merged[label] = ModuleTiming(label, t[label].type_)
                    merged[label].merge(t[label])
        for label, info in self.modules.items():
            for inst in info.instances:
                if inst.timeParts and label in merged:
                    for k, v in inst.timeParts.items():
                        merged[label].parts[k] = merged[label].parts.get(k, 0.0) + v
        report.timing.modules = merged
        report.timing.events = report.processed


class _Parked:
    """Returned by ``_next_event`` for a stream that waits for a lumi transition."""


PARKED = _Parked()


class _StreamState:
    __slots__ = ("stream", "gen", "event")

    def __init__(self, stream: int):
        self.stream = stream
        self.gen: Generator[WaitingTaskHolder, None, None] | None = None
        self.event: EventPrincipal | None = None


def _input_tags_of(decl: ModuleDecl) -> Iterable[str]:
    for v in decl.parameters_().values():
        yield from _input_tags(v)


def _describe_exception(e: BaseException) -> str:
    if isinstance(e, FrameworkError):
        return str(e)
    return f"{type(e).__name__}: {e}"


def _collect(errors: list[BaseException], fn: Callable[[], Any]) -> None:
    try:
        fn()
    except Exception as e:  # noqa: BLE001
        log.debug("error during cleanup", exc_info=True)
        errors.append(e)


__all__ = ["EventProcessor", "JobReport", "build_module", "EDAnalyzer", "EDFilter", "OutputModule"]
