"""Event-count edges: 0, 1, N and all events, maxEvents beyond the input, skipEvents (also across
two files), several input files in order, and an input file with no entries."""

from __future__ import annotations

import numpy as np
import pytest
import uproot

import framework.config as cms
import tests.plugins as plugins
from framework.core.processor import EventProcessor
from framework.exceptions import InputError
from tests.conftest import SAMPLE_EVENTS

ID_BRANCHES = ["run", "luminosityBlock", "event"]
SECOND_EVENTS = 25


@pytest.fixture(scope="module")
def second_file(tmp_path_factory, generate_sample):
    """Another generated file (another seed: different content, same event numbers 1..N)."""
    path = tmp_path_factory.mktemp("second") / "second.root"
    generate_sample(path, SECOND_EVENTS, 987)
    return path


@pytest.fixture(scope="module")
def empty_file(tmp_path_factory):
    """A file whose Events tree has the usual branches and no entries."""
    path = tmp_path_factory.mktemp("empty") / "empty.root"
    with uproot.recreate(path) as f:
        f.mktree("Events", {"run": np.uint32, "luminosityBlock": np.uint32, "event": np.uint64, "MET_pt": np.float32})
    return path


def _read(path, branches):
    with uproot.open(path) as f:
        tree = f["Events"]
        return {b: tree[b].array(library="np") for b in branches}, tree.num_entries


def _root_process(files, out, *, max_events=-1, skip=None, chunk=1000):
    process = cms.Process("COUNT")
    # the files share their event numbers (and one is read twice): keep every entry (tests/test_io_duplicates.py
    # covers the skipping of repeats)
    params = {"fileNames": [str(f) for f in files], "chunkSize": chunk, "duplicateCheckMode": "noDuplicateCheck"}
    if skip is not None:
        params["skipEvents"] = skip
    process.source = cms.Source("RootSource", **params)
    process.maxEvents.input = max_events
    process.ana = cms.EDAnalyzer("TestCountingAnalyzer")
    process.p = cms.Path(process.ana)
    process.out = cms.OutputModule(
        "RootOutputModule", fileName=str(out), outputCommands=["drop *", "keep run", "keep luminosityBlock",
                                                               "keep event", "keep MET_pt"]
    )
    process.e = cms.EndPath(process.out)
    return process


def _expected(files, branches=(*ID_BRANCHES, "MET_pt")):
    parts = [_read(f, branches)[0] for f in files]
    return {b: np.concatenate([p[b] for p in parts]) for b in branches}


# ------------------------------------------------------------------------------------------ EmptySource
@pytest.mark.parametrize("n", [0, 1, 7])
def test_empty_source_processes_exactly_max_events(n):
    process = cms.Process("COUNT")
    process.source = cms.Source("EmptySource", firstRun=3, firstEvent=10)
    process.maxEvents.input = n
    process.ana = cms.EDAnalyzer("TestCountingAnalyzer")
    process.p = cms.Path(process.ana)
    report = EventProcessor(process).run()
    assert report.processed == n and report.path_accepted == {"p": n}
    assert plugins.SEEN.get("ana", []) == list(range(10, 10 + n))
    assert report.warnings == []


def test_empty_source_ids_skip_and_lumi_blocks():
    process = cms.Process("COUNT")
    process.source = cms.Source("EmptySource", firstRun=2, numberEventsInLuminosityBlock=3, skipEvents=4)
    process.maxEvents.input = 5
    process.ana = cms.EDAnalyzer("TestCountingAnalyzer")
    process.p = cms.Path(process.ana)
    EventProcessor(process).run()
    # events 5..9 (4 skipped); the lumi advances every 3 events
    assert plugins.IDS["ana"] == [(2, 2, 5), (2, 2, 6), (2, 3, 7), (2, 3, 8), (2, 3, 9)]


def test_empty_source_needs_max_events():
    process = cms.Process("COUNT")
    process.source = cms.Source("EmptySource")
    with pytest.raises(InputError, match="set maxEvents"):
        EventProcessor(process).run()


# ------------------------------------------------------------------------------------------ RootSource
@pytest.mark.parametrize("n", [0, 1, 13, -1])
def test_root_source_processes_0_1_n_and_all_events(sample_file, tmp_path, n):
    out = tmp_path / "out.root"
    report = EventProcessor(_root_process([sample_file], out, max_events=n)).run()
    expected_n = SAMPLE_EVENTS if n < 0 else n
    assert report.processed == expected_n and report.written == {"out": expected_n}
    assert report.warnings == []
    got, entries = _read(out, [*ID_BRANCHES, "MET_pt"])
    want = _expected([sample_file])
    assert entries == expected_n
    for b in got:
        assert np.array_equal(got[b], want[b][:expected_n]), b
        assert got[b].dtype == want[b].dtype, b
    assert plugins.SEEN.get("ana", []) == want["event"][:expected_n].tolist()


