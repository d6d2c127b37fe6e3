"""The pages of docs/ run as written (the conventions of :mod:`tests.docs_blocks`), each in an empty directory
(with ``configs`` and ``data`` of the checkout linked into it, since the pages run from the checkout); their
links lead to files that exist; the benchmarks they name exist and answer ``--help``.

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
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")
# pages that run from the checkout; the tutorial and the plugin page have tests of their own
CHECKOUT_PAGES = ["README.md", "docs/running.md", "docs/dqm.md", "docs/nugraph3.md", "docs/dask.md", "docs/sonic.md",
                  "docs/design.md"]


def _pages() -> list[Path]:
    return [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]


def test_links_lead_to_files_that_exist():
    broken = []
    for page in _pages():
        for target in LINK.findall(page.read_text()):
            if "://" in target or target.startswith("mailto:"):
                continue
            if not (page.parent / target).exists():
                broken.append(f"{page.relative_to(REPO_ROOT)}: {target}")
    assert not broken, "links to nothing:\n" + "\n".join(broken)


def test_the_readme_is_a_front_door():
    text = (REPO_ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 200, "README.md is over 200 lines: move the manual into docs/"
    for page in ["running.md", "sonic.md", "dqm.md", "nugraph3.md", "dask.md", "benchmarks.md", "plugins.md",
                 "design.md", "tutorial.md"]:
        assert f"](docs/{page})" in text, f"README.md does not link docs/{page}"
    assert "make run" in text and "make test" in text


def test_the_benchmarks_named_exist_and_answer_help():
    text = "\n".join(p.read_text() for p in _pages())
    makefile = (REPO_ROOT / "Makefile").read_text()
    named = re.findall(r"`make ([a-z][\w-]*)|^make ([a-z][\w-]*)", text, re.M)
    for target in sorted({a or b for a, b in named}):
        assert re.search(rf"^{re.escape(target)}:", makefile, re.M), f"the docs name `make {target}`: no such target"
    scripts = sorted(set(re.findall(r"\bpython (benchmarks/\w+\.py)", text)))
    assert len(scripts) >= 8, scripts
    for script in scripts:
        done = subprocess.run([sys.executable, str(REPO_ROOT / script), "--help"], capture_output=True, text=True,
                              timeout=120, cwd=REPO_ROOT)
        assert done.returncode == 0 and "usage" in done.stdout.lower(), (script, done.stderr[-2000:])


@pytest.mark.slow
@pytest.mark.triton
@pytest.mark.skipif(not SERVER_OK, reason=SERVER_REASON)
@pytest.mark.parametrize("name", CHECKOUT_PAGES)
def test_a_page_runs_as_written(tmp_path, name):
    blocks = page_blocks(REPO_ROOT / name)
    check_conventions(blocks)
    if not any(b.lang == "bash" for b in blocks):
        return
    for linked in ("configs", "data"):
        (tmp_path / linked).symlink_to(REPO_ROOT / linked)
    marker = uuid.uuid4().hex
    run_page(blocks, tmp_path, page_env(marker), marker)


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
    for page in _pages():
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
