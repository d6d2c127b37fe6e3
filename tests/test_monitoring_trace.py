"""traceFile=: a Chrome trace of a real job (a track per stream, a slice per module phase)."""

from __future__ import annotations

import json

from framework.runner import run_config

CONFIG = "configs/miniaod_cfg.py"


def test_trace_has_a_track_per_stream_and_slices_per_module(repo_root, sample_file, tmp_path):
    trace = tmp_path / "trace.json"
    report, _ = run_config(str(repo_root / CONFIG), [f"inputFiles={sample_file}", "maxEvents=10", "numThreads=2",
                                                     "numStreams=2", f"traceFile={trace}"], progress=False)
    assert report.processed == 10
    data = json.loads(trace.read_text())
    events = data["traceEvents"]
    meta = [e for e in events if e["ph"] == "M"]
    slices = [e for e in events if e["ph"] == "X"]
    assert {e["tid"] for e in meta} == {e["tid"] for e in slices}
    assert {e["tid"] for e in slices} <= {0, 1} and len({e["tid"] for e in slices}) >= 1
    modules = {e["args"]["module"] for e in slices}
    assert modules and all(e["args"]["phase"] in ("acquire", "wait", "produce") for e in slices)
    per_module = {m: sum(1 for e in slices if e["args"]["module"] == m and e["args"]["phase"] == "produce")
                  for m in modules}
    assert all(n == 10 for n in per_module.values()), per_module  # one produce slice per event and module
    assert all(e["dur"] >= 0 and e["ts"] >= 0 for e in slices)
    for tid in {e["tid"] for e in slices}:
        ts = [e["ts"] for e in slices if e["tid"] == tid]
        assert ts == sorted(ts)
    assert [p.name for p in tmp_path.iterdir()] == ["trace.json"]  # no temporary file left


def test_no_trace_when_trace_file_is_empty(repo_root, sample_file, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run_config(str(repo_root / CONFIG), [f"inputFiles={sample_file}", "maxEvents=2"], progress=False)
    assert [p.name for p in tmp_path.iterdir()] == ["miniaod.root"]  # the job's output only: no trace written


def test_trace_in_a_missing_folder_is_a_clear_error(sample_file, tmp_path, run_framework):
    bad = tmp_path / "nope" / "trace.json"
    r = run_framework("run", CONFIG, f"inputFiles={sample_file}", "maxEvents=1", f"traceFile={bad}")
    assert r.returncode == 2, r.stderr
    assert "traceFile=" in r.stderr and "does not exist" in r.stderr and "Traceback" not in r.stderr
