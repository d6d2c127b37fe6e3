"""Events whose (run, lumi, event) repeats across the input files, handled as CMSSW's ``duplicateCheckMode``
(framework/io/duplicates.py): skipped by default with one warning and a count in the summary, processed with
``noDuplicateCheck``, an error with ``failOnDuplicate``; the same output under ``executor=dask``. Real generated
ROOT files: ``a`` holds events 1-60, ``b`` (other physics, another seed) events 31-90 of the same run."""

from __future__ import annotations

import logging
import re

import numpy as np
import pytest
import uproot

import framework.config as cms
from framework.core.processor import EventProcessor
from framework.exceptions import ConfigurationError, InputError
from framework.executor import plan, run_dask
from framework.io.duplicates import DuplicateChecker
from framework.runner import run_config
from framework.samples import generate
from tests.dask_modules import LIGHT_CONFIG

N = 60
OVERLAP = 30  # b's first 30 events repeat a's last 30 IDs


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("dups")
    a, b = str(d / "a.root"), str(d / "b.root")
    generate(a, N, seed=1, events_per_lumi=100)
    generate(b, N, seed=2, events_per_lumi=100, first_event=N - OVERLAP + 1)
    config = d / "light_cfg.py"
    config.write_text(LIGHT_CONFIG)
    return a, b, str(config)


def ids_and_met(path):
    with uproot.open(path) as f:
        t = f["Events"].arrays(["run", "luminosityBlock", "event", "MET_pt"], library="np")
    return list(zip(t["run"].tolist(), t["luminosityBlock"].tolist(), t["event"].tolist())), t["MET_pt"]


def duplicate_warnings(caplog):
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and "duplicate event" in r.getMessage()]


def test_default_skips_repeats_with_one_warning_and_a_summary_count(files, tmp_path, caplog):
    a, b, config = files
    out = tmp_path / "seq.root"
    with caplog.at_level(logging.WARNING):
        report, _ = run_config(config, [f"inputFiles={a},{b}", f"outputFile={out}"], progress=False)
    assert report.processed == 2 * N - OVERLAP
    ids, met = ids_and_met(out)
    assert [e for _, _, e in ids] == list(range(1, 2 * N - OVERLAP + 1))  # each event once, in order
    a_ids, a_met = ids_and_met(a)
    b_ids, b_met = ids_and_met(b)
    np.testing.assert_array_equal(met, np.concatenate([a_met, b_met[OVERLAP:]]))  # the first read is kept
    warnings = duplicate_warnings(caplog)
    assert len(warnings) == 1, warnings
    assert f"run 1, lumi 1, event {N - OVERLAP + 1} in {b} (entry 0): already read from {a} (entry {N - OVERLAP})" \
        in warnings[0]
    summary = [w for w in report.warnings if w.startswith("duplicateCheckMode=")]
    assert summary == [f"duplicateCheckMode=checkAllFilesOpened: skipped {OVERLAP} events whose (run, lumi, event) "
                       f"repeats one read before (the first: run 1, lumi 1, event {N - OVERLAP + 1} in {b} (entry 0), "
                       f"first read from {a} (entry {N - OVERLAP}))"], report.warnings


def test_repeats_do_not_count_toward_max_events(files, tmp_path):
    a, b, config = files
    out = tmp_path / "max.root"
    report, _ = run_config(config, [f"inputFiles={a},{b}", f"outputFile={out}", "maxEvents=70"], progress=False)
    assert report.processed == 70
    assert [e for _, _, e in ids_and_met(out)[0]] == list(range(1, 71))


def test_no_duplicate_check_processes_every_event(files, tmp_path, caplog):
    a, b, config = files
    out = tmp_path / "all.root"
    with caplog.at_level(logging.WARNING):
        report, _ = run_config(config, [f"inputFiles={a},{b}", f"outputFile={out}", "duplicateCheckMode=noDuplicateCheck"],
                               progress=False)
    assert report.processed == 2 * N and len(ids_and_met(out)[0]) == 2 * N
    assert duplicate_warnings(caplog) == [] and not any("duplicateCheckMode" in w for w in report.warnings)


def test_check_each_file_keeps_repeats_across_files(files, tmp_path):
    a, b, config = files
    report, _ = run_config(config, [f"inputFiles={a},{b}", f"outputFile={tmp_path / 'each.root'}",
                                    "duplicateCheckMode=checkEachFile"], progress=False)
    assert report.processed == 2 * N


def test_checker_modes_within_a_file():
    ids = [(1, 1, 1), (1, 1, 2), (1, 1, 1)]
    for mode, skipped in (("checkAllFilesOpened", [False, False, True, True, True, True]),
                          ("checkEachFile", [False, False, True, False, False, True]),
                          ("noDuplicateCheck", [False] * 6)):
        checker = DuplicateChecker(mode, ["x.root", "y.root"])
        got = [checker.is_duplicate(i, f, e) for f in (0, 1) for e, i in enumerate(ids)]
        assert got == skipped, mode
        assert checker.skipped == sum(skipped)


