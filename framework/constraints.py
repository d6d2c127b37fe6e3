"""What values a parameter or an option takes, declared once beside its default (CMSSW's ``allowedValues`` and
ranges in ``fillDescriptions``).

One :class:`Constraint` serves a module's parameters (:func:`check_constraints` over a table such as
:data:`framework.sonic.parameters.CLIENT_CONSTRAINTS`), the command-line options (``options.register(...,
allowed=, minimum=, maximum=)``) and the server endpoints (:data:`framework.server.endpoints.PORT`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from .exceptions import ConfigurationError, allowed_text, did_you_mean


class Constraint:
    """The values one parameter takes: *allowed* (the only ones), or a range *minimum* .. *maximum*, plus
    *special* values outside it with their meaning (``{-1: "pick a free port"}``); *help* says what the
    parameter means, for the message."""

    def __init__(self, *, allowed: tuple[Any, ...] | None = None, minimum: Any = None, maximum: Any = None,
                 special: Mapping[Any, str] | None = None, help: str = ""):
        self.allowed = None if allowed is None else tuple(allowed)
        self.minimum = minimum
        self.maximum = maximum
        self.special = dict(special or {})
        self.help = help

    def text(self, show: Callable[[Any], str] = repr) -> str:
        """What the parameter accepts: ``one of 'a', 'b'``, ``>= 1``, ``0 to 9``, ``1 to 9 or -1 (auto)``, or ''."""
        base = allowed_text(self.allowed, self.minimum, self.maximum, show=show)
        extra = " or ".join(f"{show(v)} ({why})" for v, why in self.special.items())
        return f"{base} or {extra}" if base and extra else base or extra

    def violation(self, value: Any) -> str | None:
        """``None`` when *value* is allowed; else ``"allowed"`` (not one of the allowed values) or ``"range"``."""
        if value in self.special:
            return None
        if self.allowed is not None and value not in self.allowed:
            return "allowed"
        if (self.minimum is not None and value < self.minimum) or (self.maximum is not None and value > self.maximum):
            return "range"
        return None

    def check(self, name: str, value: Any, where: str, error: type[Exception] = ConfigurationError) -> Any:
        """*value* when allowed; else *error* naming *where*, the parameter, the value and what is allowed."""
        kind = self.violation(value)
        if kind == "allowed":
            raise error(f"{where}: {name} must be {self.text()}, got {value!r}."
                        f"{did_you_mean(str(value), [str(a) for a in self.allowed or ()])}")
        if kind == "range":
            why = f" ({self.help})" if self.help else ""
            raise error(f"{where}: {name} = {value!r} is out of range: {name} must be {self.text()}{why}.")
        return value

    def __repr__(self) -> str:
        return f"Constraint({self.text()})"


def check_constraints(constraints: Mapping[str, Constraint], values: Mapping[str, Any], where: str) -> None:
    """Check every parameter of *values* that *constraints* names (the one place such tables are checked)."""
    for name, constraint in constraints.items():
        if name in values:
            constraint.check(name, values[name], where)


__all__ = ["Constraint", "check_constraints"]
