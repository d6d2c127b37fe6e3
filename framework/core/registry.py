"""The registry of module types: config type names (``"RootSource"``, ``"ParticleTransformerAK4ONNXJetTagsProducer"``)
to Python classes, as CMSSW's plugin manager finds a module by its type name.

Two ways in, both ending in :func:`register`:

* **Entry points** (any installed package, this repository's own producers included): the group
  ``framework.modules`` maps a type name to ``package.module:Class``, e.g. in a plug-in's ``pyproject.toml``::

      [project.entry-points."framework.modules"]
      MyTagger = "mytagger.producer:MyTagger"

  A config that names ``MyTagger`` finds it without importing anything: the module is imported on the first
  lookup of that name.
* **Imported modules**: a class decorated with ``@register(...)`` is known as soon as its module is imported (a
  config importing a fragment, a test defining a module). The framework's own types (sources, outputs, the
  TritonService, the builtin filter/analyzer) are found by importing the framework's packages.
"""

from __future__ import annotations

import importlib
import logging
import pkgutil
from collections.abc import Callable
from functools import cache
from importlib import metadata
from typing import Any

from ..exceptions import ConfigurationError, FrameworkError, did_you_mean

log = logging.getLogger(__name__)

_REGISTRY: dict[str, type] = {}
_loaded = False

MODULES_GROUP = "framework.modules"
"""Entry-point group of module types (producers, filters, analyzers, sources, outputs, services):
name = type name, value = ``package.module:Class``."""

FRAMEWORK_PACKAGES = ["framework.io", "framework.core.builtin", "framework.sonic"]
"""The framework's own packages of module types (imported on the first lookup that needs them)."""


@cache
def _entry_points(group: str) -> dict[str, metadata.EntryPoint]:
    found: dict[str, metadata.EntryPoint] = {}
    for ep in metadata.entry_points(group=group):
        other = found.get(ep.name)
        if other is not None and other.value != ep.value:
            log.warning("entry point '%s' of group %s is defined twice (%s and %s); using the first", ep.name, group,
                        other.value, ep.value)
            continue
        found[ep.name] = ep
    return found


def entry_points(group: str) -> dict[str, metadata.EntryPoint]:
    """The installed entry points of *group* by name (read once per process)."""
    return dict(_entry_points(group))


def _distribution(ep: metadata.EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    return dist.metadata["Name"] if dist is not None else "?"


def provider(ep: metadata.EntryPoint) -> str:
    """``distribution: module:object`` of an entry point, for messages."""
    return f"{_distribution(ep)}: {ep.value}"


def _names(names: list[str], limit: int = 14) -> str:
    names = sorted(names)
    more = f" (+{len(names) - limit} more)" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def load_entry_point(ep: metadata.EntryPoint, what: str) -> Any:
    """Import what *ep* names; a failure is a ConfigurationError naming the plug-in and the cause."""
    try:
        return ep.load()
    except FrameworkError:  # e.g. MissingExtra: the plug-in's own clear message
        raise
    except Exception as exc:  # noqa: BLE001 - any import failure of a plug-in
        raise ConfigurationError(
            f"{what} '{ep.name}' is provided by {provider(ep)}, which cannot be imported: "
            f"{type(exc).__name__}: {exc}\n  How to fix: reinstall that package (pip install -e <its folder>), or "
            "fix the entry point in its pyproject.toml.") from exc


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
    """Import the framework's own packages of module types (entry points are loaded by name, on demand)."""
    global _loaded
    if _loaded:
        return
    for package in FRAMEWORK_PACKAGES:
        _import_tree(package)
    _loaded = True


def _from_entry_point(name: str) -> type | None:
    ep = _entry_points(MODULES_GROUP).get(name)
    if ep is None:
        return None
    cls = load_entry_point(ep, "module type")
    if not isinstance(cls, type):
        raise ConfigurationError(f"module type '{name}': the entry point {provider(ep)} names {cls!r}, not a class")
    if _REGISTRY.get(name) is not cls:
        register(name)(cls)  # an entry point is a registration of its own
    return cls


def lookup(name: str, kind: str | None = None) -> type:
    """The class registered as *name* (or named by an installed entry point); a clear error naming the nearest
    types, and the plug-in package that provides each, if there is none."""
    cls = _REGISTRY.get(name) or _from_entry_point(name)
    if cls is None:
        load_plugins()
        cls = _REGISTRY.get(name)
    if cls is None:
        eps = _entry_points(MODULES_GROUP)
        groups: dict[str, list[str]] = {}
        for k, ep in eps.items():
            if kind is None or k not in _REGISTRY or getattr(_REGISTRY[k], "kind", None) == kind:
                groups.setdefault(f"{_distribution(ep)} (entry points)", []).append(k)
        for k, c in _REGISTRY.items():
            if k not in eps and (kind is None or getattr(c, "kind", None) == kind):
                groups.setdefault(c.__module__.split(".")[0] if c.__module__.startswith("framework.")
                                  else c.__module__, []).append(k)
        listing = "; ".join(f"{where}: {_names(names)}" for where, names in sorted(groups.items())) or "none"
        raise ConfigurationError(
            f"unknown module type '{name}'.{did_you_mean(name, sorted({*_REGISTRY, *eps}))} "
            f"Known {kind + ' ' if kind else ''}types by where they come from: {listing}. "
            f"How to fix: spell the type as registered; a type of your own must be registered: its package declares "
            f"it as an entry point of group '{MODULES_GROUP}' in its pyproject.toml and is installed "
            f"(pip install -e .), or the config imports the module that defines it (e.g. its cff fragment)."
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
    """Every known type: the framework's own, the imported ones and every installed entry point (loaded)."""
    load_plugins()
    for name in _entry_points(MODULES_GROUP):
        if name not in _REGISTRY:
            _from_entry_point(name)
    return dict(_REGISTRY)
