"""Resolving data paths the way CMSSW's FileInPath does: relative to the working directory, then to
the repository root (so ``data/models/...`` works from anywhere)."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
DATA_MODELS = REPO_ROOT / "data" / "models"


def resolve_path(path: str | os.PathLike, what: str = "file") -> Path:
    """An existing path for *path*; a FrameworkError naming the places looked at otherwise."""
    from .exceptions import ConfigurationError

    p = Path(os.path.expanduser(str(path)))
    candidates = [p] if p.is_absolute() else [Path.cwd() / p, REPO_ROOT / p]
    for c in candidates:
        if c.exists():
            return c.resolve()
    raise ConfigurationError(f"{what} not found: {path} (looked in {', '.join(str(c) for c in candidates)})")
