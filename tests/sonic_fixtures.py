"""Shared fixtures and helpers of the SONIC tests: test models served by one real ``tritonserver`` (the bundled
one, started once per test session) and a small job builder.

Import in a test module with ``from tests.sonic_fixtures import *``. The server fixture hands out one server per
session even though each module that imports it gets its own fixture definition.
"""

from __future__ import annotations

import glob
import os
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import framework.config as cms
import framework.io.source  # noqa: F401 - registers EmptySource without importing every plugin package
from framework.core.module import EDAnalyzer
from framework.core.processor import EventProcessor, JobReport
from framework.core.registry import register
from framework.server import LocalTritonServer, bundled_server_available
from tests.onnx_models import (
    ModelSpec,
    make_affine_model,
    make_fixed_model,
    make_multi_io_model,
    make_slow_model,
)

SERVER_OK, SERVER_REASON = bundled_server_available()
needs_server = [pytest.mark.triton, pytest.mark.skipif(not SERVER_OK, reason=SERVER_REASON)]
"""``pytestmark`` for modules that need the bundled server."""

SLOW_DELAY = 1.0

_lock = threading.Lock()
_shared: dict[str, Any] = {}


def build_models(root: Path) -> dict[str, ModelSpec]:
    """The test repository: ``affine`` (FP32 [-1, 4], max batch 8), ``affine4`` (FP32 [4], outputs of known
    shape), ``multi_io`` (names with ':' and '/', INT64 input), ``fixed`` (no batching) and ``slow``
    (Python backend, sleeps ``SLOW_DELAY`` s)."""
    specs = [
        make_affine_model(root, "affine", input_dims=[-1, 4], max_batch_size=8),
        make_affine_model(root, "affine4", input_dims=[4], max_batch_size=64, scale=3.0, offset=-1.0),
        make_multi_io_model(root, "multi_io"),
        make_fixed_model(root, "fixed"),
        make_slow_model(root, "slow", delay_s=SLOW_DELAY, dims=[4], max_batch_size=8),
    ]
    return {s.name: s for s in specs}


@pytest.fixture(scope="session")
def sonic_models(tmp_path_factory) -> dict[str, ModelSpec]:
    with _lock:
        if "models" not in _shared:
            _shared["models"] = build_models(tmp_path_factory.mktemp("sonic") / "repo")
        return _shared["models"]


@pytest.fixture(scope="session")
def sonic_server(sonic_models, request) -> LocalTritonServer:
    """One bundled tritonserver serving the test models, for the whole session."""
    if not SERVER_OK:
        pytest.skip(SERVER_REASON)
    with _lock:
        server = _shared.get("server")
        if server is None:
            repo = next(iter(sonic_models.values())).path.parent
            server = LocalTritonServer([repo], device="cpu", instances=1)
            server.start()
            _shared["server"] = server
            request.session.addfinalizer(server.stop)
        return server


def config_path(spec: ModelSpec) -> str:
    return str(spec.path / "config.pbtxt")


def server_pset(name: str, port: int, address: str = "127.0.0.1") -> cms.PSet:
    return cms.PSet(name=cms.string(name), address=cms.string(address), port=cms.uint32(port))


def make_process(modules: dict[str, cms.EDProducer], *, events: int, streams: int = 1, threads: int | None = None,
                 servers: list[cms.PSet] | None = None, fallback: dict | None = None,
                 verbose: bool = False) -> cms.Process:
    """A job: EmptySource with *events* events, the SONIC *modules* on a Path followed by the collector."""
    process = cms.Process("SONICTEST")
    process.source = cms.Source("EmptySource")
    process.maxEvents = cms.PSet(input=events)
    process.options = cms.PSet(numberOfThreads=threads or min(streams, 2), numberOfStreams=streams)
    service: dict[str, Any] = {"verbose": verbose, "servers": cms.VPSet(*(servers or []))}
    if fallback is not None:
        service["fallback"] = cms.PSet(**fallback)
    process.TritonService = cms.Service("TritonService", **service)
    for label, decl in modules.items():
        setattr(process, label, decl)
    process.collector = cms.EDAnalyzer("SonicTestCollector", labels=cms.vstring(*modules))
    process.p = cms.Path(*[getattr(process, label) for label in modules], process.collector)
    return process


def run(process: cms.Process) -> tuple[JobReport, dict[tuple[str, int], dict[str, Any]]]:
    """Run the job; return its report and the products by (module label, event number)."""
    SonicTestCollector.products = {}
    report = EventProcessor(process).run()
    return report, SonicTestCollector.products


@register("SonicTestCollector")
class SonicTestCollector(EDAnalyzer):
    """Keeps every product of the listed modules, by (label, event number)."""

    parameters = {"labels": []}
    products: dict[tuple[str, int], dict[str, Any]] = {}

    def analyze(self, event) -> None:
        for (label, instance), value in event.products().items():
            if label in self.params.labels:
                SonicTestCollector.products.setdefault((label, event.id.event), {})[instance] = value


def client_shm_segments() -> list[str]:
    """``/dev/shm`` segments made by the SONIC clients of this process (other jobs may run meanwhile)."""
    return sorted(glob.glob(f"/dev/shm/cmsfw_sonic_{os.getpid()}_*"))


def assert_same(got: Any, expected: np.ndarray, what: str = "") -> None:
    got = np.asarray(got)
    assert got.shape == expected.shape, f"{what}: shape {got.shape} != {expected.shape}"
    assert got.dtype == expected.dtype, f"{what}: dtype {got.dtype} != {expected.dtype}"
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6, err_msg=what)


__all__ = [
    "SERVER_OK",
    "SERVER_REASON",
    "SLOW_DELAY",
    "SonicTestCollector",
    "assert_same",
    "build_models",
    "client_shm_segments",
    "config_path",
    "make_process",
    "needs_server",
    "run",
    "server_pset",
    "sonic_models",
    "sonic_server",
]
