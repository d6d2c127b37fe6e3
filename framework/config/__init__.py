"""The config language, CMSSW style: ``import framework.config as cms``.

>>> import framework.config as cms
>>> process = cms.Process("DEMO")
>>> process.source = cms.Source("EmptySource")
>>> process.counter = cms.EDProducer("EventCounterProducer")
>>> process.p = cms.Path(process.counter)

``cms.options`` are the ``key=value`` command-line options of the job (VarParsing-like).
"""

from __future__ import annotations

from typing import Any

from . import varparsing as _varparsing
from .modifiers import Modifier, ModifierChain, ProcessModifier
from .modules import EDAnalyzer, EDFilter, EDProducer, ESProducer, OutputModule, Service, Source
from .process import Process
from .sequences import EndPath, Path, Schedule, Sequence, Task
from .types import (
    InputTag,
    PSet,
    VInputTag,
    VPSet,
    bool_,
    double,
    int32,
    int64,
    string,
    uint32,
    uint64,
    untracked,
    vdouble,
    vint32,
    vstring,
    vuint32,
)

bool = bool_  # noqa: A001  (cms.bool, as in CMSSW)


def __getattr__(name: str) -> Any:
    if name == "options":
        return _varparsing.current()
    raise AttributeError(f"module 'framework.config' has no attribute '{name}'")


__all__ = [
    "EDAnalyzer", "EDFilter", "EDProducer", "ESProducer", "EndPath", "InputTag", "Modifier",
    "ModifierChain", "OutputModule", "PSet", "Path", "Process", "ProcessModifier", "Schedule",
    "Sequence", "Service", "Source", "Task", "VInputTag", "VPSet", "bool", "double", "int32", "int64",
    "string", "uint32", "uint64", "untracked", "vdouble", "vint32", "vstring", "vuint32",
]
