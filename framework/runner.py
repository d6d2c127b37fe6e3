"""``run`` and ``dump``: load a config with its options and run or print it."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterable

from .config import varparsing
from .config.modifiers import Modifier
from .config.process import Process
from .configloader import Customisation, load_config
from .core.processor import EventProcessor, JobReport

log = logging.getLogger("framework")


def run_config(path: str, args: list[str], *, progress: bool = True, modifiers: Iterable[Modifier] = (),
               customise: Iterable[Customisation] = ()) -> tuple[JobReport, Process]:
    """Load and run a config (``modifiers``/``customise`` as in :func:`load_config`); return the job
    report and the process (raises FrameworkError on failure)."""
    from .progress import Progress

    process, _ = load_config(path, args, modifiers=modifiers, customise=customise)
    processor = EventProcessor(process)
    with Progress(enabled=progress) as bar:
        processor.progress = bar
        report = processor.run()
    for w in report.warnings:
        log.warning(w)
    return report, process


def main_run(args: list[str]) -> int:
    if not args:
        print("usage: python -m framework run CONFIG [key=value ...]", file=sys.stderr)
        return 2
    report_json = None
    rest = []
    for a in args[1:]:
        if a.startswith("--report="):
            report_json = a.split("=", 1)[1]
        else:
            rest.append(a)
    try:
        report, process = run_config(args[0], rest)
    except varparsing.OptionsHelp as h:
        print(h)
        return 0
    print(report.summary())
    if process.optionValue("wantSummary"):
        print(report.timing.table())
    if report_json:
        with open(report_json, "w") as f:
            json.dump(
                {"processed": report.processed, "written": report.written, "paths": report.path_accepted,
                 "warnings": report.warnings, "timing": report.timing.to_dict()},
                f, indent=2,
            )
    return 0


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
