"""Every user error through the command line (``python -m framework run cfg.py ...`` in a
subprocess): non-zero exit code, one short message (what, where, how to fix), no traceback, and no
output file left behind.

The subprocesses are independent, so a module fixture starts them all at once (on 2 cores this
halves the time); each test then checks its own case.
"""

from __future__ import annotations

import re
import shutil
import textwrap
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import uproot

CONFIG = textwrap.dedent(
    """
    import framework.config as cms
    import tests.plugins  # noqa: F401

    options = cms.options
    options.register("src", "MET_pt", str, "branch summed by 'sum'")
    options.register("failOn", 0, int, "event at which 'bad' raises (0: never)")
    options.register("extFailOn", 0, int, "event at which the external work of 'remote' fails (0: never)")
    options.register("product", "sum", str, "product read by 'reader'")
    options.register("typo", False, bool, "misspell a parameter of 'sum'")
    options.register("unknownType", False, bool, "misspell the type of 'sum'")
    options.parseArguments()

    process = cms.Process("ERR")
    process.source = cms.Source("RootSource", fileNames=["set-by-inputFiles.root"], chunkSize=16)
    sumType = "TestBranchSumProduce" if options.unknownType else "TestBranchSumProducer"
    process.sum = cms.EDProducer(sumType, **{("srcc" if options.typo else "src"): options.src})
    process.bad = cms.EDProducer("TestRaisingProducer", failOnEvent=options.failOn)
    process.remote = cms.EDProducer("TestFailingExternalProducer", failOnEvent=options.extFailOn)
    process.reader = cms.EDProducer("TestStringConsumer", product=options.product)
    process.p = cms.Path(process.sum, process.bad, process.remote, process.reader)
    process.out = cms.OutputModule("RootOutputModule", fileName="set-by-outputFile.root", flushEvents=8,
                                   outputCommands=["drop *", "keep event", "keep Jet_*", "keep sum", "keep reader"])
    process.e = cms.EndPath(process.out)
    """
)

BROKEN_CONFIG = textwrap.dedent(
    """
    import framework.config as cms

    process = cms.Process("ERR")
    process.source = cms.Source("EmptySource")
    process.p = cms.Path(process.undefinedModule)
    """
)


