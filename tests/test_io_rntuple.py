"""outputFormat=RNTuple: the main job (direct, the bundled sample) writes Events, LuminosityBlocks and Runs as
RNTuples whose fields are the TTree output's branches (names, order, types, values: exact); the framework's own
RootSource reads the RNTuple back into the TTree's arrays; a bad format is a clear error (exit 2, the allowed
values named); a job failing mid-way leaves no file; executor=dask merges RNTuple parts; ROOT itself (PyROOT
6.40, in a subprocess) reads the RNTuple and finds the TTree's values exactly."""

from __future__ import annotations

import importlib.util
import json
import signal
import subprocess
import sys
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import uproot

import framework.config as cms
import tests.plugins  # noqa: F401 - TestRaisingProducer
from framework.exceptions import FrameworkError
from framework.executor import MergeError, merge_parts, run_dask
from framework.io.output import make_table
from framework.runner import run_config
from framework.samples import generate
from tests.conftest import SAMPLE_EVENTS
from tests.dask_modules import LIGHT_CONFIG
from tests.main_fixtures import CONFIG, REPO_ROOT, in_repo, run_main
from tests.test_cli_signals import CONFIG as SIGNALS_CONFIG
from tests.test_cli_signals import Job, analyzed, assert_stopped_cleanly

TABLES = ["Events", "LuminosityBlocks", "Runs"]
FLUSH = 64  # events per cluster in the RNTuple runs (small_clusters): the bundled sample's 200 make 4 clusters

COPY_CONFIG = '''
import framework.config as cms
from framework.config import options
options.parseArguments()
process = cms.Process("COPY")
process.source = cms.Source("RootSource", fileNames=cms.vstring(options.inputFiles))
process.out = cms.OutputModule("RootOutputModule", fileName=cms.string(options.outputFile),
                               outputCommands=cms.vstring("keep *"))
process.e = cms.EndPath(process.out)
'''


def small_clusters(process: cms.Process) -> None:
    """customise=: the output flushes every FLUSH events (one RNTuple cluster each)."""
    process.out.flushEvents = FLUSH


def tiny_clusters(process: cms.Process) -> None:
    """customise=: the output flushes every 16 events."""
    process.out.flushEvents = 16


def fail_at_event_150(process: cms.Process) -> None:
    """customise=: small clusters (two are written before the failure), and a module raising at event 150."""
    small_clusters(process)
    process.bad = cms.EDProducer("TestRaisingProducer", failOnEvent=150)
    process.failing = cms.Path(process.bad)


def tables(path: Path | str) -> dict[str, dict[str, tuple[str, list]]]:
    """Every TTree's or RNTuple's columns, in order: name -> (awkward type, values as lists), read with uproot."""
    out = {}
    with uproot.open(path) as f:
        for name, cls in f.classnames(cycle=False).items():
            if cls in ("TTree", "ROOT::RNTuple"):
                arrays = f[name].arrays(library="ak")
                out[name] = {k: (str(ak.type(arrays[k])), ak.to_list(arrays[k])) for k in f[name].keys()}
    return out


def kinds(path: Path | str) -> dict[str, str]:
    with uproot.open(path) as f:
        return {k: c for k, c in f.classnames(cycle=False).items() if k in TABLES}


@pytest.fixture(scope="module")
def outputs(tmp_path_factory) -> dict[str, Path]:
    """The main job (direct, all 200 events of the bundled sample) written as TTrees and as RNTuples."""
    d = tmp_path_factory.mktemp("rntuple")
    run_main(d / "ttree.root", "wantSummary=0")
    run_main(d / "rntuple.root", "wantSummary=0", "outputFormat=RNTuple", f"customise={__name__}.small_clusters")
    return {"TTree": d / "ttree.root", "RNTuple": d / "rntuple.root"}


# ----------------------------------------------------------------------------- same content
def test_rntuple_output_equals_the_ttree_output(outputs):
    assert kinds(outputs["TTree"]) == dict.fromkeys(TABLES, "TTree")
    assert kinds(outputs["RNTuple"]) == dict.fromkeys(TABLES, "ROOT::RNTuple")
    tt, rn = tables(outputs["TTree"]), tables(outputs["RNTuple"])
    for name in TABLES:
        assert list(rn[name]) == list(tt[name]), name  # same fields, same order (counters nJet, ... included)
        for field, (typ, values) in tt[name].items():
            assert rn[name][field][0] == typ, f"{name}/{field}: {rn[name][field][0]} != {typ}"
            assert rn[name][field][1] == values, f"{name}/{field} differs"
    events = tt["Events"]
    assert len(events["event"][1]) == 200
    assert "nJet" in events and "pfParticleTransformerAK4JetTags_probb" in events and "deepMETProducer_pt" in events
    assert events["nJet"][1] == [len(j) for j in events["Jet_pt"][1]]
    with uproot.open(outputs["RNTuple"]) as f:  # appended flush by flush: one cluster each
        assert [int(c.num_entries) for c in f["Events"].cluster_summaries] == [FLUSH, FLUSH, FLUSH, 200 - 3 * FLUSH]


