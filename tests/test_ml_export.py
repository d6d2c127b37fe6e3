"""framework.ml.export: a PyTorch model exported to a Triton repository (config.pbtxt + 1/model.onnx), checked
against torch, run in-process (ONNXSession) and on the local Triton fallback; the export command; the training
scripts' export path against the bundled models."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from tritonclient.grpc import model_config_pb2 as mc

from framework.ml.export import ExportError, build_model_config, export_to_triton, main
from framework.ml.onnx import ONNXSession
from framework.server import LocalTritonServer, bundled_server_available
from framework.server.repository import file_digest, read_model_config

REPO_ROOT = Path(__file__).resolve().parents[1]
MODELS = REPO_ROOT / "data" / "models"
RTOL, ATOL = 1e-3, 1e-5
SERVER_OK, SERVER_REASON = bundled_server_available()


class TwoInputs(torch.nn.Module):
    """``particles`` [N, n, 4] FP32 (n variable) and ``cat`` [N, 3] INT64 -> ``probs`` [N, 3], ``summary`` [N, 5]."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.emb = torch.nn.Embedding(10, 2)
        self.net = torch.nn.Sequential(torch.nn.Linear(4 + 6, 16), torch.nn.Tanh(), torch.nn.Linear(16, 3))
        self.proj = torch.nn.Linear(4, 5)

    def forward(self, particles, cat):
        h = torch.cat([particles.sum(1), self.emb(cat).flatten(1)], dim=-1)
        return torch.softmax(self.net(h), dim=-1), self.proj(particles).amax(dim=1)


