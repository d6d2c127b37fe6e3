"""Modifiers: toModify, toReplaceWith, ModifierChain, makeProcessModifier, ``&``, ``|``, ``~``.

A modifier acts only when it is passed to the Process; modifications declared before the Process
exists (as in a cff fragment imported first) wait for it.
"""

from __future__ import annotations

import pytest

import framework.config as cms
import tests.plugins  # noqa: F401  (registers the Test* module types)
from framework.core.processor import EventProcessor
from framework.exceptions import ConfigurationError


def _producer() -> cms.EDProducer:
    return cms.EDProducer(
        "TestRequiredParamProducer",
        src=cms.InputTag("od"),
        threshold=cms.double(1.5),
        count=cms.int32(3),
        nested=cms.PSet(depth=cms.int32(2), keep=cms.string("me")),
    )


# ------------------------------------------------------------------------------------------ toModify
def test_toModify_declared_before_the_process_acts_only_when_chosen():
    prod = _producer()
    mod = cms.Modifier()
    mod.toModify(prod, threshold=4.0, count=9)
    assert prod.threshold == 1.5 and prod.count == 3  # not chosen yet: nothing happens

    cms.Process("UNCHOSEN")
    assert prod.threshold == 1.5  # a process without the modifier does not choose it

    cms.Process("CHOSEN", mod)
    assert prod.threshold == 4.0 and prod.count == 9
    assert isinstance(prod.threshold, cms.double)  # typed values stay typed


def test_toModify_after_the_process_applies_at_once():
    mod, other = cms.Modifier(), cms.Modifier()
    process = cms.Process("TEST", mod)
    process.prod = _producer()
    mod.toModify(process.prod, count=7)
    other.toModify(process.prod, count=100)
    assert process.prod.count == 7


def test_toModify_with_a_function():
    prod = _producer()
    mod = cms.Modifier()
    seen = []

    def change(obj):
        seen.append(obj)
        obj.count = 11
        obj.added = cms.string("new")

    mod.toModify(prod, change, threshold=0.5)
    assert not seen
    cms.Process("TEST", mod)
    assert seen == [prod]
    assert prod.count == 11 and prod.added == "new" and prod.threshold == 0.5
    with pytest.raises(ConfigurationError, match="must be a function"):
        mod.toModify(prod, 3)


def test_toModify_nested_dict_edits_the_pset_and_none_deletes():
    prod = _producer()
    mod = cms.Modifier()
    mod.toModify(prod, nested=dict(depth=5, extra=1), count=None, fresh=dict(a=1))
    cms.Process("TEST", mod)
    assert prod.nested.depth == 5 and isinstance(prod.nested.depth, cms.int32)
    assert prod.nested.keep == "me"  # the other nested parameters are kept
    assert prod.nested.extra == 1
    assert "count" not in prod
    assert isinstance(prod.fresh, cms.PSet) and prod.fresh.a == 1

    # and the modified declaration passes the configuration checks of its module type
    mod2 = cms.Modifier()
    process = cms.Process("RUN", mod2)
    process.source = cms.Source("EmptySource")
    process.prod = cms.EDProducer("TestRequiredParamProducer", src="x", count=4, nested=cms.PSet(depth=cms.int32(2)))
    mod2.toModify(process.prod, nested=dict(depth=8), count=None)
    process.p = cms.Path(process.prod)
    params = EventProcessor(process).modules["prod"].params
    assert params.nested.depth == 8 and params.count == 3  # count back to its default


def test_toModify_chains_and_acts_on_several_objects():
    a, b = _producer(), _producer()
    mod = cms.Modifier()
    assert mod.toModify(a, count=1).toModify(b, count=2) is mod
    cms.Process("TEST", mod)
    assert (a.count, b.count) == (1, 2)


