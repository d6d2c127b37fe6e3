"""ExternalWork: acquire before produce, exceptions from the external work, several events in flight
on one thread, and results (and their order) independent of the number of streams and threads."""

from __future__ import annotations

import awkward as ak
import numpy as np
import pytest
import uproot

import framework.config as cms
import tests.plugins as plugins
from framework.core.processor import EventProcessor
from framework.exceptions import ModuleError
from tests.conftest import SAMPLE_EVENTS


def _empty_process(n, streams, threads, max_delay=0.01):
    process = cms.Process("EXT")
    process.source = cms.Source("EmptySource")
    process.maxEvents.input = n
    process.options.numberOfStreams = streams
    process.options.numberOfThreads = threads
    process.ext = cms.EDProducer("TestTimerExternalProducer", maxDelay=max_delay)
    process.p = cms.Path(process.ext)
    return process


def _phases(label="ext"):
    """event -> list of (what, index in the log) for module *label*."""
    out: dict[int, list[tuple[str, int]]] = {}
    for i, (_, ev, what, _, _) in enumerate(plugins.LOG.records(label)):
        out.setdefault(ev, []).append((what, i))
    return out


def _max_in_flight(label="ext"):
    in_flight = peak = 0
    for _, _, what, _, _ in plugins.LOG.records(label):
        if what == "acquire":
            in_flight += 1
        elif what == "produce":
            in_flight -= 1
        peak = max(peak, in_flight)
    return peak


@pytest.mark.parametrize(("streams", "threads"), [(1, 1), (4, 1), (4, 2)])
def test_acquire_then_work_then_produce_for_every_event(tmp_path, streams, threads):
    n = 30
    process = _empty_process(n, streams, threads)
    process.out = cms.OutputModule("RootOutputModule", fileName=str(tmp_path / "o.root"), outputCommands=["keep ext"])
    process.e = cms.EndPath(process.out)
    report = EventProcessor(process).run()
    assert report.processed == n

    phases = _phases()
    assert sorted(phases) == list(range(1, n + 1))
    for ev, seq in phases.items():
        assert [what for what, _ in seq] == ["acquire", "done", "produce"], (ev, seq)
    with uproot.open(tmp_path / "o.root") as f:
        assert f["Events"]["ext"].array(library="np").tolist() == [10 * k for k in range(1, n + 1)]
    timing = report.timing.modules["ext"]
    assert timing.calls == n and timing.wait > 0


def test_several_events_in_flight_on_one_thread():
    process = _empty_process(24, streams=4, threads=1, max_delay=0.02)
    EventProcessor(process).run()
    assert _max_in_flight() >= 3, plugins.LOG.records()
    # acquire and produce all ran on the single framework thread; the work ran on timer threads
    framework_threads = {t for _, _, what, t, _ in plugins.LOG.records() if what in ("acquire", "produce")}
    assert len(framework_threads) == 1
    assert not framework_threads & {t for _, _, what, t, _ in plugins.LOG.records() if what == "done"}


def test_one_stream_has_one_event_in_flight():
    EventProcessor(_empty_process(10, streams=1, threads=1)).run()
    assert _max_in_flight() == 1


@pytest.mark.parametrize(("streams", "threads"), [(1, 1), (4, 1), (3, 2)])
def test_exception_given_to_done_waiting_propagates_with_label_and_event(tmp_path, streams, threads):
    process = cms.Process("EXT")
    process.source = cms.Source("EmptySource", firstRun=5)
    process.maxEvents.input = 20
    process.options.numberOfStreams = streams
    process.options.numberOfThreads = threads
    process.remote = cms.EDProducer("TestFailingExternalProducer", failOnEvent=9)
    process.p = cms.Path(process.remote)
    process.out = cms.OutputModule("RootOutputModule", fileName=str(tmp_path / "o.root"))
    process.e = cms.EndPath(process.out)
    with pytest.raises(ModuleError) as err:
        EventProcessor(process).run()
    msg = str(err.value)
    assert err.value.label == "remote"
    assert isinstance(err.value.cause, plugins.ExternalWorkFailure)
    assert "module 'remote' (TestFailingExternalProducer)" in msg
    assert "run 5, lumi 1, event 9" in msg
    assert "ExternalWorkFailure: remote inference server refused event 9" in msg
    assert "produce" not in [what for what, _ in _phases("remote").get(9, [])]
    assert list(tmp_path.iterdir()) == []  # no output, no temporary file


