"""The config language: declarations, clone, typed parameters, paths, dump, and the
configuration-time checks (unknown type, misspelled / mistyped / missing parameters)."""

from __future__ import annotations

import pytest

import framework.config as cms
import tests.plugins  # noqa: F401  (registers the Test* module types)
from framework.core.processor import EventProcessor
from framework.exceptions import ConfigurationError


def _process(*modules: tuple[str, object], path: bool = True) -> cms.Process:
    """A process with an EmptySource, the given (label, declaration) modules and one Path of them."""
    process = cms.Process("TEST")
    process.source = cms.Source("EmptySource")
    process.maxEvents.input = 3
    for label, decl in modules:
        setattr(process, label, decl)
    if path:
        process.p = cms.Path(*(getattr(process, label) for label, _ in modules))
    return process


# ------------------------------------------------------------------------------------------ clone
def test_clone_changes_parameters_and_none_removes_them():
    original = cms.EDProducer(
        "TestEventNumberProducer", size=cms.int32(4), seed=cms.int32(1), extra=cms.PSet(depth=cms.int32(2))
    )
    copy = original.clone(size=8, seed=None)

    assert copy.type_() == "TestEventNumberProducer"
    assert copy.size == cms.int32(8) and isinstance(copy.size, cms.int32)  # the type is kept
    assert "seed" not in copy and "seed" in original
    assert original.size == 4
    copy.extra.depth = 5  # nested PSets are copied, not shared
    assert original.extra.depth == 2
    assert copy.label_() is None


def test_clone_keeps_parameter_types():
    original = cms.EDProducer("TestEventNumberProducer", size=cms.int32(4))
    with pytest.raises(ConfigurationError, match="int32"):
        original.clone(size="four")


def test_clone_of_a_clone_with_pset_positional():
    base = cms.EDProducer("TestEventNumberProducer", size=2)
    derived = base.clone(cms.PSet(seed=9), size=3)
    assert derived.parameters_() == {"size": 3, "seed": 9}
    assert base.parameters_() == {"size": 2}


def test_attaching_the_same_declaration_twice_gives_a_copy():
    process = cms.Process("TEST")
    process.a = cms.EDProducer("TestEventNumberProducer", size=2)
    process.b = process.a
    assert process.b is not process.a
    assert (process.a.label_(), process.b.label_()) == ("a", "b")
    process.b.size = 5
    assert process.a.size == 2


# ------------------------------------------------------------------------------------------ typed values
@pytest.mark.parametrize(
    "make",
    [
        lambda: cms.int32("3"),
        lambda: cms.int32(True),
        lambda: cms.uint32(-1),
        lambda: cms.double("1.5"),
        lambda: cms.bool(1),
        lambda: cms.string(3),
        lambda: cms.vint32(1, "a"),
        lambda: cms.vdouble(1.0, None),
        lambda: cms.InputTag(3),
        lambda: cms.VPSet(cms.PSet(), 3),
    ],
    ids=["int32-str", "int32-bool", "uint32-neg", "double-str", "bool-int", "string-int", "vint32", "vdouble",
         "InputTag", "VPSet"],
)
def test_typed_parameters_reject_bad_values(make):
    with pytest.raises(ConfigurationError):
        make()


def test_typed_parameters_accept_and_convert():
    assert cms.double(3).value() == 3.0 and isinstance(cms.double(3).value(), float)
    assert cms.vint32([1, 2]).value() == [1, 2]
    assert cms.untracked.int32(5) == 5
    tag = cms.InputTag("jets", "probb")
    assert (tag.label, tag.instance, tag.value()) == ("jets", "probb", "jets:probb")


def test_assigning_a_wrong_type_to_a_typed_parameter_fails():
    m = cms.EDProducer("TestEventNumberProducer", size=cms.int32(4))
    with pytest.raises(ConfigurationError, match="int32 expects int"):
        m.size = "big"
    m.size = 6  # a plain value of the right type keeps the typed wrapper
    assert isinstance(m.size, cms.int32) and m.size == 6


# ------------------------------------------------------------------------------------------ checks
def test_unknown_module_type_names_the_nearest_type():
    process = _process(("prod", cms.EDProducer("TestEventNumberProduser")))
    with pytest.raises(ConfigurationError) as err:
        EventProcessor(process)
    msg = str(err.value)
    assert "unknown module type 'TestEventNumberProduser'" in msg
    assert "Did you mean 'TestEventNumberProducer'" in msg


def test_module_declared_as_the_wrong_kind():
    process = _process(("flt", cms.EDFilter("TestEventNumberProducer")))
    with pytest.raises(ConfigurationError, match=r"is a producer.*declared as a filter.*cms\.EDProducer"):
        EventProcessor(process)