# ------------------------------------------------------------------------------------------ toReplaceWith
def _replacement_process(mod: cms.Modifier | None):
    """A cff-like fragment: the module and its replacement are declared before the Process."""
    od = cms.EDProducer("TestOnDemandProducer")
    cons = cms.EDProducer("TestTagConsumer", src=cms.InputTag("od"))
    if mod is not None:
        mod.toReplaceWith(od, cms.EDProducer("TestEventNumberProducer", size=3))
        mod.toReplaceWith(cons, cms.EDProducer("TestStringConsumer", product="od:number"))
    process = cms.Process("TEST", *([mod] if mod is not None else []))
    process.source = cms.Source("EmptySource")
    process.maxEvents.input = 4
    process.od = od
    process.cons = cons
    process.ana = cms.EDAnalyzer("TestCountingAnalyzer")
    process.t = cms.Task(process.od)
    process.p = cms.Path(process.cons, process.ana, process.t)
    process.out = cms.OutputModule("RootOutputModule", outputCommands=["drop *", "keep cons"])
    process.e = cms.EndPath(process.out)
    return process


def test_toReplaceWith_keeps_the_label_and_the_place_in_paths_and_tasks(tmp_path):
    mod = cms.Modifier()
    process = _replacement_process(mod)

    assert process.od.type_() == "TestEventNumberProducer" and process.od.label_() == "od"
    assert process.od.parameters_() == {"size": 3}
    assert process.cons.type_() == "TestStringConsumer" and process.cons.label_() == "cons"
    assert [m.label_() for m in process.p.moduleSequence()] == ["cons", "ana"]
    assert process.p.moduleSequence().__next__() is process.cons
    assert list(process.t.moduleSequence()) == [process.od]

    # and it runs as the replacement: cons = od:number + 1 = event + 1
    process.out.fileName = str(tmp_path / "out.root")
    report = EventProcessor(process).run()
    assert report.processed == 4
    import uproot

    with uproot.open(tmp_path / "out.root") as f:
        assert f["Events"]["cons"].array(library="np").tolist() == [2, 3, 4, 5]


def test_toReplaceWith_without_the_modifier_changes_nothing():
    process = _replacement_process(None)
    unchosen = cms.Modifier()
    od_before = process.od.dumpPython()
    unchosen.toReplaceWith(process.od, cms.EDProducer("TestEventNumberProducer"))
    assert process.od.dumpPython() == od_before and process.od.type_() == "TestOnDemandProducer"


def test_toReplaceWith_refuses_a_different_kind():
    mod = cms.Modifier()
    prod = cms.EDProducer("TestEventNumberProducer")
    with pytest.raises(ConfigurationError, match="same kind"):
        mod.toReplaceWith(prod, cms.EDFilter("TestEvenFilter"))
    with pytest.raises(ConfigurationError):
        mod.toReplaceWith(prod, cms.Task())
    with pytest.raises(ConfigurationError):
        mod.toReplaceWith(cms.Task(), cms.Sequence())
    cms.Process("TEST", mod)
    assert prod.type_() == "TestEventNumberProducer"


def test_toReplaceWith_a_task_and_a_sequence():
    process_mod = cms.Modifier()
    process = cms.Process("TEST", process_mod)
    process.a = cms.EDProducer("TestEventNumberProducer")
    process.b = cms.EDProducer("TestOnDemandProducer")
    process.c = cms.EDAnalyzer("TestCountingAnalyzer")
    process.t = cms.Task(process.a)
    process.s = cms.Sequence(process.c)
    process.p = cms.Path(process.s, process.t)
    process_mod.toReplaceWith(process.t, cms.Task(process.b))
    process_mod.toReplaceWith(process.s, cms.Sequence(process.c, process.c.clone()))
    assert [m.label_() for m in process.p.taskModules()] == ["b"]
    assert len(list(process.p.moduleSequence())) == 2


