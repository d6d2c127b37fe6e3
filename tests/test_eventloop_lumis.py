"""Run and luminosity-block transitions: each lumi's begin/end once and in order, with 1 and 4 streams (and
ExternalWork in flight across lumi boundaries), lumi and run products written to the LuminosityBlocks and Runs
trees, and failures in a transition."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import uproot

import framework.config as cms
from framework.core.module import EDAnalyzer, EDProducer
from framework.core.processor import EventProcessor
from framework.core.registry import register
from framework.exceptions import FrameworkError

TRANSITIONS: list[tuple] = []  # (label, what, run, lumi[, n events])
_LOCK = threading.Lock()


@register("TestLumiRecorder")
class LumiRecorder(EDAnalyzer):
    """Records transitions and, per event, the lumi that is open when it is analysed."""

    parameters = {"failAtEndOfLumi": -1}

    def beginRun(self, run):
        TRANSITIONS.append((self.label, "beginRun", run.run, 0))

    def beginLuminosityBlock(self, lumi):
        TRANSITIONS.append((self.label, "beginLumi", lumi.run, lumi.luminosityBlock))
        self.open = lumi.id

    def analyze(self, event):
        TRANSITIONS.append((self.label, "event", event.id.run, event.id.luminosityBlock, self.open))

    def endLuminosityBlock(self, lumi):
        if lumi.luminosityBlock == self.params.failAtEndOfLumi:
            raise ValueError(f"deliberate failure at the end of lumi {lumi.luminosityBlock}")
        TRANSITIONS.append((self.label, "endLumi", lumi.run, lumi.luminosityBlock, lumi.events))
        self.open = None

    def endRun(self, run):
        TRANSITIONS.append((self.label, "endRun", run.run, 0, run.events))


@register("TestLumiCounter")
class LumiCounter(EDProducer):
    """Counts the events of each lumi and run and sums their event numbers (all stream instances share one
    global counter); puts them as lumi and run products."""

    parameters = {}

    @classmethod
    def initializeGlobalCache(cls, params):
        return {"lumi": [0, 0], "run": [0, 0], "lock": threading.Lock()}

    def produce(self, event):
        c = self.globalCache
        with c["lock"]:
            for k in ("lumi", "run"):
                c[k][0] += 1
                c[k][1] += int(event.id.event)
        event.put(np.int64(event.id.event))

    def beginLuminosityBlock(self, lumi):
        self.globalCache["lumi"] = [0, 0]

    def endLuminosityBlock(self, lumi):
        n, total = self.globalCache["lumi"]
        lumi.put(np.int32(n), "nEvents")
        lumi.put(np.int64(total), "sumEvent")
        lumi.put(np.arange(lumi.luminosityBlock, dtype=np.float32), "ramp")

    def beginRun(self, run):
        self.globalCache["run"] = [0, 0]

    def endRun(self, run):
        run.put(np.int32(self.globalCache["run"][0]), "nEvents")


@register("TestLumiConsumer")
class LumiConsumer(EDAnalyzer):
    """Reads the counter's lumi product at the end of each lumi (it runs after the counter)."""

    parameters = {}

    def analyze(self, event):
        pass

    def endLuminosityBlock(self, lumi):
        TRANSITIONS.append((self.label, "read", lumi.run, lumi.luminosityBlock, int(lumi.get("counter:nEvents"))))


def _process(out, *, streams, external=False, n=23, per_lumi=3, per_run=9, fail_at=-1):
    process = cms.Process("LUMI")
    process.source = cms.Source("EmptySource", numberEventsInLuminosityBlock=per_lumi, numberEventsInRun=per_run)
    process.maxEvents.input = n
    process.options.numberOfThreads = 2
    process.options.numberOfStreams = streams
    process.counter = cms.EDProducer("TestLumiCounter")
    process.rec = cms.EDAnalyzer("TestLumiRecorder", failAtEndOfLumi=fail_at)
    process.reader = cms.EDAnalyzer("TestLumiConsumer")
    modules = [process.counter, process.rec, process.reader]
    if external:
        process.slow = cms.EDProducer("TestTimerExternalProducer", maxDelay=0.01)
        modules.insert(0, process.slow)
    process.p = cms.Path(*modules)
    process.out = cms.OutputModule("RootOutputModule", fileName=str(out),
                                   outputCommands=["keep *", "drop slow"])
    process.e = cms.EndPath(process.out)
    return process


