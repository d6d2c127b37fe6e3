"""One instance per process of the SONIC completion machinery (made on first use, made anew in a forked
child, whose copy of the parent's threads is gone)."""

from __future__ import annotations

import os
import threading
from typing import Any, TypeVar

T = TypeVar("T", bound="PerProcess")


class PerProcess:
    """Base of a class with one instance per process: ``Cls.get()``."""

    _instance: Any = None
    _lock = threading.Lock()

    def __init__(self) -> None:
        self.pid = os.getpid()

    @classmethod
    def get(cls: type[T]) -> T:
        inst = cls.__dict__.get("_instance")
        if inst is not None and inst.pid == os.getpid():
            return inst
        with PerProcess._lock:
            inst = cls.__dict__.get("_instance")
            if inst is None or inst.pid != os.getpid():
                inst = cls()
                cls._instance = inst
            return inst
