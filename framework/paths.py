"""Resolving data paths the way CMSSW's FileInPath does: relative to the working directory, then to
the repository root (so ``data/models/...`` works from anywhere)."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
DATA_MODELS = REPO_ROOT / "data" / "models"


def candidates(path: str | os.PathLike) -> list[Path]:
    """Where *path* is looked for: itself if absolute, else the working directory, then the repository."""
    p = Path(os.path.expanduser(str(path)))
    return [p] if p.is_absolute() else [Path.cwd() / p, REPO_ROOT / p]


def locate(path: str | os.PathLike) -> str:
    """The first existing place of *path* (see :func:`candidates`), or *path* unchanged when none exists
    (the caller reports a missing file in its own terms)."""
    places = candidates(path)
    if places[0].exists():
        return str(path)
    return next((str(c) for c in places[1:] if c.exists()), str(path))


def resolve_path(path: str | os.PathLike, what: str = "file") -> Path:
    """An existing path for *path*; a FrameworkError naming the places looked at otherwise."""
    from .exceptions import ConfigurationError

    places = candidates(path)
    for c in places:
        if c.exists():
            return c.resolve()
    raise ConfigurationError(f"{what} not found: {path} (looked in {', '.join(str(c) for c in places)})")
