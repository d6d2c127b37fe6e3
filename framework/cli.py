"""The command line: ``python -m framework run|dump|serve|compare|generate|export-model``."""

from __future__ import annotations

import importlib
import logging
import sys
import traceback

from . import signals
from .exceptions import FrameworkError

log = logging.getLogger("framework")

USAGE = """usage: python -m framework COMMAND ...

commands:
  run CONFIG [key=value ...]       run a config (like cmsRun); `run CONFIG help` lists its options
  dump CONFIG [key=value ...]      print the final configuration (after modifiers) as Python
  serve [--models DIR ...]         serve data/models with the bundled Triton server on 127.0.0.1
  compare CONFIG [key=value ...]   run the same events direct and via SONIC; report and plots
  generate --events N --seed S OUT.root   write a sample of AOD-like events
  generate-nugraph --events N --seed S OUT.h5   write LArTPC-like events (NuML HDF5) for NuGraph
  export-model MODULE:FUNCTION --out DIR --name NAME   export a PyTorch model to a Triton repository (ONNX)
  dqm-report OUTPUT.root --out DIR   the DQM anomaly scores per lumi section: HTML report, plots, flags (a plug-in command)

global flags (before or after the command): -v/--verbose, -q/--quiet, --traceback
"""

SUBCOMMANDS = {
    "run": ("framework.runner", "main_run"),
    "dump": ("framework.runner", "main_dump"),
    "serve": ("framework.server.serve", "main"),
    "compare": ("framework.compare", "main"),
    "generate": ("framework.samples.cli", "main"),
    "generate-nugraph": ("framework.samples.nugraph", "main"),
    "export-model": ("framework.ml.export", "main"),
}
"""The framework's own commands; installed packages add theirs by entry point (:data:`COMMANDS_GROUP`)."""

COMMANDS_GROUP = "framework.commands"
"""Entry-point group of commands: name = the command, value = ``package.module:function`` (called with the
command's arguments, returns the exit code)."""


def commands() -> dict[str, tuple[str, str]]:
    """Every command: the framework's and those of the installed plug-ins (a plug-in cannot replace one)."""
    from .core.registry import entry_points

    found = {name: tuple(ep.value.split(":", 1)) for name, ep in entry_points(COMMANDS_GROUP).items()
             if ":" in ep.value}
    return {**found, **SUBCOMMANDS}


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    verbosity = 0
    show_tb = False
    rest = []
    for a in argv:
        if a in ("-v", "--verbose"):
            verbosity += 1
        elif a in ("-q", "--quiet"):
            verbosity -= 1
        elif a == "--traceback":
            show_tb = True
        else:
            rest.append(a)
    from .logsetup import setup_logging

    setup_logging(verbosity)
    if not rest or rest[0] in ("-h", "--help", "help"):
        print(USAGE)
        return 0 if rest else 2
    command, args = rest[0], rest[1:]
    known = commands()
    if command not in known:
        from .exceptions import did_you_mean

        print(f"error: unknown command '{command}'.{did_you_mean(command, known)}\n\n{USAGE}", file=sys.stderr)
        return 2
    module_name, func = known[command]
    stop = signals.StopOnSignals()  # SIGTERM stops like Ctrl-C
    try:
        with stop:
            fn = getattr(importlib.import_module(module_name), func)
            return int(fn(args) or 0)
    except FrameworkError as e:
        if show_tb:
            traceback.print_exc()
        print(f"\n----- Begin Fatal Exception -----\n{type(e).__name__}: {e}\n----- End Fatal Exception -----", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt as e:  # Ctrl-C or SIGTERM: 130 or 143
        return stop.finish(e)
    except Exception as e:  # noqa: BLE001 - a bug: short message, full traceback on request
        if show_tb:
            traceback.print_exc()
        else:
            tb = traceback.extract_tb(e.__traceback__)
            where = f" at {tb[-1].filename}:{tb[-1].lineno}" if tb else ""
            print(
                f"internal error: {type(e).__name__}: {e}{where}\n(run again with --traceback for the full traceback)",
                file=sys.stderr,
            )
        return 1
