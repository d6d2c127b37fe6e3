"""The services of the running job (``cms.Service`` declarations), found by type name."""

from __future__ import annotations

from typing import Any

from ..exceptions import ConfigurationError

_active: dict[str, Any] = {}


def get(name: str, default: Any = ...) -> Any:
    """The running job's service *name* (e.g. ``"TritonService"``)."""
    if name in _active:
        return _active[name]
    if default is not ...:
        return default
    raise ConfigurationError(
        f"service '{name}' is not configured. Add process.{name} = cms.Service('{name}', ...) to the config"
        + (" (or use the enableSonicTriton modifier)" if name == "TritonService" else "")
    )


def set_active(services: dict[str, Any]) -> None:
    _active.clear()
    _active.update(services)


def clear() -> None:
    _active.clear()
