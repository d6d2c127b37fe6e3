"""Module types and process modifiers found by entry point, as CMSSW's plugin manager finds a module by its type name:
the bundled producers through this repository's own pyproject, a user's package through its own, installed with
pip. A config names the types without importing anything; an unknown type lists the known ones with the package
that provides each."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _python(code: str, *, cwd: Path, extra_path: list[Path] = ()) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(map(str, [*extra_path, REPO]))}
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def test_a_bundled_type_is_found_by_name_without_importing_its_package(tmp_path):
    done = _python(textwrap.dedent("""
        import sys
        from framework.core.registry import lookup
        assert not any(m == "producers" or m.startswith("producers.") for m in sys.modules), "imported too early"
        cls = lookup("DeepMETProducer")
        print(cls.__module__, "producers.particle_transformer_ak4" in sys.modules)
    """), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["producers.deepmet.onnx_producer", "False"]  # only what was asked for


def test_the_unknown_type_error_lists_the_types_and_their_packages():
    from framework.core.registry import lookup
    from framework.exceptions import ConfigurationError

    with pytest.raises(ConfigurationError) as info:
        lookup("DeepMETProduce", "producer")
    message = str(info.value)
    assert "Did you mean 'DeepMETProducer'" in message
    listed = message.split("cmssw-py-framework (entry points): ")[1].split(";")[0]
    assert "DeepMETProducer" in listed and "NuGraph3SonicProducer" in listed, message
    assert "EmptySource" not in message and "RootOutputModule" not in message  # not producers
    assert "framework.modules" in message and "imports the module" in message


PLUGIN_PYPROJECT = """
[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "jetcount-plugin"
version = "0.1"

[tool.setuptools]
packages = ["jetcount"]

[project.entry-points."framework.modules"]
JetCountProducer = "jetcount.producer:JetCountProducer"

[project.entry-points."framework.modifiers"]
jetCountTwice = "jetcount.modifiers:jetCountTwice"
"""

PLUGIN_PRODUCER = '''
import numpy as np
from framework.core.module import EDProducer


class JetCountProducer(EDProducer):
    """The number of jets of each event (times ``factor``)."""

    parameters = {"factor": 1}

    def produce(self, event):
        event.put(np.int32(len(event.getBranch("Jet_pt")) * self.params.factor))
'''

PLUGIN_MODIFIERS = '''
import framework.config as cms

jetCountTwice = cms.Modifier()
'''

CONFIG = '''
import framework.config as cms
from jetcount.modifiers import jetCountTwice

process = cms.Process("JETS")
process.source = cms.Source("RootSource", fileNames=cms.vstring("{sample}"))
process.maxEvents.input = 5
process.jetCount = cms.EDProducer("JetCountProducer")
jetCountTwice.toModify(process.jetCount, factor=2)
process.p = cms.Path(process.jetCount)
process.out = cms.OutputModule("RootOutputModule", fileName=cms.string("{out}"),
                               outputCommands=cms.vstring("drop *", "keep event", "keep jetCount*"))
process.e = cms.EndPath(process.out)
'''


@pytest.mark.slow
def test_a_users_package_plugs_in_by_entry_point(tmp_path, sample_file):
    """A package in an empty folder with its own pyproject, installed by pip: its producer is named by type in a
    config that does not import it, and its modifier is chosen with procModifiers= by name."""
    import uproot

    pkg = tmp_path / "jetcount-plugin"
    (pkg / "jetcount").mkdir(parents=True)
    (pkg / "pyproject.toml").write_text(PLUGIN_PYPROJECT)
    (pkg / "jetcount" / "__init__.py").write_text("")
    (pkg / "jetcount" / "producer.py").write_text(PLUGIN_PRODUCER)
    (pkg / "jetcount" / "modifiers.py").write_text(PLUGIN_MODIFIERS)
    site = tmp_path / "site"  # installed beside the project's venv, not into it
    pip = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                          "--target", str(site), str(pkg)], capture_output=True, text=True, timeout=300)
    assert pip.returncode == 0, pip.stderr
    assert not (site / "jetcount" / "__init__.py").read_text()
    config = tmp_path / "jets_cfg.py"
    outputs = {}
    for chosen in ("", "jetCountTwice"):
        out = tmp_path / f"jets{chosen}.root"
        config.write_text(CONFIG.format(sample=sample_file, out=out))
        args = [str(config), *([f"procModifiers={chosen}"] if chosen else [])]
        done = _python(f"import sys; from framework.cli import main; sys.exit(main(['run', *{args!r}]))",
                       cwd=tmp_path, extra_path=[site])
        assert done.returncode == 0, done.stderr[-3000:]
        with uproot.open(out) as f:
            outputs[chosen] = f["Events"]["jetCount"].array(library="np")
    with uproot.open(sample_file) as f:
        njet = f["Events"]["nJet"].array(library="np", entry_stop=5)
    assert list(outputs[""]) == list(njet)
    assert list(outputs["jetCountTwice"]) == list(2 * njet)
    listing = _python("from framework.modifiers import available; print(sorted(available()))", cwd=tmp_path,
                      extra_path=[site])
    assert "jetCountTwice" in listing.stdout and "particleTransformerAK4SonicTriton" in listing.stdout, listing


def test_commands_of_plugins_come_from_entry_points():
    from framework.cli import SUBCOMMANDS, commands

    assert "dqm-report" not in SUBCOMMANDS  # the framework names no application package
    assert commands()["dqm-report"] == ("producers.dqm_nmf.report", "main")
    assert set(SUBCOMMANDS) <= set(commands())


def test_run_help_prints_the_usage(tmp_path):
    for flag in ("--help", "-h"):
        done = subprocess.run([sys.executable, "-m", "framework", "run", flag], cwd=tmp_path, capture_output=True,
                              text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(REPO)})
        assert done.returncode == 0 and done.stdout.startswith("usage: python -m framework run CONFIG"), done
        assert "config file not found" not in done.stderr