def test_misspelled_parameter_names_the_nearest_valid_name():
    process = _process(("prod", cms.EDProducer("TestEventNumberProducer", sise=3)))
    with pytest.raises(ConfigurationError) as err:
        EventProcessor(process)
    msg = str(err.value)
    assert "module 'prod' (TestEventNumberProducer)" in msg
    assert "unknown parameter 'sise'" in msg and "Did you mean 'size'" in msg
    assert "Valid parameters: size, seed" in msg


def test_misspelled_nested_parameter():
    process = _process(("prod", cms.EDProducer("TestRequiredParamProducer", src="x", nested=cms.PSet(dpeth=1))))
    with pytest.raises(ConfigurationError, match=r"prod.*nested: unknown parameter 'dpeth'. Did you mean 'depth'"):
        EventProcessor(process)


@pytest.mark.parametrize(
    ("params", "pattern"),
    [
        ({"threshold": "high"}, r"parameter 'threshold' must be of type float, got 'high'"),
        ({"count": 2.5}, r"parameter 'count' must be of type int, got 2.5"),
        ({"count": True}, r"parameter 'count' must be of type int, got True"),
        ({"enabled": 1}, r"parameter 'enabled' must be of type bool, got 1"),
        ({"src": 3}, r"parameter 'src' must be of type str, got 3"),
        ({"nested": 4}, r"parameter 'nested' must be a cms.PSet"),
        ({"nested": cms.PSet(depth="deep")}, r"nested: parameter 'depth' must be of type int"),
    ],
)
def test_wrong_parameter_type_fails_at_configuration_time(params, pattern):
    params = {"src": "x", **params}
    process = _process(("prod", cms.EDProducer("TestRequiredParamProducer", **params)))
    with pytest.raises(ConfigurationError, match=pattern):
        EventProcessor(process)


def test_int_accepted_for_a_float_parameter():
    process = _process(("prod", cms.EDProducer("TestRequiredParamProducer", src="x", threshold=2)))
    processor = EventProcessor(process)
    assert processor.modules["prod"].params.threshold == 2.0
    assert isinstance(processor.modules["prod"].params.threshold, float)
    assert processor.modules["prod"].params.nested.depth == 2  # defaults filled in


def test_missing_required_parameter():
    process = _process(("prod", cms.EDProducer("TestRequiredParamProducer")))
    with pytest.raises(ConfigurationError, match=r"missing required parameter 'src' \(the product to read\)"):
        EventProcessor(process)


def test_missing_source_and_bad_process_options():
    process = cms.Process("TEST")
    with pytest.raises(ConfigurationError, match="process.source is not set"):
        EventProcessor(process)
    with pytest.raises(ConfigurationError, match="Did you mean 'numberOfThreads'"):
        process.options = cms.PSet(numberOfThread=2)
    with pytest.raises(ConfigurationError, match="must be a cms.Source"):
        process.source = cms.EDProducer("TestEventNumberProducer")
    with pytest.raises(ConfigurationError, match="maxEvents must be -1"):
        p = _process()
        p.maxEvents.input = -5
        EventProcessor(p)


def test_misspelled_process_attribute_names_the_nearest():
    process = _process(("prod", cms.EDProducer("TestEventNumberProducer")))
    with pytest.raises(AttributeError, match="Did you mean 'prod'"):
        process.prdo  # noqa: B018


def test_output_module_on_a_path_is_refused():
    out = cms.OutputModule("RootOutputModule", fileName="x.root")
    process = _process(("out", out))
    with pytest.raises(ConfigurationError, match="put it on an EndPath"):
        EventProcessor(process)


def test_module_reading_an_unscheduled_module_is_refused():
    process = _process(("cons", cms.EDProducer("TestTagConsumer", src=cms.InputTag("od"))))
    process.od = cms.EDProducer("TestOnDemandProducer")  # in no Path and no Task
    with pytest.raises(ConfigurationError, match=r"reads products of 'od', which is in no Path or Task"):
        EventProcessor(process)


