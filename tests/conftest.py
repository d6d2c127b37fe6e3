"""Shared fixtures: paths, the real NanoAOD file, a generated sample, and a clean service state."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DIR = REPO_ROOT.parent / "shared"
NANOAOD_FILE = SHARED_DIR / "data" / "nanoAOD_2015_CMS_Open_Data_ttbar.root"

SAMPLE_EVENTS = 60
SAMPLE_SEED = 12345


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED_DIR.is_dir():
        pytest.skip("../shared (real CMS data/models) is absent")
    return SHARED_DIR


@pytest.fixture(scope="session")
def nanoaod_file(shared_dir) -> Path:
    if not NANOAOD_FILE.is_file():
        pytest.skip(f"{NANOAOD_FILE} (real CMS NanoAOD file) is absent")
    return NANOAOD_FILE


def _generate():
    try:
        from framework.samples import generate
    except ImportError as e:  # the generator is part of the project: its absence is a failure
        pytest.fail(f"framework.samples.generate cannot be imported: {e}", pytrace=False)
    return generate


@pytest.fixture(scope="session")
def generate_sample():
    """``generate_sample(path, n_events, seed, **kw)``: the project's generator."""
    return _generate()


@pytest.fixture(scope="session")
def sample_file(tmp_path_factory, generate_sample) -> Path:
    """A generated sample of :data:`SAMPLE_EVENTS` events (read-only for tests: copy to modify)."""
    path = tmp_path_factory.mktemp("sample") / "sample.root"
    generate_sample(path, SAMPLE_EVENTS, SAMPLE_SEED)
    assert path.is_file(), f"generate() wrote no {path}"
    return path


@pytest.fixture(scope="session")
def run_framework():
    """``run_framework(*args, cwd=None)``: ``python -m framework ARGS`` in a subprocess, with the
    repository root on ``PYTHONPATH`` (so configs can ``import tests.plugins``)."""

    def run(*args: str, cwd: str | Path | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), *filter(None, [env.get("PYTHONPATH")])])
        return subprocess.run(
            [sys.executable, "-m", "framework", *map(str, args)],
            cwd=cwd or REPO_ROOT, env=env, capture_output=True, text=True, timeout=timeout,
        )

    return run


@pytest.fixture(autouse=True)
def _clean_framework_state():
    """No services, options or test-module records leak from one test to the next."""
    from framework.config import varparsing
    from framework.config.modifiers import reset_all
    from framework.core import services

    from . import plugins

    services.clear()
    varparsing.reset([])
    reset_all()
    plugins.reset()
    yield
    services.clear()
    varparsing.reset([])
