"""Paths, filters, on-demand producers in Tasks, products and their errors, the summary."""

from __future__ import annotations

import numpy as np
import pytest
import uproot

import framework.config as cms
import tests.plugins as plugins
from framework.core.processor import EventProcessor
from framework.exceptions import ConfigurationError, ModuleError, ProductNotFoundError

N = 12


def _process(n=N, streams=1, threads=1):
    process = cms.Process("SCHED")
    process.source = cms.Source("EmptySource")
    process.maxEvents.input = n
    process.options.numberOfStreams = streams
    process.options.numberOfThreads = threads
    return process


# ------------------------------------------------------------------------------------------ filters
def test_filter_stops_its_path_only(tmp_path):
    process = _process()
    process.flt = cms.EDFilter("TestEvenFilter")
    process.after = cms.EDAnalyzer("TestCountingAnalyzer")
    process.other = cms.EDAnalyzer("TestCountingAnalyzer")
    process.prod = cms.EDProducer("TestEventNumberProducer")
    process.p = cms.Path(process.flt, process.after)
    process.p2 = cms.Path(process.prod, process.other)
    process.all = cms.OutputModule("RootOutputModule", fileName=str(tmp_path / "all.root"),
                                   outputCommands=["drop *", "keep prod_number"])
    process.sel = cms.OutputModule("RootOutputModule", fileName=str(tmp_path / "sel.root"),
                                   outputCommands=["drop *", "keep prod_number"], SelectEvents=["p"])
    process.e = cms.EndPath(process.all, process.sel)
    report = EventProcessor(process).run()

    evens = [n for n in range(1, N + 1) if n % 2 == 0]
    assert plugins.SEEN["after"] == evens
    assert plugins.SEEN["other"] == list(range(1, N + 1))
    assert report.path_accepted == {"p": len(evens), "p2": N}
    assert report.written == {"all": N, "sel": len(evens)}
    assert f"path p: {len(evens)} accepted, {N - len(evens)} rejected" in report.summary()
    with uproot.open(tmp_path / "sel.root") as f:
        assert f["Events"]["prod_number"].array(library="np").tolist() == evens
    with uproot.open(tmp_path / "all.root") as f:
        assert f["Events"]["prod_number"].array(library="np").tolist() == list(range(1, N + 1))


def test_paths_run_in_schedule_order():
    process = _process(n=3)
    process.prod = cms.EDProducer("TestEventNumberProducer")
    process.cons = cms.EDProducer("TestStringConsumer", product="prod:number")  # a dependency not declared
    process.p1 = cms.Path(process.prod)
    process.p2 = cms.Path(process.cons)
    process.schedule = cms.Schedule(process.p1, process.p2)
    assert EventProcessor(process).run().processed == 3

    process.schedule = cms.Schedule(process.p2, process.p1)  # now cons runs before prod
    with pytest.raises(ModuleError) as err:
        EventProcessor(process).run()
    assert err.value.label == "cons" and "no product 'prod:number'" in str(err.value)


# ------------------------------------------------------------------------------------------ on demand
def _on_demand_process(consumers, *, with_filter=False, streams=1, threads=1):
    process = _process(streams=streams, threads=threads)
    process.od = cms.EDProducer("TestOnDemandProducer")
    process.t = cms.Task(process.od)
    items = []
    if with_filter:
        process.flt = cms.EDFilter("TestEvenFilter")
        items.append(process.flt)
    for label, decl in consumers:
        setattr(process, label, decl)
        items.append(getattr(process, label))
    process.ana = cms.EDAnalyzer("TestCountingAnalyzer")
    process.p = cms.Path(*items, process.ana, process.t)
    return process


@pytest.mark.parametrize(("streams", "threads"), [(1, 1), (4, 2)])
def test_on_demand_producer_runs_once_per_event_for_several_consumers(tmp_path, streams, threads):
    process = _on_demand_process(
        [("tag", cms.EDProducer("TestTagConsumer", src=cms.InputTag("od"))),
         ("string", cms.EDProducer("TestStringConsumer", product="od")),
         ("tag2", cms.EDProducer("TestTagConsumer", src=cms.InputTag("od")))],
        streams=streams, threads=threads,
    )
    process.out = cms.OutputModule("RootOutputModule", fileName=str(tmp_path / "o.root"),
                                   outputCommands=["keep *"])
    process.e = cms.EndPath(process.out)
    report = EventProcessor(process).run()
    assert report.processed == N
    assert plugins.calls_of("od") == {n: 1 for n in range(1, N + 1)}
    with uproot.open(tmp_path / "o.root") as f:
        tree = f["Events"]
        assert tree["od"].array(library="np").tolist() == [2 * n for n in range(1, N + 1)]
        for label in ("tag", "string", "tag2"):
            assert tree[label].array(library="np").tolist() == [2 * n + 1 for n in range(1, N + 1)]


def test_on_demand_producer_runs_only_when_needed():
    # nobody reads it: it never runs
    process = _on_demand_process([])
    assert EventProcessor(process).run().processed == N
    assert plugins.calls_of("od") == {}

    # read only after a filter: it runs only for the events that reach the reader
    plugins.reset()
    process = _on_demand_process([("cons", cms.EDProducer("TestStringConsumer", product="od"))], with_filter=True)
    EventProcessor(process).run()
    assert plugins.calls_of("od") == {n: 1 for n in range(2, N + 1, 2)}


