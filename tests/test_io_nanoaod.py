"""The real CMS NanoAOD file (../shared): read as it is, passed through bit-identically, keep/drop
patterns, only the used branches read, chunked reading (one job, shared by the tests)."""

from __future__ import annotations

import awkward as ak
import numpy as np
import pytest
import uproot

import framework.config as cms
import tests.plugins as plugins
from framework.core.processor import EventProcessor

pytestmark = pytest.mark.shared

KEEP = [
    "drop *",
    "keep run", "keep luminosityBlock", "keep event",
    "keep nJet", "keep Jet_*", "drop Jet_btag*", "keep Jet_btagDeepB", "drop Jet_*Idx*",
    "keep MET_*", "drop MET_cov*",
    "keep nMuon", "keep Muon_pt", "keep Muon_eta", "keep Muon_charge", "keep Muon_tightId",
    "keep PV_npvs", "keep PV_z", "keep Flag_goodVertices", "keep fixedGridRhoFastjetAll",
    "keep prod_*", "keep sum",
]
# compared bit for bit (dtype, counts, bytes); counters nJet/nMuon are rewritten by uproot (values compared)
IDENTICAL = [
    "run", "luminosityBlock", "event", "Jet_pt", "Jet_eta", "Jet_phi", "Jet_mass", "Jet_jetId", "Jet_puId",
    "Jet_nConstituents", "Jet_btagDeepB", "Jet_hadronFlavour", "MET_pt", "MET_phi", "MET_sumEt", "Muon_pt",
    "Muon_charge", "Muon_tightId", "PV_npvs", "PV_z", "Flag_goodVertices", "fixedGridRhoFastjetAll",
]


class Result:
    pass


@pytest.fixture(scope="module")
def passthrough(nanoaod_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("nano") / "nano_out.root"
    process = cms.Process("NANO")
    process.source = cms.Source("RootSource", fileNames=[str(nanoaod_file)], chunkSize=64)
    process.options.numberOfStreams = 2
    process.options.numberOfThreads = 2
    process.prod = cms.EDProducer("TestEventNumberProducer")
    process.sum = cms.EDProducer("TestBranchSumProducer", src="Electron_pt")
    process.spy = cms.EDAnalyzer("TestBranchSpy")
    process.p = cms.Path(process.prod, process.sum, process.spy)
    process.out = cms.OutputModule("RootOutputModule", fileName=str(out), outputCommands=KEEP)
    process.e = cms.EndPath(process.out)
    plugins.reset()
    result = Result()
    result.report = EventProcessor(process).run()
    result.spy = list(plugins.SEEN["spy"])
    result.out = out
    with uproot.open(nanoaod_file) as f:  # opening this file costs ~1 s (947 branches): once
        tree = f["Events"]
        result.n_input = tree.num_entries
        result.input_names = list(tree.keys())
        result.inputs = {n: tree[n].array(library="ak") for n in [*IDENTICAL, "nJet", "nMuon", "Electron_pt"]}
    return result


def test_real_nanoaod_is_read_completely(passthrough):
    assert passthrough.n_input == 200
    assert passthrough.report.processed == passthrough.n_input == passthrough.report.written["out"]
    assert passthrough.report.warnings == []


def test_real_nanoaod_branches_pass_through_bit_identical(passthrough):
    with uproot.open(passthrough.out) as f:
        got = {n: f["Events"][n].array(library="ak") for n in [*IDENTICAL, "nJet", "nMuon"]}
    want = passthrough.inputs
    for name in IDENTICAL:
        a, b = got[name], want[name]
        assert str(ak.type(a)) == str(ak.type(b)), name
        if a.ndim > 1:
            assert np.array_equal(ak.num(a), ak.num(b)), name
            a, b = ak.flatten(a), ak.flatten(b)
        assert np.asarray(a).tobytes() == np.asarray(b).tobytes(), name
    for counter in ("nJet", "nMuon"):
        assert np.array_equal(ak.to_numpy(got[counter]), ak.to_numpy(want[counter])), counter
    events = ak.to_numpy(want["event"])
    assert len(np.unique(events)) == len(events)  # real IDs, not entry numbers


def test_keep_drop_on_real_nanoaod(passthrough):
    with uproot.open(passthrough.out) as f:
        names = set(f["Events"].keys())
    inputs = set(passthrough.input_names)
    assert "Jet_btagDeepB" in names and "Jet_btagCSVV2" not in names and "Jet_btagDeepFlavB" not in names
    assert not {n for n in names if n.startswith("Jet_") and "Idx" in n}
    assert "MET_sumEt" in names and not {n for n in names if n.startswith("MET_cov")}
    assert "Muon_pt" in names and "Muon_phi" not in names
    assert not {n for n in names if n.startswith(("Electron", "HLT_", "GenPart", "Tau"))}
    assert {"prod_number", "prod_values", "sum"} <= names
    expected_jets = {n for n in inputs if n.startswith("Jet_") and not n.startswith("Jet_btag") and "Idx" not in n}
    assert {n for n in names if n.startswith("Jet_")} == expected_jets | {"Jet_btagDeepB"}


def test_only_the_used_branches_of_the_real_file_are_read(passthrough):
    kept_inputs = {n for n in passthrough.input_names if _kept(n)}
    read = set().union(*(cols for _, cols, _ in passthrough.spy))
    assert read == kept_inputs | {"Electron_pt"}
    assert len(read) < len(passthrough.input_names) / 10
    ranges = sorted({r[1:] for _, _, r in passthrough.spy})
    assert ranges == [(0, 64), (64, 128), (128, 192), (192, 200)]


def _kept(name):
    from framework.io.output import kept, parse_output_commands

    return kept(name, parse_output_commands(KEEP))


def test_chunked_reading_of_the_real_file_gives_the_products_of_the_whole_file(passthrough):
    # chunks of 64 entries (see the test above); the reference is the whole branch read at once
    electron_pt = passthrough.inputs["Electron_pt"]
    want = np.array([np.sum(np.asarray(x, dtype=np.float64)) for x in electron_pt])
    with uproot.open(passthrough.out) as f:
        got = f["Events"]["sum"].array(library="np")
    assert got.tobytes() == want.tobytes()
    assert np.count_nonzero(want) > 10