def inputs(batch: int, n: int, seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {"particles": torch.randn(batch, n, 4, generator=g), "cat": torch.randint(0, 10, (batch, 3), generator=g)}


def tiny_model():
    """The factory of the command-line tests: ``(model, example_inputs)``."""
    return TwoInputs(), inputs(8, 6, seed=1)


def not_a_pair():
    return TwoInputs()


def wrong_example_shape():
    return TwoInputs(), {"particles": torch.randn(8, 6, 3), "cat": torch.zeros(8, 3, dtype=torch.int64)}


class BatchDependent(torch.nn.Module):
    """Python control flow on the batch size: the exporter freezes the branch taken for the example (8 > 4)."""

    def forward(self, x):
        if x.shape[0] > 4:
            return x * 2.0
        return x


def torch_outputs(model, feeds: dict[str, torch.Tensor]) -> list[np.ndarray]:
    with torch.no_grad():
        return [t.numpy() for t in model(**feeds)]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """TwoInputs exported once: (model, repository, model directory)."""
    repo = tmp_path_factory.mktemp("export") / "repo"
    model, example = tiny_model()
    path = export_to_triton(model, example, repo, "two_inputs", output_names=["probs", "summary"],
                            dynamic_axes={"particles": [1]}, max_batch_size=32, dynamic_batching=[8, 16])
    return model, repo, path


# ----------------------------------------------------------------------------- the function
def test_layout_and_config(exported):
    _, repo, path = exported
    assert path == repo / "two_inputs"
    assert sorted(p.name for p in repo.iterdir()) == ["two_inputs"], "temporary export files left behind"
    assert sorted(str(p.relative_to(path)) for p in path.rglob("*")) == ["1", "1/model.onnx", "config.pbtxt"]
    config = read_model_config(path / "config.pbtxt")
    assert (config.name, config.platform, config.max_batch_size) == ("two_inputs", "onnxruntime_onnx", 32)
    assert list(config.dynamic_batching.preferred_batch_size) == [8, 16]
    tensors = [(t.name, mc.DataType.Name(t.data_type), list(t.dims)) for t in [*config.input, *config.output]]
    assert tensors == [("particles", "TYPE_FP32", [-1, 4]), ("cat", "TYPE_INT64", [3]),
                       ("probs", "TYPE_FP32", [3]), ("summary", "TYPE_FP32", [5])]
    assert not config.model_repository_agents.agents


def test_onnx_is_valid_with_a_dynamic_batch_axis(exported):
    _, _, path = exported
    proto = onnx.load(str(path / "1" / "model.onnx"))
    onnx.checker.check_model(proto, full_check=True)
    for value in [*proto.graph.input, *proto.graph.output]:
        assert value.type.tensor_type.shape.dim[0].dim_param == "N", value.name
    assert all(not node.doc_string for node in proto.graph.node)


@pytest.mark.parametrize("batch", [1, 7, 64])
def test_onnxsession_matches_torch(exported, batch):
    """Fresh inputs, and a particle count (11) the example did not have."""
    model, _, path = exported
    session = ONNXSession(str(path / "1" / "model.onnx"), device="cpu")
    feeds = inputs(batch, 11, seed=100 + batch)
    got = session.run({k: v.numpy() for k, v in feeds.items()}, ["probs", "summary"])
    for name, expected in zip(["probs", "summary"], torch_outputs(model, feeds)):
        np.testing.assert_allclose(got[name], expected, rtol=RTOL, atol=ATOL, err_msg=name)


def test_mismatch_is_reported_and_nothing_written(tmp_path):
    with pytest.raises(ExportError) as info:
        export_to_triton(BatchDependent(), torch.randn(8, 3), tmp_path, "frozen_branch")
    message = str(info.value)
    assert "output 'output' at batch size 1: max |onnxruntime - torch| = " in message
    assert "Python boolean" in message  # the exporter's warning is quoted
    assert list(tmp_path.iterdir()) == []


def test_unexportable_operation_is_a_clear_error(tmp_path):
    class Spectrum(torch.nn.Module):
        def forward(self, x):
            return torch.fft.rfft(x).abs()

    with pytest.raises(ExportError, match="cannot export model 'spectrum'.*aten::fft_rfft"):
        export_to_triton(Spectrum(), torch.randn(4, 8), tmp_path, "spectrum")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
@pytest.mark.triton
@pytest.mark.skipif(not SERVER_OK, reason=SERVER_REASON)
def test_served_by_local_triton_matches_torch(exported):
    import tritonclient.http as httpclient
    from tritonclient.utils import np_to_triton_dtype

    model, repo, _ = exported
    feeds = {k: v.numpy() for k, v in inputs(5, 9, seed=7).items()}
    with LocalTritonServer([repo], device="cpu", instances=1) as server:
        client = httpclient.InferenceServerClient(server.http_address)
        request = []
        for name, value in feeds.items():
            request.append(httpclient.InferInput(name, list(value.shape), np_to_triton_dtype(value.dtype)))
            request[-1].set_data_from_numpy(value)
        result = client.infer("two_inputs", request)
        client.close()
    expected = torch_outputs(model, {k: torch.from_numpy(v) for k, v in feeds.items()})
    for name, value in zip(["probs", "summary"], expected):
        np.testing.assert_allclose(result.as_numpy(name), value, rtol=RTOL, atol=ATOL, err_msg=name)


# ----------------------------------------------------------------------------- the command
@pytest.mark.slow
def test_command_end_to_end(run_framework, tmp_path):
    proc = run_framework("export-model", "tests/test_ml_export.py:tiny_model", "--out", tmp_path, "--name", "cli_model",
                         "--output-names", "probs,summary", "--dynamic-axis", "particles:1", "--max-batch-size", "16",
                         "--preferred-batch-sizes", "4,8", "--checksum")
    assert proc.returncode == 0, proc.stderr
    path = tmp_path / "cli_model"
    config = read_model_config(path / "config.pbtxt")
    assert config.max_batch_size == 16 and list(config.dynamic_batching.preferred_batch_size) == [4, 8]
    assert [list(t.dims) for t in config.input] == [[-1, 4], [3]]
    assert dict(config.model_repository_agents.agents[0].parameters) == {
        "MD5:1/model.onnx": file_digest(path / "1" / "model.onnx")}
    assert "onnxruntime matches torch at batch sizes 1, 7, 64" in proc.stderr


@pytest.mark.slow
def test_command_bad_function_is_one_clear_message(run_framework, tmp_path):
    proc = run_framework("export-model", "tests.test_ml_export:tiny_modle", "--out", tmp_path, "--name", "x")
    assert proc.returncode != 0
    assert "has no function 'tiny_modle'. Did you mean 'tiny_model'?" in proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.splitlines()) < 8, proc.stderr


