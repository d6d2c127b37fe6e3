"""DQMHistogrammer: per-lumi histograms equal numpy's of the input branches (1-D, 2-D, a formula, per-event values
broadcast over jets), the same with 1 and 4 streams and behind a filter, written in DQM's folder naming and read
back; configuration errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import uproot

import framework.config as cms
from framework.core.processor import EventProcessor
from framework.exceptions import ConfigurationError, FrameworkError, InputError
from framework.samples import generate
from producers.dqm import cff
from producers.dqm.read import me_matrix, read_lumi_histograms

EVENTS, PER_LUMI, LUMIS_PER_RUN = 300, 40, 3  # runs 1-3 (the last one short), lumis of 40 events
RATIO = "Jet/ptOverMET"
FORMULA = "JetMET/MET/pfMETT1/Cleaned/mEtSig"


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    path = tmp_path_factory.mktemp("dqm") / "lumis.root"
    generate(path, EVENTS, 5, events_per_lumi=PER_LUMI, lumis_per_run=LUMIS_PER_RUN,
             branches=["MET_*", "Jet_pt", "Jet_eta", "Jet_phi", "SV_pt"])
    with uproot.open(path) as f:
        events = f["Events"].arrays(library="ak")
    return path, events


def _elements():
    return (cff.met_significance(), cff.jet_occupancy(),
            cms.PSet(name=cms.string(FORMULA), expression=cms.string("MET_pt / sqrt(MET_sumEt)"), bins=cms.int32(20),
                     low=cms.double(0.0), high=cms.double(4.0)),
            cms.PSet(name=cms.string(RATIO), expression=cms.string("Jet_pt / MET_pt"), bins=cms.int32(10),
                     low=cms.double(0.0), high=cms.double(5.0)))


def _process(inp, out, *, streams=1, elements=None, select=False, chunk=25):
    process = cms.Process("DQMTEST")
    process.source = cms.Source("RootSource", fileNames=cms.vstring(str(inp)), chunkSize=cms.uint32(chunk))
    process.options.numberOfThreads = 2
    process.options.numberOfStreams = streams
    cff.add(process, "dqm", *(elements or _elements()))
    modules = [process.dqm]
    if select:
        process.twoJets = cms.EDFilter("BranchCountFilter", src="Jet_pt", minValue=30.0, minNumber=2)
        modules.insert(0, process.twoJets)
    process.p = cms.Path(*modules)
    process.out = cms.OutputModule("RootOutputModule", fileName=str(out), outputCommands=["drop *", "keep dqm_*"])
    process.e = cms.EndPath(process.out)
    return process


def _flows(values, low, high):
    """(underflow, in-range, overflow) as ROOT counts them: [low, high) bins, NaN and >= high in the overflow."""
    under = np.count_nonzero(values < low)
    inside = (values >= low) & (values < high)
    return under, values[inside], len(values) - under - np.count_nonzero(inside)


def _expected(events):
    """Per (run, lumi): the numpy histograms of each ME, with flows."""
    out = {}
    for run, lumi in sorted(set(zip(events.run.to_list(), events.luminosityBlock.to_list()))):
        ev = events[(events.run == run) & (events.luminosityBlock == lumi)]
        sig = ev.MET_significance.to_numpy().astype(np.float64)
        formula = ev.MET_pt.to_numpy().astype(np.float64) / np.sqrt(ev.MET_sumEt.to_numpy().astype(np.float64))
        eta = np.concatenate(ev.Jet_eta.to_list() + [[]]).astype(np.float64)
        phi = np.concatenate(ev.Jet_phi.to_list() + [[]]).astype(np.float64)
        ratio = np.concatenate([np.asarray(p, np.float64) / np.float64(m) for p, m in
                                zip(ev.Jet_pt.to_list(), ev.MET_pt.to_numpy())] + [np.zeros(0)])
        mes = {}
        for name, values, (bins, low, high) in ((cff.MET_SIG, sig, (51, 0, 51)), (FORMULA, formula, (20, 0, 4)),
                                                (RATIO, ratio, (10, 0, 5))):
            under, inside, over = _flows(values, low, high)
            mes[name] = (np.histogram(inside, bins=bins, range=(low, high))[0], under, over)
        inside = (eta >= -5) & (eta < 5) & (phi >= -3.2) & (phi < 3.2)
        grid = np.histogram2d(eta[inside], phi[inside], bins=(50, 24), range=((-5, 5), (-3.2, 3.2)))[0]
        mes[cff.JET_OCCUPANCY] = (grid, 0, len(eta) - np.count_nonzero(inside))
        out[(run, lumi)] = mes
    return out


def _check(hists, expected):
    assert list(hists) == list(expected)
    for key, mes in expected.items():
        assert set(hists[key]) == set(mes), key
        for name, (counts, under, over) in mes.items():
            h = hists[key][name]
            np.testing.assert_array_equal(h.values(), counts, err_msg=f"{name} of {key}")
            flow = h.values(flow=True)
            if flow.ndim == 1:
                assert (flow[0], flow[-1]) == (under, over), f"{name} flows of {key}"
            else:  # 2-D: everything outside the map
                assert flow.sum() - flow[1:-1, 1:-1].sum() == under + over, f"{name} flows of {key}"


def test_contents_equal_numpy_with_1_and_4_streams_and_the_dqm_folders(sample, tmp_path):
    inp, events = sample
    expected = _expected(events)
    assert len(expected) == 8 and sum(e[cff.MET_SIG][0].sum() + e[cff.MET_SIG][2] for e in expected.values()) == EVENTS
    results = {}
    for streams in (1, 4):
        out = tmp_path / f"dqm{streams}.root"
        report = EventProcessor(_process(inp, out, streams=streams)).run()
        assert report.lumis == 8
        results[streams] = read_lumi_histograms(out)
        _check(results[streams], expected)
    with uproot.open(tmp_path / "dqm4.root") as f:
        assert "DQMData/Run 2/JetMET/By Lumi Section 3-3/MET/pfMETT1/Cleaned/METSig" in f
        assert "DQMData/Run 3/JetMET/By Lumi Section 2-2/Jet/Cleanedak4PFJetsCHS/PhiVSEta" in f
        assert f["DQMData/Run 1/JetMET/By Lumi Section 1-1/MET/pfMETT1/Cleaned/METSig"].classname == "TH1D"
        lumis = f["LuminosityBlocks"].arrays(library="np")
    assert list(zip(lumis["run"], lumis["luminosityBlock"])) == list(expected)
    keys, x = me_matrix(results[4], cff.MET_SIG)
    assert keys == list(expected) and x.shape == (8, 51)
    for name in expected[(1, 1)]:  # stream order does not matter to a histogram
        assert all(np.array_equal(results[1][k][name].values(flow=True), results[4][k][name].values(flow=True))
                   for k in expected)


def test_only_the_events_that_pass_the_path_are_filled(sample, tmp_path):
    inp, events = sample
    passed = events[np.asarray([np.count_nonzero(np.asarray(p) > 30) >= 2 for p in events.Jet_pt.to_list()])]
    assert 0 < len(passed) < len(events)
    out = tmp_path / "selected.root"
    EventProcessor(_process(inp, out, streams=4, select=True, chunk=16)).run()
    hists = read_lumi_histograms(out)
    expected = _expected(passed)
    for key in set(hists) - set(expected):  # a lumi whose events all fail still gets (empty) MEs
        assert all(h.sum(flow=True) == 0 for h in hists[key].values())
        del hists[key]
    _check(hists, expected)


def _me(**kw):
    base = {"name": cms.string("A/b")}
    base.update(kw)
    return cms.PSet(**base)


@pytest.mark.parametrize("element,message", [
    (_me(expression="MET_pt", bins=0, low=0.0, high=1.0), "bins must be a positive number"),
    (_me(expression="MET_pt", bins=10, low=5.0, high=1.0), "give low < high"),
    (_me(expression="__import__('os').getcwd()", bins=1, low=0.0, high=1.0), "is not allowed"),
    (_me(expression="MET_pt.real", bins=1, low=0.0, high=1.0), "'MET_pt.real' is not allowed"),
    (_me(expression="MET_pt > 3", bins=1, low=0.0, high=1.0), "is not allowed"),
    (_me(expression="MET_pt +", bins=1, low=0.0, high=1.0), "is not valid"),
    (_me(expression="sqrt", bins=1, low=0.0, high=1.0), "sqrt is a function"),
    (_me(expression="2 * 3", bins=1, low=0.0, high=1.0), "reads no branch"),
    (_me(expression="MET_pt", bins=1, low=0.0, high=1.0, xExpression="Jet_eta"), "not both"),
    (_me(xExpression="Jet_eta", xBins=5, xLow=0.0, xHigh=1.0), "yExpression is missing"),
    (_me(bins=5), "no expression"),
    (cms.PSet(name=cms.string("METSig"), expression=cms.string("MET_pt"), bins=cms.int32(1), low=cms.double(0),
              high=cms.double(1)), "must be a DQM path"),
], ids=["bins", "range", "call", "attribute", "comparison", "syntax", "bare function", "no branch", "1D and 2D",
        "2D without y", "nothing", "name"])
def test_configuration_errors_name_the_module_and_element(sample, tmp_path, element, message):
    with pytest.raises(ConfigurationError) as e:
        EventProcessor(_process(sample[0], tmp_path / "x.root", elements=(element,))).run()
    assert message in str(e.value) and "module 'dqm' (DQMHistogrammer): monitorElements[0]" in str(e.value)
    assert not list(tmp_path.iterdir())


def test_unknown_branch_duplicate_names_and_mixed_collections(sample, tmp_path):
    inp = sample[0]
    with pytest.raises(InputError) as e:
        EventProcessor(_process(inp, tmp_path / "x.root", elements=(cff.met_significance("MET_signficance"),))).run()
    msg = str(e.value)
    assert "branch 'MET_signficance' not found" in msg and "MET_significance" in msg
    assert f"'dqm' (DQMHistogrammer: monitoring element '{cff.MET_SIG}')" in msg, msg
    with pytest.raises(ConfigurationError, match="'JetMET/MET/pfMETT1/Cleaned/METSig' is defined twice"):
        EventProcessor(_process(inp, tmp_path / "x.root", elements=(cff.met_significance(), cff.met_significance()))).run()
    mixed = _me(expression="Jet_pt + SV_pt", bins=1, low=0.0, high=1.0)
    with pytest.raises(FrameworkError) as e:
        EventProcessor(_process(inp, tmp_path / "x.root", elements=(mixed,))).run()
    assert "different numbers of values per event" in str(e.value) and "run 1, lumi 1" in str(e.value)
    assert not list(tmp_path.iterdir())


def test_the_dqm_job_on_the_bundled_sample(tmp_path):
    from framework.runner import run_config

    root = Path(__file__).resolve().parents[1]
    out = tmp_path / "dqm.root"
    report, _ = run_config(str(root / "configs" / "dqm_cfg.py"),
                           [f"inputFiles={root / 'data' / 'samples' / 'dqm.root'}", f"outputFile={out}", "maxEvents=250"],
                           progress=False)
    assert report.processed == 250 and report.lumis == 3
    hists = read_lumi_histograms(out)
    assert list(hists) == [(1, 1), (1, 2), (1, 3)]
    assert [h[cff.MET_SIG].sum(flow=True) for h in hists.values()] == [100, 100, 50]
    assert all(h[cff.JET_OCCUPANCY].values().shape == (50, 24) for h in hists.values())
    with uproot.open(out) as f:
        assert f["LuminosityBlocks"].num_entries == 3


def test_an_input_without_puppimet_names_the_option_that_leaves_its_element_out(sample, run_framework, tmp_path):
    """The DQM config books PF vs Puppi MET by default; on a file without PuppiMET the error names the monitoring
    element and ``puppiMET=0``, and with ``puppiMET=0`` the job runs on the same file."""
    root = Path(__file__).resolve().parents[1]
    config = str(root / "configs" / "dqm_cfg.py")
    out = tmp_path / "dqm.root"
    proc = run_framework("run", config, f"inputFiles={sample[0]}", f"outputFile={out}", "nmfModel=", cwd=tmp_path)
    assert proc.returncode == InputError.exit_code, proc.stderr
    assert "Traceback" not in proc.stderr
    assert ("branch 'PuppiMET_phi' not found" in proc.stderr
            and f"monitoring element '{cff.MET_MINUS_PUPPI}': for an input without PuppiMET, run with puppiMET=0 "
                "to leave it out" in proc.stderr), proc.stderr
    assert not out.exists()
    proc = run_framework("run", config, f"inputFiles={sample[0]}", f"outputFile={out}", "nmfModel=", "puppiMET=0",
                         "maxEvents=80", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    hists = read_lumi_histograms(out)
    assert len(hists) == 2 and all(cff.MET_MINUS_PUPPI not in h and cff.MET_SIG in h for h in hists.values())
