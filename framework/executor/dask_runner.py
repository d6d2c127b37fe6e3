"""``executor=dask``: a job over many files as work items on a Dask cluster (coffea's executor, CMSSW semantics).

The driver (this process) loads the config once (checks, input files, outputs), plans the work items
(:mod:`.planning`), starts the local Triton fallback server once when the config uses SONIC with the fallback
(the workers get it as an ordinary server), starts a ``dask.distributed`` LocalCluster (``workers`` processes, one
thread each) or connects to ``scheduler=ADDRESS``, and maps :func:`.workitem.run_item` over the items with
``retries``. A worker that dies while running an item has the item rescheduled by the scheduler (up to
``allowed-failures`` times). Each item writes its own part files (atomically: a retried or killed attempt leaves
no half-written part); the driver merges exactly one part per item, in item order, into each output, and the
reports into one. Parts and attempt records live in a hidden directory next to the first output, removed at the
end, also on failure or Ctrl-C; the cluster and the server are stopped likewise.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from ..config import varparsing
from ..config.modifiers import Modifier
from ..config.process import Process
from ..configloader import Customisation, load_config
from ..exceptions import ConfigurationError, FrameworkError, InputError
from . import planning
from .merge import merge_parts
from .workitem import ItemSpec, WorkItemFailed, merge_reports, run_item, worker_args

log = logging.getLogger("framework.executor")

EXECUTORS = ("sequential", "dask")
EXECUTOR_OPTIONS = ("workers", "scheduler", "chunkSize", "skipBadFiles")
RETRIES = 3  # a work item that raises is run again up to this many times (coffea's default); as many worker deaths


class ExecutorError(FrameworkError):
    """A work item failed (after its retries), or the cluster could not be used."""

    def __init__(self, message: str, exit_code: int = 1):
        super().__init__(message)
        self.exit_code = exit_code


@dataclass
class DaskOptions:
    """The executor's command-line options."""

    workers: int = 0  # 0: the machine's cores
    scheduler: str = ""
    chunk_size: int = planning.DEFAULT_CHUNK_SIZE
    skip_bad: bool = False
    retries: int = RETRIES

    @classmethod
    def from_options(cls, opts: varparsing.Options) -> DaskOptions:
        workers = int(opts.workers)
        if workers < 0:
            raise ConfigurationError(f"workers={workers}: give the number of worker processes (>= 1; 0 = the cores)")
        chunk = int(opts.chunkSize)
        if chunk < 1:
            raise ConfigurationError(f"chunkSize={chunk}: give the entries per work item (>= 1)")
        return cls(workers or (os.cpu_count() or 1), str(opts.scheduler), chunk, bool(opts.skipBadFiles))


@dataclass
class ExecutorSummary:
    """What the executor did, for the job summary."""

    where: str = ""
    items: int = 0
    files: int = 0
    chunk_size: int = 0
    entries: int = 0
    pids: dict[int, list[int]] = field(default_factory=dict)  # item -> pids of its attempts (recorded by the items)
    workers: list[str] = field(default_factory=list)  # "host:pid" of the processes whose results were used
    bad_files: list[planning.BadFile] = field(default_factory=list)
    shared_server: str = ""
    seconds: dict[str, float] = field(default_factory=dict)
    items_desc: dict[int, str] = field(default_factory=dict)

    @property
    def retried(self) -> dict[int, list[int]]:
        return {i: p for i, p in self.pids.items() if len(p) > 1}

    def lines(self) -> list[str]:
        out = [f"Executor: dask ({self.where}): {self.items} work items over {self.files} files, {self.entries} entries "
               f"(chunkSize={self.chunk_size})",
               f"Executor: work done by {len(self.workers)} worker processes ({', '.join(self.workers)})"]
        if self.shared_server:
            out.append(f"Executor: one local Triton server for all workers: {self.shared_server}")
        for i, pids in self.retried.items():
            out.append(f"Executor: {self.items_desc.get(i, f'work item {i}')} ran {len(pids)} times "
                       f"(pids {', '.join(map(str, pids))}): retried")
        for bad in self.bad_files:
            out.append(f"Executor: skipped bad file {bad.path} (skipBadFiles=1): {bad.reason}")
        if self.seconds:
            out.append("Executor: " + ", ".join(f"{k} {v:.2f} s" for k, v in self.seconds.items()))
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"where": self.where, "items": self.items, "files": self.files, "entries": self.entries,
                "chunkSize": self.chunk_size, "workers": self.workers,
                "attempts": {str(i): p for i, p in self.pids.items()},
                "retried": {self.items_desc.get(i, str(i)): p for i, p in self.retried.items()},
                "bad_files": [{"path": b.path, "reason": b.reason} for b in self.bad_files],
                "shared_server": self.shared_server, "seconds": self.seconds}


