"""The README's "A config" example runs as written (in an empty folder: the sample path resolves against
the repository), and keeps only events that pass its filter."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import uproot

REPO = Path(__file__).resolve().parents[1]


def _block(heading: str) -> str:
    text = (REPO / "README.md").read_text()
    section = text.split(f"## {heading}\n", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_writing_a_config_example_runs(tmp_path):
    config = tmp_path / "myjob_cfg.py"
    config.write_text(_block("A config"))
    done = subprocess.run([sys.executable, "-m", "framework", "run", str(config), "maxEvents=40"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 0, done.stderr[-3000:]
    with uproot.open(tmp_path / "out.root") as f:
        events = f["Events"].arrays(library="np")
    assert 0 < len(events["nJet"]) <= 40
    assert all((pt >= 30).sum() >= 2 for pt in events["Jet_pt"])  # the filter's selection (SelectEvents)
    assert "pfParticleTransformerAK4JetTags_probb" in events


def test_a_config_imports_the_package_beside_it_and_selectevents_takes_the_cmssw_pset(tmp_path):
    """A config in another folder imports the package beside it (its folder is on sys.path while it runs), and an
    output module takes CMSSW's ``SelectEvents = cms.untracked.PSet(SelectEvents = cms.vstring('p'))``."""
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "__init__.py").write_text("MIN_JETS = 3\n")
    (tmp_path / "job_cfg.py").write_text(
        "import framework.config as cms\n"
        "from mine import MIN_JETS\n"
        "process = cms.Process('MINE')\n"
        "process.source = cms.Source('RootSource', fileNames=cms.vstring('data/samples/sample.root'))\n"
        "process.sel = cms.EDFilter('BranchCountFilter', src='Jet_pt', minValue=30.0, minNumber=MIN_JETS)\n"
        "process.p = cms.Path(process.sel)\n"
        "process.out = cms.OutputModule('RootOutputModule', fileName=cms.string('mine.root'),\n"
        "    outputCommands=cms.vstring('drop *', 'keep event', 'keep Jet_pt'),\n"
        "    SelectEvents=cms.untracked.PSet(SelectEvents=cms.vstring('p')))\n"
        "process.e = cms.EndPath(process.out)\n")
    elsewhere = tmp_path / "run"
    elsewhere.mkdir()
    done = subprocess.run([sys.executable, "-m", "framework", "run", str(tmp_path / "job_cfg.py"), "maxEvents=30"],
                          cwd=elsewhere, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 0, done.stderr[-3000:]
    with uproot.open(elsewhere / "mine.root") as f:
        pts = f["Events"]["Jet_pt"].array(library="np")
    assert 0 < len(pts) < 30 and all((pt >= 30).sum() >= 3 for pt in pts)
