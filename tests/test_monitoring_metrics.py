"""metricsPort=: the job's Prometheus /metrics scraped with a real HTTP GET while events are in flight."""

from __future__ import annotations

import json
import socket
import urllib.request

import pytest

from framework.configloader import load_config
from framework.core.processor import EventProcessor
from framework.monitoring.setup import job_observer

CONFIG = "configs/miniaod_cfg.py"
N_EVENTS = 12
SCRAPE_AT = 6


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _families(text: str) -> dict:
    from prometheus_client.parser import text_string_to_metric_families

    return {f.name: f for f in text_string_to_metric_families(text)}


def test_job_metrics_scraped_during_the_run(repo_root, shared_dir, sample_file):
    port = _free_port()
    process, opts = load_config(str(repo_root / CONFIG), [f"inputFiles={sample_file}", f"maxEvents={N_EVENTS}",
                                                          f"metricsPort={port}"])
    processor = EventProcessor(process)
    observer = job_observer(opts)
    assert observer is not None and observer.url == f"http://127.0.0.1:{port}/metrics"
    processor.observer = observer
    scraped: list[str] = []

    def progress(done: int, _total: int | None) -> None:
        if done >= SCRAPE_AT and not scraped:  # mid-run: the job is still processing events
            with urllib.request.urlopen(observer.url, timeout=10) as r:
                scraped.append(r.read().decode())

    processor.progress = progress
    try:
        report = processor.run()
    finally:
        observer.close()
    assert report.processed == N_EVENTS
    assert scraped, "the progress hook never scraped /metrics"
    fam = _families(scraped[0])
    (events,) = [s for s in fam["framework_events_processed"].samples if s.name.endswith("_total")]
    # counted when the scrape happened (other streams may commit meanwhile), not only at the end
    assert SCRAPE_AT <= events.value < N_EVENTS
    counts = {(s.labels["module"], s.labels["phase"]): s.value
              for s in fam["framework_module_seconds"].samples if s.name.endswith("_count")}
    modules = {m for m, _ in counts}
    assert modules, "no module timed"
    assert all(p in ("acquire", "wait", "produce") for _, p in counts)
    assert all(0 < v <= N_EVENTS for v in counts.values())
    # after the job: every event counted, each scheduled producer once per event
    final = _families(_scrape_registry(observer))
    (events,) = [s for s in final["framework_events_processed"].samples if s.name.endswith("_total")]
    assert events.value == N_EVENTS
    final_counts = {(s.labels["module"], s.labels["phase"]): s.value
                    for s in final["framework_module_seconds"].samples if s.name.endswith("_count")}
    assert {m for m, _ in final_counts} == modules
    assert all(v == N_EVENTS for (_, p), v in final_counts.items() if p == "produce")  # once per event each


def _scrape_registry(observer) -> str:
    from prometheus_client import generate_latest

    return generate_latest(observer.registry).decode()


def test_busy_metrics_port_is_a_clear_error(shared_dir, sample_file, run_framework):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        r = run_framework("run", CONFIG, f"inputFiles={sample_file}", "maxEvents=1", f"metricsPort={port}")
    assert r.returncode == 2, r.stderr
    assert f"metricsPort={port}" in r.stderr and "in use" in r.stderr
    assert "Traceback" not in r.stderr


def test_metrics_port_out_of_range_is_refused(sample_file, run_framework):
    r = run_framework("run", CONFIG, f"inputFiles={sample_file}", "maxEvents=1", "metricsPort=70000")
    assert r.returncode == 2 and "metricsPort" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize("value", ["0"])
def test_metrics_off_builds_no_observer(value):
    from framework.config import varparsing

    opts = varparsing.Options(argv=[f"metricsPort={value}"]).parseArguments()
    assert job_observer(opts) is None


@pytest.mark.triton
def test_sonic_job_and_triton_metrics_scraped_during_the_run(repo_root, sample_file, tmp_path):
    """Metrics and trace together on a SONIC job: the job's and Triton's /metrics scraped mid-run; the trace has
    a slice per SONIC request, named by model, on its own track."""
    from framework.monitoring.job import set_active
    from framework.server import LocalTritonServer
    from tests.main_fixtures import MODELS, SERVER_OK, SERVER_REASON

    if not SERVER_OK:
        pytest.skip(SERVER_REASON)
    port = _free_port()
    with LocalTritonServer([MODELS], device="cpu", models=["particletransformer_AK4", "deepmet"]) as server:
        assert server.metrics_url.startswith("http://127.0.0.1:") and server.metrics_url.endswith("/metrics")
        grpc_address = server.grpc_address
        process, opts = load_config(str(repo_root / CONFIG), [
            f"inputFiles={sample_file}", f"maxEvents={N_EVENTS}", f"metricsPort={port}", "sonic=1",
            f"traceFile={tmp_path / 'trace.json'}",
            "address=127.0.0.1", f"port={server.grpc_port}"])
        processor = EventProcessor(process)
        observer = job_observer(opts)
        processor.observer = observer
        metrics_url = next(o.url for o in observer.observers if hasattr(o, "url"))  # metrics and trace: a group
        scraped: dict[str, str] = {}

        def progress(done: int, _total: int | None) -> None:
            if done >= SCRAPE_AT and not scraped:
                for name, url in (("job", metrics_url), ("triton", server.metrics_url)):
                    with urllib.request.urlopen(url, timeout=10) as r:
                        scraped[name] = r.read().decode()

        processor.progress = progress
        set_active(observer)
        try:
            report = processor.run()
        finally:
            set_active(None)
            observer.close()
    assert report.processed == N_EVENTS
    job = _families(scraped["job"])
    req = [s for s in job["framework_sonic_request_seconds"].samples if s.name.endswith("_count")]
    assert {s.labels["model"] for s in req} == {"particletransformer_AK4", "deepmet"}
    assert all(s.labels["protocol"] == "grpc" and s.labels["server"] == grpc_address
               for s in req)
    assert all(s.value >= 1 for s in req)
    phases = {s.labels["phase"] for s in job["framework_module_seconds"].samples}
    assert {"acquire", "wait", "produce"} <= phases  # the SONIC twins are external producers
    triton = _families(scraped["triton"])
    counts = {s.labels["model"]: s.value for s in triton["nv_inference_count"].samples}
    assert counts.get("particletransformer_AK4", 0) >= 1 and counts.get("deepmet", 0) >= 1
    assert 'framework_sonic_server_up' in job and all(s.value == 1 for s in job["framework_sonic_server_up"].samples)
    trace = json.loads((tmp_path / "trace.json").read_text())["traceEvents"]
    sonic = [e for e in trace if e.get("cat") == "sonic"]
    assert {e["name"] for e in sonic} == {"SONIC particletransformer_AK4", "SONIC deepmet"}, {e["name"] for e in sonic}
    assert all(e["ph"] == "X" and e["dur"] > 0 and e["tid"] == 1000 and e["args"]["server"] == grpc_address
               for e in sonic)
    assert sum(e["args"]["model"] == "deepmet" for e in sonic) == N_EVENTS  # one DeepMET request per event
    tracks = {e["args"]["name"] for e in trace if e["ph"] == "M"}
    assert "SONIC requests" in tracks and any(t.startswith("stream ") for t in tracks), tracks
