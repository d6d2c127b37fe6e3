"""The DQM job with ``sonic=1`` on a given MLServer that is SIGKILLed mid-job completes on the local fallback
MLServer: every section scored once, the scores equal the in-process run's, no MLServer process left."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import uproot

from tests.onnx_models import pid_alive

REPO = Path(__file__).resolve().parents[1]
CONFIG = "configs/dqm_cfg.py"
pytestmark = [pytest.mark.slow, pytest.mark.skipif(sys.version_info >= (3, 13), reason="MLServer needs Python < 3.13")]


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "framework", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=300, env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})})


def _lumis(path: Path) -> dict[str, np.ndarray]:
    with uproot.open(path) as f:
        return f["LuminosityBlocks"].arrays(library="np")


@pytest.fixture(scope="module")
def direct(tmp_path_factory) -> dict[str, np.ndarray]:
    out = tmp_path_factory.mktemp("dqm_failover") / "direct.root"
    done = _cli("run", CONFIG, f"outputFile={out}")
    assert done.returncode == 0, done.stderr[-3000:]
    return _lumis(out)


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_given_mlserver_killed_mid_job_the_fallback_mlserver_completes_it(direct, tmp_path, protocol):
    from framework.server.mlserver import LocalMLServer

    out = tmp_path / "killed.root"
    with LocalMLServer([REPO / "data/models" / m for m in ("dqmNMF", "dqmNMFJetOcc", "dqmNMFMETPuppi")]) as given:
        address = given.http_address if protocol == "http" else given.grpc_address
        host, port = address.rsplit(":", 1)
        pid = given.pid
        done = _cli("run", CONFIG, "sonic=1", f"address={host}", f"port={port}", f"protocol={protocol}",
                    "customise=tests.failover_plugins.killGivenServerAtLumi3", f"outputFile={out}",
                    env={"CMSFW_TEST_KILL_PGID": str(pid)})
        deadline = time.monotonic() + 10
        while pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not pid_alive(pid), "the given MLServer was not killed: the test did not test failover"
    log = done.stdout + done.stderr
    assert done.returncode == 0, log[-3000:]
    assert "starting a local MLServer" in log and "local MLServer stopped" in log, log[-3000:]
    assert f"server 'default' ({address})" in log and "went down 1 time" in log, log[-3000:]
    assert "server 'fallback-mlserver'" in log and "Traceback" not in log
    sonic = _lumis(out)
    assert sorted(zip(sonic["run"], sonic["luminosityBlock"])) == sorted(zip(direct["run"], direct["luminosityBlock"]))
    scorers = sorted(k[:-4] for k in direct if k.endswith("_mse"))
    assert scorers, sorted(direct)
    for label in scorers:
        np.testing.assert_allclose(sonic[f"{label}_mse"], direct[f"{label}_mse"], rtol=0, atol=1e-6, err_msg=label)
        np.testing.assert_array_equal(sonic[f"{label}_flag"], direct[f"{label}_flag"], err_msg=label)
