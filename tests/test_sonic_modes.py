"""SONIC producers through the real framework and a real tritonserver: every mode gives what ONNXRuntime gives
directly, with 1 and 4 streams, over gRPC and shared memory; batching, variable dims, batch 0, ragged entries,
input validation, and the checks against the local config.pbtxt."""

from __future__ import annotations

import logging
import os
from functools import cache

import numpy as np
import onnxruntime as ort
import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

import framework.config as cms
from framework.core.registry import register
from framework.exceptions import ConfigurationError, FrameworkError
from framework.sonic import SonicEDProducer, TritonConfigError
from framework.sonic.service import server_statistics
from framework.sonic.shm import live_regions
from framework.sonic.transport import ServerAddress, make_transport
from tests.sonic_fixtures import *  # noqa: F403
from tests.sonic_fixtures import (
    assert_same,
    client_shm_segments,
    config_path,
    make_process,
    needs_server,
    run,
    server_pset,
)

pytestmark = needs_server

MODES = ["Sync", "Async", "PseudoAsync"]
EVENTS = 12


# ----------------------------------------------------------------------------- inputs from the event number
def inputs_for(kind: str, ev: int) -> dict:
    """Deterministic inputs of event *ev* for each test kind."""
    if kind == "affine":  # variable dims: jets = ev % 6 (event 6 and 12: none), candidates = 1 + ev % 3
        n, c = ev % 6, 1 + ev % 3
        return {"INPUT": (np.arange(n * c * 4, dtype=np.float32).reshape(n, c, 4) * 0.25 - ev)}
    if kind == "affine4":  # fixed dims: output shape known (shared memory for outputs too)
        n = (3 * ev) % 11
        return {"INPUT": np.linspace(-ev, ev, n * 4, dtype=np.float32).reshape(n, 4)}
    if kind == "multi_io":
        n = 1 + ev % 4
        rng = np.random.default_rng(ev)
        return {"x:0": rng.normal(size=(n, 3)).astype(np.float32), "y/in:0": rng.normal(size=(n, 3)).astype(np.float32),
                "n:0": np.arange(2 * n, dtype=np.int64).reshape(n, 2) * ev}
    if kind == "fixed":  # no batching: the model's dims exactly
        return {"INPUT": np.full((5, 3), ev, dtype=np.float32) + np.arange(15, dtype=np.float32).reshape(5, 3)}
    if kind == "ragged":  # entries of different shapes: jets = 1 + ev % 4, candidates 1 + (ev + i) % 4
        n = 1 + ev % 4
        return {"INPUT": [np.full((1 + (ev + i) % 4, 4), ev + i, dtype=np.float32) for i in range(n)]}
    if kind == "zero":
        return {"INPUT": np.zeros((0, 2, 4), dtype=np.float32)}
    if kind == "toolarge":
        return {"INPUT": np.ones((9, 2, 4), dtype=np.float32)}
    if kind == "float64":
        return {"INPUT": np.ones((2, 2, 4), dtype=np.float64)}
    if kind == "badshape":
        return {"INPUT": np.ones((2, 2, 5), dtype=np.float32)}
    raise ValueError(kind)


MODEL_OF = {"affine": "affine", "affine4": "affine4", "multi_io": "multi_io", "fixed": "fixed", "ragged": "affine",
            "zero": "affine", "toolarge": "affine", "float64": "affine", "badshape": "affine"}


@register("SonicTestModelProducer")
class SonicTestModelProducer(SonicEDProducer):
    """Fills the inputs of ``kind`` from the event number; puts every output under its name."""

    parameters = {"kind": "affine", "probe": False}
    probes: list = []

    def acquire(self, event, input):
        if self.params.kind == "ragged" and event.id.event % 2 == 0:
            self.client.setBatchMode("Ragged")  # explicit; odd events: automatic when the shapes differ
        for name, value in inputs_for(self.params.kind, event.id.event).items():
            input[name].toServer(value)

    def produce(self, event, output):
        for name, out in output.items():
            value = out.fromServer()
            event.put([np.array(v) for v in value] if isinstance(value, list) else np.array(value), name)
        if self.params.probe:
            shm = self.client._shm
            SonicTestModelProducer.probes.append(
                (shm is not None and shm.input is not None, shm is not None and shm.output is not None,
                 client_shm_segments()))