@pytest.mark.parametrize(("keep", "runs"), [("keep od", True), ("keep od*", True), ("drop od", False)])
def test_on_demand_producer_kept_by_an_output_runs_for_the_selected_events(tmp_path, keep, runs):
    process = _on_demand_process([], with_filter=True)
    process.prod = cms.EDProducer("TestEventNumberProducer")
    process.p2 = cms.Path(process.prod)
    process.out = cms.OutputModule("RootOutputModule", fileName=str(tmp_path / "o.root"), SelectEvents=["p"],
                                   outputCommands=["drop *", "keep prod_number", keep])
    process.e = cms.EndPath(process.out)
    report = EventProcessor(process).run()
    evens = list(range(2, N + 1, 2))
    assert report.written == {"out": len(evens)}
    assert plugins.calls_of("od") == ({n: 1 for n in evens} if runs else {})
    with uproot.open(tmp_path / "o.root") as f:
        tree = f["Events"]
        assert tree["prod_number"].array(library="np").tolist() == evens
        if runs:
            assert tree["od"].array(library="np").tolist() == [2 * n for n in evens]
        else:
            assert "od" not in tree


def test_on_demand_producer_with_a_declared_dependency_runs_before_its_consumer():
    process = _on_demand_process([("cons", cms.EDProducer("TestTagConsumer", src=cms.InputTag("od")))],
                                 with_filter=True)
    processor = EventProcessor(process)
    assert processor.modules["od"].on_demand and not processor.modules["cons"].on_demand
    assert processor.modules["cons"].consumes == ["od"]
    processor.run()
    assert plugins.calls_of("od") == {n: 1 for n in range(2, N + 1, 2)}


def test_task_on_the_schedule_runs_on_demand():
    process = _process(n=4)
    process.od = cms.EDProducer("TestOnDemandProducer")
    process.cons = cms.EDProducer("TestStringConsumer", product="od")
    process.p = cms.Path(process.cons)
    process.schedule = cms.Schedule(process.p, tasks=[cms.Task(process.od)])
    EventProcessor(process).run()
    assert plugins.calls_of("od") == {n: 1 for n in range(1, 5)}


def test_analyzer_in_a_task_is_refused():
    process = _process()
    process.ana = cms.EDAnalyzer("TestCountingAnalyzer")
    process.prod = cms.EDProducer("TestEventNumberProducer")
    process.p = cms.Path(process.prod, cms.Task(process.ana))
    with pytest.raises(ConfigurationError, match="only producers can be in a Task"):
        EventProcessor(process)


# ------------------------------------------------------------------------------------------ product errors
def test_reading_a_product_nobody_makes_names_the_label():
    process = _process(n=3)
    process.prod = cms.EDProducer("TestEventNumberProducer")
    process.cons = cms.EDProducer("TestStringConsumer", product="jetTags:probb")
    process.p = cms.Path(process.prod, process.cons)
    with pytest.raises(ModuleError) as err:
        EventProcessor(process).run()
    msg = str(err.value)
    assert isinstance(err.value.cause, ProductNotFoundError)
    assert "module 'cons' (TestStringConsumer)" in msg
    assert "no product 'jetTags:probb'" in msg and "No module is labelled 'jetTags'" in msg
    assert "run 1, lumi 1, event 1" in msg
    assert "Products of this event: prod:number, prod:values" in msg


def test_reading_a_misspelled_or_unscheduled_product():
    process = _process(n=2)
    process.prod = cms.EDProducer("TestEventNumberProducer")
    process.cons = cms.EDProducer("TestStringConsumer", product="prod:numbr")
    process.p = cms.Path(process.prod, process.cons)
    with pytest.raises(ModuleError, match=r"no product 'prod:numbr'.*Module 'prod' made: prod:number, prod:values"):
        EventProcessor(process).run()

    process.cons.product = "idle"
    process.idle = cms.EDProducer("TestOnDemandProducer")  # configured, but in no Path or Task
    with pytest.raises(ModuleError, match=r"Module 'idle' is configured but in no Path or Task"):
        EventProcessor(process).run()


def test_products_are_stored_under_label_and_instance(tmp_path):
    process = _process(n=5)
    process.prod = cms.EDProducer("TestEventNumberProducer", size=3, seed=4)
    process.p = cms.Path(process.prod)
    process.out = cms.OutputModule("RootOutputModule", fileName=str(tmp_path / "o.root"))
    process.e = cms.EndPath(process.out)
    EventProcessor(process).run()
    with uproot.open(tmp_path / "o.root") as f:
        tree = f["Events"]
        assert {"prod_number", "prod_values"} <= set(tree.keys())
        values = tree["prod_values"].array(library="ak")
    for i, n in enumerate(range(1, 6)):
        expected = plugins.event_array(n, 4, 3)
        got = np.asarray(values[i])
        assert got.dtype == np.float32 and got.tobytes() == expected.tobytes()


# ------------------------------------------------------------------------------------------ summary
def test_summary_counts_and_timing_table():
    process = _on_demand_process([("cons", cms.EDProducer("TestStringConsumer", product="od"))], with_filter=True)
    process.options.wantSummary = True
    report = EventProcessor(process).run()
    assert report.processed == N
    timing = report.timing.modules
    assert timing["flt"].calls == N and timing["ana"].calls == N // 2 and timing["od"].calls == N // 2
    table = report.timing.table()
    for label in ("flt", "cons", "od", "ana"):
        assert label in table
    assert f"TimeReport: {N} events" in table
    assert f"TrigReport: events processed = {N}" in report.summary()