def _expected_lumis(n, per_lumi, per_run):
    """(run, lumi) -> event numbers, as EmptySource numbers them (run and lumi start at 1)."""
    lumis: dict[tuple[int, int], list[int]] = {}
    for i in range(n):
        lumis.setdefault((1 + i // per_run, 1 + i // per_lumi), []).append(i + 1)
    return lumis


@pytest.mark.parametrize("streams,external", [(1, False), (4, False), (4, True)], ids=["1 stream", "4 streams",
                                                                                     "4 streams, external work"])
def test_each_lumi_begins_and_ends_once_in_order_with_its_events_inside(tmp_path, streams, external):
    TRANSITIONS.clear()
    out = tmp_path / "lumi.root"
    report = EventProcessor(_process(out, streams=streams, external=external)).run()
    expected = _expected_lumis(23, 3, 9)
    assert report.processed == 23 and report.lumis == len(expected) and report.runs == 3

    rec = [t for t in TRANSITIONS if t[0] == "rec"]
    # the transitions alone: run begin, then per lumi begin/end, run end, in input order
    flow = [t[1:4] if t[1] != "event" else None for t in rec]
    flow = [f for f in flow if f is not None]
    want = []
    for run in (1, 2, 3):
        want.append(("beginRun", run, 0))
        for (r, lumi) in expected:
            if r == run:
                want += [("beginLumi", run, lumi), ("endLumi", run, lumi)]
        want.append(("endRun", run, 0))
    assert flow == want
    # every event is analysed while its own lumi is open, exactly once
    events = [t for t in rec if t[1] == "event"]
    assert sorted(t[3] for t in events) == sorted(lumi for (_, lumi), evs in expected.items() for _ in evs)
    assert all(t[4] == (t[2], t[3]) for t in events), [t for t in events if t[4] != (t[2], t[3])][:3]
    ends = {(t[2], t[3]): t[4] for t in rec if t[1] == "endLumi"}
    assert ends == {k: len(v) for k, v in expected.items()}
    assert [t[4] for t in rec if t[1] == "endRun"] == [9, 9, 5]
    # the consumer read the counter's product in the same transition
    assert [(t[3], t[4]) for t in TRANSITIONS if t[0] == "reader"] == [(k[1], len(v)) for k, v in expected.items()]

    with uproot.open(out) as f:
        lumis = f["LuminosityBlocks"].arrays(library="np")
        runs = f["Runs"].arrays(library="np")
        assert f["Events"].num_entries == 23
        ramp = f["LuminosityBlocks"]["counter_ramp"].array(library="ak")
    assert list(zip(lumis["run"], lumis["luminosityBlock"])) == list(expected)
    assert lumis["counter_nEvents"].tolist() == [len(v) for v in expected.values()]
    assert lumis["counter_sumEvent"].tolist() == [sum(v) for v in expected.values()]
    assert [list(r) for r in ramp] == [list(range(lumi)) for _, lumi in expected]
    assert runs["run"].tolist() == [1, 2, 3] and runs["counter_nEvents"].tolist() == [9, 9, 5]


def test_no_events_no_lumis(tmp_path):
    TRANSITIONS.clear()
    out = tmp_path / "none.root"
    report = EventProcessor(_process(out, streams=2, n=0)).run()
    assert report.lumis == 0 and [t for t in TRANSITIONS if t[0] == "rec"] == []
    with uproot.open(out) as f:
        assert "LuminosityBlocks" not in f and f["Events"].num_entries == 0


def test_a_failure_in_a_lumi_transition_names_the_module_and_lumi_and_writes_nothing(tmp_path):
    TRANSITIONS.clear()
    out = tmp_path / "fail.root"
    with pytest.raises(FrameworkError) as e:
        EventProcessor(_process(out, streams=4, external=True, fail_at=2)).run()
    msg = str(e.value)
    assert "deliberate failure at the end of lumi 2" in msg and "rec" in msg and "run 1, lumi 2" in msg, msg
    assert not out.exists() and not list(tmp_path.iterdir())
