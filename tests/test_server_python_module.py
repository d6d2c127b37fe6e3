"""Repository translation of a Python-backend model without ``model.py`` whose config names its implementation
in the ``python_module`` parameter (how NuGraph3 is served): a generated ``model.py`` that imports the module after
the job's ``sys.path``, the version's files linked, the config kept; bad or unimportable module names are errors
before any server starts. A model with its own ``model.py`` is served as it is."""

from __future__ import annotations

from pathlib import Path

import pytest

from framework.server.repository import (
    ModelRepositoryError,
    read_model_config,
    translate_model,
    write_model_config,
)
from producers.nugraph3.model_repo import model_config


def _model(root: Path, module: str, model_py: bool = False) -> Path:
    path = root / "src" / "nugraph3"
    (path / "1").mkdir(parents=True)
    (path / "1" / "hierarchical.ckpt").write_bytes(b"weights")
    if model_py:
        (path / "1" / "model.py").write_text("class TritonPythonModel: pass\n")
    config = model_config()
    config.parameters["python_module"].string_value = module
    write_model_config(config, path / "config.pbtxt")
    return path


def test_generated_model_py_imports_the_module(tmp_path):
    src = _model(tmp_path, "producers.nugraph3.triton_model")
    translated = translate_model(src, tmp_path / "repo")
    target = tmp_path / "repo" / "nugraph3"
    assert translated.kind == "python" and translated.versions == ["1"]
    code = (target / "1" / "model.py").read_text()
    assert "from producers.nugraph3.triton_model import TritonPythonModel" in code
    assert "CMSFW_TRITON_SYS_PATH" in code.split("from producers")[0], "the job's sys.path comes first"
    assert (target / "1" / "hierarchical.ckpt").is_symlink()
    assert (target / "1" / "hierarchical.ckpt").read_bytes() == b"weights"
    assert read_model_config(target / "config.pbtxt") == read_model_config(src / "config.pbtxt")
    namespace: dict = {}
    exec(compile(code, "model.py", "exec"), namespace)  # what the stub runs
    from producers.nugraph3.triton_model import TritonPythonModel

    assert namespace["TritonPythonModel"] is TritonPythonModel


def test_own_model_py_is_kept(tmp_path):
    src = _model(tmp_path, "producers.nugraph3.triton_model", model_py=True)
    translate_model(src, tmp_path / "repo")
    version = tmp_path / "repo" / "nugraph3" / "1"
    assert version.is_symlink() and (version / "model.py").read_text() == "class TritonPythonModel: pass\n"


@pytest.mark.parametrize("module, message", [
    ("producers.nugraph3.no_such_module", "names 'producers.nugraph3.no_such_module', which this Python cannot import"),
    ("os; import sys", "is 'os; import sys', not a module name"),
])
def test_bad_module_is_an_error(tmp_path, module, message):
    src = _model(tmp_path, module)
    with pytest.raises(ModelRepositoryError, match="parameter python_module") as err:
        translate_model(src, tmp_path / "repo")
    assert message in str(err.value)
