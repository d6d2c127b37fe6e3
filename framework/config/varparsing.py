"""Command-line options of a config, VarParsing-style: ``key=value`` pairs after the config file.

Standard options (``maxEvents``, ``inputFiles``, ``outputFile``, ``outputFormat``, ``numThreads``, ``numStreams``,
``skipEvents``, ``duplicateCheckMode``, the SONIC server ones, ``procModifiers``, ``customise``, the executor's ``executor``, ``workers``,
``scheduler``, ``chunkSize``, ``skipBadFiles``) are always registered; a config registers its own with :meth:`Options.register`
and reads them after :meth:`Options.parseArguments`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ..constraints import Constraint
from ..exceptions import ConfigurationError, did_you_mean
from ..io.duplicates import MODES as DUPLICATE_MODES
from ..io.rntuple import FORMATS as OUTPUT_FORMATS
from ..server.endpoints import PORT, PROTOCOL


@dataclass
class Option:
    name: str
    default: Any
    type: type
    help: str
    multiple: bool = False
    value: Any = None
    given: bool = False
    allowed: tuple[Any, ...] | None = None  # the only values it takes (CMSSW's allowedValues)
    minimum: Any = None  # the smallest value it takes (numbers)
    maximum: Any = None  # the largest

    def convert(self, text: str) -> Any:
        """The value of *text*, checked against what the option allows (:meth:`check`)."""
        value = self.parse(text)
        for v in (value if self.multiple else [value]):
            self.check(v)
        return value

    def parse(self, text: str) -> Any:
        """The value of *text* as the option's type (a list when ``multiple``), not checked."""
        if self.multiple:
            items = [t for t in (x.strip() for x in text.split(",")) if t]
            return [self._convert_one(t) for t in items]
        return self._convert_one(text)

    constraint: Constraint = field(init=False, repr=False)
    """What the option takes (*allowed*, *minimum*, *maximum*), checked by the one
    :class:`~framework.constraints.Constraint`."""

    def __post_init__(self) -> None:
        self.constraint = Constraint(allowed=self.allowed, minimum=self.minimum, maximum=self.maximum)

    def allowed_text(self) -> str:
        """What the option accepts, for messages and ``help``: ``one of a, b``, ``>= 1``, ``0 to 9``, or ''."""
        return self.constraint.text(show=str)

    def check(self, value: Any) -> Any:
        """*value* when the option allows it, else a :class:`ConfigurationError` naming the option, the value and
        what is allowed."""
        kind = self.constraint.violation(value)
        about = f" ({self.help})" if self.help else ""
        if kind == "allowed":
            raise ConfigurationError(
                f"option {self.name}={value}: not allowed; {self.name} must be {self.allowed_text()}."
                f"{did_you_mean(str(value), [str(a) for a in self.allowed or ()])}{about}")
        if kind == "range":
            raise ConfigurationError(
                f"option {self.name}={value}: out of range; {self.name} must be {self.allowed_text()}{about}.")
        return value

    def _convert_one(self, text: str) -> Any:
        try:
            if self.type is bool:
                low = text.strip().lower()
                if low in ("1", "true", "yes", "on"):
                    return True
                if low in ("0", "false", "no", "off"):
                    return False
                raise ValueError(text)
            if self.type is int:
                return int(text, 0)
            return self.type(text)
        except ValueError:
            kind = {int: "an integer", float: "a number", bool: "a boolean (1/0, true/false)"}.get(
                self.type, self.type.__name__)
            if self.multiple:
                kind = f"a comma-separated list of {self.type.__name__}"
            limits = self.allowed_text()
            raise ConfigurationError(
                f"option {self.name}={text!r}: expected {kind}{f' ({limits})' if limits else ''}"
                f"{f'; {self.name}: {self.help}' if self.help else ''}."
            ) from None


