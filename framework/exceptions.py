"""Exceptions of the framework.

Every error a user can cause derives from :class:`FrameworkError`. Its message is written for the
user: what failed, where, and how to fix it. The command line prints it without a traceback
(``--traceback`` shows one) and exits non-zero.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable
from typing import Any


class FrameworkError(Exception):
    """Base class of all user-facing errors."""

    exit_code = 1


class ConfigurationError(FrameworkError):
    """The configuration is invalid (unknown module type, misspelled parameter, bad value, ...)."""

    exit_code = 2


class InputError(FrameworkError):
    """An input file is missing, unreadable, or lacks a tree or branch."""

    exit_code = 3


class ProductNotFoundError(FrameworkError):
    """A module asked for a product that nobody makes."""


class ModuleError(FrameworkError):
    """An exception raised inside a module, with the module label, the event and the file."""

    def __init__(self, message: str, *, label: str, type_: str, where: str, cause: BaseException | None = None):
        self.label = label
        self.type_ = type_
        self.where = where
        self.cause = cause
        super().__init__(f"module '{label}' ({type_}) failed {where}:\n  {message}")


class ServerError(FrameworkError):
    """An inference server could not be started, reached or used."""

    exit_code = 4


class MissingExtra(FrameworkError):
    """An optional package a feature needs is not installed (see :mod:`framework.extras`)."""

    exit_code = 5

    def __init__(self, extra: str, package: str, *, feature: str, distribution: str | None = None):
        self.extra = extra
        self.package = package
        self.feature = feature
        self.distribution = distribution or package
        self.install = f"pip install 'cmssw-py-framework[{extra}]'"
        super().__init__(
            f"{self.distribution}, needed for {feature}, is not installed. Install it with: {self.install} "
            f"(or '[all]' for every optional feature)"
        )


def nearest(name: str, candidates: Iterable[str], n: int = 3) -> list[str]:
    """The candidates closest to *name* (for 'did you mean' messages)."""
    candidates = list(candidates)
    found = difflib.get_close_matches(name, candidates, n=n, cutoff=0.5)
    if not found:
        low = name.lower()
        found = [c for c in candidates if low in c.lower() or c.lower() in low][:n]
    return found


def did_you_mean(name: str, candidates: Iterable[str], n: int = 3) -> str:
    """A 'did you mean' phrase, or an empty string."""
    found = nearest(name, candidates, n)
    if not found:
        return ""
    return " Did you mean " + " or ".join(repr(f) for f in found) + "?"


def allowed_text(allowed: Iterable[Any] | None, minimum: Any = None, maximum: Any = None,
                 show: Callable[[Any], str] = repr) -> str:
    """What a parameter or option accepts, for messages: ``one of 'a', 'b'``, ``>= 1``, ``0 to 9``, or ''."""
    if allowed is not None:
        return "one of " + ", ".join(show(a) for a in allowed)
    if minimum is not None and maximum is not None:
        return f"{minimum} to {maximum}"
    if minimum is not None:
        return f">= {minimum}"
    if maximum is not None:
        return f"<= {maximum}"
    return ""