def run_dask(path: str, args: list[str], *, progress: bool = True, modifiers: Iterable[Modifier] = (),
             customise: Iterable[Customisation] = ()) -> tuple[Any, Process, ExecutorSummary]:
    """Run the config at *path* with *args* as work items on Dask; return ``(JobReport, process, summary)``.
    Raises a FrameworkError (nothing written) when an item fails after its retries or reads a bad file without
    ``skipBadFiles=1``."""
    from ..core.processor import EventProcessor
    from ..io.source import RootSource
    from ..paths import locate

    t0 = time.perf_counter()
    modifiers, customise = list(modifiers), list(customise)
    process, opts = load_config(path, args, modifiers=modifiers, customise=customise)
    options = DaskOptions.from_options(opts)
    given = [name for name in ("metricsPort", "traceFile", "timingFile") if getattr(opts, name)]
    if given:
        raise ConfigurationError(
            f"{given[0]}= is not supported with executor=dask (the events run in the workers); drop it or run with "
            "executor=sequential (use the Dask dashboard for the cluster's load).")
    proc = EventProcessor(process)  # the configuration-time checks, before any cluster is started
    if not issubclass(proc.source_cls, RootSource):
        raise ConfigurationError(
            f"executor=dask splits the files of a RootSource into work items; this config's source is "
            f"{process.source.type_()}. Run it without executor=dask.")
    sp = proc.source_params
    files = [os.path.abspath(locate(f)) for f in sp.fileNames]
    if not files:
        raise InputError("no input files: give inputFiles=a.root,b.root (or fileNames on the source)")
    outputs = _outputs(process)
    summary = ExecutorSummary(chunk_size=options.chunk_size, files=len(files))
    plan = planning.plan(files, sp.treeName, chunk_size=options.chunk_size, skip=int(sp.skipEvents),
                         max_events=process.maxEventsValue(), skip_bad=options.skip_bad,
                         duplicate_mode=str(sp.duplicateCheckMode))
    summary.bad_files = list(plan.bad)
    if not plan.files:
        raise InputError(f"none of the {len(files)} input files can be read (skipBadFiles=1 skipped them all): "
                         + "; ".join(f"{b.path}: {b.reason}" for b in plan.bad))
    items = plan.items or [planning.WorkItem(0, os.path.abspath(plan.files[0].path), 0, 0, 0)]  # no event: one
    summary.items, summary.entries = len(items), sum(i.entries for i in items)  # empty item writes the outputs
    summary.items_desc = {i.index: i.describe() for i in items}
    summary.seconds["plan"] = time.perf_counter() - t0
    with contextlib.ExitStack() as stack:
        workdir = _workdir(outputs, stack)
        shared = stack.enter_context(shared_triton_server(proc))
        if shared is not None:
            summary.shared_server = f"{shared[0]}:{shared[1]} ({shared[2]})"
        base = ItemSpec(os.path.abspath(path), worker_args(args), items[0], {}, os.path.join(workdir, "attempts"),
                        shared, modifiers, customise)
        specs = [ItemSpec(**{**vars(base), "item": item,
                             "outputs": {label: os.path.join(workdir, f"{label}.item-{item.index:05d}.root")
                                         for label in outputs}})
                 for item in items]
        t1 = time.perf_counter()
        client = stack.enter_context(_client(options, summary))
        summary.seconds["cluster start"] = time.perf_counter() - t1
        t1 = time.perf_counter()
        results, skipped = _run_items(client, specs, options, progress, summary)
        summary.seconds["work items"] = time.perf_counter() - t1
        for b in skipped:
            summary.bad_files.append(b)
        done = [r for r in results if r is not None]
        if not done:
            raise InputError("no input file could be read (skipBadFiles=1 skipped them all): "
                             + "; ".join(f"{b.path}: {b.reason}" for b in summary.bad_files))
        used = [s.item for s, r in zip(specs, results) if r is not None]
        _record_attempts(os.path.join(workdir, "attempts"), summary)
        summary.workers = sorted({f"{r['host']}:{r['pid']}" for r in done})
        t1 = time.perf_counter()
        warnings: list[str] = []
        for label, (final, compression) in outputs.items():
            parts = [s.outputs[label] for s, r in zip(specs, results) if r is not None]
            warnings += merge_parts(parts, final, compression, names=[i.describe() for i in used])
            log.info("merged %d parts into %s", len(parts), final)
        summary.seconds["merge"] = time.perf_counter() - t1
    report = merge_reports(done, planning.count_blocks(used, [(r["runs"], r["lumis"]) for r in done]),
                           time.perf_counter() - t0)
    report.warnings += warnings + [f"skipBadFiles: skipped {b.path}: {b.reason}" for b in summary.bad_files]
    if plan.duplicates:
        report.warnings.append(plan.duplicates)
    return report, process, summary