def test_max_events_beyond_the_file_processes_what_exists_and_says_so(sample_file, tmp_path):
    out = tmp_path / "out.root"
    report = EventProcessor(_root_process([sample_file], out, max_events=SAMPLE_EVENTS + 40)).run()
    assert report.processed == SAMPLE_EVENTS
    assert _read(out, ["event"])[1] == SAMPLE_EVENTS
    assert len(report.warnings) == 1
    msg = report.warnings[0]
    assert f"maxEvents={SAMPLE_EVENTS + 40}" in msg and f"only {SAMPLE_EVENTS} events" in msg
    assert f"processed {SAMPLE_EVENTS}" in msg


@pytest.mark.parametrize(("skip", "n"), [(10, 5), (10, -1), (SAMPLE_EVENTS - 1, -1)])
def test_skip_events_starts_at_the_right_event(sample_file, tmp_path, skip, n):
    out = tmp_path / "out.root"
    report = EventProcessor(_root_process([sample_file], out, max_events=n, skip=skip, chunk=8)).run()
    want = _expected([sample_file])
    stop = None if n < 0 else skip + n
    got, entries = _read(out, [*ID_BRANCHES, "MET_pt"])
    assert entries == report.processed == len(want["event"][skip:stop])
    for b in got:
        assert np.array_equal(got[b], want[b][skip:stop]), b
    assert got["event"][0] == want["event"][skip]


def test_skip_events_beyond_the_input_processes_nothing_and_says_so(sample_file, tmp_path):
    out = tmp_path / "out.root"
    report = EventProcessor(_root_process([sample_file], out, skip=SAMPLE_EVENTS + 5)).run()
    assert report.processed == 0
    assert any(f"skipEvents={SAMPLE_EVENTS + 5}" in w for w in report.warnings), report.warnings
    assert _read(out, ["event"])[1] == 0


def test_several_input_files_are_read_in_order(sample_file, second_file, tmp_path):
    out = tmp_path / "out.root"
    files = [second_file, sample_file, second_file]
    report = EventProcessor(_root_process(files, out, chunk=10)).run()
    want = _expected(files)
    assert report.processed == 2 * SECOND_EVENTS + SAMPLE_EVENTS
    got, _ = _read(out, [*ID_BRANCHES, "MET_pt"])
    for b in got:
        assert np.array_equal(got[b], want[b]), b


@pytest.mark.parametrize(("skip", "n"), [(SAMPLE_EVENTS + 3, -1), (SAMPLE_EVENTS - 4, 10), (SAMPLE_EVENTS, 2)])
def test_skip_events_across_two_files(sample_file, second_file, tmp_path, skip, n):
    out = tmp_path / "out.root"
    files = [sample_file, second_file]
    report = EventProcessor(_root_process(files, out, max_events=n, skip=skip, chunk=7)).run()
    want = _expected(files)
    stop = None if n < 0 else skip + n
    got, _ = _read(out, [*ID_BRANCHES, "MET_pt"])
    assert report.processed == len(want["event"][skip:stop])
    for b in got:
        assert np.array_equal(got[b], want[b][skip:stop]), b


def test_input_file_with_zero_entries(empty_file, tmp_path):
    out = tmp_path / "out.root"
    report = EventProcessor(_root_process([empty_file], out)).run()
    assert report.processed == 0 and report.written == {"out": 0}
    assert any("holds no events" in w for w in report.warnings), report.warnings
    assert "ana" not in plugins.SEEN
    got, entries = _read(out, [*ID_BRANCHES, "MET_pt"])
    assert entries == 0 and got["MET_pt"].dtype == np.float32


def test_empty_file_between_two_files(sample_file, empty_file, second_file, tmp_path):
    out = tmp_path / "out.root"
    report = EventProcessor(_root_process([sample_file, empty_file, second_file], out, skip=SAMPLE_EVENTS - 2)).run()
    assert report.processed == 2 + SECOND_EVENTS
    got, _ = _read(out, ["MET_pt"])
    assert np.array_equal(got["MET_pt"], _expected([sample_file, second_file])["MET_pt"][SAMPLE_EVENTS - 2:])
