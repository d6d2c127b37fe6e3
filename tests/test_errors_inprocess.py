"""The same user errors in-process: the exception class, its exit code and the message contents
(what, where, how to fix); failures leave no output behind and stop the services."""

from __future__ import annotations

import numpy as np
import pytest
import uproot

import framework.config as cms
import tests.plugins as plugins
from framework.core import services
from framework.core.processor import EventProcessor
from framework.exceptions import ConfigurationError, FrameworkError, InputError, ModuleError


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory, sample_file):
    root = tmp_path_factory.mktemp("bad_files")
    data = sample_file.read_bytes()
    files = {}
    files["truncated"] = root / "truncated.root"
    files["truncated"].write_bytes(data[: len(data) // 2])
    files["text"] = root / "text.root"
    files["text"].write_text("not a ROOT file\n")
    files["zero"] = root / "zero.root"
    files["zero"].touch()
    files["notree"] = root / "notree.root"
    with uproot.recreate(files["notree"]) as f:
        f.mktree("Other", {"x": np.int32})
    files["fewbranches"] = root / "fewbranches.root"
    with uproot.recreate(files["fewbranches"]) as f:
        f.mktree("Events", {"run": np.uint32, "luminosityBlock": np.uint32, "event": np.uint64, "MET_pt": np.float32})
        f["Events"].extend({"run": np.ones(3, np.uint32), "luminosityBlock": np.ones(3, np.uint32),
                            "event": np.arange(1, 4, dtype=np.uint64), "MET_pt": np.ones(3, np.float32)})
    files["directory"] = root
    return files


def _process(files, out_dir, *, src="MET_pt", keep=("drop *", "keep sum"), **source_params):
    process = cms.Process("ERR")
    process.source = cms.Source("RootSource", fileNames=[str(f) for f in files], **source_params)
    process.sum = cms.EDProducer("TestBranchSumProducer", src=src)
    process.p = cms.Path(process.sum)
    process.out = cms.OutputModule("RootOutputModule", fileName=str(out_dir / "out.root"), flushEvents=4,
                                   outputCommands=list(keep))
    process.e = cms.EndPath(process.out)
    return process


@pytest.mark.parametrize(
    ("which", "expected"),
    [
        ("missing", ["input file not found", "nosuch.root", "inputFiles="]),
        ("truncated", ["truncated.root", "(entries 0-", "may be corrupt"]),
        ("text", ["cannot read", "text.root", "not a ROOT file"]),
        ("zero", ["zero.root is empty (0 bytes)"]),
        ("notree", ["notree.root has no tree 'Events'", "Trees in the file: Other", "treeName="]),
        ("directory", ["is a directory"]),
    ],
)
def test_bad_input_file(bad_files, sample_file, tmp_path, which, expected):
    path = bad_files[which] if which != "missing" else tmp_path / "nosuch.root"
    for files in ([path], [sample_file, path]):  # alone, or as the second file
        with pytest.raises(InputError) as err:
            EventProcessor(_process(files, tmp_path)).run()
        msg = str(err.value)
        for text in expected:
            assert text in msg, (text, msg)
        assert "\n\n" not in msg and len(msg) < 600, msg
        assert err.value.exit_code == 3
        assert [p.name for p in tmp_path.iterdir()] == []  # nothing written (not even a temporary file)


def test_missing_branch_names_the_nearest_branches(sample_file, tmp_path):
    with pytest.raises(InputError) as err:
        EventProcessor(_process([sample_file], tmp_path, src="Jet_ptt")).run()
    msg = str(err.value)
    assert f"branch 'Jet_ptt' not found in tree 'Events' of {sample_file}" in msg
    assert "Did you mean 'Jet_pt'" in msg


def test_branch_missing_in_the_second_file_only(sample_file, bad_files, tmp_path):
    with pytest.raises(InputError, match=rf"branch 'Jet_pt' not found in tree 'Events' of {bad_files['fewbranches']}"):
        EventProcessor(_process([sample_file, bad_files["fewbranches"]], tmp_path, src="Jet_pt")).run()


def test_wrong_tree_name(sample_file, tmp_path):
    with pytest.raises(InputError, match=r"has no tree 'Event'. Did you mean 'Events'"):
        EventProcessor(_process([sample_file], tmp_path, treeName="Event")).run()


def test_no_input_files_and_negative_skip(sample_file, tmp_path):
    with pytest.raises(InputError, match="no input files"):
        EventProcessor(_process([], tmp_path)).run()
    with pytest.raises(InputError, match="skipEvents must be >= 0"):
        EventProcessor(_process([sample_file], tmp_path, skipEvents=-1)).run()


def test_failing_module_names_label_event_and_file(sample_file, tmp_path):
    process = _process([sample_file], tmp_path)
    process.bad = cms.EDProducer("TestRaisingProducer", failOnEvent=13)
    process.p = cms.Path(process.sum, process.bad)
    process.options.numberOfStreams = 3
    process.options.numberOfThreads = 2
    with pytest.raises(ModuleError) as err:
        EventProcessor(process).run()
    e = err.value
    assert (e.label, e.type_) == ("bad", "TestRaisingProducer")
    assert isinstance(e.cause, plugins.ModuleFailure)
    assert e.where == f"on run 1, lumi 1, event 13 (entry 12 of {sample_file})"
    assert str(e) == (
        f"module 'bad' (TestRaisingProducer) failed on run 1, lumi 1, event 13 (entry 12 of {sample_file}):\n"
        "  ModuleFailure: deliberate failure at event 13"
    )
    assert e.exit_code == 1
    assert list(tmp_path.iterdir()) == []


def test_module_failing_in_its_constructor(tmp_path):
    process = cms.Process("ERR")
    process.source = cms.Source("EmptySource")
    process.maxEvents.input = 2
    process.out = cms.OutputModule("RootOutputModule", fileName="")
    process.e = cms.EndPath(process.out)
    with pytest.raises(FrameworkError, match="fileName is empty"):
        EventProcessor(process).run()


def test_services_are_available_to_modules_and_stopped_after_a_failure(sample_file, tmp_path):
    process = _process([sample_file], tmp_path, keep=["drop *", "keep user"])
    process.add_(cms.Service("TestRecordingService"))
    process.user = cms.EDProducer("TestServiceUser")
    process.bad = cms.EDProducer("TestRaisingProducer", failOnEvent=2)
    process.p = cms.Path(process.user, process.sum)
    EventProcessor(process).run()
    with uproot.open(tmp_path / "out.root") as f:
        assert f["Events"]["user"].array(library="np").tolist() == [1] * 60

    plugins.LOG.clear()
    process.p = cms.Path(process.user, process.sum, process.bad)
    with pytest.raises(ModuleError):
        EventProcessor(process).run()
    assert [what for _, _, what, _, _ in plugins.LOG.records("TestRecordingService")] == ["beginJob", "endJob"]
    assert services.get("TestRecordingService", None) is None  # the registry is cleared after the job
    with pytest.raises(ConfigurationError, match="service 'TestRecordingService' is not configured"):
        services.get("TestRecordingService")