# ------------------------------------------------------------------------------------------ chains, process modifiers
def test_modifier_chain_chooses_all_its_modifiers():
    m1, m2, m3 = cms.Modifier(), cms.Modifier(), cms.Modifier()
    prod = _producer()
    m1.toModify(prod, count=1)
    m2.toModify(prod, threshold=2.0)
    m3.toModify(prod, src="changed")
    inner = cms.ModifierChain(m1)
    chain = cms.ModifierChain(inner, m2)
    cms.Process("TEST", chain)
    assert prod.count == 1 and prod.threshold == 2.0
    assert prod.src == "od"  # m3 is not in the chain
    assert m1.isChosen() and m2.isChosen() and not m3.isChosen()
    with pytest.raises(ConfigurationError):
        cms.ModifierChain(m1, "m2")


def test_modifier_chain_copy_and_exclude():
    m1, m2 = cms.Modifier(), cms.Modifier()
    prod = _producer()
    m1.toModify(prod, count=1)
    m2.toModify(prod, threshold=2.0)
    chain = cms.ModifierChain(m1, m2).copyAndExclude([m2])
    assert chain.modifiers() == [m1]
    cms.Process("TEST", chain)
    assert prod.count == 1 and prod.threshold == 1.5


def test_make_process_modifier_calls_its_function_once_when_chosen():
    calls = []

    def add_analyzer(process):
        calls.append(process)
        process.extra = cms.EDAnalyzer("TestCountingAnalyzer")

    chosen = cms.Modifier()
    pm = chosen.makeProcessModifier(add_analyzer)
    process = cms.Process("TEST", chosen)
    process.pm = pm
    process.pm_again = pm
    assert calls == [process] and "extra" in process

    unchosen = cms.Modifier()
    process2 = cms.Process("OTHER")
    process2.pm = unchosen.makeProcessModifier(add_analyzer)
    assert "extra" not in process2 and len(calls) == 1


def test_process_refuses_what_is_not_a_modifier():
    with pytest.raises(ConfigurationError):
        cms.Process("TEST", "era2025")
    a = cms.Modifier()
    with pytest.raises(ConfigurationError):
        cms.Process("TEST", a & cms.Modifier())


# ------------------------------------------------------------------------------------------ & | ~
@pytest.mark.parametrize(
    ("chosen", "expect_and", "expect_or", "expect_not_a"),
    [((), False, False, True), (("a",), False, True, False), (("b",), False, True, True), (("a", "b"), True, True, False)],
)
def test_and_or_not(chosen, expect_and, expect_or, expect_not_a):
    a, b = cms.Modifier(), cms.Modifier()
    prod = cms.EDProducer("TestEventNumberProducer", both=False, either=False, nota=False)
    (a & b).toModify(prod, both=True)  # declared before the Process: waits for it
    (a | b).toModify(prod, either=True)
    cms.Process("TEST", *({"a": a, "b": b}[x] for x in chosen))
    (~a).toModify(prod, nota=True)  # ~ is decided when used (CMSSW semantics): after the Process
    assert (prod.both, prod.either, prod.nota) == (expect_and, expect_or, expect_not_a)


def test_and_applies_once_when_the_second_modifier_is_chosen_later():
    a, b = cms.Modifier(), cms.Modifier()
    calls = []
    prod = cms.EDProducer("TestEventNumberProducer")
    (a & b).toModify(prod, lambda p: calls.append(1))
    process = cms.Process("TEST", a)
    assert calls == []
    process.applyModifier(b)
    process.applyModifier(b)
    assert calls == [1]


def test_modified_config_runs_with_the_modified_values():
    mod = cms.Modifier()
    prod = cms.EDProducer("TestEventNumberProducer", size=cms.int32(2), seed=cms.int32(0))
    mod.toModify(prod, seed=5)
    process = cms.Process("TEST", mod)
    process.source = cms.Source("EmptySource")
    process.maxEvents.input = 2
    process.prod = prod
    process.p = cms.Path(process.prod)
    processor = EventProcessor(process)
    assert processor.modules["prod"].params.seed == 5
    assert "seed = cms.int32(5)" in process.dumpPython()


def test_not_modifier_declared_before_the_process_waits_for_it():
    m = cms.Modifier()
    prod = cms.EDProducer("TestEventNumberProducer", size=1)
    (~m).toModify(prod, size=2)
    cms.Process("TEST", m)
    assert prod.size == 1
