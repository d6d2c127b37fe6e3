"""What a worker does with one work item: load the config with the job's arguments narrowed to the item's file
and entry range, point each output module at the item's part file, run, and hand back the report as plain data.

The function runs in a Dask worker process (any process with the project importable). One job runs at a time
per process (the config loader's options and the active services are per process), whatever the worker's
thread count.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ..core.timing import ModuleTiming, TimingSummary
from ..exceptions import ConfigurationError, FrameworkError, InputError
from .planning import WorkItem

log = logging.getLogger("framework.executor")

SHARED_SERVER_NAME = "sharedFallback"
"""The name the driver's local Triton server gets in each worker's ``TritonService.servers``."""

# options the driver owns: the executor's, and those it narrows per work item
DRIVER_OPTIONS = ("executor", "workers", "scheduler", "chunkSize", "skipBadFiles",
                  "inputFiles", "skipEvents", "maxEvents", "outputFile", "duplicateCheckMode")

_one_job = threading.Lock()


class WorkItemFailed(Exception):
    """A work item raised (picklable: the message and the exit code only); Dask retries it."""

    def __init__(self, message: str, exit_code: int = 1):
        super().__init__(message, exit_code)
        self.message = message
        self.exit_code = exit_code

    def __str__(self) -> str:
        return self.message


@dataclass
class ItemSpec:
    """Everything a worker needs for one work item (pickled to the worker)."""

    config: str
    args: list[str]
    item: WorkItem
    outputs: dict[str, str]  # output module label -> part file
    attempts_dir: str
    shared_server: tuple[str, int, str] | None = None  # (host, port, protocol) of the driver's Triton server
    modifiers: list[Any] = field(default_factory=list)
    customise: list[Any] = field(default_factory=list)


def worker_args(args: Iterable[str]) -> list[str]:
    """The job's ``key=value`` arguments without the ones the driver sets per work item."""
    return [a for a in args if a.partition("=")[0] not in DRIVER_OPTIONS]


def run_item(spec: ItemSpec) -> dict[str, Any]:
    """Run one work item; return its report as plain data (:func:`report_to_dict` plus ``index``, ``pid``,
    ``host``, ``seconds``), or ``{"index", "error", "kind"}`` for an input or configuration error (not retried: it
    would fail again). Anything else raises :class:`WorkItemFailed`, which Dask retries."""
    with _one_job:
        _record_attempt(spec)
        t0 = time.perf_counter()
        try:
            report = _run(spec)
        except (InputError, ConfigurationError) as e:
            return {"index": spec.item.index, "error": str(e), "kind": type(e).__name__, "pid": os.getpid(),
                    "exit_code": e.exit_code}
        except FrameworkError as e:
            raise WorkItemFailed(f"{type(e).__name__}: {e}", e.exit_code) from None
        except Exception as e:  # noqa: BLE001 - a bug in a module or the framework: retried, then reported
            raise WorkItemFailed(f"{type(e).__name__}: {e}") from None
        out = report_to_dict(report)
        out.update(index=spec.item.index, pid=os.getpid(), host=socket.gethostname(),
                   seconds=time.perf_counter() - t0)
        return out


def _record_attempt(spec: ItemSpec) -> None:
    """A file per attempt (``item-N.PID.NS``): the driver counts them to report retries."""
    name = f"item-{spec.item.index:05d}.{os.getpid()}.{time.time_ns()}"
    with open(os.path.join(spec.attempts_dir, name), "w"):
        pass


def _run(spec: ItemSpec):
    from ..configloader import load_config
    from ..core.processor import EventProcessor

    item = spec.item
    args = [*spec.args, f"inputFiles={item.file}", f"skipEvents={item.start}", f"maxEvents={item.events}"]
    process, _ = load_config(spec.config, args, modifiers=spec.modifiers, customise=spec.customise)
    # the driver found the repeated events over all the files at planning: skip exactly those, check nothing here
    process.source.duplicateCheckMode = "noDuplicateCheck"
    process.source.entriesToSkip = list(item.skip)
    for label, out in process.outputModules_().items():
        out.fileName = spec.outputs[label]
    if spec.shared_server is not None:
        add_server(process, *spec.shared_server)
    return EventProcessor(process).run()


def add_server(process: Any, host: str, port: int, protocol: str) -> None:
    """Add the driver's Triton server to the process's ``TritonService.servers``, last (the config's own servers
    keep their precedence; models only it serves go to it)."""
    from ..config.types import PSet, VPSet

    decl = process.services_()["TritonService"]
    existing = list(decl.servers) if "servers" in decl else []
    server = PSet(name=SHARED_SERVER_NAME, address=host, port=int(port), protocol=protocol)
    decl.servers = VPSet(*existing, server)


# --------------------------------------------------------------------------------------------- reports
def report_to_dict(report: Any) -> dict[str, Any]:
    """A :class:`~framework.core.processor.JobReport` as plain data (what crosses from a worker)."""
    return {
        "processed": report.processed,
        "written": dict(report.written),
        "path_accepted": dict(report.path_accepted),
        "timing": report.timing.to_dict(),
        "warnings": list(report.warnings),
        "runs": report.runs,
        "lumis": report.lumis,
    }


def timing_from_dict(data: dict[str, Any]) -> TimingSummary:
    """The inverse of :meth:`TimingSummary.to_dict`."""
    t = TimingSummary(wall=float(data["wall_s"]), events=int(data["events"]))
    for label, m in data["modules"].items():
        t.modules[label] = ModuleTiming(label, m["type"], int(m["calls"]), float(m["acquire_s"]), float(m["produce_s"]),
                                        float(m["wait_s"]), dict(m["parts_s"]))
    return t


def merge_reports(results: list[dict[str, Any]], runs_lumis: tuple[int, int], wall: float) -> Any:
    """One :class:`~framework.core.processor.JobReport` from the work items' reports (in item order): counts and
    per-module times summed, warnings once each; *runs_lumis* from :func:`~.planning.count_blocks`; *wall*: the
    whole job's wall-clock time."""
    from ..core.processor import JobReport

    report = JobReport()
    report.timing.wall = wall
    for r in results:
        report.processed += r["processed"]
        for table, counts in ((report.written, r["written"]), (report.path_accepted, r["path_accepted"])):
            for k, n in counts.items():
                table[k] = table.get(k, 0) + n
        timing = timing_from_dict(r["timing"])
        report.timing.events += timing.events
        for label, m in timing.modules.items():
            if label in report.timing.modules:
                report.timing.modules[label].merge(m)
            else:
                report.timing.modules[label] = m
        for w in r["warnings"]:
            if w not in report.warnings:
                report.warnings.append(w)
    report.runs, report.lumis = runs_lumis
    return report
