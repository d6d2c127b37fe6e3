"""ROOT I/O with a generated sample: generate -> run a config -> read back with uproot; chunked
reading; only the used branches are read; keep/drop; atomic output (complete or absent)."""

from __future__ import annotations

import os
import textwrap

import awkward as ak
import numpy as np
import pytest
import uproot

import framework.config as cms
import tests.plugins as plugins
from framework.core.processor import EventProcessor
from framework.exceptions import FrameworkError, InputError, ModuleError
from framework.io.output import kept, parse_output_commands
from framework.runner import run_config
from tests.conftest import SAMPLE_EVENTS

CONFIG = textwrap.dedent(
    """
    import framework.config as cms
    import tests.plugins  # noqa: F401

    process = cms.Process("ROUNDTRIP")
    process.source = cms.Source("RootSource", fileNames=["unset.root"], chunkSize=cms.untracked.int32(1000))
    process.prod = cms.EDProducer("TestEventNumberProducer", size=cms.int32(6), seed=cms.int32(11))
    process.sum = cms.EDProducer("TestBranchSumProducer", src=cms.string("Jet_pt"))
    process.spy = cms.EDAnalyzer("TestBranchSpy")
    process.p = cms.Path(process.prod, process.sum, process.spy)
    process.out = cms.OutputModule(
        "RootOutputModule",
        fileName=cms.untracked.string("unset_out.root"),
        outputCommands=cms.untracked.vstring("drop *", "keep run", "keep luminosityBlock", "keep event",
                                             "keep nJet", "keep Jet_pt", "keep Jet_hadronFlavour", "keep MET_*",
                                             "keep prod_*", "keep sum"),
    )
    process.e = cms.EndPath(process.out)
    """
)

USED = {"run", "luminosityBlock", "event", "nJet", "Jet_pt", "Jet_hadronFlavour", "MET_pt", "MET_phi"}


@pytest.fixture
def config(tmp_path):
    path = tmp_path / "roundtrip_cfg.py"
    path.write_text(CONFIG)
    return path


def _input(sample_file, branches):
    with uproot.open(sample_file) as f:
        return {b: f["Events"][b].array(library="ak") for b in branches}


def _same(a, b) -> bool:
    """Bit-identical: same type (dtype and jaggedness), same counts, same bytes."""
    if str(ak.type(a)) != str(ak.type(b)):
        return False
    if a.ndim > 1:
        if not np.array_equal(ak.num(a), ak.num(b)):
            return False
        a, b = ak.flatten(a), ak.flatten(b)
    return np.asarray(a).tobytes() == np.asarray(b).tobytes()


def test_generate_run_read_back(sample_file, config, tmp_path):
    out = tmp_path / "out.root"
    report, _ = run_config(str(config), [f"inputFiles={sample_file}", f"outputFile={out}"], progress=False)
    assert report.processed == SAMPLE_EVENTS and report.written == {"out": SAMPLE_EVENTS}
    assert sorted(os.listdir(tmp_path)) == ["out.root", "roundtrip_cfg.py"]  # no temporary file left

    with uproot.open(out) as f:
        tree = f["Events"]
        assert tree.num_entries == SAMPLE_EVENTS
        names = set(tree.keys())
        got = tree.arrays(library="ak")
    assert names == USED | {"prod_number", "nprod", "prod_values", "sum"}

    want = _input(sample_file, sorted(USED))
    for b in sorted(USED):
        assert _same(got[b], want[b]), b

    # the products, per event
    events = ak.to_numpy(want["event"])
    assert got["prod_number"].to_list() == events.tolist()
    assert str(ak.type(got["prod_values"])).endswith("var * float32")
    for i, n in enumerate(events):
        assert np.asarray(got["prod_values"][i]).tobytes() == plugins.event_array(n, 11, 6).tobytes()
    sums = np.array([np.sum(np.asarray(x, dtype=np.float64)) for x in want["Jet_pt"]])
    assert np.array_equal(ak.to_numpy(got["sum"]), sums) and ak.to_numpy(got["sum"]).dtype == np.float64
    assert np.array_equal(ak.to_numpy(got["nprod"]), 1 + events % 6)


def test_only_the_used_branches_are_read(sample_file, config, tmp_path):
    run_config(str(config), [f"inputFiles={sample_file}", f"outputFile={tmp_path / 'o.root'}"], progress=False)
    assert len(plugins.SEEN["spy"]) == SAMPLE_EVENTS
    read = set().union(*(cols for _, cols, _ in plugins.SEEN["spy"]))
    assert read == USED  # Jet_pt for the producer, the kept branches for the output, the IDs
    with uproot.open(sample_file) as f:
        assert len(f["Events"].keys()) > len(USED) + 20  # there was much more to read


