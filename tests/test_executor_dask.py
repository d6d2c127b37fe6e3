"""executor=dask: the main job over several generated files equals the sequential run (every branch, same order);
at least two worker processes do the work; a worker killed mid-job has its item retried, the output complete and
without duplicates; a corrupt file with and without skipBadFiles. Nothing is left behind: no worker or server
process, no part or temporary file, no shared-memory region."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import uproot

from framework.exceptions import InputError
from framework.executor import plan, run_dask
from framework.executor.planning import FileInfo, count_blocks, cut_range
from framework.runner import run_config
from framework.samples import generate
from tests.dask_modules import LIGHT_CONFIG
from tests.main_fixtures import (
    SCORE_ATOL,
    SCORE_BRANCHES,
    SERVER_OK,
    SERVER_REASON,
    assert_same_events,
    flat,
    read_output,
)

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
MAIN_CONFIG = str(REPO / "configs" / "miniaod_cfg.py")
EVENTS = 200  # per file; lumis of 100 events
NFILES = 4


# ----------------------------------------------------------------------------- fixtures and helpers
@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> list[str]:
    d = tmp_path_factory.mktemp("dask_inputs")
    paths = [str(d / f"f{i}.root") for i in range(NFILES)]
    for i, p in enumerate(paths):
        generate(p, EVENTS, seed=100 + i, first_event=1 + i * EVENTS)  # run 1 throughout, no event repeated
    return paths


@pytest.fixture(scope="module")
def light_config(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("dask_cfg") / "light_cfg.py"
    path.write_text(LIGHT_CONFIG)
    return str(path)


def descendants() -> set[int]:
    """PIDs of the live descendants of this process, but Python's multiprocessing resource tracker: started with
    the first spawned process, it lives as long as this process (by design), like the CLI's."""
    return {p for p in _descendants_of(os.getpid()) if "multiprocessing.resource_tracker" not in _cmdline(p)}


def _parent(pid: int) -> int:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0
    return int(text[text.rfind(")") + 2:].split()[1])


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_text().replace("\0", " ")
    except OSError:
        return ""


def shm_regions() -> set[str]:
    """The framework's shared-memory regions (``cmsfw_sonic_PID_...``, ``cmsfw_triton_PID_...``), but those of
    live processes that are not this one's (other jobs on the machine)."""
    mine = descendants() | {os.getpid()}
    found = set()
    for name in os.listdir("/dev/shm") if os.path.isdir("/dev/shm") else []:
        fields = name.split("_")
        if len(fields) < 3 or fields[0] != "cmsfw" or not fields[2].isdigit():
            continue
        pid = int(fields[2])
        if pid in mine or not Path(f"/proc/{pid}").exists():
            found.add(name)
    return found


class LeftBehind:
    """Checks that a block leaves no process, shared-memory region or file (in *directory*) behind."""

    def __init__(self, directory: Path, expected: set[str]):
        self.directory, self.expected = directory, expected

    def __enter__(self):
        self.procs, self.shm = descendants(), shm_regions()
        return self

    def __exit__(self, *exc):
        deadline = time.monotonic() + 10
        while descendants() - self.procs and time.monotonic() < deadline:
            time.sleep(0.2)
        assert descendants() - self.procs == set(), "processes left behind"
        assert shm_regions() - self.shm == set(), "shared-memory regions left behind"
        assert set(os.listdir(self.directory)) == self.expected, "parts or temporary files left behind"


def trees(path: str) -> dict[str, dict[str, list]]:
    """Every tree's branches (name -> values as lists, in order) and branch types."""
    out = {}
    with uproot.open(path) as f:
        for name, cls in f.classnames(cycle=False).items():
            if cls == "TTree":
                t = f[name]
                out[name] = {b.name: (b.typename, ak.to_list(b.array(library="ak"))) for b in t.branches}
    return out


def events(path: str) -> list[tuple[int, int, int]]:
    with uproot.open(path) as f:
        a = f["Events"].arrays(["run", "luminosityBlock", "event"], library="np")
    return list(zip(a["run"].tolist(), a["luminosityBlock"].tolist(), a["event"].tolist()))


def corrupt_baskets(src: str, dst: str) -> None:
    """A copy of *src* that opens, but whose Jet_pt baskets do not decompress."""
    data = bytearray(Path(src).read_bytes())
    with uproot.open(src) as f:
        b = f["Events"]["Jet_pt"]
        seeks = [int(s) for s in b.member("fBasketSeek")[: b.num_baskets]]
    for s in seeks:
        data[s + 80: s + 208] = b"\x00garbage" * 16
    Path(dst).write_bytes(bytes(data))


