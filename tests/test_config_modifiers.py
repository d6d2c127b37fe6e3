"""Modifiers: toModify, toReplaceWith, ModifierChain, makeProcessModifier, ``&``, ``|``, ``~``.

CMSSW semantics: a modification acts at once if its modifier is chosen for the process being
configured (the Process created last, or the one of the config being loaded), and never otherwise:
modifications asked for before the Process exists are dropped, not replayed later, and a modifier
chosen for one Process does not act while a later Process is configured.
"""

from __future__ import annotations

import pytest

import framework.config as cms
import tests.plugins  # noqa: F401  (registers the Test* module types)
from framework.config.modifiers import current_process
from framework.configloader import load_config
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
def test_toModify_acts_at_once_when_chosen_and_never_otherwise(caplog):
    prod = _producer()
    mod = cms.Modifier()
    mod.toModify(prod, threshold=4.0, count=9)  # no Process yet: dropped, with a warning
    assert prod.threshold == 1.5 and prod.count == 3
    assert "no cms.Process is being configured" in caplog.text

    cms.Process("UNCHOSEN")
    mod.toModify(prod, threshold=4.0, count=9)
    assert prod.threshold == 1.5  # a process without the modifier does not choose it

    process = cms.Process("CHOSEN", mod)
    assert prod.threshold == 1.5 and prod.count == 3  # nothing asked for earlier is replayed
    assert mod.toModify(prod, threshold=4.0, count=9) is mod
    assert prod.threshold == 4.0 and prod.count == 9  # chosen: at once
    assert isinstance(prod.threshold, cms.double)  # typed values stay typed
    assert current_process() is process and mod.isChosen() and mod.isChosen(process)


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

    cms.Process("TEST", mod)
    mod.toModify(prod, change, threshold=0.5)
    assert seen == [prod]
    assert prod.count == 11 and prod.added == "new" and prod.threshold == 0.5
    with pytest.raises(ConfigurationError, match="must be a function"):
        mod.toModify(prod, 3)


def test_toModify_nested_dict_edits_the_pset_and_none_deletes():
    prod = _producer()
    mod = cms.Modifier()
    cms.Process("TEST", mod)
    mod.toModify(prod, nested=dict(depth=5, extra=1), count=None, fresh=dict(a=1))
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
    cms.Process("TEST", mod)
    assert mod.toModify(a, count=1).toModify(b, count=2) is mod
    assert (a.count, b.count) == (1, 2)


# ------------------------------------------------------------------------------------------ toReplaceWith
def _replacement_process(mod: cms.Modifier | None):
    """A cff-like fragment loaded after the Process: the module and its replacement."""
    process = cms.Process("TEST", *([mod] if mod is not None else []))
    od = cms.EDProducer("TestOnDemandProducer")
    cons = cms.EDProducer("TestTagConsumer", src=cms.InputTag("od"))
    if mod is not None:
        mod.toReplaceWith(od, cms.EDProducer("TestEventNumberProducer", size=3))
        mod.toReplaceWith(cons, cms.EDProducer("TestStringConsumer", product="od:number"))
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
    inner = cms.ModifierChain(m1)
    chain = cms.ModifierChain(inner, m2)
    cms.Process("TEST", chain)
    m1.toModify(prod, count=1)
    m2.toModify(prod, threshold=2.0)
    m3.toModify(prod, src="changed")
    assert prod.count == 1 and prod.threshold == 2.0
    assert prod.src == "od"  # m3 is not in the chain
    assert m1.isChosen() and m2.isChosen() and not m3.isChosen()
    with pytest.raises(ConfigurationError):
        cms.ModifierChain(m1, "m2")


def test_modifier_chain_copy_and_exclude():
    m1, m2 = cms.Modifier(), cms.Modifier()
    prod = _producer()
    chain = cms.ModifierChain(m1, m2).copyAndExclude([m2])
    assert chain.modifiers() == [m1]
    cms.Process("TEST", chain)
    m1.toModify(prod, count=1)
    m2.toModify(prod, threshold=2.0)
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
    cms.Process("TEST", *({"a": a, "b": b}[x] for x in chosen))
    (a & b).toModify(prod, both=True)  # each decided when used (CMSSW semantics)
    (a | b).toModify(prod, either=True)
    (~a).toModify(prod, nota=True)
    assert (prod.both, prod.either, prod.nota) == (expect_and, expect_or, expect_not_a)


def test_and_acts_once_the_second_modifier_is_chosen_and_is_not_replayed():
    a, b = cms.Modifier(), cms.Modifier()
    calls = []
    prod = cms.EDProducer("TestEventNumberProducer")
    process = cms.Process("TEST", a)
    (a & b).toModify(prod, lambda p: calls.append("early"))
    assert calls == []
    process.applyModifier(b)
    process.applyModifier(b)
    assert calls == []  # the earlier modification was not chosen when asked for: never
    (a & b).toModify(prod, lambda p: calls.append("late"))
    assert calls == ["late"]