def _outputs(process: Process) -> dict[str, tuple[str, str]]:
    """Output module label -> (final path, compression); only RootOutputModule can be merged."""
    from ..io.output import RootOutputModule

    outputs = {}
    for label, decl in process.outputModules_().items():
        if decl.type_() != RootOutputModule.typeName:
            raise ConfigurationError(
                f"executor=dask merges the parts of RootOutputModule outputs; output module '{label}' is a "
                f"{decl.type_()}")
        params = decl.parameters_()
        final = os.path.abspath(str(_plain(params.get("fileName", RootOutputModule.parameters["fileName"]))))
        if not os.path.isdir(os.path.dirname(final)):
            raise InputError(f"output directory {os.path.dirname(final)} does not exist (outputFile={final})")
        outputs[label] = (final, str(_plain(params.get("compression", RootOutputModule.parameters["compression"]))))
    return outputs


def _plain(value: Any) -> Any:
    from ..config.types import plain

    return plain(value)


def _workdir(outputs: dict[str, tuple[str, str]], stack: contextlib.ExitStack) -> str:
    """A hidden directory for the parts, next to the first output (same file system: the merge renames), removed
    when *stack* closes."""
    first = next(iter(outputs.values()))[0] if outputs else None
    where = os.path.dirname(first) if first else None
    prefix = f".{os.path.basename(first)}.parts-" if first else "cmsfw-dask-"
    workdir = tempfile.mkdtemp(prefix=prefix, dir=where)
    stack.callback(shutil.rmtree, workdir, True)
    os.mkdir(os.path.join(workdir, "attempts"))
    return workdir


@contextlib.contextmanager
def _client(options: DaskOptions, summary: ExecutorSummary) -> Iterator[Any]:
    """A ``dask.distributed`` client: of ``scheduler=`` when given, else of a LocalCluster of ``workers``
    processes with one thread each; closed (and the cluster with its processes stopped) on exit."""
    import dask
    from dask.distributed import Client, LocalCluster

    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:  # dask's info lines only with -v
        logging.getLogger("distributed").setLevel(logging.WARNING)
    if options.scheduler:
        check_scheduler_reachable(options.scheduler)
        try:
            client = Client(options.scheduler, timeout=30)
        except Exception as e:  # noqa: BLE001 - OSError, TimeoutError...
            raise ExecutorError(f"cannot connect to the Dask scheduler at {options.scheduler} ({type(e).__name__}: "
                                f"{e}). Start one (dask scheduler; dask worker ADDRESS) or leave scheduler= out for "
                                "a local cluster.") from None
        n = len(client.scheduler_info().get("workers", {}))
        summary.where = f"scheduler {options.scheduler}, {n} workers"
        try:
            yield client
        finally:
            client.close()
        return
    with dask.config.set({"distributed.scheduler.allowed-failures": options.retries}):
        cluster = LocalCluster(n_workers=options.workers, threads_per_worker=1, processes=True,
                               dashboard_address=None, silence_logs=logging.ERROR)
    summary.where = f"local cluster, {options.workers} worker processes"
    try:
        client = Client(cluster)
        try:
            yield client
        finally:
            client.close()
    finally:
        cluster.close()


PROBE_TIMEOUT_S = 3.0


def check_scheduler_reachable(address: str, timeout: float = PROBE_TIMEOUT_S) -> None:
    """Fail in seconds when nothing listens at the scheduler's TCP *address* (``tcp://host:port``, ``host:port``;
    ``tls://`` too), rather than after the client's 30 s of retries: an :class:`ExecutorError` naming the address
    and how to fix it. Other schemes (``inproc://``, ``ucx://``) are left to the client."""
    scheme, sep, rest = address.rpartition("://")
    if sep and scheme not in ("tcp", "tls"):
        return
    host, colon, port_text = (rest if sep else address).rpartition(":")
    host = host.strip("[]")
    if not colon or not host or not port_text.isdigit():
        raise ExecutorError(f"scheduler={address}: not an address of the form tcp://HOST:PORT (the Dask scheduler's "
                            "port is 8786 by default, e.g. scheduler=tcp://127.0.0.1:8786)", exit_code=2)
    fix = (f"Start one there (dask scheduler --host {host} --port {port_text}; dask worker tcp://{host}:{port_text}), "
           "check the address, or leave scheduler= out for a local cluster.")
    try:
        with socket.create_connection((host, int(port_text)), timeout=timeout):
            pass
    except TimeoutError:
        raise ExecutorError(f"cannot connect to the Dask scheduler at {address}: no answer within {timeout:.0f} s. "
                            + fix) from None
    except OSError as e:
        raise ExecutorError(f"cannot connect to the Dask scheduler at {address}: {e.strerror or e}. " + fix) from None