# ----------------------------------------------------------------------------- planning (fast)
def test_plan_cuts_at_lumi_boundaries_and_honours_skip_and_max(inputs):
    p = plan(inputs, chunk_size=100)
    assert [(i.file_index, i.start, i.stop) for i in p.items] == [(f, a, a + 100) for f in range(NFILES) for a in (0, 100)]
    assert p.items[1].first == (1, 2) and p.items[1].last == (1, 2)
    # 150 entries from entry 250 on: the end of file 1 (250..400) then nothing
    p = plan(inputs, chunk_size=1000, skip=250, max_events=150)
    assert [(i.file_index, i.start, i.stop) for i in p.items] == [(1, 50, 200)]
    # 3 items of ~67: the first cut moves to the lumi boundary at 100, the second (133) has none near
    p = plan(inputs[:1], chunk_size=70)
    assert [(i.start, i.stop) for i in p.items] == [(0, 100), (100, 133), (133, 200)]
    # without a lumi boundary within half an item: the nearest cluster boundary
    info = FileInfo("x.root", 1000, clusters=[0, 250, 500, 750, 1000], lumi_starts=[])
    assert cut_range(info, 0, 1000, 300) == [0, 250, 750, 1000]
    info.lumi_starts = [400]
    assert cut_range(info, 0, 1000, 300) == [0, 400, 750, 1000]
    # each item counts the run and its lumis; consecutive items continue them
    assert count_blocks(plan(inputs, chunk_size=100).items, [(1, 1)] * 8) == (1, 8)


def test_plan_bad_file_is_an_error_or_skipped(inputs, tmp_path):
    bad = tmp_path / "bad.root"
    bad.write_bytes(b"not a ROOT file" * 100)
    with pytest.raises(InputError, match="bad.root"):
        plan([inputs[0], str(bad)])
    p = plan([inputs[0], str(bad)], skip_bad=True)
    assert [b.path for b in p.bad] == [str(bad)] and len(p.items) == 1


# ----------------------------------------------------------------------------- the main job
@pytest.fixture(scope="module")
def sequential_main(inputs, tmp_path_factory):
    """The main job (direct) over the files in one process: (report, output path)."""
    out = tmp_path_factory.mktemp("dask_seq") / "seq.root"
    report, _ = run_config(MAIN_CONFIG, [f"inputFiles={','.join(inputs)}", "wantSummary=0", f"outputFile={out}"],
                           progress=False)
    return report, str(out)


def test_main_job_on_dask_equals_sequential(inputs, sequential_main, tmp_path):
    seq_report, seq_out = sequential_main
    with LeftBehind(tmp_path, {"dask.root"}):
        report, _, summary = run_dask(MAIN_CONFIG, [f"inputFiles={','.join(inputs)}", "wantSummary=0",
                                                     f"outputFile={tmp_path / 'dask.root'}", "executor=dask",
                                                     "workers=2", "chunkSize=100"], progress=False)
    seq, par = trees(seq_out), trees(str(tmp_path / "dask.root"))
    assert list(par) == list(seq) == ["Events", "LuminosityBlocks", "Runs"]
    for tree in seq:
        assert list(par[tree]) == list(seq[tree]), tree  # same branches, same order
        for branch, (typename, values) in seq[tree].items():
            assert par[tree][branch][0] == typename, branch
            assert par[tree][branch][1] == values, f"{tree}/{branch} differs"
    assert len(seq["Events"]["event"][1]) == NFILES * EVENTS
    assert summary.items == 2 * NFILES
    assert len(summary.workers) >= 2, f"only {summary.workers} did work"
    assert (report.processed, report.written, report.path_accepted) == (
        seq_report.processed, seq_report.written, seq_report.path_accepted)
    assert (report.runs, report.lumis) == (seq_report.runs, seq_report.lumis) == (1, 2 * NFILES)
    assert {k: m.calls for k, m in report.timing.modules.items()} == {
        k: m.calls for k, m in seq_report.timing.modules.items()}