def test_rootsource_reads_the_rntuple_into_the_ttree_arrays(outputs, tmp_path):
    """A copy job (RootSource, keep *) from the RNTuple to a TTree gives the main job's TTree: every branch."""
    config = tmp_path / "copy_cfg.py"
    config.write_text(COPY_CONFIG)
    copy = tmp_path / "copy.root"
    report, _ = run_config(str(config), [f"inputFiles={outputs['RNTuple']}", f"outputFile={copy}"], progress=False)
    assert report.written == {"out": 200}
    tt, cp = tables(outputs["TTree"]), tables(copy)
    for name in TABLES:
        assert cp[name] == tt[name], name


def test_every_kind_of_column_gets_the_ttree_branch_names(tmp_path):
    """make_table on the TTree writer's data: flat columns, a record (a jagged group), a lone jagged column
    named with and without '_' (uproot's TTree gives each a counter n<name>); two flushes."""
    jet = ak.zip({"pt": ak.Array([[1.5, 2.5], [], [3.5]]), "eta": ak.Array([[0.1, -0.2], [], [2.0]])})
    data = {"event": np.array([1, 2, 3], dtype=np.uint64), "flag": np.array([True, False, True]), "Jet": jet,
            "tagger": ak.Array([[1], [2, 3], []]), "Muon_pt": ak.Array([[], [7.0], [8.0, 9.0]])}
    for fmt in ("TTree", "RNTuple"):
        with uproot.recreate(tmp_path / f"{fmt}.root") as f:
            table = make_table(f, "Events", data, fmt)
            table.extend(data)
            table.extend(data)
    tt, rn = tables(tmp_path / "TTree.root")["Events"], tables(tmp_path / "RNTuple.root")["Events"]
    assert list(tt) == ["event", "flag", "nJet", "Jet_pt", "Jet_eta", "ntagger", "tagger", "nMuon_pt", "Muon_pt"]
    assert rn == tt
    assert rn["nJet"] == ("6 * int32", [2, 0, 1] * 2)