def test_exception_from_external_work_with_a_root_file_names_the_file(sample_file):
    process = cms.Process("EXT")
    process.source = cms.Source("RootSource", fileNames=[str(sample_file)])
    process.options.numberOfStreams = 2
    process.remote = cms.EDProducer("TestFailingExternalProducer", failOnEvent=4)
    process.p = cms.Path(process.remote)
    with pytest.raises(ModuleError) as err:
        EventProcessor(process).run()
    assert f"event 4 (entry 3 of {sample_file})" in str(err.value)


# ------------------------------------------------------------------------------------------ determinism
def _full_process(sample_file, out, streams, threads):
    process = cms.Process("DET")
    process.source = cms.Source("RootSource", fileNames=[str(sample_file)], chunkSize=16)
    process.options.numberOfStreams = streams
    process.options.numberOfThreads = threads
    process.prod = cms.EDProducer("TestEventNumberProducer", size=5, seed=3)
    process.ext = cms.EDProducer("TestTimerExternalProducer", maxDelay=0.01)
    process.sum = cms.EDProducer("TestBranchSumProducer", src="Jet_pt")
    process.od = cms.EDProducer("TestOnDemandProducer")
    process.cons = cms.EDProducer("TestTagConsumer", src=cms.InputTag("od"))
    process.flt = cms.EDFilter("TestEvenFilter")
    process.p = cms.Path(process.prod, process.ext, process.sum, process.cons, cms.Task(process.od))
    process.p2 = cms.Path(process.flt)
    process.out = cms.OutputModule(
        "RootOutputModule", fileName=str(out), flushEvents=7,
        outputCommands=["drop *", "keep run", "keep luminosityBlock", "keep event", "keep Jet_pt", "keep Jet_eta",
                        "keep MET_*", "keep prod_*", "keep ext", "keep sum", "keep cons", "keep od"],
    )
    process.e = cms.EndPath(process.out)
    return process


def _columns(path):
    with uproot.open(path) as f:
        tree = f["Events"]
        arrays = tree.arrays(library="ak")
        out = {}
        for name in tree.keys():
            col = arrays[name]
            if col.ndim > 1:
                out[name] = (np.asarray(ak.num(col)), np.asarray(ak.flatten(col)))
            else:
                out[name] = (None, np.asarray(col))
        return out


def test_output_identical_for_1_and_4_streams_and_threads(sample_file, tmp_path):
    runs = {}
    for streams, threads in [(1, 1), (4, 4), (4, 1)]:
        out = tmp_path / f"out_{streams}_{threads}.root"
        plugins.LOG.clear()
        report = EventProcessor(_full_process(sample_file, out, streams, threads)).run()
        assert report.processed == SAMPLE_EVENTS and report.path_accepted == {"p": SAMPLE_EVENTS, "p2": 30}
        runs[(streams, threads)] = _columns(out)
        if streams == 4:
            assert _max_in_flight() >= 2

    reference = runs[(1, 1)]
    assert {"Jet_pt", "nJet", "MET_pt", "prod_values", "ext", "sum", "cons", "od", "event"} <= set(reference)
    for key, columns in runs.items():
        assert list(columns) == list(reference), key
        for name, (counts, content) in columns.items():
            ref_counts, ref_content = reference[name]
            assert content.dtype == ref_content.dtype, (key, name)
            assert content.tobytes() == ref_content.tobytes(), (key, name)
            if counts is not None:
                assert np.array_equal(counts, ref_counts), (key, name)

    with uproot.open(sample_file) as f:
        events = f["Events"]["event"].array(library="np")
    assert np.array_equal(reference["event"][1], events)  # written in input order
    assert reference["ext"][1].tolist() == (events * 10).tolist()


def test_events_written_in_input_order_when_they_finish_out_of_order(tmp_path):
    n = 40
    process = _empty_process(n, streams=4, threads=2, max_delay=0.03)
    process.prod = cms.EDProducer("TestEventNumberProducer")
    process.p = cms.Path(process.ext, process.prod)
    process.out = cms.OutputModule("RootOutputModule", fileName=str(tmp_path / "o.root"), flushEvents=5)
    process.e = cms.EndPath(process.out)
    EventProcessor(process).run()
    produced = [ev for _, ev, what, _, _ in plugins.LOG.records("ext") if what == "produce"]
    assert sorted(produced) == list(range(1, n + 1))
    assert produced != sorted(produced), "precondition: the events finished out of order"
    with uproot.open(tmp_path / "o.root") as f:
        assert f["Events"]["prod_number"].array(library="np").tolist() == list(range(1, n + 1))
        assert f["Events"]["ext"].array(library="np").tolist() == [10 * k for k in range(1, n + 1)]
