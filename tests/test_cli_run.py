"""The command line: ``python -m framework run|dump CONFIG key=value ...`` in a subprocess."""

from __future__ import annotations

import json
import textwrap

import pytest
import uproot

from framework.configloader import load_config
from framework.runner import run_config
from tests.conftest import SAMPLE_EVENTS

CONFIG = textwrap.dedent(
    """
    import framework.config as cms
    import tests.plugins  # noqa: F401

    options = cms.options
    options.register("withModifier", False, bool, "choose the test modifier")
    options.register("summary", False, bool, "print the per-module timing table")
    options.parseArguments()

    testModifier = cms.Modifier()
    process = cms.Process("CLI", *([testModifier] if options.withModifier else []))

    # a fragment loaded after the Process, modified when the modifier is chosen (at once, or never)
    prod = cms.EDProducer("TestEventNumberProducer", size=cms.int32(3), seed=cms.int32(1))
    testModifier.toModify(prod, seed=42, size=5)
    sumJets = cms.EDProducer("TestBranchSumProducer", src=cms.string("Jet_pt"))
    testModifier.toReplaceWith(sumJets, cms.EDProducer("TestBranchSumProducer", src="MET_pt"))

    process.source = cms.Source("RootSource", fileNames=["missing.root"])
    process.options.wantSummary = options.summary
    process.prod = prod
    process.sumJets = sumJets
    process.flt = cms.EDFilter("TestEvenFilter")
    process.p = cms.Path(process.prod, process.sumJets)
    process.pEven = cms.Path(process.flt)
    process.out = cms.OutputModule(
        "RootOutputModule",
        fileName="out.root",
        outputCommands=["drop *", "keep event", "keep prod_*", "keep sumJets"],
    )
    process.e = cms.EndPath(process.out)
    """
)


@pytest.fixture
def config(tmp_path):
    path = tmp_path / "cli_cfg.py"
    path.write_text(CONFIG)
    return path


def _no_traceback(proc):
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout


def test_run_processes_and_writes(run_framework, config, sample_file, tmp_path):
    out = tmp_path / "o.root"
    proc = run_framework("run", config, f"inputFiles={sample_file}", f"outputFile={out}", "maxEvents=10",
                         "skipEvents=5", "numThreads=2", "numStreams=3", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    _no_traceback(proc)
    assert "TrigReport: events processed = 10" in proc.stdout
    assert "TrigReport: path pEven: 5 accepted, 5 rejected" in proc.stdout
    assert "TrigReport: output out: 10 events written" in proc.stdout
    assert "TimeReport" not in proc.stdout
    assert "WARNING" not in proc.stderr
    with uproot.open(out) as f:
        tree = f["Events"]
        assert tree["event"].array(library="np").tolist() == list(range(6, 16))  # events 1-5 skipped
        assert tree["prod_number"].array(library="np").tolist() == list(range(6, 16))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cli_cfg.py", "o.root"]


def test_run_with_a_modifier_chosen_by_an_option(config, sample_file, tmp_path):
    results = {}
    for flag in ("0", "1"):
        out = tmp_path / f"o{flag}.root"
        report, _ = run_config(str(config), [f"inputFiles={sample_file}", f"outputFile={out}", "maxEvents=4",
                                             f"withModifier={flag}"], progress=False)
        assert report.processed == 4
        with uproot.open(out) as f:
            results[flag] = f["Events"].arrays(["sumJets", "nprod"], library="np")
    with uproot.open(sample_file) as f:
        met = f["Events"]["MET_pt"].array(library="np")[:4]
    assert results["1"]["sumJets"].tolist() == met.astype("float64").tolist()  # replaced: the sum of MET_pt
    assert results["0"]["sumJets"].tolist() != results["1"]["sumJets"].tolist()
    assert results["0"]["nprod"].tolist() == [1 + n % 3 for n in range(1, 5)]  # size 3
    assert results["1"]["nprod"].tolist() == [1 + n % 5 for n in range(1, 5)]  # size 5 from the modifier


@pytest.mark.parametrize("flag", ["0", "1"])
def test_dump_prints_the_final_config_as_runnable_python(run_framework, config, sample_file, tmp_path, flag):
    args = [f"inputFiles={sample_file}", "maxEvents=7", f"withModifier={flag}"]
    process, _ = load_config(str(config), args)
    dump = process.dumpPython()
    if flag == "1":  # one subprocess is enough to show that the CLI prints the same
        proc = run_framework("dump", config, *args, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        _no_traceback(proc)
        assert proc.stdout == dump

    namespace: dict = {}
    exec(compile(dump, "<dump>", "exec"), namespace)
    assert namespace["process"].dumpPython() == dump
    assert namespace["process"].maxEventsValue() == 7
    assert namespace["process"].source.fileNames == [str(sample_file)]
    if flag == "1":
        assert "seed = cms.int32(42)" in dump and "src = 'MET_pt'" in dump
    else:
        assert "seed = cms.int32(1)" in dump and "src = cms.string('Jet_pt')" in dump
    assert "Modifier" not in dump  # the dump is the final config, with the modifications applied


def test_help_lists_all_options(run_framework, config, tmp_path):
    proc = run_framework("run", config, "help", cwd=tmp_path)
    assert proc.returncode == 0
    _no_traceback(proc)
    for name in ("maxEvents", "inputFiles", "outputFile", "numThreads", "numStreams", "skipEvents",
                 "withModifier", "summary"):
        assert f"  {name} " in proc.stdout, name
    assert "choose the test modifier [default: False]" in proc.stdout
    assert "TrigReport" not in proc.stdout


def test_max_events_beyond_the_file_warns_and_exits_0(run_framework, config, sample_file, tmp_path):
    report = tmp_path / "report.json"
    proc = run_framework("run", config, f"inputFiles={sample_file}", f"outputFile={tmp_path / 'o.root'}",
                         f"maxEvents={SAMPLE_EVENTS + 100}", f"--report={report}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    _no_traceback(proc)
    warning = f"maxEvents={SAMPLE_EVENTS + 100} asked for, but the input has only {SAMPLE_EVENTS} events"
    assert warning in proc.stderr
    assert f"TrigReport: events processed = {SAMPLE_EVENTS}" in proc.stdout
    data = json.loads(report.read_text())
    assert data["processed"] == SAMPLE_EVENTS and data["written"] == {"out": SAMPLE_EVENTS}
    assert any(warning in w for w in data["warnings"])


def test_summary_table_names_the_modules(run_framework, config, sample_file, tmp_path):
    proc = run_framework("run", config, f"inputFiles={sample_file}", f"outputFile={tmp_path / 'o.root'}",
                         "maxEvents=6", "summary=1", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    table = proc.stdout.split("TimeReport per module", 1)[1]
    for label, type_ in [("prod", "TestEventNumberProducer"), ("sumJets", "TestBranchSumProducer"),
                         ("flt", "TestEvenFilter"), ("out", "RootOutputModule")]:
        line = next(line for line in table.splitlines() if line.startswith(label + " "))
        assert type_ in line and " 6 " in line, line
    assert "TimeReport: 6 events" in table


def test_usage_and_unknown_command(run_framework):
    proc = run_framework("--help")
    assert proc.returncode == 0 and "usage: python -m framework" in proc.stdout
    proc = run_framework("rnu")
    assert proc.returncode == 2 and "unknown command 'rnu'" in proc.stderr and "Did you mean 'run'" in proc.stderr
    proc = run_framework("run")
    assert proc.returncode == 2 and "usage" in proc.stderr