# name, default, type, help, multiple[, register()'s allowed / minimum / maximum]
STANDARD: list[tuple] = [
    ("maxEvents", -1, int, "number of events to process (-1 = all)", False),
    ("skipEvents", 0, int, "number of input events to skip", False),
    ("duplicateCheckMode", DUPLICATE_MODES[0], str, "events whose (run, lumi, event) repeats in the input (the source's "
     "duplicateCheckMode, as CMSSW's PoolSource): checkAllFilesOpened (the sources' default) skips them, with a "
     "warning and a count in the summary; checkEachFile only within a file; noDuplicateCheck processes them; "
     "failOnDuplicate makes one an error", False, {"allowed": DUPLICATE_MODES}),
    ("inputFiles", [], str, "input ROOT files, comma-separated", True),
    ("outputFile", "", str, "output ROOT file (for the output module)", False),
    ("outputFormat", OUTPUT_FORMATS[0], str, "TTree or RNTuple: how the output modules write events, lumis and runs "
     "(their format parameter; an RNTuple has the TTree's branches as fields)", False,
     {"allowed": OUTPUT_FORMATS}),
    ("numThreads", 0, int, "number of threads (0 = the config's process.options)", False),
    ("numStreams", -1, int, "number of concurrent events (0 = numThreads; -1 = the config's)", False),
    ("address", [], str, "Triton server address(es) for SONIC modules, comma-separated: one server each "
     "(fills TritonService.servers; requests go to the best live one)", True),
    ("port", [], int, "Triton server port(s) (with address=; one, or one per address; default 8001 for grpc, "
     "8000 for http)", True, {"minimum": PORT.minimum, "maximum": PORT.maximum}),
    ("protocol", "grpc", str, "grpc or http: how SONIC clients talk to the servers of address=/port= (default grpc, port 8001 / "
     "8000) and, when given, to the local fallback (which speaks http unless protocol= is given)", False,
     {"allowed": PROTOCOL.allowed}),
    ("procModifiers", [], str, "process modifiers (framework/modifiers/) chosen for the config's Process, "
     "comma-separated, e.g. allSonicTriton (cmsDriver's --procModifiers)", True),
    ("customise", [], str, "module.function(process) customisations applied in order after the config, "
     "comma-separated (cmsDriver's --customise)", True),
    ("executor", "sequential", str, "how the job runs: sequential (this process) or dask (the input files as work "
     "items on a Dask cluster, outputs merged in input order)", False),
    ("workers", 0, int, "executor=dask: worker processes of the local cluster, one thread each (0 = the cores)", False),
    ("scheduler", "", str, "executor=dask: address of a running Dask scheduler (tcp://host:8786) instead of a "
     "local cluster", False),
    ("chunkSize", 100000, int, "executor=dask: entries per work item (coffea's chunksize), cut at luminosity-block "
     "and cluster boundaries", False),
    ("skipBadFiles", False, bool, "executor=dask: an input file that cannot be read is skipped (a warning and a "
     "summary line) instead of failing the job", False),
    ("metricsPort", 0, int, "serve Prometheus /metrics of the job on this port while it runs (0 = off; see "
     "metricsAddress); executor=sequential only", False, {"minimum": 0, "maximum": 65535}),
    ("metricsAddress", "127.0.0.1", str, "address the metricsPort= endpoint listens on (default loopback)", False),
    ("traceFile", "", str, "write a Chrome trace (Perfetto / chrome://tracing) of the module phases and SONIC "
     "requests to this JSON file at the end of the job ('' = none); executor=sequential only", False),
    ("timingFile", "", str, "write the SonicReport's timing per model (round trip p50/p99, the server's queue / "
     "compute input / infer / compute output, the rest) to this JSON file at the end of the job ('' = none); "
     "executor=sequential only", False),
]


