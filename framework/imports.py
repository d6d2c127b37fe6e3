"""Objects named ``module.name`` on the command line (``customise=``, ``procModifiers=``), with errors that name
the nearest modules or names."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from typing import Any

from .exceptions import ConfigurationError, did_you_mean


def import_object(spec: str, option: str, kind: str, accept: Callable[[Any], bool], example: str) -> Any:
    """The object named ``module.name`` (``pkg/module.name`` too, as cmsDriver writes it) for the option
    *option*; a ConfigurationError naming the nearest modules or names (of the *kind* that *accept*) otherwise."""
    module_name, _, attr = spec.strip().replace("/", ".").rpartition(".")
    if not module_name or not attr.isidentifier():
        raise ConfigurationError(f"{option}={spec!r}: expected module.{kind}, e.g. {option}={example}")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        if not e.name or not (module_name == e.name or module_name.startswith(e.name + ".")):
            raise ConfigurationError(f"{option}={spec!r}: importing {module_name} failed: {e}") from e
        parent, _, leaf = e.name.rpartition(".")
        try:
            search = importlib.import_module(parent).__path__ if parent else None
        except (ImportError, AttributeError):
            search = None
        candidates = sorted(m.name for m in pkgutil.iter_modules(search))
        listing = f" Modules in {parent}: {', '.join(candidates)}." if parent and candidates else ""
        raise ConfigurationError(
            f"{option}={spec!r}: no module '{e.name}'.{did_you_mean(leaf, candidates)}{listing}"
        ) from None
    except Exception as e:  # noqa: BLE001
        raise ConfigurationError(f"{option}={spec!r}: importing {module_name} failed: {type(e).__name__}: {e}") from e
    value = getattr(module, attr, None)
    if value is None or not accept(value):
        names = sorted(n for n, v in vars(module).items() if not n.startswith("_") and accept(v)
                       and (kind != "function" or getattr(v, "__module__", None) == module.__name__))
        raise ConfigurationError(
            f"{option}={spec!r}: module {module_name} has no {kind} '{attr}'."
            f"{did_you_mean(attr, names)} {kind.capitalize()}s there: {', '.join(names) or 'none'}"
        )
    return value


__all__ = ["import_object"]