@pytest.mark.triton
@pytest.mark.skipif(not SERVER_OK, reason=SERVER_REASON)
def test_sonic_on_dask_one_server_for_all_workers(inputs, sequential_main, tmp_path):
    """sonic=1: the driver starts the local fallback server once; both workers use it; the products agree with
    the direct run: the events identical, ParT scores within the twins' 1e-5, DeepMET within 3e-4 x pt. Not the
    twins' 1e-4: batched on the server with a request of the other worker, event 361 here (file 1, entry 161)
    moves by 1.2e-4 x pt; a sequential SONIC run with 8 streams gives the same value (server batching, not the
    executor)."""
    servers: dict[int, str] = {}
    running = threading.Event()
    running.set()

    def watch():
        while running.is_set():
            for p in descendants():
                # a server's Python backend forks it to exec each stub: the child, until its exec, is no server
                if "bin/tritonserver" in _cmdline(p) and "bin/tritonserver" not in _cmdline(_parent(p)):
                    servers.setdefault(p, _cmdline(p)[:160])
            time.sleep(0.2)

    watcher = threading.Thread(target=watch, daemon=True)
    with LeftBehind(tmp_path, {"sonic.root"}):
        watcher.start()
        try:
            args = [f"inputFiles={','.join(inputs)}", "maxEvents=400", "sonic=1", "numThreads=1", "numStreams=1",
                    "wantSummary=0", f"outputFile={tmp_path / 'sonic.root'}", "executor=dask", "workers=2",
                    "chunkSize=100"]
            report, _, summary = run_dask(MAIN_CONFIG, args, progress=False)
        finally:
            running.clear()
            watcher.join()
    assert len(servers) == 1, f"tritonserver processes started: {servers}"
    assert summary.shared_server and len(summary.workers) >= 2 and report.processed == 400
    direct = {k: v[:400] for k, v in read_output(sequential_main[1]).items()}
    sonic = read_output(tmp_path / "sonic.root")
    assert_same_events(direct, sonic, "direct (sequential) vs SONIC on dask")
    for name in SCORE_BRANCHES:
        assert np.abs(flat(direct[name]) - flat(sonic[name])).max() <= SCORE_ATOL, name
    pt = np.abs(flat(direct["deepMETProducer_pt"]))
    for comp in ("px", "py", "pt"):
        diff = np.abs(flat(direct[f"deepMETProducer_{comp}"]) - flat(sonic[f"deepMETProducer_{comp}"]))
        assert (diff <= 3e-4 * pt).all(), (comp, float((diff / pt).max()))


# ----------------------------------------------------------------------------- a killed worker
def test_killed_worker_is_retried_output_complete_without_duplicates(inputs, light_config, tmp_path):
    marker = tmp_path / "killed"
    out = tmp_path / "dask.root"
    common = [f"inputFiles={','.join(inputs)}", f"killMarker={marker}", "killEvent=150"]
    # the reference: the sequential job (the marker exists: nothing is killed)
    marker.write_text("disarmed")
    run_config(light_config, [*common, f"outputFile={tmp_path / 'seq.root'}"], progress=False)
    marker.unlink()
    with LeftBehind(tmp_path, {"seq.root", "dask.root", "killed"}):
        report, _, summary = run_dask(light_config, [*common, f"outputFile={out}", "executor=dask", "workers=2",
                                                     "chunkSize=100"], progress=False)
    killed = int(marker.read_text())
    assert len(summary.retried) == 1, summary.retried  # exactly one item ran twice
    (pids,) = summary.retried.values()
    assert pids[0] == killed and pids[1] != killed, pids
    assert any("ran 2 times" in line for line in summary.lines())
    ids = events(str(out))
    assert len(ids) == NFILES * EVENTS and ids == events(str(tmp_path / "seq.root"))  # complete, in order, once
    assert report.processed == NFILES * EVENTS
    seq, par = trees(str(tmp_path / "seq.root")), trees(str(out))
    assert par["Events"] == seq["Events"]
    assert par["LuminosityBlocks"] == seq["LuminosityBlocks"]  # items are cut at lumi boundaries
    # run 1 spans every item: one row per item, counts adding up to the sequential one; the histogram summed
    assert sum(par["Runs"]["sums_nEvents"][1]) == sum(seq["Runs"]["sums_nEvents"][1]) == NFILES * EVENTS
    assert len(par["Runs"]["run"][1]) == 2 * NFILES
    assert any(w.startswith("Runs: runs 1 span several work items") for w in report.warnings)
    with uproot.open(out) as a, uproot.open(tmp_path / "seq.root") as b:
        hists = [k for k, c in b.classnames(recursive=True, cycle=False).items() if c.startswith("TH1")]
        assert len(hists) == 1 and hists[0].startswith("DQMData/Run 1/sums/")
        assert [k for k, c in a.classnames(recursive=True, cycle=False).items() if c.startswith("TH1")] == hists
        h = hists[0]
        assert np.array_equal(a[h].values(), b[h].values()) and a[h].values().sum() == NFILES * EVENTS


