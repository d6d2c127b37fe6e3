"""Batching across requests on the local fallback server: zero padding of variable dims (``batch_padding``),
grouping, splitting back, and the auto settings of the launcher (instances, threads, queue delay)."""

from __future__ import annotations

import threading
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from google.protobuf import json_format

from framework.exceptions import ConfigurationError
from framework.server import LocalTritonServer, ModelRepositoryError, read_model_config, write_model_config
from framework.server import model_py_template as template
from framework.server.launcher import _cpu_count, auto_settings
from framework.server.repository import translate_repositories
from framework.server.serve import _parser
from tests.onnx_models import make_affine_model, make_multi_io_model
from tests.sonic_fixtures import needs_server

pytestmark = [*needs_server]

ROOT = Path(__file__).resolve().parents[1]
PART_DIR = ROOT / "data" / "models" / "particletransformer_AK4"
PART = "particletransformer_AK4"
NOPAD = "part_nopad"
WIDTHS = {"input_1": 16, "input_2": 8, "input_3": 14, "input_4": 4, "input_5": 4, "input_6": 4}
QUEUE_DELAY_US = 20_000  # long enough that 8 concurrent clients always share executions


def part_axes() -> dict[str, frozenset[int]]:
    config = json_format.MessageToDict(read_model_config(PART_DIR / "config.pbtxt"),
                                       preserving_proto_field_name=True)
    axes = template.padding_axes(config)
    assert axes is not None
    return axes


def part_request(rng: np.random.Generator, jets: int, cpf: int, npf: int, sv: int) -> dict[str, np.ndarray]:
    """Random ParT inputs of one event: features anywhere, 4-vectors non-zero only in the real slots of each
    jet (a jet has 1..slots real candidates; the rest is zero padding, as the producer makes it)."""
    feeds = {}
    for k, slots in zip(range(1, 4), (cpf, npf, sv), strict=True):
        real = rng.integers(1, slots + 1, size=jets)
        mask = (np.arange(slots)[None, :] < real[:, None]).astype(np.float32)[..., None]
        feeds[f"input_{k}"] = (rng.normal(size=(jets, slots, WIDTHS[f"input_{k}"])) * mask).astype(np.float32)
        p = rng.normal(scale=10.0, size=(jets, slots, 3))
        energy = np.sqrt((p**2).sum(-1, keepdims=True) + 0.1)
        feeds[f"input_{k + 3}"] = (np.concatenate([p, energy], axis=-1) * mask).astype(np.float32)
    return feeds


# ----------------------------------------------------------------------------- (a) the numpy part, no server
def test_plan_groups_identical_shapes_without_padding():
    a, b = np.ones((2, 3, 4), np.float32), np.ones((1, 5, 4), np.float32)
    feeds = [{"x": a}, {"x": b}, {"x": a}, {"x": b}]
    assert template.plan_batches(feeds, 100) == [[0, 2], [1, 3]]
    merged = template.merge_feeds([feeds[0], feeds[2]])
    np.testing.assert_array_equal(merged["x"], np.concatenate([a, a]))
    assert template.plan_batches(feeds, 0) == [[0], [1], [2], [3]]  # no batching: every request alone


def test_plan_pads_variable_dims_into_one_run():
    rng = np.random.default_rng(1)
    feeds = [{"x": rng.normal(size=(n, length, 4)).astype(np.float32), "y": np.full((n, 2), n, np.float32)}
             for n, length in ((2, 3), (1, 7), (3, 1), (2, 3))]
    axes = {"x": frozenset({1}), "y": frozenset()}
    assert template.plan_batches(feeds, 100, axes) == [[0, 1, 2, 3]]
    merged = template.merge_feeds(feeds)
    assert merged["x"].shape == (8, 7, 4) and merged["y"].shape == (8, 2)
    start = 0
    for feed in feeds:
        n, length = feed["x"].shape[:2]
        np.testing.assert_array_equal(merged["x"][start:start + n, :length], feed["x"])
        assert not merged["x"][start:start + n, length:].any()  # zero padding at the end
        np.testing.assert_array_equal(merged["y"][start:start + n], feed["y"])
        start += n


def test_plan_never_pads_fixed_dims_dtypes_or_missing_inputs():
    axes = {"x": frozenset({1}), "z": frozenset()}
    feeds = [{"x": np.zeros((1, 3, 4), np.float32)},
             {"x": np.zeros((1, 5, 2), np.float32)},  # axis 2 is fixed: cannot be padded
             {"x": np.zeros((1, 3, 4), np.float64)},  # other dtype
             {"x": np.zeros((1, 2, 4), np.float32), "z": np.zeros((1, 1), np.float32)},  # other inputs
             {"x": np.zeros((1, 9, 4), np.float32)}]
    assert template.plan_batches(feeds, 100, axes) == [[0, 4], [1], [2], [3]]


