"""Per-request timing without verbose (issue 18, item 2): the SonicReport per model (round trip p50 / p99, the
server's queue / compute input / infer / compute output from its statistics before and after, the rest), the same
as JSON with ``timingFile=``; retries, failovers and servers down / up as metrics and trace instants."""

from __future__ import annotations

import json
import os
import signal
import time

import numpy as np
import pytest

import framework.config as cms
from framework.monitoring.job import JobObserver, set_active
from framework.sonic.stats import ClientStats, LatencyHistogram

from .main_fixtures import CONFIG, SERVER_MARKS, in_repo
from .sonic_fixtures import config_path, make_process, run, sonic_models  # noqa: F401 - sonic_models is a fixture
from .test_sonic_failures import SonicTestKillProducer, producer

N_EVENTS = 60


# ------------------------------------------------------------------------------------------ the histogram
def test_latency_quantiles_within_half_a_bin_of_numpy():
    rng = np.random.default_rng(7)
    x = rng.lognormal(np.log(3e-3), 0.8, 20_000)  # round trips around 3 ms with a tail
    h = LatencyHistogram()
    for v in x:
        h.record(float(v))
    assert h.count == len(x) and h.mean == pytest.approx(x.mean(), rel=1e-9)
    for q in (0.5, 0.9, 0.99):
        assert h.quantile(q) == pytest.approx(np.quantile(x, q), rel=0.025), q  # a bin is 2.3% wide


def test_latency_histogram_is_bounded_and_merges_like_one():
    a, b, both = LatencyHistogram(), LatencyHistogram(), LatencyHistogram()
    for i in range(1, 5001):
        v = i * 1e-5
        (a if i % 2 else b).record(v)
        both.record(v)
    size = a.counts.nbytes
    a.merge(b)
    assert a.counts.nbytes == size  # as many bins after 5000 round trips as before
    np.testing.assert_array_equal(a.counts, both.counts)
    assert a.quantile(0.99) == both.quantile(0.99) and a.count == 5000
    assert LatencyHistogram().quantile(0.5) == 0.0
    extreme = LatencyHistogram()
    for v in (0.0, 1e-9, 5e3):  # below 1 us and above 1000 s land in the edge bins, not outside
        extreme.record(v)
    assert extreme.count == 3 and extreme.counts.sum() == 3


def test_client_stats_keep_round_trips_without_verbose():
    stats = ClientStats()
    for v in (1e-3, 2e-3, 3e-3):
        stats.record_round_trip(v)
    assert stats.round_trips.count == 3 and stats.dispatch == pytest.approx(6e-3)
    assert "round trip p50" in stats.summary()


# ------------------------------------------------------------------------------------------ the main job
@pytest.mark.parametrize("protocol", [pytest.param("grpc", marks=SERVER_MARKS), pytest.param("http", marks=SERVER_MARKS)])
def test_timing_file_splits_each_round_trip_as_the_report_does(tmp_path, sample_file, protocol):
    """The main job with ``sonic=1`` on the local fallback server (it serves only this job, so its statistics are
    the job's own): the SonicReport line and the JSON per model agree; the server's parts add up to less than the
    mean round trip and the server counted every request the clients sent."""
    from framework.runner import run_config

    timing = tmp_path / "timing.json"
    with in_repo():
        report, _ = run_config(str(CONFIG), [f"inputFiles={sample_file}", f"maxEvents={N_EVENTS}", "sonic=1",
                                             f"protocol={protocol}", f"outputFile={tmp_path / 'out.root'}",
                                             f"timingFile={timing}", "wantSummary=0"], progress=False)
    assert report.processed == N_EVENTS
    doc = json.loads(timing.read_text())
    assert doc["job"]["events"] == N_EVENTS
    models = doc["models"]
    assert set(models) == {"particletransformer_AK4", "deepmet"}
    lines = {line.split("'")[1]: line for line in report.services if line.startswith("SonicReport: model")}
    assert set(lines) == set(models), report.services
    for name, t in models.items():
        assert t["servers"] == ["fallback"] and t["modules"], t
        assert 1 <= t["round_trips"] <= N_EVENTS and t["requests"] == t["round_trips"], t
        assert 0 < t["round_trip_p50_ms"] <= t["round_trip_p99_ms"], t
        assert t["server_requests"] == t["requests"], t  # the fallback serves this job only
        parts = [t[k] for k in ("queue_ms", "compute_input_ms", "compute_infer_ms", "compute_output_ms")]
        assert all(p >= 0 for p in parts) and t["compute_infer_ms"] > 0, t
        assert t["rest_ms"] >= 0 and sum(parts) + t["rest_ms"] == pytest.approx(t["round_trip_mean_ms"]), t
        line = lines[name]
        assert f"p50 {t['round_trip_p50_ms']:.3f} ms, p99 {t['round_trip_p99_ms']:.3f} ms" in line, line
        assert f"infer {t['compute_infer_ms']:.3f} ms" in line and "rest (network, serialisation)" in line, line