# ----------------------------------------------------------------------------- corrupt files
def test_corrupt_files_skipped_with_skipBadFiles_on_a_running_scheduler(inputs, light_config, tmp_path):
    """Also scheduler=ADDRESS: the job uses a running cluster's workers and leaves them running."""
    from dask.distributed import LocalCluster

    garbage = tmp_path / "garbage.root"
    garbage.write_bytes(b"this is not a ROOT file\n" * 1000)
    broken = tmp_path / "broken.root"
    corrupt_baskets(inputs[1], str(broken))
    files = [inputs[0], str(garbage), inputs[2], str(broken)]
    run_config(light_config, [f"inputFiles={inputs[0]},{inputs[2]}", f"outputFile={tmp_path / 'seq.root'}"],
               progress=False)
    expected = {"seq.root", "dask.root", "garbage.root", "broken.root"}
    with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None) as cluster:
        with LeftBehind(tmp_path, expected):
            report, _, summary = run_dask(light_config, [f"inputFiles={','.join(files)}", "executor=dask",
                                                         f"outputFile={tmp_path / 'dask.root'}", "chunkSize=100",
                                                         f"scheduler={cluster.scheduler_address}", "skipBadFiles=1"],
                                          progress=False)
        assert len(cluster.scheduler_info["workers"]) == 2  # still there
    assert summary.where.startswith(f"scheduler {cluster.scheduler_address}")
    assert trees(str(tmp_path / "dask.root"))["Events"] == trees(str(tmp_path / "seq.root"))["Events"]
    assert report.processed == 2 * EVENTS
    assert sorted(b.path for b in summary.bad_files) == sorted([str(garbage), str(broken)])
    lines = [x for x in summary.lines() if "skipped bad file" in x]
    assert len(lines) == 2 and any("garbage.root" in x and "ROOT file" in x for x in lines)
    assert any("broken.root" in x and "corrupt" in x for x in lines)
    assert sum("skipBadFiles" in w for w in report.warnings) == 2


def test_corrupt_basket_without_skipBadFiles_fails_naming_the_file(inputs, light_config, tmp_path):
    broken = tmp_path / "broken.root"
    corrupt_baskets(inputs[1], str(broken))
    with LeftBehind(tmp_path, {"broken.root"}):
        with pytest.raises(InputError, match=r"broken\.root.*corrupt") as e:
            run_dask(light_config, [f"inputFiles={inputs[0]},{broken}", f"outputFile={tmp_path / 'dask.root'}",
                                    "executor=dask", "workers=2"], progress=False)
    assert "work item 1" in str(e.value)


def test_unreadable_file_on_the_command_line_is_a_clear_error(inputs, light_config, tmp_path):
    garbage = tmp_path / "garbage.root"
    garbage.write_bytes(b"this is not a ROOT file\n" * 1000)
    with LeftBehind(tmp_path, {"garbage.root"}):
        r = subprocess.run([sys.executable, "-m", "framework", "run", light_config, "executor=dask",
                            f"inputFiles={inputs[0]},{garbage}", f"outputFile={tmp_path / 'out.root'}"],
                           capture_output=True, text=True, cwd=REPO, timeout=120)
    assert r.returncode == InputError.exit_code, r.stderr
    assert f"cannot read {garbage} as a ROOT file" in r.stderr and "Traceback" not in r.stderr
    r = subprocess.run([sys.executable, "-m", "framework", "run", light_config, "executor=dusk"],
                       capture_output=True, text=True, cwd=REPO, timeout=120)
    assert r.returncode == 2 and "Did you mean 'dask'" in r.stderr



# ----------------------------------------------------------------------------- interrupted
def test_sigterm_stops_the_workers_and_writes_nothing(inputs, light_config, tmp_path):
    """SIGTERM to the driver while work items run: exit 143, no output, no parts, no process of the job left."""
    out = tmp_path / "out.root"
    proc = subprocess.Popen([sys.executable, "-m", "framework", "run", light_config, "executor=dask", "workers=2",
                             "chunkSize=100", "sleepMs=20", f"inputFiles={','.join(inputs)}", f"outputFile={out}"],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not list(tmp_path.glob(".out.root.parts-*/attempts/item-*")):  # items are running
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.2)
        job = _descendants_of(proc.pid)
        assert sum("multiprocessing.spawn" in _cmdline(p) for p in job) == 2  # the workers
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143, err
    deadline = time.monotonic() + 10
    while [p for p in job if Path(f"/proc/{p}").exists()] and time.monotonic() < deadline:
        time.sleep(0.2)
    assert [p for p in job if Path(f"/proc/{p}").exists()] == []
    assert os.listdir(tmp_path) == []


def _descendants_of(pid: int) -> set[int]:
    """PIDs of the live (not zombie) descendants of *pid* (from /proc)."""
    parent: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        fields = text[text.rfind(")") + 2:].split()
        if fields[0] not in ("Z", "X"):
            parent[int(stat.parent.name)] = int(fields[1])
    found, todo = set(), [pid]
    while todo:
        p = todo.pop()
        for child, par in parent.items():
            if par == p and child not in found:
                found.add(child)
                todo.append(child)
    return found
