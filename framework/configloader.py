"""Loading a config file with its ``key=value`` options, as ``cmsRun cfg.py key=value`` does.

``load_config(path, args, modifiers=..., customise=...)``: process modifiers chosen for the Process
the config creates (as ``procModifiers=`` does on the command line), and customisation functions
applied after the config (as ``customise=module.function`` does; cmsDriver's ``--customise``).
"""

from __future__ import annotations

import contextlib
import os
import runpy
import sys
import traceback
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from .config import varparsing
from .config.modifiers import Modifier, configuring
from .config.process import Process
from .exceptions import ConfigurationError, FrameworkError
from .imports import import_object

Customisation = str | Callable[[Process], Process | None]


def load_config(path: str, args: Iterable[str] = (), *, modifiers: Iterable[Modifier] = (),
                customise: Iterable[Customisation] = ()) -> tuple[Process, varparsing.Options]:
    """Execute the config at *path* with the command-line *args* and return ``(process, options)``.

    *modifiers* (then those of ``procModifiers=``) are chosen for the Process the config creates, for
    this load only. *customise* (then ``customise=``): functions ``f(process)``, or ``"module.function"``
    names, applied in order after the config; each returns the process (None keeps it). Last, the
    standard options (maxEvents, inputFiles, ...) are applied to the process.
    """
    args = list(args)
    if not os.path.isfile(path):
        raise ConfigurationError(f"config file not found: {path}")
    opts = varparsing.reset(args)
    from_cli = opts.peek("procModifiers")
    chosen = list(modifiers)
    if from_cli:
        from . import modifiers as modifier_package

        chosen += modifier_package.by_name(from_cli)
    customisations = [*customise, *opts.peek("customise")]
    old_argv = sys.argv
    sys.argv = [path, *args]
    try:
        process = execute_config(path, modifiers=chosen)
        opts = varparsing.current()
        opts.parseArguments()
        process = apply_customisations(process, customisations)
    finally:
        sys.argv = old_argv
    apply_standard_options(process, opts)
    return process, opts


@contextlib.contextmanager
def _config_folder_importable(path: str) -> Iterator[None]:
    """The config's folder first on ``sys.path`` while it runs (as ``python config.py`` would have it), so that a
    config imports the package beside it; kept afterwards if the config imported from it (its modules stay)."""
    folder = os.path.dirname(os.path.abspath(path))
    if folder in sys.path:
        yield
        return
    sys.path.insert(0, folder)
    before = set(sys.modules)
    try:
        yield
    finally:
        used = any(getattr(sys.modules.get(m), "__file__", None) and
                   str(getattr(sys.modules[m], "__file__", "")).startswith(folder + os.sep)
                   for m in set(sys.modules) - before)
        if not used and folder in sys.path:
            sys.path.remove(folder)


def execute_config(path: str, *, modifiers: Iterable[Modifier] = ()) -> Process:
    """Run the config file at *path* (its options are not checked) with *modifiers* chosen for the
    Process it creates, besides those of an enclosing load; return that Process. A wrapper config
    (configs/run_sonic.py) runs the config it wraps with this."""
    with configuring(extra=modifiers), _config_folder_importable(path):
        try:
            namespace = runpy.run_path(path, run_name="__config__")
        except (FrameworkError, varparsing.OptionsHelp, SystemExit, KeyboardInterrupt):
            raise
        except BaseException as e:  # noqa: BLE001
            frames = [f for f in traceback.extract_tb(e.__traceback__)
                      if os.path.abspath(f.filename) == os.path.abspath(path)]
            where = f" (line {frames[-1].lineno}: {frames[-1].line})" if frames else ""
            raise ConfigurationError(f"error in config {path}{where}: {type(e).__name__}: {e}") from e
    process = namespace.get("process")
    if not isinstance(process, Process):
        raise ConfigurationError(f"config {path} defines no 'process = cms.Process(...)'")
    return process