@dataclass
class Options:
    """Registered options and the ``key=value`` arguments to parse."""

    argv: list[str] = field(default_factory=list)
    _options: dict[str, Option] = field(default_factory=dict)
    _parsed: bool = False

    def __post_init__(self) -> None:
        for name, default, typ, help_, multiple, *limits in STANDARD:
            self.register(name, default, typ, help_, multiple=multiple, **(limits[0] if limits else {}))

    def register(self, name: str, default: Any, type: type = str, help: str = "", *, multiple: bool = False,
                 allowed: Iterable[Any] | None = None, minimum: Any = None, maximum: Any = None) -> None:
        """Register an option. Registering an existing name again replaces its default and help.

        *allowed*: the only values the option takes (``allowed=("grpc", "http")``); *minimum* / *maximum*: its
        range (``minimum=1``). A value outside them on the command line is a :class:`ConfigurationError` naming
        the option, the value and what is allowed; so is a default outside them (a mistake in the config)."""
        if not name.isidentifier():
            raise ConfigurationError(f"option names must be identifiers, got {name!r}")
        opt = Option(name, default, type, help, multiple, list(default) if multiple else default,
                     allowed=None if allowed is None else tuple(allowed), minimum=minimum, maximum=maximum)
        for value in (default if multiple else [default]):
            try:
                opt.check(value)
            except ConfigurationError as e:
                raise ConfigurationError(f"options.register('{name}', default={default!r}, ...): the default is "
                                         f"outside what it allows: {e}") from None
        old = self._options.get(name)
        if old is not None and old.given:
            opt.value, opt.given = old.value, True
        self._options[name] = opt
        if self._parsed:  # registered after parsing: pick up a value given on the command line
            for arg in self.argv:
                key, _, text = arg.partition("=")
                if key == name:
                    opt.value, opt.given = opt.convert(text), True

    def setDefault(self, name: str, value: Any) -> None:
        opt = self._get(name)
        for v in (value if opt.multiple else [value]):
            opt.check(v)
        opt.default = value
        if not opt.given:
            opt.value = value

    def parseArguments(self, argv: list[str] | None = None) -> Options:
        """Parse ``key=value`` arguments (default: the ones given on the command line)."""
        if argv is not None:
            self.argv = list(argv)
        for arg in self.argv:
            if arg in ("help", "--help", "-h"):
                raise OptionsHelp(self.helpText())
            key, sep, text = arg.partition("=")
            if not sep:
                raise ConfigurationError(f"argument {arg!r} is not of the form key=value. Valid keys: {self._keys()}")
            if key not in self._options:
                raise ConfigurationError(
                    f"unknown option '{key}'.{did_you_mean(key, self._options)} Valid keys: {self._keys()} "
                    "(`help` lists them with their meaning)"
                )
            opt = self._options[key]
            value = opt.parse(text)
            for v in (value if opt.multiple else [value]):
                opt.check(v)
            opt.value, opt.given = value, True
        self._parsed = True
        return self

    def _keys(self) -> str:
        return ", ".join(self._options)

    def _get(self, name: str) -> Option:
        try:
            return self._options[name]
        except KeyError:
            raise AttributeError(f"no option '{name}'.{did_you_mean(name, self._options)}") from None

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or name in ("argv",):
            raise AttributeError(name)
        return self._get(name).value

    def peek(self, name: str) -> Any:
        """The value of the registered option *name* on the command line (the last one given), or its
        default, before the other arguments are parsed (the loader needs ``procModifiers`` before the
        config runs and registers its own options)."""
        opt = self._get(name)
        value = opt.default
        for arg in self.argv:
            key, sep, text = arg.partition("=")
            if sep and key == name:
                value = opt.convert(text)
        return value

    def given(self, name: str) -> bool:
        """Whether *name* was given on the command line."""
        return self._get(name).given

    def names(self) -> list[str]:
        return list(self._options)

    def helpText(self) -> str:
        lines = ["Options (key=value):"]
        width = max(len(n) for n in self._options)
        for o in self._options.values():
            allowed = f" ({o.allowed_text()})" if o.allowed_text() else ""
            lines.append(f"  {o.name:<{width}}  {o.help}{allowed} [default: {o.default!r}]")
        return "\n".join(lines)


class OptionsHelp(Exception):
    """Raised by ``help``: the text to print."""


# the options of the config being loaded; the CLI resets it with the command-line arguments
options = Options()


def reset(argv: list[str]) -> Options:
    """A fresh options object for a new config, holding *argv* (used by the command line)."""
    global options
    options = Options(argv=list(argv))
    return options


def current() -> Options:
    return options
