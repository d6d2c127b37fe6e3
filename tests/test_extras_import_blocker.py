"""The lean core: with every optional package made unimportable (a ``sys.meta_path`` finder that refuses them,
in a subprocess; nothing is uninstalled), the CLI, ``dump`` and the direct ParT/DeepMET job work, and each
optional feature stops with one clear MissingExtra paragraph naming the extra and its pip command."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import uproot

from framework.exceptions import MissingExtra

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "samples" / "sample.root"

#: module names of the extras' packages (and ROOT, of the test extra)
BLOCKED = ("torch", "scipy", "h5py", "hist", "mplhep", "matplotlib", "dask", "distributed", "sklearn", "joblib",
           "mlserver", "mlserver_sklearn", "pytriton", "prometheus_client", "ROOT", "cppyy")

SITECUSTOMIZE = f'''
import sys

BLOCKED = {set(BLOCKED)!r}


class ExtrasBlocker:
    """Refuses the optional packages as if they were not installed."""

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {{name!r}} (blocked by the test)", name=name)
        return None


sys.meta_path.insert(0, ExtrasBlocker())
'''


@pytest.fixture(scope="module")
def blocked_env(tmp_path_factory) -> dict[str, str]:
    """The environment of a subprocess whose ``sitecustomize`` installs the blocker."""
    site = tmp_path_factory.mktemp("blocker")
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(site), str(ROOT)])
    return env


def framework(env: dict[str, str], *args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "framework", *args], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=300, check=False)


def test_blocker_really_blocks(blocked_env):
    """The blocker is active in the subprocess (otherwise every test below would prove nothing)."""
    code = (f"import importlib\nfor m in {BLOCKED!r}:\n    try:\n        importlib.import_module(m)\n"
            "    except ModuleNotFoundError:\n        continue\n    raise SystemExit('imported ' + m)\n")
    out = subprocess.run([sys.executable, "-c", code], env=blocked_env, capture_output=True, text=True,
                         timeout=120, check=False)
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.parametrize("args", [["--help"], ["run", "--help"]])
def test_help_without_extras(blocked_env, args):
    out = framework(blocked_env, *args)
    assert out.returncode == 0, out.stderr
    assert "usage" in out.stdout.lower() or "config" in out.stdout.lower()


def test_dump_without_extras(blocked_env):
    out = framework(blocked_env, "dump", "configs/miniaod_cfg.py")
    assert out.returncode == 0, out.stderr
    assert "DeepMETProducer" in out.stdout and "ParticleTransformerAK4ONNXJetTagsProducer" in out.stdout


def test_direct_job_without_extras(blocked_env, tmp_path):
    output = tmp_path / "direct.root"
    out = framework(blocked_env, "run", "configs/miniaod_cfg.py", "maxEvents=20", f"inputFiles={SAMPLE}",
                    f"outputFile={output}")
    assert out.returncode == 0, out.stderr
    assert "Traceback" not in out.stderr
    with uproot.open(output) as f:
        assert f["Events"].num_entries == 20


CASES = {
    "nugraph3": (["configs/nugraph3_cfg.py", "maxEvents=5", "inputFiles={h5}"], "nugraph", "h5py"),
    "dqm": (["configs/dqm_cfg.py", "maxEvents=5"], "dqm", "hist"),
    "dask": (["configs/miniaod_cfg.py", "maxEvents=5", "executor=dask"], "dask", "dask[distributed]"),
    "sonic": (["configs/miniaod_cfg.py", "maxEvents=5", "sonic=1"], "server", "nvidia-pytriton"),
    "metrics": (["configs/miniaod_cfg.py", "maxEvents=5", "metricsPort=29417"], "metrics", "prometheus_client"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_feature_without_its_extra_is_one_clear_error(blocked_env, tmp_path, case):
    args, extra, package = CASES[case]
    h5 = tmp_path / "events.h5"
    h5.write_bytes(b"")  # never opened: h5py is missing
    output = tmp_path / "out.root"
    args = [a.format(h5=h5) for a in args]
    if "inputFiles=" not in " ".join(args) and "dqm" not in args[0]:
        args.append(f"inputFiles={SAMPLE}")
    out = framework(blocked_env, "run", *args, f"outputFile={output}")
    assert out.returncode == MissingExtra.exit_code, out.stdout + out.stderr
    assert f"pip install 'cmssw-py-framework[{extra}]'" in out.stderr
    assert f"{package}, needed for" in out.stderr
    assert "Traceback" not in out.stderr and "internal error" not in out.stderr
    assert not output.exists(), "an output file was left behind by a job that stopped"


def test_missing_extra_message():
    err = MissingExtra("nugraph", "torch", feature="the NuGraph3 producers")
    assert str(err) == ("torch, needed for the NuGraph3 producers, is not installed. Install it with: "
                        "pip install 'cmssw-py-framework[nugraph]' (or '[all]' for every optional feature)")
    assert err.extra == "nugraph" and err.exit_code == 5


def test_require_names_the_extra_and_distribution(monkeypatch):
    from framework import extras

    with pytest.raises(MissingExtra) as info:
        extras.require("surely_not_a_module_xyz.sub", "dqm", "the DQM NMF model", "scikit-learn")
    assert info.value.install == "pip install 'cmssw-py-framework[dqm]'"
    assert "scikit-learn, needed for the DQM NMF model" in str(info.value)
    assert isinstance(info.value.__cause__, ModuleNotFoundError)
    with pytest.raises(ValueError, match="unknown extra 'nope'; extras: server, plots"):
        extras.require("json", "nope", "x")
    assert extras.require("json", "plots", "x").__name__ == "json"


def test_extras_match_pyproject():
    """framework.extras.EXTRAS names the extras of pyproject.toml, and [all] is their union."""
    from framework.extras import EXTRAS

    tomllib = pytest.importorskip("tomllib", reason="tomllib (reading pyproject.toml) is Python >= 3.11")

    optional = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert set(EXTRAS) | {"all", "test", "train"} == set(optional)
    assert optional["all"] == [f"cmssw-py-framework[{','.join(EXTRAS)}]"]
    core = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    heavy = {"torch", "scipy", "h5py", "hist", "mplhep", "matplotlib", "dask", "scikit-learn", "joblib",
             "mlserver", "nvidia-pytriton", "prometheus_client"}
    assert not [d for d in core if d.split(">")[0].split("=")[0].split("[")[0].split(";")[0].strip() in heavy]