def _run_items(client: Any, specs: list[ItemSpec], options: DaskOptions, progress: bool,
               summary: ExecutorSummary) -> tuple[list[dict | None], list[planning.BadFile]]:
    """Submit every item and wait for all; return the results in item order (None for the items of a file
    skipped with ``skipBadFiles``) and the files skipped."""
    from dask.distributed import as_completed

    from ..progress import Progress

    futures = [client.submit(run_item, s, key=f"cmsfw-item-{s.item.index:05d}-{os.getpid()}-{time.time_ns()}",
                             retries=options.retries, pure=False)
               for s in specs]
    index = {f.key: n for n, f in enumerate(futures)}
    results: list[dict | None] = [None] * len(specs)
    bad: dict[int, planning.BadFile] = {}  # file index -> why
    total = sum(s.item.events for s in specs)
    done_events = 0
    try:
        with Progress(enabled=progress) as bar:
            bar(0, total)
            for fut in as_completed(futures):
                n = index[fut.key]
                item = specs[n].item
                if item.file_index in bad:  # a file skipped meanwhile: its other items were cancelled
                    continue
                result = _result(fut, item, options)
                if "error" in result:
                    if result["kind"] != "InputError" or not options.skip_bad:
                        cls = InputError if result["kind"] == "InputError" else ConfigurationError
                        raise cls(f"{item.describe()}: {result['error']}")
                    bad.setdefault(item.file_index, planning.BadFile(item.file, result["error"]))
                    for other, f in zip(specs, futures):  # the file's other items are not needed
                        if other.item.file_index == item.file_index:
                            f.cancel()
                    continue
                results[n] = result
                done_events += item.events
                bar(done_events, total)
    finally:
        client.cancel([f for f in futures if not f.done()])
    for n, s in enumerate(specs):
        if s.item.file_index in bad:
            results[n] = None
    return results, list(bad.values())


def _result(fut: Any, item: planning.WorkItem, options: DaskOptions) -> dict:
    """The item's result, or an :class:`ExecutorError` naming the item (after the retries)."""
    from dask.distributed import KilledWorker

    try:
        return fut.result()
    except WorkItemFailed as e:
        raise ExecutorError(f"{item.describe()} failed {options.retries + 1} times; the last time: {e.message}",
                            e.exit_code) from None
    except KilledWorker:
        raise ExecutorError(
            f"{item.describe()}: the worker process running it died {options.retries} times (a crash or running "
            "out of memory in a module?); nothing was written") from None
    except FrameworkError:
        raise
    except Exception as e:  # noqa: BLE001 - cluster trouble (lost scheduler, cancelled)
        raise ExecutorError(f"{item.describe()}: {type(e).__name__}: {e}") from None


def _record_attempts(directory: str, summary: ExecutorSummary) -> None:
    """The pids of each item's attempts, from the files the attempts left (``item-N.PID.NS``), in time order."""
    found: dict[int, list[tuple[int, int]]] = {}
    for name in os.listdir(directory):
        _, index, pid, ns = name.replace("item-", "item.").split(".")
        found.setdefault(int(index), []).append((int(ns), int(pid)))
    summary.pids = {i: [pid for _, pid in sorted(v)] for i, v in sorted(found.items())}


@contextlib.contextmanager
def shared_triton_server(proc: Any) -> Iterator[tuple[str, int, str] | None]:
    """When the config uses SONIC with the local fallback enabled and some model is served by no configured
    server, start the fallback here, once for every worker of this machine: ``(host, port, protocol)``, stopped on
    exit; None otherwise."""
    info = proc.service_infos.get("TritonService")
    if info is None:
        yield None
        return
    cls, params = info
    if not params.fallback.enable:
        yield None
        return
    from ..sonic.service import FALLBACK_NAME

    service = cls("TritonService", params)
    for m in proc.modules.values():
        client = m.params.get("Client")
        if client is not None and "modelName" in client:
            service.addModel(client.modelName, client.modelConfigPath, client.preferredServer)
    try:
        service.beginJob()  # asks the configured servers; starts the fallback for the models none serves
        endpoint = service.servers().get(FALLBACK_NAME)
        if endpoint is None:
            yield None
            return
        host, _, port = endpoint.address.rpartition(":")
        log.info("executor: local Triton server for every worker at %s (%s)", endpoint.address, endpoint.protocol)
        yield (host or socket.gethostname(), int(port), endpoint.protocol)
    finally:
        service.endJob()
