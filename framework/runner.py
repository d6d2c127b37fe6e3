"""``run`` and ``dump``: load a config with its options and run or print it."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterable
from pathlib import Path

from .config import varparsing
from .config.modifiers import Modifier
from .config.process import Process
from .configloader import Customisation, load_config
from .core.processor import EventProcessor, JobReport
from .exceptions import ConfigurationError
from .monitoring.job import set_active
from .monitoring.setup import job_observer

log = logging.getLogger("framework")


def run_config(path: str, args: list[str], *, progress: bool = True, modifiers: Iterable[Modifier] = (),
               customise: Iterable[Customisation] = ()) -> tuple[JobReport, Process]:
    """Load and run a config (``modifiers``/``customise`` as in :func:`load_config`); return the job
    report and the process (raises FrameworkError on failure)."""
    from .progress import Progress

    process, opts = load_config(path, args, modifiers=modifiers, customise=customise)
    timing_file = _timing_file(opts)
    processor = EventProcessor(process)
    observer = job_observer(opts)
    processor.observer = observer
    set_active(observer)
    try:
        with Progress(enabled=progress) as bar:
            processor.progress = bar
            report = processor.run()
    finally:
        set_active(None)
        if observer is not None:
            observer.close()
    for w in report.warnings:
        log.warning(w)
    if timing_file is not None:
        from .sonic.timing import write_timing_file

        write_timing_file(timing_file, report.request_timings,
                          {"config": path, "events": report.processed, "wall_s": report.timing.wall})
        log.info("request timing written to %s", timing_file)
    return report, process


def _timing_file(opts: object) -> Path | None:
    """``timingFile=``: its path, checked before the job runs (None when not given)."""
    value = str(getattr(opts, "timingFile", "") or "")
    if not value:
        return None
    path = Path(value)
    if not path.parent.is_dir():
        raise ConfigurationError(f"timingFile={value}: the folder {path.parent} does not exist; create it or give a "
                                 "path in an existing folder.")
    return path


RUN_USAGE = """usage: python -m framework run CONFIG [key=value ...] [--report=FILE.json]

Run a config (like cmsRun CONFIG key=value ...). `python -m framework run CONFIG help` lists the config's options
(maxEvents, inputFiles, outputFile, numThreads, numStreams, address, port, protocol, procModifiers, customise,
executor, ... and those the config registers)."""


def main_run(args: list[str]) -> int:
    if not args or args[0] in ("-h", "--help"):
        print(RUN_USAGE, file=sys.stdout if args else sys.stderr)
        return 0 if args else 2
    report_json = None
    rest = []
    for a in args[1:]:
        if a.startswith("--report="):
            report_json = a.split("=", 1)[1]
        else:
            rest.append(a)
    executor_summary = None
    try:
        if _executor(rest) == "dask":
            from .executor import run_dask

            report, process, executor_summary = run_dask(args[0], rest)
            for w in report.warnings:
                log.warning(w)
        else:
            report, process = run_config(args[0], rest)
    except varparsing.OptionsHelp as h:
        print(h)
        return 0
    print(report.summary())
    for line in executor_summary.lines() if executor_summary else []:
        print(line)
    if process.optionValue("wantSummary"):
        print(report.timing.table())
    if report_json:
        with open(report_json, "w") as f:
            json.dump(
                {"processed": report.processed, "written": report.written, "paths": report.path_accepted,
                 "warnings": report.warnings, "timing": report.timing.to_dict(),
                 **({"executor": executor_summary.to_dict()} if executor_summary else {})},
                f, indent=2,
            )
    return 0


def _executor(args: list[str]) -> str:
    """The ``executor=`` of the command line (checked); the executor's other options alone only warn."""
    from .exceptions import ConfigurationError, did_you_mean
    from .executor import EXECUTOR_OPTIONS, EXECUTORS

    opts = varparsing.Options(argv=args)
    name = opts.peek("executor")
    if name not in EXECUTORS:
        raise ConfigurationError(f"executor={name}: use {' or '.join(EXECUTORS)}.{did_you_mean(name, EXECUTORS)}")
    given = [k for k in EXECUTOR_OPTIONS if any(a.startswith(k + "=") for a in args)]
    if name != "dask" and given:
        log.warning("%s apply to executor=dask; ignored in this sequential run", ", ".join(f"{k}=" for k in given))
    return name


def main_dump(args: list[str]) -> int:
    if not args:
        print("usage: python -m framework dump CONFIG [key=value ...]", file=sys.stderr)
        return 2
    try:
        process, _ = load_config(args[0], args[1:])
    except varparsing.OptionsHelp as h:
        print(h)
        return 0
    EventProcessor(process)  # configuration-time checks: types, parameters, paths
    sys.stdout.write(process.dumpPython())
    return 0