def test_timing_file_in_a_missing_folder_is_refused_before_the_job(sample_file, tmp_path, run_framework):
    r = run_framework("run", str(CONFIG), f"inputFiles={sample_file}", "maxEvents=2",
                      f"timingFile={tmp_path / 'no' / 't.json'}", f"outputFile={tmp_path / 'o.root'}")
    assert r.returncode == 2 and "timingFile=" in r.stderr and "does not exist" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr and not (tmp_path / "o.root").exists()


def test_timing_file_with_dask_is_refused(sample_file, tmp_path, run_framework):
    r = run_framework("run", str(CONFIG), f"inputFiles={sample_file}", "executor=dask",
                      f"timingFile={tmp_path / 't.json'}")
    assert r.returncode == 2 and "timingFile= is not supported with executor=dask" in r.stderr, r.stderr


# ------------------------------------------------------------------------ retries, failovers, down / up
class _Recorder(JobObserver):
    def __init__(self):
        self.retries: list[tuple[str, str, str]] = []
        self.states: list[tuple[str, bool]] = []
        self.requests: list[tuple[str, bool]] = []

    def sonic_retry(self, model, server, kind):
        self.retries.append((model, server, kind))

    def server_state(self, server, address, up):
        self.states.append((server, up))

    def sonic_request(self, model, server, protocol, t0, t1, ok):
        self.requests.append((model, ok))


@pytest.mark.triton
def test_a_killed_server_shows_as_down_failovers_and_the_fallback_up(sonic_models):  # noqa: F811
    """One server SIGKILLed mid-job: the observer hears it go down, the requests it lost move to the fallback
    (failovers), and the fallback comes up; the metrics observer turns these into Prometheus series."""
    from framework.monitoring.metrics import MetricsObserver
    from framework.monitoring.setup import ObserverGroup
    from framework.server import LocalTritonServer

    repo = sonic_models["affine4"].path.parent
    recorder = _Recorder()
    metrics = MetricsObserver(0)
    with LocalTritonServer([repo], device="cpu", models=["affine4"]) as server:
        pid = server.pid

        def kill():
            os.killpg(pid, signal.SIGKILL)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    return
                time.sleep(0.02)

        SonicTestKillProducer.hook = kill
        process = make_process({"m": producer(hook_at=5, mode="Async", allowedTries=2,
                                                 modelConfigPath=config_path(sonic_models["affine4"]))}, events=20, streams=2,
                               servers=[cms.PSet(name=cms.string("a"), address=cms.string("127.0.0.1"),
                                                 port=cms.uint32(server.grpc_port), protocol=cms.string("grpc"))],
                               fallback={"enable": True, "protocol": "grpc"})
        set_active(ObserverGroup([recorder, metrics]))
        try:
            report, _ = run(process)
        finally:
            set_active(None)
    text = _scrape(metrics)
    metrics.close()
    assert report.processed == 20
    assert ("a", True) in recorder.states and ("a", False) in recorder.states, recorder.states
    assert ("fallback", True) in recorder.states, recorder.states
    assert recorder.states.index(("a", False)) < recorder.states.index(("fallback", True)), recorder.states
    kinds = {kind for _, _, kind in recorder.retries}
    assert kinds and kinds <= {"retry", "failover"}, recorder.retries
    assert all(model == "affine4" for model, _, _ in recorder.retries)
    assert sum(ok for _, ok in recorder.requests) == 20, recorder.requests  # every event answered once
    assert 'framework_sonic_server_up{address="' in text and "framework_sonic_server_downs_total" in text, text
    down = [line for line in text.splitlines() if line.startswith("framework_sonic_server_downs_total")]
    assert any('server="a"' in line and float(line.split()[-1]) >= 1 for line in down), down
    up = [line for line in text.splitlines() if line.startswith("framework_sonic_server_up{")]
    assert any('server="fallback"' in line and line.endswith(" 1.0") for line in up), up
    assert any('server="a"' in line and line.endswith(" 0.0") for line in up), up


def _scrape(metrics) -> str:
    import prometheus_client as pc

    return pc.generate_latest(metrics.registry).decode()