@pytest.mark.parametrize("factory, message", [
    ("no_such_module_xyz:make", "cannot import module 'no_such_module_xyz'"),
    ("tests/no_such_file.py:make", "file tests/no_such_file.py does not exist"),
    ("tests.test_ml_export", "is not MODULE:FUNCTION"),
    ("tests.test_ml_export:not_a_pair", "must return (model, example_inputs), got TwoInputs"),
    ("tests.test_ml_export:wrong_example_shape", "calling the model on the example inputs failed: RuntimeError"),
])
def test_command_bad_input(factory, message, tmp_path, monkeypatch):
    monkeypatch.chdir(REPO_ROOT)
    with pytest.raises(ExportError) as info:
        main([factory, "--out", str(tmp_path), "--name", "x"])
    assert message in str(info.value)
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------- the training scripts
def _script(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO_ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("script, model", [("train_part", "particletransformer_AK4"), ("train_deepmet", "deepmet")])
def test_script_config_equals_the_bundled_one(script, model):
    """The config the script writes, derived from the bundled graph with the script's settings."""
    written = build_model_config(MODELS / model / "1" / "model.onnx", model, **_script(script).TRITON_CONFIG)
    assert written == read_model_config(MODELS / model / "config.pbtxt")


def _untrained(script, module):
    """A model of the script's architecture with distinct random weights (equal tensors, such as fresh
    LayerNorm weights, would be merged by the exporter), and example inputs."""
    rng = np.random.default_rng(3)
    if script == "train_part":
        mean_std = [(np.zeros(f, np.float32), np.ones(f, np.float32)) for f in module.N_FEATURES]
        shapes = zip(module.MAX_SLOTS * 2, module.N_FEATURES + (4, 4, 4))
        model = module.build_model(mean_std)
        example = {f"input_{i}": rng.normal(size=(16, n, f)).astype(np.float32) for i, (n, f) in enumerate(shapes, 1)}
    else:
        model = module.build_model(np.zeros(module.N_CONT, np.float32), np.ones(module.N_CONT, np.float32))
        x = rng.normal(size=(8, module.N_CANDS, module.N_CONT)).astype(np.float32)
        example = (x, *(rng.integers(0, n, size=(8, module.N_CANDS, 1)).astype(np.float32) for n in module.CAT_SIZES))
    torch.manual_seed(3)
    with torch.no_grad():
        for t in [*model.parameters(), *model.buffers()]:
            t.add_(0.01 * torch.randn_like(t))
    return model, example


def _graph_signature(path: Path) -> dict:
    proto = onnx.load(str(path))
    io = [(v.name, v.type.tensor_type.elem_type, [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim])
          for v in [*proto.graph.input, *proto.graph.output]]
    return {"io": io, "ops": [n.op_type for n in proto.graph.node], "opset": [o.version for o in proto.opset_import],
            "producer": proto.producer_name}


@pytest.mark.slow
@pytest.mark.parametrize("script, model", [("train_part", "particletransformer_AK4"), ("train_deepmet", "deepmet")])
def test_script_export_matches_the_bundled_model_but_weights(script, model, tmp_path):
    """The script's export of an untrained model of the same architecture: the same graph (I/O, operators),
    the same config.pbtxt but for the checksum, the same other files."""
    module = _script(script)
    path = module.export(*_untrained(script, module), tmp_path)
    bundled = MODELS / model
    assert _graph_signature(path / "1" / "model.onnx") == _graph_signature(bundled / "1" / "model.onnx")
    config, expected = read_model_config(path / "config.pbtxt"), read_model_config(bundled / "config.pbtxt")
    assert config.model_repository_agents.agents[0].parameters["MD5:1/model.onnx"] == file_digest(
        path / "1" / "model.onnx")
    for c in (config, expected):
        c.ClearField("model_repository_agents")
    assert config == expected
    assert sorted(p.name for p in path.iterdir()) == sorted(p.name for p in bundled.iterdir())
    for extra in path.glob("*.txt"):
        assert extra.read_text() == (bundled / extra.name).read_text()