def test_modified_config_runs_with_the_modified_values():
    mod = cms.Modifier()
    prod = cms.EDProducer("TestEventNumberProducer", size=cms.int32(2), seed=cms.int32(0))
    process = cms.Process("TEST", mod)
    mod.toModify(prod, seed=5)
    process.source = cms.Source("EmptySource")
    process.maxEvents.input = 2
    process.prod = prod
    process.p = cms.Path(process.prod)
    processor = EventProcessor(process)
    assert processor.modules["prod"].params.seed == 5
    assert "seed = cms.int32(5)" in process.dumpPython()


def test_not_modifier_declared_before_the_process_never_acts():
    m = cms.Modifier()
    prod = cms.EDProducer("TestEventNumberProducer", size=1)
    (~m).toModify(prod, size=2)  # no process to ask whether m is chosen: dropped
    cms.Process("TEST", m)
    assert prod.size == 1
    cms.Process("OTHER")
    assert prod.size == 1  # not replayed for a process without m either
    (~m).toModify(prod, size=3)
    assert prod.size == 3


# ------------------------------------------------------------------------------------------ scope: one process at a time
def test_a_modifier_chosen_for_one_process_does_not_act_for_a_later_one():
    mod = cms.Modifier()
    first = cms.Process("FIRST", mod)
    first.prod = _producer()
    mod.toModify(first.prod, count=5)
    assert first.prod.count == 5

    second = cms.Process("SECOND")  # now the process being configured
    second.prod = _producer()
    mod.toModify(second.prod, count=6)
    assert second.prod.count == 3
    assert not mod.isChosen() and mod.isChosen(first) and not mod.isChosen(second)
    assert second.modifiers_() == [] and first.modifiers_() == [mod]


def test_process_modifiers_act_on_the_process_their_modifier_is_chosen_for():
    mod = cms.Modifier()
    calls = []
    mod.toModifyProcess(lambda p: calls.append(("hook", p.name_())))
    pm = mod.makeProcessModifier(lambda p: calls.append(("pm", p.name_())))
    chosen = cms.Process("CHOSEN", mod)
    other = cms.Process("OTHER")  # created later: the process being configured
    other.pm = pm
    chosen.pm = pm  # attached to the older process it was chosen for: acts on that one
    chosen.pm_again = pm
    assert calls == [("hook", "CHOSEN"), ("pm", "CHOSEN")]
    cms.Process("THIRD", cms.ModifierChain(mod))  # through a chain
    assert calls[-1] == ("hook", "THIRD")


def _write(path, text):
    path.write_text(text)
    return str(path)


@pytest.fixture
def leak_configs(tmp_path, monkeypatch):
    """A module with a modifier, and two configs using it (as two configs loaded by one job)."""
    monkeypatch.syspath_prepend(str(tmp_path))
    _write(tmp_path / "leakmods.py", "import framework.config as cms\nswitch = cms.Modifier()\n")
    body = (
        "import framework.config as cms\nimport tests.plugins  # noqa: F401\nfrom leakmods import switch\n"
        "process = cms.Process({name!r}{mods})\nprocess.source = cms.Source('EmptySource')\n"
        "process.prod = cms.EDProducer('TestEventNumberProducer', size=cms.int32(1))\n"
        "switch.toModify(process.prod, size=7)\n"
    )
    with_switch = _write(tmp_path / "with_cfg.py", body.format(name="WITH", mods=", switch"))
    plain_cfg = _write(tmp_path / "plain_cfg.py", body.format(name="PLAIN", mods=""))
    import leakmods

    return leakmods.switch, with_switch, plain_cfg


def test_configs_loaded_one_after_the_other_do_not_leak_modifiers(leak_configs):
    switch, with_switch, plain_cfg = leak_configs
    first, _ = load_config(with_switch, [])
    second, _ = load_config(plain_cfg, [])
    assert first.prod.size == 7 and second.prod.size == 1
    assert current_process() is None  # a load leaves nothing chosen behind
    assert not switch.isChosen()

    extra, _ = load_config(plain_cfg, [], modifiers=[switch])  # chosen for this load only
    again, _ = load_config(plain_cfg, [])
    assert extra.prod.size == 7 and extra.modifiers_() == [switch]
    assert again.prod.size == 1 and again.modifiers_() == []


def test_a_load_restores_the_process_being_configured(leak_configs):
    switch, with_switch, _ = leak_configs
    outer = cms.Process("OUTER")
    load_config(with_switch, [])
    assert current_process() is outer
    prod = _producer()
    switch.toModify(prod, count=8)  # chosen for the loaded config's process, not for OUTER
    assert prod.count == 3