# ------------------------------------------------------------------------------------------ paths
def test_paths_sequences_and_tasks():
    process = cms.Process("TEST")
    process.a = cms.EDProducer("TestEventNumberProducer")
    process.b = cms.EDFilter("TestEvenFilter")
    process.c = cms.EDAnalyzer("TestCountingAnalyzer")
    process.od = cms.EDProducer("TestOnDemandProducer")
    process.t = cms.Task(process.od)
    process.s = cms.Sequence(process.a, process.b)
    process.p = cms.Path(process.s, process.c, process.t)

    assert [m.label_() for m in process.p.moduleSequence()] == ["a", "b", "c"]
    assert [m.label_() for m in process.p.taskModules()] == ["od"]
    assert [m.label_() for m in process.unscheduledModules_()] == ["od"]
    with pytest.raises(ConfigurationError):
        cms.Path(cms.Source("EmptySource"))
    with pytest.raises(ConfigurationError):
        cms.Path("a")

    # replacing an attached module replaces it in every sequence; deleting removes it
    process.a = cms.EDProducer("TestRaisingProducer")
    assert process.s._items[0] is process.a and process.a.type_() == "TestRaisingProducer"
    del process.b
    assert [m.label_() for m in process.p.moduleSequence()] == ["a", "c"]


def test_schedule_orders_paths_endpaths_last():
    process = _process(("a", cms.EDProducer("TestEventNumberProducer")))
    process.c = cms.EDAnalyzer("TestCountingAnalyzer")
    process.e = cms.EndPath(process.c)
    process.p2 = cms.Path(process.a)
    process.schedule = cms.Schedule(process.e, process.p2, process.p)
    assert [name for name, _ in process.scheduledPaths_()] == ["p2", "p", "e"]


# ------------------------------------------------------------------------------------------ dump
def _rich_process() -> cms.Process:
    process = cms.Process("DUMPTEST")
    process.source = cms.Source("RootSource", fileNames=cms.untracked.vstring("a.root", "b.root"), chunkSize=cms.int32(50))
    process.maxEvents = cms.PSet(input=cms.untracked.int32(10))
    process.options.numberOfThreads = 4
    process.add_(cms.Service("TestRecordingService", verbose=cms.bool(True)))
    process.prod = cms.EDProducer(
        "TestRequiredParamProducer",
        src=cms.InputTag("od", "inst"),
        threshold=cms.double(2.5),
        count=cms.int32(-3),
        enabled=cms.bool(False),
        nested=cms.PSet(depth=cms.uint32(7), names=cms.vstring("x", 'y"quoted\''), values=cms.vdouble(1, 2.5)),
        many=cms.VPSet(cms.PSet(a=cms.int64(1)), cms.PSet(b=cms.VInputTag("x", "y:z"))),
        plain=[1, 2, 3],
    )
    process.flt = cms.EDFilter("TestEvenFilter")
    process.ana = cms.EDAnalyzer("TestCountingAnalyzer")
    process.od = cms.EDProducer("TestOnDemandProducer")
    process.out = cms.OutputModule("RootOutputModule", fileName="out.root", outputCommands=["drop *", "keep prod_*"])
    task = cms.Task(process.od)
    process.p = cms.Path(process.flt, cms.Sequence(process.prod), task)  # the Task is labelled below
    process.seq = cms.Sequence(process.ana)
    process.t = task
    process.p2 = cms.Path(process.seq)
    process.e = cms.EndPath(process.out)
    process.schedule = cms.Schedule(process.p, process.p2, process.e, tasks=[process.t])
    return process


def test_dump_round_trip_is_identical():
    dump = _rich_process().dumpPython()
    namespace: dict = {}
    exec(compile(dump, "<dump>", "exec"), namespace)
    again = namespace["process"]
    assert again.dumpPython() == dump

    original = _rich_process()
    assert again.name_() == "DUMPTEST"
    for label, decl in original.modules_().items():
        assert getattr(again, label) == decl, label
    assert again.prod.nested.names == ["x", 'y"quoted\'']
    assert [m.label_() for m in again.p.moduleSequence()] == ["flt", "prod"]
    assert [m.label_() for m in again.unscheduledModules_()] == ["od"]
    assert [name for name, _ in again.scheduledPaths_()] == ["p", "p2", "e"]
    assert again.maxEventsValue() == 10 and again.optionValue("numberOfThreads") == 4
    assert again.services_()["TestRecordingService"].verbose == cms.bool(True)
    assert again.source.fileNames == ["a.root", "b.root"]


def test_dump_of_a_task_defined_after_the_path_using_it_runs():
    process = cms.Process("TEST")
    process.source = cms.Source("EmptySource")
    process.od = cms.EDProducer("TestOnDemandProducer")
    process.c = cms.EDProducer("TestTagConsumer", src=cms.InputTag("od"))
    task = cms.Task(process.od)
    process.p = cms.Path(process.c)
    process.p.associate(task)
    process.t = task  # attached after the Path that refers to it
    dump = process.dumpPython()
    namespace: dict = {}
    exec(compile(dump, "<dump>", "exec"), namespace)
    assert namespace["process"].dumpPython() == dump
    assert [m.label_() for m in namespace["process"].p.taskModules()] == ["od"]