@pytest.mark.parametrize("chunk", [4, 25])
def test_chunked_reading_gives_the_same_output(sample_file, tmp_path, chunk):
    outputs = {}
    for size in (chunk, 1000):
        plugins.reset()
        process = cms.Process("CHUNK")
        process.source = cms.Source("RootSource", fileNames=[str(sample_file)], chunkSize=size)
        process.sum = cms.EDProducer("TestBranchSumProducer", src="Jet_eta")
        process.spy = cms.EDAnalyzer("TestBranchSpy")
        process.p = cms.Path(process.sum, process.spy)
        out = tmp_path / f"o{size}.root"
        process.out = cms.OutputModule("RootOutputModule", fileName=str(out),
                                       outputCommands=["drop *", "keep SV_*", "keep event", "keep sum"])
        process.e = cms.EndPath(process.out)
        EventProcessor(process).run()
        with uproot.open(out) as f:
            outputs[size] = f["Events"].arrays(library="ak")
        ranges = sorted({r for _, _, r in plugins.SEEN["spy"]})
        expected = [(str(sample_file), s, min(s + size, SAMPLE_EVENTS)) for s in range(0, SAMPLE_EVENTS, size)]
        assert ranges == expected

    assert outputs[chunk].fields == outputs[1000].fields
    for name in outputs[1000].fields:
        assert _same(outputs[chunk][name], outputs[1000][name]), name
    want = _input(sample_file, ["SV_pt", "SV_x"])
    assert _same(outputs[chunk]["SV_pt"], want["SV_pt"]) and _same(outputs[chunk]["SV_x"], want["SV_x"])


# ------------------------------------------------------------------------------------------ keep / drop
def test_output_commands_later_rule_wins(sample_file, tmp_path):
    out = tmp_path / "o.root"
    process = cms.Process("KEEP")
    process.source = cms.Source("RootSource", fileNames=[str(sample_file)])
    process.maxEvents.input = 5
    process.prod = cms.EDProducer("TestEventNumberProducer")
    process.p = cms.Path(process.prod)
    process.out = cms.OutputModule(
        "RootOutputModule", fileName=str(out),
        outputCommands=["keep *", "drop PFCands_*", "drop nPFCands", "drop Jet*", "keep Jet_eta", "keep nJet",
                        "drop SV_*", "keep SV_?", "drop *MET_phi", "drop prod_*", "keep prod_values"],
    )
    process.e = cms.EndPath(process.out)
    EventProcessor(process).run()
    with uproot.open(out) as f:
        names = set(f["Events"].keys())
    assert {"nJet", "Jet_eta", "SV_x", "SV_y", "SV_z", "MET_pt", "GenMET_pt", "prod_values", "event"} <= names
    assert not {n for n in names if n.startswith(("PFCands", "nPFCands", "JetPFCands", "JetSVs"))}
    assert "Jet_pt" not in names and "SV_pt" not in names and "prod_number" not in names
    assert not {n for n in names if n.endswith("MET_phi")}


def test_output_command_rules():
    rules = parse_output_commands(["drop *", "keep Jet_*", "drop Jet_btag*", "keep Jet_btagDeepB"])
    assert [kept(n, rules) for n in ["Jet_pt", "Jet_btagCSVV2", "Jet_btagDeepB", "MET_pt"]] == [True, False, True, False]
    assert not kept("anything", [])
    with pytest.raises(Exception, match="must be 'keep PATTERN' or 'drop PATTERN'"):
        parse_output_commands(["keep"])
    with pytest.raises(Exception, match="must be 'keep PATTERN' or 'drop PATTERN'"):
        parse_output_commands(["save Jet_*"])


# ------------------------------------------------------------------------------------------ atomic output
def _failing_process(sample_file, out_dir, *, fail_on):
    process = cms.Process("FAIL")
    process.source = cms.Source("RootSource", fileNames=[str(sample_file)], chunkSize=10)
    process.options.numberOfStreams = 2
    process.prod = cms.EDProducer("TestEventNumberProducer")
    process.bad = cms.EDProducer("TestRaisingProducer", failOnEvent=fail_on)
    process.p = cms.Path(process.prod, process.bad)
    process.out = cms.OutputModule("RootOutputModule", fileName=str(out_dir / "o.root"), flushEvents=5,
                                   outputCommands=["keep Jet_*", "keep prod_*", "keep event"])
    process.e = cms.EndPath(process.out)
    return process


