"""The pages of docs/ run as written (the conventions of :mod:`tests.docs_blocks`), each in an empty directory.

docs/plugins.md installs a package of its own with ``pip install -e``: it runs in a virtual environment of its own
that sees the project's packages (a ``.pth`` adding the project's site-packages), so the project's environment is
left as it was."""

from __future__ import annotations

import re
import subprocess
import sys
import sysconfig
import uuid
from pathlib import Path

import pytest

from framework.server import bundled_server_available
from tests.docs_blocks import REPO_ROOT, check_conventions, output_of, page_blocks, page_env, run_page

SERVER_OK, SERVER_REASON = bundled_server_available()
PLUGINS = REPO_ROOT / "docs" / "plugins.md"
SERVER_READY = re.compile(r"local Triton server pid (\d+) ready")


def overlay_venv(path: Path) -> Path:
    """A new virtual environment at *path* that also sees this environment's packages (pip and setuptools
    included: ``python -m pip`` there installs into it); its ``bin``."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True, capture_output=True, timeout=300)
    python = path / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    ours = sysconfig.get_paths()["purelib"]
    Path(site, "zz_project_env.pth").write_text(f"import site; site.addsitedir({ours!r})\n")
    return path / "bin"


def test_the_pages_follow_the_conventions():
    for page in sorted((REPO_ROOT / "docs").glob("*.md")):
        check_conventions(page_blocks(page))
    text = PLUGINS.read_text()
    for needed in ("pip install", "procModifiers=jetScoreSonic", "framework.modules", "framework.modifiers"):
        assert needed in text, f"docs/plugins.md no longer shows {needed!r}"


@pytest.mark.slow
@pytest.mark.triton
@pytest.mark.skipif(not SERVER_OK, reason=SERVER_REASON)
def test_writing_a_plugin_package_runs_as_written(tmp_path):
    blocks = page_blocks(PLUGINS)
    check_conventions(blocks)
    work = tmp_path / "work"
    work.mkdir()
    bin_dir = overlay_venv(tmp_path / "venv")
    marker = uuid.uuid4().hex
    env = page_env(marker, bin_dir)
    env.pop("PIP_REQUIRE_VIRTUALENV", None)
    outputs = run_page(blocks, work, env, marker)
    sonic = output_of(outputs, "procModifiers=jetScoreSonic outputFile=sonic.root")
    assert SERVER_READY.search(sonic.stderr), f"the SONIC run started no local Triton server:\n{sonic.stderr}"
    assert "direct and SONIC agree on" in output_of(outputs, "python check.py").stdout
    # the package went into the page's environment, not the project's
    listed = subprocess.run([sys.executable, "-m", "pip", "show", "jetscore"], capture_output=True, text=True)
    assert listed.returncode != 0, "docs/plugins.md installed jetscore into the project's environment"
    # the type is found by its entry point: a config naming it without importing the package works
    (work / "ht_cfg.py").write_text(
        "import framework.config as cms\n"
        "process = cms.Process('HT')\n"
        "process.source = cms.Source('RootSource', fileNames=cms.vstring('sample.root'))\n"
        "process.jetHT = cms.EDProducer('JetHTProducer')\n"
        "process.p = cms.Path(process.jetHT)\n"
        "process.out = cms.OutputModule('RootOutputModule', fileName=cms.string('ht.root'),\n"
        "    outputCommands=cms.vstring('drop *', 'keep jetHT'))\n"
        "process.e = cms.EndPath(process.out)\n")
    done = subprocess.run([str(bin_dir / "python"), "-m", "framework", "run", "ht_cfg.py"], cwd=work, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    import uproot

    with uproot.open(work / "ht.root") as f, uproot.open(work / "direct.root") as g:
        assert list(f["Events"]["jetHT"].array(library="np")) != list(g["Events"]["jetHT"].array(library="np"))
