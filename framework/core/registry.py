"""The registry of module types: config type names (``"RootSource"``, ``"ParticleTransformerAK4ONNXJetTagsProducer"``)
to Python classes. Plugins register with :func:`register`; the packages that hold them are imported
on the first lookup."""

from __future__ import annotations

import importlib
import logging
import pkgutil
from collections.abc import Callable
from typing import Any

from ..exceptions import ConfigurationError, did_you_mean

log = logging.getLogger(__name__)

_REGISTRY: dict[str, type] = {}
_loaded = False

# packages whose modules define plugins; `producers` is walked recursively
PLUGIN_PACKAGES = ["framework.io", "framework.core.builtin", "framework.sonic", "producers"]


def register(name: str | None = None) -> Callable[[type], type]:
    """Class decorator: make the class available in configs under *name* (default: class name)."""

    def deco(cls: type) -> type:
        key = name or cls.__name__
        old = _REGISTRY.get(key)
        if old is not None and old is not cls and (old.__module__, old.__qualname__) != (cls.__module__, cls.__qualname__):
            raise ConfigurationError(f"module type '{key}' registered twice: {old.__module__} and {cls.__module__}")
        _REGISTRY[key] = cls
        cls.typeName = key
        return cls

    return deco


def _import_tree(package: str) -> None:
    try:
        pkg = importlib.import_module(package)
    except ModuleNotFoundError as e:
        if e.name and package.startswith(e.name):
            return
        raise
    if hasattr(pkg, "__path__"):
        for info in pkgutil.walk_packages(pkg.__path__, prefix=package + "."):
            if info.name.rsplit(".", 1)[-1].startswith("_"):
                continue
            importlib.import_module(info.name)


def load_plugins() -> None:
    global _loaded
    if _loaded:
        return
    for package in PLUGIN_PACKAGES:
        _import_tree(package)
    _loaded = True


def lookup(name: str, kind: str | None = None) -> type:
    """The class registered as *name*; a clear error naming the nearest types if there is none."""
    cls = _REGISTRY.get(name)
    if cls is None:
        load_plugins()
        cls = _REGISTRY.get(name)
    if cls is None:
        same_kind = [k for k, c in _REGISTRY.items() if kind is None or getattr(c, "kind", None) == kind]
        raise ConfigurationError(
            f"unknown module type '{name}'.{did_you_mean(name, _REGISTRY)} "
            f"Known {kind + ' ' if kind else ''}types: {', '.join(sorted(same_kind)) or '(none)'}"
        )
    if kind is not None and getattr(cls, "kind", None) != kind:
        raise ConfigurationError(
            f"module type '{name}' is a {getattr(cls, 'kind', '?')}, but it is declared as a {kind}; "
            f"use cms.{_DECL.get(getattr(cls, 'kind', ''), '?')}('{name}', ...)"
        )
    return cls


_DECL = {
    "producer": "EDProducer",
    "filter": "EDFilter",
    "analyzer": "EDAnalyzer",
    "output": "OutputModule",
    "source": "Source",
    "service": "Service",
}


def registered() -> dict[str, Any]:
    load_plugins()
    return dict(_REGISTRY)