def sonic(kind: str, spec_or_path: str | None = None, **client) -> cms.EDProducer:
    settings = {"modelName": MODEL_OF[kind], "mode": "Async", **client}
    if spec_or_path:
        settings["modelConfigPath"] = spec_or_path
    probe = settings.pop("probe", False)
    return cms.EDProducer("SonicTestModelProducer", kind=cms.string(kind), probe=cms.bool(probe),
                          Client=cms.PSet(**settings))


@cache
def _session(path: str) -> ort.InferenceSession:
    return ort.InferenceSession(path, providers=["CPUExecutionProvider"])


def direct(spec, feeds: dict) -> dict:
    """ONNXRuntime on the model file, in process."""
    session = _session(str(spec.onnx_path))
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, feeds), strict=True))


def check_against_direct(products, label: str, kind: str, spec, events: int = EVENTS) -> None:
    for ev in range(1, events + 1):
        feeds = inputs_for(kind, ev)
        got = products[(label, ev)]
        if kind == "ragged":
            entries = feeds["INPUT"]
            if ev % 2 and all(e.shape == entries[0].shape for e in entries):  # stays rectangular
                assert_same(got["OUTPUT"], direct(spec, {"INPUT": np.stack(entries)})["OUTPUT"])
                continue
            for name in spec.output_names:
                assert isinstance(got[name], list) and len(got[name]) == len(feeds["INPUT"])
                for i, entry in enumerate(feeds["INPUT"]):
                    assert_same(got[name][i], direct(spec, {"INPUT": entry[None]})[name][0], f"{label} ev {ev} entry {i}")
            continue
        batch = next(iter(feeds.values())).shape[0] if spec.max_batch_size > 0 else 1
        if batch == 0:
            for name, out in zip(spec.output_names, spec.outputs, strict=True):
                assert got[name].shape == (0, *[max(d, 0) for d in out.dims]) and got[name].dtype == out.dtype
            continue
        for name, value in direct(spec, feeds).items():
            assert_same(got[name], value, f"{label} ({kind}) event {ev} output {name}")


# ----------------------------------------------------------------------------- modes
@pytest.mark.parametrize("streams", [1, 4])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("shm", [True, False], ids=["shm", "grpc"])
def test_modes_equal_onnxruntime(sonic_server, sonic_models, mode, streams, shm):
    kinds = ["affine", "affine4", "multi_io", "fixed"]
    modules = {f"m_{k}": sonic(k, config_path(sonic_models[MODEL_OF[k]]), mode=mode, useSharedMemory=shm)
               for k in kinds}
    process = make_process(modules, events=EVENTS, streams=streams,
                           servers=[server_pset("default", sonic_server.grpc_port)])
    report, products = run(process)
    assert report.processed == EVENTS
    for k in kinds:
        check_against_direct(products, f"m_{k}", k, sonic_models[MODEL_OF[k]])
    assert not client_shm_segments() and not live_regions()


@pytest.mark.parametrize("mode", MODES)
def test_ragged_entries(sonic_server, sonic_models, mode):
    process = make_process({"rag": sonic("ragged", config_path(sonic_models["affine"]), mode=mode)}, events=8,
                           streams=2, servers=[server_pset("default", sonic_server.grpc_port)])
    _, products = run(process)
    check_against_direct(products, "rag", "ragged", sonic_models["affine"], events=8)


def test_ragged_batch_mode_parameter(sonic_server, sonic_models):
    """Client.batchMode = "Ragged": an array's outer dimension is split into entries."""
    process = make_process({"rag": sonic("affine4", batchMode="Ragged")}, events=5,
                           servers=[server_pset("default", sonic_server.grpc_port)])
    _, products = run(process)
    for ev in range(1, 6):
        x = inputs_for("affine4", ev)["INPUT"]
        got = products[("rag", ev)]["OUTPUT"]
        assert isinstance(got, list) and len(got) == len(x)
        for i in range(len(x)):
            assert_same(got[i], direct(sonic_models["affine4"], {"INPUT": x[i:i + 1]})["OUTPUT"][0])