def apply_customisations(process: Process, customisations: Iterable[Customisation]) -> Process:
    """Apply each customisation in order: ``process = f(process)`` (a None return keeps the process).
    They run with *process* as the process being configured, so its modifiers act in them."""
    for item in customisations:
        func = resolve_customisation(item) if isinstance(item, str) else item
        name = item if isinstance(item, str) else getattr(item, "__qualname__", repr(item))
        if not callable(func):
            raise ConfigurationError(f"customise: {item!r} is neither a function nor a 'module.function' name")
        with configuring(process):
            try:
                result = func(process)
            except FrameworkError:
                raise
            except Exception as e:  # noqa: BLE001
                raise ConfigurationError(f"customisation {name} failed: {type(e).__name__}: {e}") from e
        if result is not None:
            if not isinstance(result, Process):
                raise ConfigurationError(
                    f"customisation {name} returned {result!r}: a customisation returns the process (or None)"
                )
            process = result
    return process


def resolve_customisation(spec: str) -> Callable[[Process], Process | None]:
    """The function named ``module.function`` (``pkg/module.function`` too, as cmsDriver writes it)."""
    return import_object(spec, "customise", "function", callable, "mypackage.mycustoms.useCpu")


def _source_parameters(source: Any) -> dict[str, Any]:
    """The parameters of the source declaration's registered type (its own if the type is unknown)."""
    from .core.registry import lookup

    try:
        return dict(lookup(source.type_(), "source").parameters)
    except FrameworkError:
        return dict(source.parameters_())


def _reads_files(source: Any) -> bool:
    """Whether the source declaration (or its registered type) has a ``fileNames`` parameter."""
    if "fileNames" in source.parameters_():
        return True
    from .core.registry import lookup

    try:
        return "fileNames" in lookup(source.type_(), "source").parameters
    except FrameworkError:
        return False


def apply_standard_options(process: Process, opts: varparsing.Options) -> None:
    """Fill the process from the standard options given on the command line."""
    if opts.given("maxEvents"):
        process.maxEvents.input = int(opts.maxEvents)
    if opts.given("inputFiles"):
        if process.source is None or not _reads_files(process.source):
            raise ConfigurationError("inputFiles= given, but the config's source reads no files")
        process.source.fileNames = list(opts.inputFiles)
    if opts.given("skipEvents"):
        if process.source is None:
            raise ConfigurationError("skipEvents= given, but the config has no source")
        process.source.skipEvents = int(opts.skipEvents)
    if opts.given("duplicateCheckMode"):
        if process.source is None or "duplicateCheckMode" not in _source_parameters(process.source):
            raise ConfigurationError(
                "duplicateCheckMode= given, but the config's source "
                f"({process.source.type_() if process.source is not None else 'none'}) reads no events with IDs "
                "(RootSource and NuMLSource have it)")
        process.source.duplicateCheckMode = str(opts.duplicateCheckMode)
    if opts.given("outputFile"):
        outputs = process.outputModules_()
        if not outputs:
            raise ConfigurationError("outputFile= given, but the config has no output module")
        for out in outputs.values():
            out.fileName = opts.outputFile
    if opts.given("outputFormat"):
        outputs = process.outputModules_()
        if not outputs:
            raise ConfigurationError("outputFormat= given, but the config has no output module")
        for out in outputs.values():
            out.format = str(opts.outputFormat)
    if opts.given("address") or opts.given("port") or opts.given("protocol"):
        services = process.services_()
        if "TritonService" not in services:
            raise ConfigurationError(
                "address=/port=/protocol= given, but the config uses no Triton server: turn SONIC on "
                "(e.g. sonic=1 where the config offers it, procModifiers=allSonicTriton, or configs/run_sonic.py "
                "config=...)"
            )
        from .sonic.service import apply_protocol_option, apply_server_option

        protocol = str(opts.protocol)
        if opts.given("address") or opts.given("port"):
            addresses = list(opts.address) or ["127.0.0.1"]
            ports = [int(p) for p in opts.port] or [8000 if protocol == "http" else 8001]
            if len(ports) == 1:
                ports = ports * len(addresses)
            elif len(addresses) == 1:
                addresses = addresses * len(ports)
            if len(addresses) != len(ports):
                raise ConfigurationError(
                    f"address= lists {len(addresses)} servers but port= {len(ports)} ports: give one port, or one per "
                    "address (address=127.0.0.1,127.0.0.1 port=8001,8101)")
            apply_server_option(services["TritonService"], addresses, ports, protocol)
        apply_protocol_option(services["TritonService"], protocol)
    if opts.given("numThreads") and opts.numThreads > 0:
        process.options.numberOfThreads = int(opts.numThreads)
    if opts.given("numStreams") and opts.numStreams >= 0:
        process.options.numberOfStreams = int(opts.numStreams)