def _files(root, sample_file):
    """The input files of the cases: name -> path."""
    data = sample_file.read_bytes()
    files = {"good": sample_file}
    files["truncated"] = root / "truncated.root"
    files["truncated"].write_bytes(data[: len(data) // 2])
    files["text"] = root / "notes.root"
    files["text"].write_text("this is a text file, not a ROOT file\n" * 20)
    files["zero"] = root / "zero.root"
    files["zero"].write_bytes(b"")
    files["notree"] = root / "notree.root"
    with uproot.recreate(files["notree"]) as f:
        f.mktree("Other", {"x": np.int32})
        f["Other"].extend({"x": np.arange(3, dtype=np.int32)})
    (root / "nearby").mkdir()
    shutil.copy(sample_file, root / "nearby" / "sample.root")
    files["missing"] = root / "nearby" / "sampel.root"
    return files


def _cases(files, root):
    good = files["good"]
    return {
        # name: (args after the config, exit code, substrings of the message)
        "missing_file": ([f"inputFiles={files['missing']}"], 3,
                         ["input file not found", str(files["missing"]), "Files nearby: sample.root", "inputFiles="]),
        "truncated_file": ([f"inputFiles={files['truncated']}"], 3,
                           [str(files["truncated"]), "may be corrupt"]),
        "text_file": ([f"inputFiles={files['text']}"], 3,
                      [f"cannot read {files['text']} as a ROOT file", "not a ROOT file"]),
        "zero_byte_file": ([f"inputFiles={files['zero']}"], 3, [f"input file {files['zero']} is empty (0 bytes)"]),
        "second_file_missing": ([f"inputFiles={good},{files['missing']}"], 3,
                                [f"input file not found: {files['missing']}"]),
        "no_tree": ([f"inputFiles={files['notree']}"], 3,
                    [f"{files['notree']} has no tree 'Events'", "Trees in the file: Other", "treeName="]),
        "missing_branch": ([f"inputFiles={good}", "src=MET_ptt"], 3,
                           ["branch 'MET_ptt' not found in tree 'Events'", str(good), "Did you mean 'MET_pt'"]),
        "unknown_option": ([f"inputFiles={good}", "maxEvent=3"], 2,
                           ["unknown option 'maxEvent'", "Did you mean 'maxEvents'", "Valid keys:", "extFailOn"]),
        "bad_option_value": ([f"inputFiles={good}", "maxEvents=ten"], 2,
                             ["option maxEvents='ten'", "expected an integer", "number of events to process"]),
        "not_key_value": ([f"inputFiles={good}", "maxEvents"], 2, ["'maxEvents' is not of the form key=value"]),
        "misspelled_parameter": ([f"inputFiles={good}", "typo=1"], 2,
                                 ["module 'sum' (TestBranchSumProducer)", "unknown parameter 'srcc'",
                                  "Did you mean 'src'"]),
        "unknown_module_type": ([f"inputFiles={good}", "unknownType=1"], 2,
                                ["unknown module type 'TestBranchSumProduce'", "Did you mean 'TestBranchSumProducer'"]),
        "failing_module": ([f"inputFiles={good}", "failOn=23", "numStreams=2"], 1,
                           ["module 'bad' (TestRaisingProducer) failed", "run 1, lumi 1, event 23",
                            f"(entry 22 of {good})", "ModuleFailure: deliberate failure at event 23"]),
        "failing_external_work": ([f"inputFiles={good}", "extFailOn=5", "numStreams=4"], 1,
                                  ["module 'remote' (TestFailingExternalProducer) failed",
                                   f"run 1, lumi 1, event 5 (entry 4 of {good})",
                                   "remote inference server refused event 5"]),
        "missing_product": ([f"inputFiles={good}", "product=jetTags:probb"], 1,
                            ["module 'reader' (TestStringConsumer) failed", "no product 'jetTags:probb'",
                             "No module is labelled 'jetTags'", "event 1 (entry 0 of"]),
        "empty_source_without_max_events": (None, 3, ["EmptySource makes events forever", "maxEvents="]),
        "config_not_found": (None, 2, ["config file not found", "no_such_cfg.py"]),
        "error_in_config": (None, 2, ["error in config", "broken_cfg.py", "line 6", "process.undefinedModule",
                                      "has no attribute 'undefinedModule'"]),
    }


def _command(name, args, root, config):
    out_dir = root / "out" / name
    out_dir.mkdir(parents=True)
    if name == "config_not_found":
        return ["run", root / "no_such_cfg.py"], out_dir
    if name in ("error_in_config", "empty_source_without_max_events"):
        broken = root / "broken_cfg.py"
        if name == "empty_source_without_max_events":
            broken = root / "empty_cfg.py"
            broken.write_text(BROKEN_CONFIG.replace("cms.Path(process.undefinedModule)", "cms.Path()"))
        else:
            broken.write_text(BROKEN_CONFIG)
        return ["run", broken], out_dir
    return ["run", config, *args, f"outputFile={out_dir / 'out.root'}"], out_dir


@pytest.fixture(scope="module")
def results(tmp_path_factory, sample_file, run_framework):
    root = tmp_path_factory.mktemp("cli_errors")
    config = root / "err_cfg.py"
    config.write_text(CONFIG)
    files = _files(root, sample_file)
    cases = _cases(files, root)
    commands = {name: _command(name, args, root, config) for name, (args, _, _) in cases.items()}
    with ThreadPoolExecutor(max_workers=3) as pool:
        futures = {name: pool.submit(run_framework, *cmd, cwd=root) for name, (cmd, _) in commands.items()}
        procs = {name: f.result() for name, f in futures.items()}
    return {name: (procs[name], commands[name][1], cases[name][1], cases[name][2]) for name in cases}


CASES = [
    "missing_file", "truncated_file", "text_file", "zero_byte_file", "second_file_missing", "no_tree",
    "missing_branch", "unknown_option", "bad_option_value", "not_key_value", "misspelled_parameter",
    "unknown_module_type", "failing_module", "failing_external_work", "missing_product",
    "empty_source_without_max_events", "config_not_found", "error_in_config",
]


@pytest.mark.parametrize("name", CASES)
def test_error_is_one_clear_message_without_traceback(results, name):
    proc, out_dir, code, expected = results[name]
    assert proc.returncode == code, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout
    assert "internal error" not in proc.stderr
    blocks = re.findall(r"----- Begin Fatal Exception -----\n(.*?)\n----- End Fatal Exception -----", proc.stderr, re.S)
    assert len(blocks) == 1, proc.stderr
    message = blocks[0]
    assert "\n\n" not in message and len(message) < 1200, message  # one paragraph
    for text in expected:
        assert text in message, (text, message)
    assert "TrigReport" not in proc.stdout
    assert list(out_dir.iterdir()) == []  # no output file and no temporary file


def test_all_cases_are_checked(results):
    assert sorted(results) == sorted(CASES)
