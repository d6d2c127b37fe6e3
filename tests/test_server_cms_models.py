"""The real CMS models of ../shared/models (ParticleTransformer AK4, DeepMET) served by the bundled server."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient

from framework.server import ChecksumError, LocalTritonServer, bundled_server_available
from tests.onnx_models import run_onnxruntime, tamper

SHARED_MODELS = Path(__file__).resolve().parents[1].parent / "shared" / "models"
AVAILABLE, REASON = bundled_server_available()
pytestmark = [
    pytest.mark.triton,
    pytest.mark.shared,
    pytest.mark.skipif(not AVAILABLE, reason=REASON),
    pytest.mark.skipif(not SHARED_MODELS.is_dir(), reason=f"{SHARED_MODELS} is absent (the ../shared checkout)"),
]
TOLERANCE = 1e-5

PART = "particletransformer_AK4"
PART_INPUTS = {"input_1": (25, 16), "input_2": (25, 8), "input_3": (5, 14),
               "input_4": (25, 4), "input_5": (25, 4), "input_6": (5, 4)}


@pytest.fixture(scope="module")
def server():
    with LocalTritonServer([SHARED_MODELS], device="cpu", models=[PART, "deepmet"]) as server:
        yield server


def part_inputs(jets: int, slots: int | None = None, seed: int = 0) -> dict[str, np.ndarray]:
    """Random ParT inputs for ``jets`` jets padded to ``slots`` candidates (default: the maximum)."""
    rng = np.random.default_rng(seed)
    feeds = {}
    for name, (most, features) in PART_INPUTS.items():
        n = most if slots is None else min(slots, most)
        feeds[name] = rng.normal(size=(jets, n, features)).astype(np.float32)
    return feeds


def deepmet_inputs(events: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"input:0": rng.normal(size=(events, 4500, 8)).astype(np.float32),
            "input_cat0:0": rng.integers(0, 3, size=(events, 4500, 1)).astype(np.float32),
            "input_cat1:0": rng.integers(0, 11, size=(events, 4500, 1)).astype(np.float32),
            "input_cat2:0": rng.integers(0, 4, size=(events, 4500, 1)).astype(np.float32)}


def infer(module, address: str, model: str, feeds: dict[str, np.ndarray], outputs=None):
    client = module.InferenceServerClient(address)
    inputs = []
    for name, value in feeds.items():
        tensor = module.InferInput(name, list(value.shape), "FP32")
        tensor.set_data_from_numpy(value)
        inputs.append(tensor)
    return client.infer(model, inputs, outputs=outputs)


@pytest.mark.parametrize(("jets", "slots"), [(1, None), (7, None), (32, 10), (3, 1)])
def test_particle_transformer_equals_onnxruntime(server, jets, slots):
    feeds = part_inputs(jets, slots, seed=jets)
    got = infer(grpcclient, server.grpc_address, PART, feeds).as_numpy("softmax")
    expected = run_onnxruntime(SHARED_MODELS / PART / "1" / "model.onnx", feeds)["softmax"]
    assert got.shape == (jets, 6)
    np.testing.assert_allclose(got, expected, atol=TOLERANCE, rtol=0)
    np.testing.assert_allclose(got.sum(axis=1), 1.0, atol=1e-5)


def test_particle_transformer_labels(server):
    feeds = part_inputs(2)
    result = infer(grpcclient, server.grpc_address, PART, feeds,
                   outputs=[grpcclient.InferRequestedOutput("softmax", class_count=6)])
    labels = {entry.decode().split(":")[2] for entry in result.as_numpy("softmax")[0]}
    assert len(labels) == 6 and {"b", "g"} <= labels


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_deepmet_equals_onnxruntime(server, protocol):
    feeds = deepmet_inputs(3, seed=4)
    module = grpcclient if protocol == "grpc" else httpclient
    address = server.grpc_address if protocol == "grpc" else server.http_address
    got = infer(module, address, "deepmet", feeds).as_numpy("output/BiasAdd:0")
    expected = run_onnxruntime(SHARED_MODELS / "deepmet" / "1" / "model.onnx", feeds)["output/BiasAdd:0"]
    assert got.shape == (3, 2)
    np.testing.assert_allclose(got, expected, atol=TOLERANCE, rtol=0)


def test_deepmet_metadata_names_with_colons(server):
    client = grpcclient.InferenceServerClient(server.grpc_address)
    meta = client.get_model_metadata("deepmet")
    assert [(i.name, list(i.shape)) for i in meta.inputs] == [
        ("input:0", [-1, 4500, 8]), ("input_cat0:0", [-1, 4500, 1]),
        ("input_cat1:0", [-1, 4500, 1]), ("input_cat2:0", [-1, 4500, 1])]
    assert [o.name for o in meta.outputs] == ["output/BiasAdd:0"]


def test_tampered_cms_model_is_refused_before_start(tmp_path):
    shutil.copytree(SHARED_MODELS / PART, tmp_path / "repo" / PART)
    tamper(tmp_path / "repo" / PART / "1" / "model.onnx")
    server = LocalTritonServer([tmp_path / "repo"], device="cpu")
    with pytest.raises(ChecksumError, match="MD5 checksum mismatch"):
        server.start()
    assert not server.is_running()