# ----------------------------------------------------------------------------- bad values, failures
@pytest.mark.parametrize("how", ["option", "parameter"])
def test_bad_format_is_a_clear_error_naming_the_allowed_values(how, tmp_path):
    if how == "option":
        args = [str(CONFIG), "outputFormat=RNtuple", f"outputFile={tmp_path / 'out.root'}"]
    else:
        config = tmp_path / "bad_cfg.py"
        config.write_text(COPY_CONFIG.replace('outputCommands=cms.vstring("keep *")',
                                              'outputCommands=cms.vstring("keep *"), format=cms.untracked.string("RNtuple")'))
        args = [str(config), "inputFiles=data/samples/sample.root", f"outputFile={tmp_path / 'out.root'}"]
    r = subprocess.run([sys.executable, "-m", "framework", "run", *args], cwd=REPO_ROOT, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 2, r.stderr
    assert "RNtuple" in r.stderr and "TTree, RNTuple" in r.stderr, r.stderr
    assert "Did you mean 'RNTuple'" in r.stderr or "did you mean 'RNTuple'" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr, r.stderr
    assert list(tmp_path.glob("*.root")) == [] and list(tmp_path.glob(".*")) == []


def test_a_job_failing_mid_way_leaves_no_rntuple_file(tmp_path):
    """Two clusters are in the temporary file when event 150 fails: neither it nor the output remains."""
    out = tmp_path / "out.root"
    with in_repo(), pytest.raises(FrameworkError, match="deliberate failure at event 150"):
        run_config(str(CONFIG), ["wantSummary=0", "outputFormat=RNTuple", f"outputFile={out}",
                                 f"customise={__name__}.fail_at_event_150"], progress=False)
    assert list(tmp_path.iterdir()) == []


def test_sigterm_mid_job_leaves_no_rntuple_file(sample_file, tmp_path):
    """``python -m framework run`` writing an RNTuple, SIGTERMed once its temporary file holds a cluster: exit 143
    and neither the output nor the temporary file remains (the signal test's config, tests/test_cli_signals.py)."""
    config = tmp_path / "signals_cfg.py"
    config.write_text(SIGNALS_CONFIG)
    marker = tmp_path / "marker.txt"
    job = Job(tmp_path, "run", str(config), f"inputFiles={sample_file}", f"marker={marker}", "delay=0.1",
              "outputFile=out.root", "outputFormat=RNTuple", f"customise={__name__}.tiny_clusters", cwd=tmp_path)
    job.wait_until(lambda: len(analyzed(marker)) >= 24 and list(tmp_path.glob(".out.root.tmp-*")),
                   "analyzed 24 events (a cluster written) with a temporary output", timeout=60)
    job.signal(signal.SIGTERM)
    rc = job.wait(timeout=30)
    assert len(analyzed(marker)) < SAMPLE_EVENTS, "the job was not stopped early"
    assert_stopped_cleanly(job, rc, signal.SIGTERM, {"signals_cfg.py", "marker.txt", "stdout.txt", "stderr.txt"},
                           tmp_path)


# ----------------------------------------------------------------------------- executor=dask
@pytest.mark.slow
def test_dask_merges_rntuple_parts_into_the_sequential_output(tmp_path):
    """4 files x 200 events, items of 100 events on 2 workers, the light config (lumi and run products, a run
    histogram): the merged RNTuples equal the sequential job's RNTuples and its TTrees, field for field."""
    inputs = [str(tmp_path / f"f{i}.root") for i in range(4)]
    for i, p in enumerate(inputs):
        generate(p, 200, seed=100 + i, first_event=1 + i * 200)
    config = tmp_path / "light_cfg.py"
    config.write_text(LIGHT_CONFIG)
    common = [f"inputFiles={','.join(inputs)}"]
    run_config(str(config), [*common, f"outputFile={tmp_path / 'seq_tt.root'}"], progress=False)
    run_config(str(config), [*common, "outputFormat=RNTuple", f"outputFile={tmp_path / 'seq_rn.root'}"],
               progress=False)
    report, _, summary = run_dask(str(config), [*common, "outputFormat=RNTuple", f"outputFile={tmp_path / 'dask.root'}",
                                                "executor=dask", "workers=2", "chunkSize=100"], progress=False)
    assert summary.items == 8
    assert kinds(tmp_path / "dask.root") == dict.fromkeys(TABLES, "ROOT::RNTuple")
    seq_tt, seq_rn, par = (tables(tmp_path / n) for n in ("seq_tt.root", "seq_rn.root", "dask.root"))
    assert par["Events"] == seq_rn["Events"] == seq_tt["Events"]
    assert len(par["Events"]["event"][1]) == 800
    assert par["LuminosityBlocks"] == seq_rn["LuminosityBlocks"]  # items are cut at lumi boundaries
    # run 1 spans every item: one row per item (as for TTree parts), the counts adding up
    assert list(par["Runs"]) == list(seq_rn["Runs"])
    assert len(par["Runs"]["run"][1]) == 8 and sum(par["Runs"]["sums_nEvents"][1]) == 800
    assert any(w.startswith("Runs: runs 1 span several work items") for w in report.warnings)
    with uproot.open(tmp_path / "dask.root") as f, uproot.open(tmp_path / "seq_tt.root") as g:
        (h,) = [k for k, c in g.classnames(recursive=True, cycle=False).items() if c.startswith("TH1")]
        assert np.array_equal(f[h].values(), g[h].values())  # the histogram summed over the parts
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no part or temporary left


def test_merging_parts_of_different_formats_is_a_clear_error(tmp_path):
    inputs = str(tmp_path / "in.root")
    generate(inputs, 50, seed=1)
    config = tmp_path / "light_cfg.py"
    config.write_text(LIGHT_CONFIG)
    parts = [tmp_path / "a.root", tmp_path / "b.root"]
    run_config(str(config), [f"inputFiles={inputs}", f"outputFile={parts[0]}"], progress=False)
    run_config(str(config), [f"inputFiles={inputs}", "outputFormat=RNTuple", f"outputFile={parts[1]}"],
               progress=False)
    with pytest.raises(MergeError, match=r"a\.root holds its events as a TTree but .*b\.root as a RNTuple"):
        merge_parts([str(p) for p in parts], str(tmp_path / "merged.root"))
    assert not (tmp_path / "merged.root").exists() and list(tmp_path.glob(".*")) == []


def test_merging_empty_rntuple_parts_gives_an_empty_typed_rntuple(tmp_path):
    inputs = str(tmp_path / "in.root")
    generate(inputs, 50, seed=1)
    config = tmp_path / "light_cfg.py"
    config.write_text(LIGHT_CONFIG)
    parts = [tmp_path / "a.root", tmp_path / "b.root"]
    for p in parts:
        run_config(str(config), [f"inputFiles={inputs}", "maxEvents=0", "outputFormat=RNTuple", f"outputFile={p}"],
                   progress=False)
    reference = tables(parts[0])
    merge_parts([str(p) for p in parts], str(tmp_path / "merged.root"))
    assert kinds(tmp_path / "merged.root") == {"Events": "ROOT::RNTuple"}
    merged = tables(tmp_path / "merged.root")
    assert merged == reference and "nJet" in merged["Events"] and merged["Events"]["nJet"] == ("0 * int32", [])


# ----------------------------------------------------------------------------- ROOT itself
READ_WITH_ROOT = r'''
import json, sys
import numpy as np
import ROOT

path, out, names = sys.argv[1], sys.argv[2], sys.argv[3:]
result = {"version": ROOT.gROOT.GetVersion()}
for name in names:
    reader = ROOT.RNTupleReader.Open(name, path)
    entries = int(reader.GetNEntries())
    df = ROOT.RDataFrame(name, path)
    columns = [str(c) for c in df.GetColumnNames()]
    arrays = df.AsNumpy(columns) if entries else {}
    table = {}
    for c in columns:
        values = arrays.get(c, [])
        kind = str(df.GetColumnType(c))
        if kind.startswith("ROOT::VecOps::RVec<"):  # an RVec per entry
            table[c] = {"type": kind, "counts": [len(v) for v in values],
                        "flat": np.concatenate([np.asarray(v) for v in values]).tolist() if entries else []}
        else:
            table[c] = {"type": kind, "values": np.asarray(values).tolist()}
    result[name] = {"entries": entries, "columns": table}
json.dump(result, open(out, "w"))
'''


# the C++ type ROOT gives a column of each numpy dtype (a jagged one: ROOT::VecOps::RVec<that type>)
ROOT_TYPES = {"bool": "bool", "float32": "float", "float64": "double", **{
    f"{u}int{n}": f"std::{u}int{n}_t" for u in ("", "u") for n in (8, 16, 32, 64)}}


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("ROOT") is None,
                    reason="ROOT is not installed: the test extra installs it (pip install 'root>=0.1a12', the PyPI "
                           "wheel holding ROOT 6.40; Linux x86_64 only)")