# ----------------------------------------------------------------------------- batch 0 and limits
def _inferences(server, model: str) -> tuple[int, int]:
    transport = make_transport(ServerAddress(server.grpc_address, True))
    try:
        s = server_statistics(transport.statistics(model))
        return s.success, s.inferences
    finally:
        transport.close()


@pytest.mark.parametrize("mode", MODES)
def test_batch_zero_makes_no_server_call(sonic_server, mode):
    before = _inferences(sonic_server, "affine")
    process = make_process({"zero": sonic("zero", mode=mode)}, events=5, streams=2,
                           servers=[server_pset("default", sonic_server.grpc_port)])
    report, products = run(process)
    assert report.processed == 5
    for ev in range(1, 6):
        out = products[("zero", ev)]["OUTPUT"]
        assert out.shape == (0, 0, 4) and out.dtype == np.float32
    assert _inferences(sonic_server, "affine") == before


def test_above_max_batch_size_is_a_clear_error(sonic_server):
    before = _inferences(sonic_server, "affine")
    process = make_process({"big": sonic("toolarge")}, events=3, servers=[server_pset("default", sonic_server.grpc_port)])
    with pytest.raises(FrameworkError) as info:
        run(process)
    message = str(info.value)
    for part in ("model 'affine'", "batch size 9", "max_batch_size 8", "run 1, lumi 1, event 1", "module 'big'"):
        assert part in message, message
    assert _inferences(sonic_server, "affine") == before


@pytest.mark.parametrize("kind, parts", [
    ("float64", ["input 'INPUT'", "expected dtype FP32 (float32), given float64", "astype"]),
    ("badshape", ["input 'INPUT'", "[-1, 4]", "[2, 5]"]),
])
def test_inputs_are_validated_before_sending(sonic_server, kind, parts):
    before = _inferences(sonic_server, "affine")
    process = make_process({"bad": sonic(kind)}, events=2, servers=[server_pset("default", sonic_server.grpc_port)])
    with pytest.raises(FrameworkError) as info:
        run(process)
    message = str(info.value)
    for part in [*parts, "model 'affine'", "event 1"]:
        assert part in message, message
    assert _inferences(sonic_server, "affine") == before


# ----------------------------------------------------------------------------- shared memory vs gRPC
def test_shared_memory_and_grpc_identical_and_no_leftovers(sonic_server, sonic_models):
    results = {}
    for shm in (True, False):
        SonicTestModelProducer.probes = []
        process = make_process({"m": sonic("affine4", mode="Async", useSharedMemory=shm, probe=True)}, events=10,
                               streams=2, servers=[server_pset("default", sonic_server.grpc_port)])
        _, results[shm] = run(process)
        used_in = [p[0] for p in SonicTestModelProducer.probes]
        used_out = [p[1] for p in SonicTestModelProducer.probes]
        segments = [p[2] for p in SonicTestModelProducer.probes]
        if shm:  # regions for inputs and (known-shape) outputs existed while the job ran ...
            assert any(used_in) and any(used_out) and all(segments)
        else:
            assert not any(used_in) and not any(used_out)
        # ... and are gone after it
        assert client_shm_segments() == [] and live_regions() == []
    for ev in range(1, 11):
        np.testing.assert_array_equal(results[True][("m", ev)]["OUTPUT"], results[False][("m", ev)]["OUTPUT"])
    check_against_direct(results[True], "m", "affine4", sonic_models["affine4"], events=10)


def test_shared_memory_grows_with_the_payload(sonic_server, sonic_models):
    """affine4 batches grow from event to event (up to 10 entries): regions are re-made larger, results stay right."""
    process = make_process({"m": sonic("affine4", mode="Sync")}, events=11,
                           servers=[server_pset("default", sonic_server.grpc_port)])
    _, products = run(process)
    check_against_direct(products, "m", "affine4", sonic_models["affine4"], events=11)
    assert client_shm_segments() == []


# ----------------------------------------------------------------------------- client options
@pytest.mark.parametrize("compression", ["gzip", "deflate"])
def test_compression(sonic_server, sonic_models, compression):
    process = make_process({"m": sonic("multi_io", compression=compression, useSharedMemory=False)}, events=4,
                           servers=[server_pset("default", sonic_server.grpc_port)])
    _, products = run(process)
    check_against_direct(products, "m", "multi_io", sonic_models["multi_io"], events=4)