def test_plan_respects_max_batch_size():
    sizes = ((2, 1), (2, 2), (3, 3), (1, 4), (5, 5))
    feeds = [{"x": np.zeros((n, length), np.float32)} for n, length in sizes]
    axes = {"x": frozenset({1})}
    runs = template.plan_batches(feeds, 5, axes)
    assert runs == [[0, 1], [2, 3], [4]]
    assert all(sum(len(feeds[i]["x"]) for i in run) <= 5 for run in runs)
    # padded to its own run's max
    assert template.merge_feeds([feeds[i] for i in runs[1]])["x"].shape == (4, 4)


def test_split_outputs():
    out = np.arange(12).reshape(6, 2)
    pieces = template.split_outputs([out, out[:, 0]], [1, 3, 2])
    assert [p[0].tolist() for p in pieces] == [[[0, 1]], [[2, 3], [4, 5], [6, 7]], [[8, 9], [10, 11]]]
    assert [p[1].tolist() for p in pieces] == [[0], [2, 4, 6], [8, 10]]
    assert template.split_outputs([out, np.float32(1.0)], [3, 3]) is None  # not batched: the caller reruns
    assert template.split_outputs([out], [2, 2]) is None


def test_padding_axes_from_the_config():
    assert part_axes() == {name: frozenset({1}) for name in WIDTHS}
    config = {"max_batch_size": 8, "input": [{"name": "x", "dims": ["-1", "4"]}],
              "output": [{"name": "y", "dims": ["4"]}]}
    assert template.padding_axes(config) == {"x": frozenset({1})}
    assert template.padding_axes({**config, "max_batch_size": 0}) is None
    variable_output = {**config, "output": [{"name": "y", "dims": ["-1"]}]}
    assert template.padding_axes(variable_output) is None
    reshaped = {**config, "input": [{"name": "x", "dims": ["-1", "4"], "reshape": {"shape": ["4", "-1"]}}]}
    assert template.padding_axes(reshaped) is None


def test_merged_run_equals_runs_per_request_for_a_masking_model():
    """A model that ignores zero slots (a sum over the variable axis) gives the same outputs merged and
    alone."""
    rng = np.random.default_rng(2)
    feeds = [{"x": rng.normal(size=(int(rng.integers(1, 4)), int(rng.integers(1, 9)), 3)).astype(np.float32)}
             for _ in range(12)]
    model = lambda f: [f["x"].sum(axis=1), f["x"][:, :1, 0]]  # noqa: E731
    for run in template.plan_batches(feeds, 20, {"x": frozenset({1})}):
        outputs = model(template.merge_feeds([feeds[i] for i in run]))
        pieces = template.split_outputs(outputs, [template.batch_size_of(feeds[i]) for i in run])
        for i, piece in zip(run, pieces, strict=True):
            for got, expected in zip(piece, model(feeds[i]), strict=True):
                np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)


class _FakeTensor:
    def __init__(self, name: str, array: np.ndarray) -> None:
        self.name, self.array = name, array

    def as_numpy(self) -> np.ndarray:
        return self.array


class _FakeResponse:
    def __init__(self, output_tensors: list, error: str | None = None) -> None:
        self.outputs = {t.name: t.array for t in output_tensors}
        self.error = error


def _fake_pb_utils() -> SimpleNamespace:
    return SimpleNamespace(
        get_input_tensor_by_name=lambda request, name: (_FakeTensor(name, request[name]) if name in request
                                                        else None),
        Tensor=_FakeTensor, InferenceResponse=_FakeResponse, TritonError=str)