def test_failing_module_leaves_no_output_and_no_temporary_file(sample_file, tmp_path):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    with pytest.raises(ModuleError) as err:
        EventProcessor(_failing_process(sample_file, out_dir, fail_on=45)).run()
    assert err.value.label == "bad"
    assert list(out_dir.iterdir()) == []


def test_output_replaces_an_existing_file_only_on_success(sample_file, tmp_path):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    (out_dir / "o.root").write_bytes(b"previous")
    with pytest.raises(ModuleError):
        EventProcessor(_failing_process(sample_file, out_dir, fail_on=30)).run()
    assert [p.name for p in out_dir.iterdir()] == ["o.root"]
    assert (out_dir / "o.root").read_bytes() == b"previous"  # an old file is not destroyed by a failed job

    EventProcessor(_failing_process(sample_file, out_dir, fail_on=-2)).run()
    assert [p.name for p in out_dir.iterdir()] == ["o.root"]
    with uproot.open(out_dir / "o.root") as f:
        assert f["Events"].num_entries == SAMPLE_EVENTS


def test_output_directory_must_exist(sample_file, tmp_path):
    process = _failing_process(sample_file, tmp_path / "missing", fail_on=-2)
    with pytest.raises(InputError, match="output directory .*missing does not exist"):
        EventProcessor(process).run()


# ------------------------------------------------------------------------------------------ zero events
def test_zero_events_write_an_empty_tree_with_the_kept_input_branches(sample_file, tmp_path):
    out = tmp_path / "o.root"
    process = cms.Process("ZERO")
    process.source = cms.Source("RootSource", fileNames=[str(sample_file)])
    process.maxEvents.input = 0
    process.prod = cms.EDProducer("TestEventNumberProducer")
    process.p = cms.Path(process.prod)
    process.out = cms.OutputModule("RootOutputModule", fileName=str(out),
                                   outputCommands=["drop *", "keep MET_pt", "keep event", "keep prod_*"])
    process.e = cms.EndPath(process.out)
    report = EventProcessor(process).run()
    assert report.processed == 0 and report.written == {"out": 0}
    with uproot.open(out) as f:
        tree = f["Events"]
        assert tree.num_entries == 0
        assert {"MET_pt", "event"} <= set(tree.keys())
        assert tree["MET_pt"].array(library="np").dtype == np.float32


def test_zero_events_with_only_products_kept(tmp_path):
    out = tmp_path / "o.root"
    process = cms.Process("ZERO")
    process.source = cms.Source("EmptySource")
    process.maxEvents.input = 0
    process.prod = cms.EDProducer("TestEventNumberProducer")
    process.p = cms.Path(process.prod)
    process.out = cms.OutputModule("RootOutputModule", fileName=str(out), outputCommands=["keep prod_*"])
    process.e = cms.EndPath(process.out)
    report = EventProcessor(process).run()
    assert report.processed == 0
    with uproot.open(out) as f:
        assert f["Events"].num_entries == 0


def test_output_keeping_no_branch_is_not_an_internal_error(tmp_path):
    out = tmp_path / "o.root"
    process = cms.Process("NOTHING")
    process.source = cms.Source("EmptySource")
    process.maxEvents.input = 3
    process.prod = cms.EDProducer("TestEventNumberProducer")
    process.p = cms.Path(process.prod)
    process.out = cms.OutputModule("RootOutputModule", fileName=str(out), outputCommands=["drop *"])
    process.e = cms.EndPath(process.out)
    try:
        EventProcessor(process).run()
    except FrameworkError as e:
        assert "outputCommands" in str(e)
    else:
        with uproot.open(out) as f:
            assert f["Events"].num_entries == 3


def test_products_missing_in_the_first_events_are_still_written(tmp_path):
    """A producer behind a filter that rejects the first event: its products are written for the
    events that have them, and the others get an empty array / 0 (the branches are not lost)."""
    out = tmp_path / "o.root"
    process = cms.Process("FILTERED")
    process.source = cms.Source("EmptySource")
    process.maxEvents.input = 6
    process.even = cms.EDFilter("TestEvenFilter")
    process.prod = cms.EDProducer("TestEventNumberProducer")
    process.p = cms.Path(process.even, process.prod)
    process.out = cms.OutputModule("RootOutputModule", fileName=str(out))
    process.e = cms.EndPath(process.out)
    EventProcessor(process).run()
    with uproot.open(out) as f:
        a = f["Events"].arrays()
    assert a["event"].tolist() == [1, 2, 3, 4, 5, 6]
    assert a["prod_number"].tolist() == [0, 2, 0, 4, 0, 6]
    assert [len(v) for v in a["prod_values"].tolist()][0::2] == [0, 0, 0]
    assert all(len(v) > 0 for v in a["prod_values"].tolist()[1::2])