def test_outputs_subset(sonic_server, sonic_models):
    process = make_process({"m": sonic("multi_io", outputs=cms.vstring("sum:0", "n_plus_one:0"))}, events=3,
                           servers=[server_pset("default", sonic_server.grpc_port)])
    _, products = run(process)
    for ev in range(1, 4):
        assert set(products[("m", ev)]) == {"sum:0", "n_plus_one:0"}
        expected = direct(sonic_models["multi_io"], inputs_for("multi_io", ev))
        assert_same(products[("m", ev)]["n_plus_one:0"], expected["n_plus_one:0"])


def test_unknown_output_is_a_clear_error(sonic_server):
    process = make_process({"m": sonic("multi_io", outputs=cms.vstring("summ:0"))}, events=1,
                           servers=[server_pset("default", sonic_server.grpc_port)])
    with pytest.raises(TritonConfigError, match=r"'summ:0'.*Did you mean 'sum:0'"):
        run(process)


def test_unknown_client_parameter_fails_at_configuration(sonic_server):
    process = make_process({"m": sonic("affine", allowedTrys=2)}, events=1,
                           servers=[server_pset("default", sonic_server.grpc_port)])
    from framework.core.processor import EventProcessor

    with pytest.raises(ConfigurationError, match=r"Client: unknown parameter 'allowedTrys'.*allowedTries"):
        EventProcessor(process)


@pytest.mark.parametrize("param, value, match", [
    ("mode", "async", r"mode must be one of 'Sync', 'Async', 'PseudoAsync', got 'async'"),
    ("compression", "zip", r"compression must be one of"),
    ("allowedTries", 0, r"allowedTries .* must be >= 1"),
])
def test_bad_client_values(sonic_server, param, value, match):
    process = make_process({"m": sonic("affine", **{param: value})}, events=1,
                           servers=[server_pset("default", sonic_server.grpc_port)])
    with pytest.raises(ConfigurationError, match=match):
        run(process)


def test_local_config_mismatch_names_both(sonic_server, sonic_models, tmp_path):
    config = mc.ModelConfig()
    text_format.Parse((sonic_models["affine"].path / "config.pbtxt").read_text(), config)
    config.input[0].dims[:] = [-1, 5]
    config.output[0].data_type = mc.TYPE_FP64
    local = tmp_path / "affine" / "config.pbtxt"
    local.parent.mkdir()
    local.write_text(text_format.MessageToString(config))
    process = make_process({"m": sonic("affine", str(local))}, events=1,
                           servers=[server_pset("default", sonic_server.grpc_port)])
    with pytest.raises(TritonConfigError) as info:
        run(process)
    message = str(info.value)
    for part in ("model 'affine'", str(local), f"127.0.0.1:{sonic_server.grpc_port}",
                 "input 'INPUT': server FP32 [-1, 4], local FP32 [-1, 5]",
                 "output 'OUTPUT': server FP32 [-1, 4], local FP64 [-1, 4]"):
        assert part in message, message


def test_verbose_logs_calls_and_server_statistics(sonic_server, caplog):
    caplog.set_level(logging.INFO, logger="framework.sonic")
    process = make_process({"m": sonic("affine4", verbose=True)}, events=4,
                           servers=[server_pset("default", sonic_server.grpc_port)])
    run(process)
    text = caplog.text
    assert "SONIC 'm' model 'affine4'" in text and "acquire" in text and "dispatch" in text and "produce" in text
    assert "SONIC client 'm': 4 events" in text
    assert "model 'affine4': " in text and "inferences in" in text and "queue" in text and "compute input" in text


def test_client_api_outside_a_job(sonic_server, sonic_models):
    """The client can be used directly (benchmarks, notebooks) with server=host:port."""
    from framework.sonic import TritonClient

    x = inputs_for("affine4", 3)["INPUT"]
    for mode in MODES:
        with TritonClient({"modelName": "affine4", "mode": mode}, server=sonic_server.grpc_address) as client:
            for _ in range(2):
                client.reset()
                client.input["INPUT"].toServer(x)
                client.evaluate()
                assert_same(client.output["OUTPUT"].fromServer(), direct(sonic_models["affine4"], {"INPUT": x})["OUTPUT"])
    assert client_shm_segments() == []
    assert os.path.exists(sonic_models["affine4"].path)