class _Session:
    """Sums over the candidate axis; fails on a batch that contains a NaN (the faulty request)."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, ...]] = []

    def run(self, names: list[str], feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        self.calls.append(feeds["x"].shape)
        if np.isnan(feeds["x"]).any():
            raise RuntimeError("NaN in the input")
        return [feeds["x"].sum(axis=1)]


def _model(padding: bool) -> template.TritonPythonModel:
    model = template.TritonPythonModel()
    model.model_name, model.max_batch_size = "fake", 16
    model.inputs = [("x", np.float32, False)]
    model.outputs = [("y", np.float32)]
    model.output_names = ["y"]
    model.variable_axes = {"x": frozenset({1})} if padding else None
    model.session = _Session()
    return model


def test_execute_merges_splits_and_blames_the_faulty_request(monkeypatch):
    monkeypatch.setattr(template, "pb_utils", _fake_pb_utils())
    rng = np.random.default_rng(3)
    requests = [{"x": rng.normal(size=(n, length, 3)).astype(np.float32)}
                for n, length in ((2, 4), (1, 6), (3, 4))]
    model = _model(padding=True)
    responses = model.execute(requests)
    assert model.session.calls == [(6, 6, 3)]  # one run, padded to 6 slots
    for request, response in zip(requests, responses, strict=True):
        assert response.error is None
        np.testing.assert_allclose(response.outputs["y"], request["x"].sum(axis=1), rtol=1e-6)

    model = _model(padding=False)
    model.execute(requests)
    assert model.session.calls == [(5, 4, 3), (1, 6, 3)]  # by shape

    bad = {"x": np.full((1, 2, 3), np.nan, np.float32)}
    model = _model(padding=True)
    responses = model.execute([requests[0], bad, {"y": np.zeros(1)}, requests[1]])
    assert model.session.calls[0] == (4, 6, 3) and len(model.session.calls) == 4  # merged, then one by one
    assert responses[0].error is None and responses[3].error is None
    assert "NaN in the input" in responses[1].error
    assert "input 'x' is missing" in responses[2].error
    np.testing.assert_allclose(responses[3].outputs["y"], requests[1]["x"].sum(axis=1), rtol=1e-6)


# ----------------------------------------------------------------------------- translation, launcher settings
def test_translation_sets_batch_padding_ragged_inputs_and_queue_delay(tmp_path):
    root = tmp_path / "repo"
    make_affine_model(root, "affine", input_dims=[-1, 4], max_batch_size=8)  # variable output: never padded
    make_multi_io_model(root, "multi_io")
    make_affine_model(root, "user", input_dims=[-1, 4], max_batch_size=8, max_queue_delay_us=300,
                      parameters={"batch_padding": "none"})
    (root / PART).symlink_to(PART_DIR)
    translate_repositories([root], tmp_path / "out", queue_delay_us=700)
    configs = {name: read_model_config(tmp_path / "out" / name / "config.pbtxt")
               for name in ("affine", "multi_io", "user", PART)}
    params = {name: c.parameters["batch_padding"].string_value for name, c in configs.items()}
    assert params == {"affine": "zero", "multi_io": "zero", "user": "none", PART: "zero"}
    assert [i.allow_ragged_batch for i in configs[PART].input] == [True] * 6
    for name in ("affine", "multi_io", "user"):
        assert not any(i.allow_ragged_batch for i in configs[name].input), name
    delays = {name: c.dynamic_batching.max_queue_delay_microseconds for name, c in configs.items()}
    assert delays == {"affine": 700, "multi_io": 700, "user": 300, PART: 700}  # the user's value is kept

    bad = read_model_config(root / "user" / "config.pbtxt")
    bad.parameters["batch_padding"].string_value = "ragged"
    write_model_config(bad, root / "user" / "config.pbtxt")
    with pytest.raises(ModelRepositoryError, match="batch_padding"):
        translate_repositories([root], tmp_path / "out2", models=["user"])


def test_launcher_auto_settings():
    server = LocalTritonServer([PART_DIR.parent], device="cpu")
    assert (server.instances_option, server.threads_option, server.queue_delay_option) == (0, 0, -1)
    server._resolve_device()
    assert (server.instances, server.threads, server.queue_delay_us) == auto_settings(_cpu_count(), "cpu")
    server = LocalTritonServer([PART_DIR.parent], device="cpu", instances=2, threads=0, queue_delay_us=0)
    server._resolve_device()
    assert (server.instances, server.threads, server.queue_delay_us) == (2, max(1, _cpu_count() // 2), 0)
    for cores in (1, 2, 4, 16, 64):
        instances, threads, delay = auto_settings(cores, "cpu")
        assert 1 <= instances <= cores and 1 <= threads and delay >= 0
        assert instances * threads <= max(cores, 2)
    with pytest.raises(ConfigurationError, match="queue_delay_us"):
        LocalTritonServer([PART_DIR.parent], queue_delay_us=-2)
    args = _parser().parse_args(["--queue-delay-us", "300"])
    assert (args.queue_delay_us, args.instances, args.threads) == (300, 0, 0)


# ----------------------------------------------------------------------------- (b), (c) the real server
@pytest.fixture(scope="module")
def part_server(tmp_path_factory):
    """The bundled ParT model twice: as it is (batch_padding zero by default) and as ``part_nopad``
    (``batch_padding: "none"``), with a long queue delay so that concurrent requests meet in the batcher."""
    root = tmp_path_factory.mktemp("batching") / "repo"
    (root / PART).mkdir(parents=True)
    for entry in PART_DIR.iterdir():
        (root / PART / entry.name).symlink_to(entry)
    (root / NOPAD).mkdir()
    for entry in PART_DIR.iterdir():
        if entry.name != "config.pbtxt":
            (root / NOPAD / entry.name).symlink_to(entry)
    config = read_model_config(PART_DIR / "config.pbtxt")
    config.name = NOPAD
    config.parameters["batch_padding"].string_value = "none"
    write_model_config(config, root / NOPAD / "config.pbtxt")
    with LocalTritonServer([root], device="cpu", instances=1, threads=1,
                           queue_delay_us=QUEUE_DELAY_US) as server:
        yield server


@pytest.fixture(scope="module")
def reference():
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC  # config: level -1
    session = ort.InferenceSession(str(PART_DIR / "1" / "model.onnx"), options,
                                   providers=["CPUExecutionProvider"])
    return lambda feeds: session.run(["softmax"], feeds)[0]


def _send_concurrently(address: str, model: str, requests: list[dict[str, np.ndarray]],
                       threads: int = 8) -> list[np.ndarray]:
    """Each thread, with its own client, sends every ``threads``-th request (sync infer)."""
    results: list = [None] * len(requests)
    barrier = threading.Barrier(threads)

    def worker(t: int) -> None:
        client = grpcclient.InferenceServerClient(address)
        try:
            barrier.wait()
            for i in range(t, len(requests), threads):
                inputs = []
                for name, value in requests[i].items():
                    tensor = grpcclient.InferInput(name, list(value.shape), "FP32")
                    tensor.set_data_from_numpy(value)
                    inputs.append(tensor)
                results[i] = client.infer(model, inputs).as_numpy("softmax")
        except Exception as exc:  # noqa: BLE001 - checked below
            results[t] = exc
        finally:
            client.close()

    pool = [threading.Thread(target=worker, args=(t,)) for t in range(threads)]
    for th in pool:
        th.start()
    for th in pool:
        th.join(timeout=120)
    errors = [r for r in results if isinstance(r, Exception) or r is None]
    assert not errors, errors[:3]
    return results


def _stats(client, model: str) -> tuple[int, int]:
    """(requests, executions) so far."""
    s = client.get_inference_statistics(model).model_stats[0]
    return int(s.inference_stats.success.count), int(s.execution_count)


@pytest.mark.slow
def test_padded_merges_equal_onnxruntime_per_request(part_server, reference):
    client = grpcclient.InferenceServerClient(part_server.grpc_address)
    config = client.get_model_config(PART).config
    assert config.parameters["batch_padding"].string_value == "zero"
    assert all(i.allow_ragged_batch for i in config.input)
    assert config.dynamic_batching.max_queue_delay_microseconds == QUEUE_DELAY_US

    rng = np.random.default_rng(7)
    ranges = ((2, 11), (1, 26), (1, 26), (1, 6))  # jets 2-10, candidate lengths 1-25, SVs 1-5
    requests = [part_request(rng, *(int(rng.integers(low, high)) for low, high in ranges)) for _ in range(64)]
    before = _stats(client, PART)
    results = _send_concurrently(part_server.grpc_address, PART, requests)
    after = _stats(client, PART)
    for feeds, got in zip(requests, results, strict=True):
        expected = reference(feeds)
        assert got.shape == expected.shape == (len(feeds["input_1"]), 6)
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)
    done, executions = after[0] - before[0], after[1] - before[1]
    assert done == len(requests)
    assert executions < done, f"no request was merged: {executions} executions for {done} requests"
    s = client.get_inference_statistics(PART).model_stats[0]
    assert s.execution_count < s.inference_count


@pytest.mark.slow
def test_batch_padding_none_keeps_different_shapes_apart(part_server, reference):
    client = grpcclient.InferenceServerClient(part_server.grpc_address)
    config = client.get_model_config(NOPAD).config
    assert config.parameters["batch_padding"].string_value == "none"
    assert not any(i.allow_ragged_batch for i in config.input)

    rng = np.random.default_rng(8)
    requests = [part_request(rng, 3, length, 4, 2) for length in range(1, 17)]  # every shape different
    before = _stats(client, NOPAD)
    results = _send_concurrently(part_server.grpc_address, NOPAD, requests)
    after = _stats(client, NOPAD)
    for feeds, got in zip(requests, results, strict=True):
        np.testing.assert_allclose(got, reference(feeds), rtol=0, atol=1e-5)
    assert after[0] - before[0] == len(requests)
    assert after[1] - before[1] == len(requests)
