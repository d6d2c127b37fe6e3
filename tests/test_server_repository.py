"""Translation of standard Triton repositories for the bundled server (no server started here)."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import pytest
from tritonclient.grpc import model_config_pb2 as mc

from framework.exceptions import ServerError
from framework.server.repository import (
    TEMPLATE,
    ChecksumError,
    ModelRepositoryError,
    find_models,
    read_model_config,
    translate_repositories,
    verify_checksums,
    write_model_config,
)
from tests.onnx_models import (
    make_affine_model,
    make_fixed_model,
    make_multi_io_model,
    make_repository,
    make_slow_model,
    md5,
    tamper,
)

SHARED_MODELS = Path(__file__).resolve().parents[1].parent / "shared" / "models"
needs_shared = pytest.mark.skipif(not SHARED_MODELS.is_dir(), reason=f"{SHARED_MODELS} is absent (../shared)")


@pytest.fixture
def repo(tmp_path):
    specs = make_repository(tmp_path / "repo", slow=True)
    return tmp_path / "repo", specs


def test_onnx_model_becomes_python_backend_model(repo, tmp_path):
    root, specs = repo
    translated = {m.name: m for m in translate_repositories([root], tmp_path / "out", instances=2, threads=3)}
    assert sorted(translated) == ["affine", "fixed", "multi_io", "slow"]
    assert translated["affine"].kind == "onnx" and translated["slow"].kind == "python"

    source = read_model_config(root / "affine" / "config.pbtxt")
    config = read_model_config(tmp_path / "out" / "affine" / "config.pbtxt")
    assert config.backend == "python" and config.platform == ""
    assert config.name == source.name == "affine"
    assert config.max_batch_size == source.max_batch_size == 8
    assert list(config.input) == list(source.input) and list(config.output) == list(source.output)
    assert config.dynamic_batching == source.dynamic_batching
    assert list(config.dynamic_batching.preferred_batch_size) == [4]
    assert not config.HasField("model_repository_agents") and not config.HasField("optimization")
    assert [(g.count, g.kind) for g in config.instance_group] == [(2, mc.ModelInstanceGroup.KIND_CPU)]
    params = {k: v.string_value for k, v in config.parameters.items()}
    assert params["intra_op_thread_count"] == "3"
    assert params["execution_provider"] == "cpu"
    assert params["onnx_model_filename"] == "model.onnx"
    assert params["graph_optimization_level"] == "basic"  # optimization { graph { level: -1 } }

    out = tmp_path / "out" / "affine"
    assert (out / "1" / "model.py").read_text() == TEMPLATE.read_text()
    assert md5(out / "1" / "model.onnx") == md5(specs["affine"].onnx_path)
    assert (out / "affine_labels.txt").read_text().split() == ["a", "b", "c", "d"]


def test_gpu_device_sets_gpu_instances_and_cuda_provider(tmp_path):
    make_affine_model(tmp_path / "repo")
    translate_repositories([tmp_path / "repo"], tmp_path / "out", device="gpu")
    config = read_model_config(tmp_path / "out" / "affine" / "config.pbtxt")
    assert config.instance_group[0].kind == mc.ModelInstanceGroup.KIND_GPU
    assert config.parameters["execution_provider"].string_value == "cuda"


def test_names_with_colons_and_slashes_are_kept(tmp_path):
    make_multi_io_model(tmp_path / "repo")
    translate_repositories([tmp_path / "repo"], tmp_path / "out")
    config = read_model_config(tmp_path / "out" / "multi_io" / "config.pbtxt")
    assert [i.name for i in config.input] == ["x:0", "y/in:0", "n:0"]
    assert [o.name for o in config.output] == ["sum:0", "prod/Mul:0", "norm:0", "n_plus_one:0"]


def test_python_model_is_served_as_it_is(repo, tmp_path):
    root, _ = repo
    translate_repositories([root], tmp_path / "out", models=["slow"], instances=4)
    assert read_model_config(tmp_path / "out" / "slow" / "config.pbtxt") == read_model_config(
        root / "slow" / "config.pbtxt")
    assert (tmp_path / "out" / "slow" / "1" / "model.py").read_text() == (root / "slow" / "1" / "model.py").read_text()
    assert not (tmp_path / "out" / "affine").exists()


def test_python_model_with_auto_complete_is_flagged(tmp_path):
    spec = make_slow_model(tmp_path / "repo")
    [model] = translate_repositories([tmp_path / "repo"], tmp_path / "out")
    assert not model.auto_complete
    script = spec.path / "1" / "model.py"
    script.write_text(script.read_text() + "\n    @staticmethod\n    def auto_complete_config(c):\n        return c\n")
    [model] = translate_repositories([tmp_path / "repo"], tmp_path / "out2")
    assert model.auto_complete


def test_checksum_verified_and_tampering_caught(tmp_path):
    spec = make_affine_model(tmp_path / "repo", checksum=True)
    config = read_model_config(spec.path / "config.pbtxt")
    assert verify_checksums(spec.path, config) == 1
    tamper(spec.onnx_path)
    with pytest.raises(ChecksumError, match="checksum mismatch") as info:
        translate_repositories([tmp_path / "repo"], tmp_path / "out")
    assert md5(spec.onnx_path) in str(info.value)
    assert isinstance(info.value, ServerError)


def test_checksum_of_missing_file(tmp_path):
    spec = make_affine_model(tmp_path / "repo", checksum=True)
    config = read_model_config(spec.path / "config.pbtxt")
    agent = config.model_repository_agents.agents[0]
    agent.parameters["MD5:1/missing.onnx"] = "0" * 32
    write_model_config(config, spec.path / "config.pbtxt")
    with pytest.raises(ChecksumError, match="missing.onnx"):
        translate_repositories([tmp_path / "repo"], tmp_path / "out")


def test_unsupported_platform_is_a_clear_error(tmp_path):
    spec = make_fixed_model(tmp_path / "repo")
    config = read_model_config(spec.path / "config.pbtxt")
    config.platform = "tensorflow_graphdef"
    write_model_config(config, spec.path / "config.pbtxt")
    with pytest.raises(ModelRepositoryError, match="platform 'tensorflow_graphdef'.*cannot run"):
        translate_repositories([tmp_path / "repo"], tmp_path / "out")


def test_repository_errors(tmp_path):
    with pytest.raises(ModelRepositoryError, match="does not exist"):
        translate_repositories([tmp_path / "nowhere"], tmp_path / "out")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelRepositoryError, match="no model found"):
        translate_repositories([tmp_path / "empty"], tmp_path / "out")

    make_affine_model(tmp_path / "a")
    make_affine_model(tmp_path / "b")
    with pytest.raises(ModelRepositoryError, match="in two repositories"):
        find_models([tmp_path / "a", tmp_path / "b"])
    with pytest.raises(ModelRepositoryError, match="Did you mean 'affine'"):
        translate_repositories([tmp_path / "a"], tmp_path / "out", models=["afine"])


def test_missing_onnx_file_and_bad_config(tmp_path):
    spec = make_affine_model(tmp_path / "repo")
    spec.onnx_path.unlink()
    with pytest.raises(ModelRepositoryError, match="model.onnx does not exist"):
        translate_repositories([tmp_path / "repo"], tmp_path / "out")

    spec = make_affine_model(tmp_path / "repo2")
    (spec.path / "config.pbtxt").write_text('name: "affine"\nmax_batch_size: eight\n')
    with pytest.raises(ModelRepositoryError, match="not a valid Triton model configuration"):
        translate_repositories([tmp_path / "repo2"], tmp_path / "out2")

    spec = make_affine_model(tmp_path / "repo3", "renamed")
    shutil.move(spec.path, tmp_path / "repo3" / "other")
    with pytest.raises(ModelRepositoryError, match="differs from its directory"):
        translate_repositories([tmp_path / "repo3"], tmp_path / "out3")


def test_copy_instead_of_symlink(tmp_path):
    make_affine_model(tmp_path / "repo", labels=["x"])
    translate_repositories([tmp_path / "repo"], tmp_path / "out", copy=True)
    assert not (tmp_path / "out" / "affine" / "1" / "model.onnx").is_symlink()
    assert not (tmp_path / "out" / "affine" / "affine_labels.txt").is_symlink()


def test_template_imports_outside_triton():
    spec = importlib.util.spec_from_file_location("model_py_template_copy", TEMPLATE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert hasattr(module, "TritonPythonModel")


@needs_shared
@pytest.mark.shared
def test_cms_models_translate(tmp_path):
    translated = {m.name: m for m in translate_repositories([SHARED_MODELS], tmp_path / "out")}
    assert {"deepmet", "particletransformer_AK4"} <= set(translated)
    deepmet = read_model_config(tmp_path / "out" / "deepmet" / "config.pbtxt")
    assert [i.name for i in deepmet.input] == ["input:0", "input_cat0:0", "input_cat1:0", "input_cat2:0"]
    assert [o.name for o in deepmet.output] == ["output/BiasAdd:0"]
    part = read_model_config(tmp_path / "out" / "particletransformer_AK4" / "config.pbtxt")
    assert part.max_batch_size == 500 and list(part.dynamic_batching.preferred_batch_size) == [200]
    assert not part.HasField("model_repository_agents")
    assert (tmp_path / "out" / "particletransformer_AK4" / "particletransformer_labels.txt").is_file()


@needs_shared
@pytest.mark.shared
def test_cms_checksum_catches_tampered_model(tmp_path):
    copy = tmp_path / "repo" / "particletransformer_AK4"
    shutil.copytree(SHARED_MODELS / "particletransformer_AK4", copy)
    source = read_model_config(copy / "config.pbtxt")
    assert verify_checksums(copy, source) == 1
    tamper(copy / "1" / "model.onnx")
    with pytest.raises(ChecksumError, match="e9ad0c98366e337e2562a9522ffd575b"):
        translate_repositories([tmp_path / "repo"], tmp_path / "out")
