"""Loading a config file with its ``key=value`` options, as ``cmsRun cfg.py key=value`` does."""

from __future__ import annotations

import os
import runpy
import sys
import traceback

from .config import varparsing
from .config.modifiers import reset_all
from .config.process import Process
from .exceptions import ConfigurationError, FrameworkError


def load_config(path: str, args: list[str]) -> tuple[Process, varparsing.Options]:
    """Execute the config at *path* with the command-line *args*; apply the standard options
    (maxEvents, inputFiles, ...) to its process and return ``(process, options)``."""
    if not os.path.isfile(path):
        raise ConfigurationError(f"config file not found: {path}")
    opts = varparsing.reset(args)
    reset_all()
    old_argv = sys.argv
    sys.argv = [path, *args]
    try:
        namespace = runpy.run_path(path, run_name="__config__")
    except (FrameworkError, varparsing.OptionsHelp):
        raise
    except SystemExit:
        raise
    except BaseException as e:  # noqa: BLE001
        frames = [f for f in traceback.extract_tb(e.__traceback__) if os.path.abspath(f.filename) == os.path.abspath(path)]
        where = f" (line {frames[-1].lineno}: {frames[-1].line})" if frames else ""
        raise ConfigurationError(f"error in config {path}{where}: {type(e).__name__}: {e}") from e
    finally:
        sys.argv = old_argv
    process = namespace.get("process")
    if not isinstance(process, Process):
        raise ConfigurationError(f"config {path} defines no 'process = cms.Process(...)'")
    opts = varparsing.current()
    opts.parseArguments()
    apply_standard_options(process, opts)
    return process, opts


def apply_standard_options(process: Process, opts: varparsing.Options) -> None:
    """Fill the process from the standard options given on the command line."""
    if opts.given("maxEvents"):
        process.maxEvents.input = int(opts.maxEvents)
    if opts.given("inputFiles"):
        if process.source is None or "fileNames" not in process.source.parameters_() and process.source.type_() != "RootSource":
            raise ConfigurationError("inputFiles= given, but the config's source reads no files")
        process.source.fileNames = list(opts.inputFiles)
    if opts.given("skipEvents"):
        if process.source is None:
            raise ConfigurationError("skipEvents= given, but the config has no source")
        process.source.skipEvents = int(opts.skipEvents)
    if opts.given("outputFile"):
        outputs = process.outputModules_()
        if not outputs:
            raise ConfigurationError("outputFile= given, but the config has no output module")
        for out in outputs.values():
            out.fileName = opts.outputFile
    if opts.given("address") or opts.given("port") or opts.given("protocol"):
        services = process.services_()
        if "TritonService" not in services:
            raise ConfigurationError(
                "address=/port=/protocol= given, but the config uses no Triton server: turn SONIC on "
                "(e.g. sonic=1 where the config offers it, or configs/run_sonic.py config=...)"
            )
        from .sonic.service import apply_protocol_option, apply_server_option

        protocol = str(opts.protocol)
        if opts.given("address") or opts.given("port"):
            port = int(opts.port) if opts.given("port") else (8000 if protocol == "http" else 8001)
            apply_server_option(services["TritonService"], opts.address or "127.0.0.1", port, protocol)
        apply_protocol_option(services["TritonService"], protocol)
    if opts.given("numThreads") and opts.numThreads > 0:
        process.options.numberOfThreads = int(opts.numThreads)
    if opts.given("numStreams") and opts.numStreams >= 0:
        process.options.numberOfStreams = int(opts.numStreams)