def test_fail_on_duplicate_is_a_clear_error_without_output(files, tmp_path, run_framework):
    a, b, config = files
    out = tmp_path / "fail.root"
    proc = run_framework("run", config, f"inputFiles={a},{b}", f"outputFile={out}", "duplicateCheckMode=failOnDuplicate")
    assert proc.returncode == 3, proc.stderr
    assert "Traceback" not in proc.stderr
    message = re.findall(r"----- Begin Fatal Exception -----\n(.*?)\n----- End Fatal Exception", proc.stderr, re.S)
    assert len(message) == 1, proc.stderr
    for text in (f"duplicate event run 1, lumi 1, event {N - OVERLAP + 1} in {b} (entry 0)",
                 f"already read from {a} (entry {N - OVERLAP})", "duplicateCheckMode=failOnDuplicate",
                 "duplicateCheckMode=checkAllFilesOpened"):
        assert text in message[0], (text, message[0])
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_misspelled_mode_names_the_valid_ones(files, tmp_path, run_framework):
    a, b, config = files
    proc = run_framework("run", config, f"inputFiles={a}", f"outputFile={tmp_path / 'x.root'}",
                         "duplicateCheckMode=checkAllFiles")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    for text in ("option duplicateCheckMode=checkAllFiles: not allowed", "Did you mean 'checkAllFilesOpened'",
                 "checkAllFilesOpened, checkEachFile, noDuplicateCheck, failOnDuplicate"):
        assert text in proc.stderr, (text, proc.stderr)
    # the source's own parameter, set in a config
    process = cms.Process("T")
    process.source = cms.Source("RootSource", fileNames=[a], duplicateCheckMode="nocheck")
    process.maxEvents = cms.PSet(input=1)
    with pytest.raises(ConfigurationError, match=r"source 'source' \(RootSource\): duplicateCheckMode='nocheck' is not "
                                                 r"a mode\..*Valid modes: checkAllFilesOpened, checkEachFile"):
        EventProcessor(process).run()


def test_plan_tells_each_item_its_repeats(files):
    a, b, _ = files
    p = plan([a, b], chunk_size=20)
    assert [(i.file_index, i.start, i.stop, len(i.skip)) for i in p.items] == [
        (0, 0, 20, 0), (0, 20, 40, 0), (0, 40, 60, 0), (1, 0, 20, 20), (1, 20, 40, 10), (1, 40, 60, 0)]
    assert p.items[4].skip == tuple(range(20, 30)) and p.duplicates.startswith("duplicateCheckMode=checkAllFilesOpened")
    assert plan([a, b], chunk_size=20, duplicate_mode="noDuplicateCheck").duplicates is None
    with pytest.raises(InputError, match="failOnDuplicate"):
        plan([a, b], duplicate_mode="failOnDuplicate")
    p = plan([a, b], chunk_size=1000, max_events=70)  # 60 of a, then b's entries 30..39
    assert [(i.start, i.stop, len(i.skip)) for i in p.items] == [(0, 60, 0), (0, 40, 30)]


@pytest.mark.slow
def test_dask_skips_the_same_repeats_as_the_sequential_job(files, tmp_path, caplog):
    a, b, config = files
    seq = tmp_path / "seq.root"
    args = [f"inputFiles={a},{b}", "maxEvents=80"]
    seq_report, _ = run_config(config, [*args, f"outputFile={seq}"], progress=False)
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        report, _, summary = run_dask(config, [*args, f"outputFile={tmp_path / 'dask.root'}", "executor=dask",
                                               "workers=2", "chunkSize=20"], progress=False)
    assert summary.items == 5  # b's first item holds repeats only
    assert report.processed == seq_report.processed == 80
    seq_ids, seq_met = ids_and_met(seq)
    par_ids, par_met = ids_and_met(tmp_path / "dask.root")
    assert par_ids == seq_ids and np.array_equal(par_met, seq_met)
    assert len(duplicate_warnings(caplog)) == 1
    summaries = [w for w in report.warnings if w.startswith("duplicateCheckMode=")]
    assert len(summaries) == 1 and f"skipped {OVERLAP} events" in summaries[0], report.warnings
    assert summaries == [w for w in seq_report.warnings if w.startswith("duplicateCheckMode=")]
    assert (report.runs, report.lumis) == (seq_report.runs, seq_report.lumis)


def test_numl_source_skips_repeats_too(tmp_path):
    """NuML HDF5 files of the same run number their events alike (run, subrun, event): the second file's events
    repeat the first's and are skipped by default, kept with noDuplicateCheck; maxEvents counts events processed."""
    from framework.core.params import Params, check_parameters
    from framework.io.hdf5source import NuMLSource
    from framework.samples import generate_nugraph

    first = generate_nugraph(tmp_path / "first.h5", 6, 1)
    second = generate_nugraph(tmp_path / "second.h5", 8, 2)  # events 1-6 repeat, 7-8 are new

    def ids(mode: str, max_events: int = -1) -> tuple[list, list[str]]:
        given = {"fileNames": [str(first), str(second)], "chunkSize": 3, "duplicateCheckMode": mode}
        src = NuMLSource("source", Params(check_parameters(NuMLSource.parameters, given, "source")))
        src.open(max_events=max_events)
        try:
            src.require([])
            out = []
            while (ev := src.next()) is not None:
                out.append((ev.file_name, ev.event_id()))
            return out, src.warnings()
        finally:
            src.close()

    got, warnings = ids("checkAllFilesOpened")
    assert [e for _, (_, _, e) in got] == [1, 2, 3, 4, 5, 6, 7, 8] and got[-1][0] == str(second)
    assert [w for w in warnings if w.startswith("duplicateCheckMode=checkAllFilesOpened: skipped 6 events")], warnings
    assert [e for _, (_, _, e) in ids("checkAllFilesOpened", max_events=7)[0]] == [1, 2, 3, 4, 5, 6, 7]
    assert len(ids("noDuplicateCheck")[0]) == 14
    with pytest.raises(InputError, match=r"duplicate event run 1, lumi 1, event 1 in .*second.h5 \(entry 0\)"):
        ids("failOnDuplicate")
