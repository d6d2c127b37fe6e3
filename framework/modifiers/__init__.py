"""The process modifiers of the project (CMSSW's ``Configuration/ProcessModifiers``), one module per
modifier; configs and fragments import them from here::

    from framework.modifiers import allSonicTriton
    process = cms.Process("MINIAOD", allSonicTriton)

or choose them without editing the config: ``python -m framework run CONFIG procModifiers=allSonicTriton``
(:func:`by_name` resolves the names). What a modifier does is in the fragments that use it (e.g.
producers/*/cff.py swap a producer for its SONIC twin); see :mod:`framework.config.modifiers` for when
a modifier acts.
"""

from __future__ import annotations

from ..config.modifiers import Modifier
from ..exceptions import ConfigurationError, did_you_mean
from .allSonicTriton_cff import ALL_SONIC_GROUP, allSonicTriton
from .enableSonicTriton_cff import (
    TRITON_FALLBACK_DEFAULTS,
    enableSonicTriton,
    enableSonicTritonProcess,
    tritonService,
)

MODIFIERS_GROUP = "framework.modifiers"
"""Entry-point group of process modifiers: name = the modifier's name, value = ``package.module:modifier``."""


def available() -> dict[str, Modifier]:
    """The modifiers by name: this package's and those of the installed plug-ins (entry points, loaded)."""
    from ..core.registry import entry_points, load_entry_point

    known = {name: value for name, value in globals().items() if isinstance(value, Modifier)}
    for name, ep in entry_points(MODIFIERS_GROUP).items():
        if name not in known:
            value = load_entry_point(ep, "process modifier")
            if not isinstance(value, Modifier):
                raise ConfigurationError(f"process modifier '{name}': the entry point {ep.value} names {value!r}, "
                                         "not a Modifier")
            known[name] = value
    return known


def by_name(names: list[str] | tuple[str, ...], where: str = "procModifiers") -> list[Modifier]:
    """The modifiers called *names*: a name of this package, or ``module.name`` for one defined elsewhere
    (e.g. ``jetmlp.modifiers.jetMLPSonicTriton``); an unknown name is a ConfigurationError naming the valid ones."""
    known = available()
    result = []
    for name in names:
        if "." in name:
            from ..imports import import_object

            result.append(import_object(name, where, "modifier", lambda v: isinstance(v, Modifier),
                                        "mypackage.modifiers.myModelSonicTriton"))
            continue
        if name not in known:
            raise ConfigurationError(
                f"{where}: unknown process modifier '{name}'.{did_you_mean(name, known)} "
                f"Valid: {', '.join(sorted(known))} (framework/modifiers/ and the entry points of group "
                f"'{MODIFIERS_GROUP}' of the installed packages), or module.name of your own"
            )
        result.append(known[name])
    return result


def __getattr__(name: str) -> Modifier:
    """``from framework.modifiers import particleTransformerAK4SonicTriton`` keeps working: a modifier of an
    installed plug-in by its entry-point name."""
    from ..core.registry import entry_points, load_entry_point

    ep = entry_points(MODIFIERS_GROUP).get(name)
    if ep is None:
        raise AttributeError(f"module 'framework.modifiers' has no attribute '{name}'")
    return load_entry_point(ep, "process modifier")


__all__ = [
    "ALL_SONIC_GROUP", "MODIFIERS_GROUP", "TRITON_FALLBACK_DEFAULTS", "allSonicTriton", "available", "by_name",
    "enableSonicTriton", "enableSonicTritonProcess", "tritonService",
]