@pytest.mark.parametrize("events", ["all", "none"])
def test_root_reads_the_rntuple_with_the_ttree_values(events, outputs, tmp_path):
    """ROOT's RNTupleReader and RDataFrame (in a subprocess: a ROOT crash cannot take pytest down) read every field
    of the RNTuples; names, C++ types and values equal the TTree output's (read with uproot) exactly. ``none``:
    maxEvents=0, an RNTuple with its fields and no entry."""
    if events == "none":
        outputs = {"TTree": tmp_path / "ttree.root", "RNTuple": tmp_path / "rntuple.root"}
        for fmt, path in outputs.items():
            run_main(path, "wantSummary=0", "maxEvents=0", f"outputFormat={fmt}")
    script = tmp_path / "read_with_root.py"
    script.write_text(READ_WITH_ROOT)
    dump = tmp_path / "root.json"
    names = list(kinds(outputs["TTree"]))
    assert names == (TABLES if events == "all" else ["Events"])
    with uproot.open(outputs["TTree"]) as f:
        assert f["Events"].num_entries == (200 if events == "all" else 0)
    r = subprocess.run([sys.executable, str(script), str(outputs["RNTuple"]), str(dump), *names], capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    seen = json.loads(dump.read_text())
    assert seen["version"].startswith("6.")
    with uproot.open(outputs["TTree"]) as f:
        for name in names:
            tree = f[name]
            assert seen[name]["entries"] == tree.num_entries, name
            columns = seen[name]["columns"]
            assert sorted(columns) == sorted(tree.keys()), name  # RDataFrame lists columns sorted
            for field in tree.keys():
                ref = tree[field].array(library="ak")
                got = columns[field]
                if ref.ndim == 1:
                    want = ak.to_numpy(ref)
                    assert got["type"] == ROOT_TYPES[str(want.dtype)], (name, field, got["type"])
                    assert np.array_equal(np.asarray(got["values"], dtype=want.dtype), want), (name, field)
                else:
                    flat = ak.to_numpy(ak.flatten(ref))
                    assert got["type"] == f"ROOT::VecOps::RVec<{ROOT_TYPES[str(flat.dtype)]}>", (name, field)
                    assert got["counts"] == ak.to_list(ak.num(ref)), (name, field)
                    assert np.array_equal(np.asarray(got["flat"], dtype=flat.dtype), flat), (name, field)
