"""The bundled tritonserver, started by LocalTritonServer, answering tritonclient over gRPC and HTTP."""

from __future__ import annotations

import glob
import ipaddress
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.grpc import model_config_pb2 as mc
from tritonclient.utils import InferenceServerException, np_to_triton_dtype

from framework.server import LocalTritonServer, ServerStartError, bundled_server_available, gpu_available
from tests.onnx_models import (
    listening_sockets,
    make_affine_model,
    make_broken_model,
    make_repository,
    pid_alive,
    process_group,
)

AVAILABLE, REASON = bundled_server_available()
pytestmark = [pytest.mark.triton, pytest.mark.skipif(not AVAILABLE, reason=REASON)]
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    root = tmp_path_factory.mktemp("server") / "repo"
    specs = make_repository(root, slow=True, delay_s=1.0)
    specs["queued"] = make_affine_model(root, "queued", input_dims=[4], max_batch_size=32, preferred_batch_size=[8],
                                        max_queue_delay_us=300_000)
    return root, specs


@pytest.fixture(scope="module")
def server(repo):
    with LocalTritonServer([repo[0]], device="cpu") as server:
        yield server


@pytest.fixture(scope="module")
def specs(repo):
    return repo[1]


def _inputs(module, feeds: dict[str, np.ndarray]) -> list:
    inputs = []
    for name, value in feeds.items():
        tensor = module.InferInput(name, list(value.shape), np_to_triton_dtype(value.dtype))
        tensor.set_data_from_numpy(value)
        inputs.append(tensor)
    return inputs


def _assert_matches(result, expected: dict[str, np.ndarray]) -> None:
    for name, value in expected.items():
        got = result.as_numpy(name)
        assert got is not None, f"output {name} missing"
        assert got.shape == value.shape and got.dtype == value.dtype
        np.testing.assert_array_equal(got, value)


# ----------------------------------------------------------------------------- serving
def test_properties(server):
    assert server.is_running()
    assert server.grpc_address == f"127.0.0.1:{server.grpc_port}"
    assert server.http_address == f"127.0.0.1:{server.http_port}"
    assert server.models == ["affine", "fixed", "multi_io", "queued", "slow"]
    assert server.log_path.is_file() and server.pid == process_group(server.pid)[0]
    assert "LocalTritonServer running" in repr(server)


def test_health_metadata_and_config_grpc(server, specs):
    client = grpcclient.InferenceServerClient(server.grpc_address)
    assert client.is_server_live() and client.is_server_ready()
    assert client.get_server_metadata().version.startswith("2.")
    index = {m.name: m.state for m in client.get_model_repository_index().models}
    assert index == {name: "READY" for name in server.models}
    for name in server.models:
        assert client.is_model_ready(name)
    meta = client.get_model_metadata("multi_io")
    assert [(i.name, i.datatype, list(i.shape)) for i in meta.inputs] == [
        ("x:0", "FP32", [-1, 3]), ("y/in:0", "FP32", [-1, 3]), ("n:0", "INT64", [-1, 2])]
    assert [o.name for o in meta.outputs] == ["sum:0", "prod/Mul:0", "norm:0", "n_plus_one:0"]
    config = client.get_model_config("affine").config
    assert config.max_batch_size == 8 and list(config.dynamic_batching.preferred_batch_size) == [4]
    assert list(config.input[0].dims) == [-1, 4]
    assert client.get_model_config("fixed").config.max_batch_size == 0


def test_health_metadata_and_config_http(server):
    client = httpclient.InferenceServerClient(server.http_address)
    assert client.is_server_live() and client.is_server_ready()
    assert all(client.is_model_ready(name) for name in server.models)
    meta = client.get_model_metadata("fixed")
    assert meta["inputs"] == [{"name": "INPUT", "datatype": "FP32", "shape": [5, 3]}]
    assert client.get_model_config("affine")["max_batch_size"] == 8
    assert {m["name"] for m in client.get_model_repository_index()} == set(server.models)


CASES = [("affine", 1, 1), ("affine", 3, 7), ("affine", 8, 2), ("multi_io", 1, 0), ("multi_io", 16, 0),
         ("fixed", 0, 0), ("queued", 5, 0)]


@pytest.mark.parametrize("protocol", ["grpc", "http"])
@pytest.mark.parametrize(("model", "batch", "variable"), CASES)
def test_infer_equals_onnxruntime(server, specs, protocol, model, batch, variable):
    spec = specs[model]
    feeds = spec.random_inputs(batch, variable=variable, seed=batch + variable)
    module = grpcclient if protocol == "grpc" else httpclient
    client = module.InferenceServerClient(server.grpc_address if protocol == "grpc" else server.http_address)
    result = client.infer(model, _inputs(module, feeds))
    _assert_matches(result, spec.expected(feeds))


def test_requested_outputs_subset(server, specs):
    spec = specs["multi_io"]
    feeds = spec.random_inputs(4)
    client = grpcclient.InferenceServerClient(server.grpc_address)
    result = client.infer("multi_io", _inputs(grpcclient, feeds),
                          outputs=[grpcclient.InferRequestedOutput("prod/Mul:0")])
    np.testing.assert_array_equal(result.as_numpy("prod/Mul:0"), spec.expected(feeds)["prod/Mul:0"])
    assert result.as_numpy("sum:0") is None


def test_classification_uses_label_file(server, specs):
    feeds = {"INPUT": np.array([[[0.0, 3.0, 1.0, 2.0]]], dtype=np.float32)}
    client = grpcclient.InferenceServerClient(server.grpc_address)
    result = client.infer("affine", _inputs(grpcclient, feeds),
                          outputs=[grpcclient.InferRequestedOutput("OUTPUT", class_count=2)])
    top = [entry.decode().split(":") for entry in result.as_numpy("OUTPUT").reshape(-1)]
    assert [(float(score), label) for score, _, label in top] == [(7.0, "b"), (5.0, "d")]


def test_concurrent_requests_are_batched_and_split_back(server, specs):
    spec = specs["queued"]
    client = grpcclient.InferenceServerClient(server.grpc_address)
    before = client.get_inference_statistics("queued").model_stats[0]
    n = 8
    feeds = [spec.random_inputs(1 + i % 3, seed=100 + i) for i in range(n)]
    results: list = [None] * n
    finished = threading.Condition()

    def callback(i, result, error):
        with finished:
            results[i] = error if error is not None else result
            finished.notify()

    for i, f in enumerate(feeds):
        client.async_infer("queued", _inputs(grpcclient, f), callback=lambda result, error, i=i: callback(i, result, error))
    with finished:
        assert finished.wait_for(lambda: all(r is not None for r in results), timeout=30)
    for f, result in zip(feeds, results, strict=True):
        assert not isinstance(result, Exception), result
        _assert_matches(result, spec.expected(f))
    after = client.get_inference_statistics("queued").model_stats[0]
    executions = after.execution_count - before.execution_count
    inferences = after.inference_count - before.inference_count
    assert inferences == sum(len(f["INPUT"]) for f in feeds)
    assert executions < n, "the dynamic batcher should have merged requests (max_queue_delay 300 ms)"


def test_concurrent_requests_with_different_variable_dims(server, specs):
    spec = specs["affine"]
    client = grpcclient.InferenceServerClient(server.grpc_address)
    feeds = [spec.random_inputs(2, variable=1 + i, seed=i) for i in range(6)]
    results = []
    lock = threading.Condition()

    def collect(result, error):
        with lock:
            results.append((result, error))
            lock.notify()

    for f in feeds:
        client.async_infer("affine", _inputs(grpcclient, f), callback=collect, request_id=str(len(f["INPUT"][0])))
    with lock:
        assert lock.wait_for(lambda: len(results) == len(feeds), timeout=30)
    by_variable = {int(r.get_response().id): r for r, e in results if e is None}
    assert len(by_variable) == len(feeds), [e for _, e in results if e is not None]
    for f in feeds:
        _assert_matches(by_variable[f["INPUT"].shape[1]], spec.expected(f))


def test_errors_reach_the_client(server, specs):
    client = grpcclient.InferenceServerClient(server.grpc_address)
    too_many = specs["affine"].random_inputs(9)
    with pytest.raises(InferenceServerException, match="batch-size must be <= 8"):
        client.infer("affine", _inputs(grpcclient, too_many))
    wrong = {"INPUT": np.zeros((2, 3, 5), dtype=np.float32)}
    with pytest.raises(InferenceServerException, match="unexpected shape"):
        client.infer("affine", _inputs(grpcclient, wrong))
    with pytest.raises(InferenceServerException, match="unknown model|not found"):
        client.infer("nonexistent", _inputs(grpcclient, too_many))


def test_slow_model_times_out_on_the_client(server, specs):
    client = grpcclient.InferenceServerClient(server.grpc_address)
    feeds = specs["slow"].random_inputs(1)
    with pytest.raises(InferenceServerException, match="Deadline Exceeded"):
        client.infer("slow", _inputs(grpcclient, feeds), client_timeout=0.2)
    result = client.infer("slow", _inputs(grpcclient, feeds), client_timeout=30)
    np.testing.assert_array_equal(result.as_numpy("OUTPUT"), feeds["INPUT"])


def test_listens_on_loopback_only(server):
    sockets = listening_sockets(process_group(server.pid))
    assert sockets, "no listening socket found for the server"
    assert all(ipaddress.ip_address(address).is_loopback for address, _ in sockets), sockets
    ports = {port for _, port in sockets}
    assert {server.grpc_port, server.http_port} <= ports
    assert 8002 not in ports  # metrics are off


# ----------------------------------------------------------------------------- life cycle
@pytest.fixture(scope="module")
def small_repo(tmp_path_factory):
    root = tmp_path_factory.mktemp("small") / "repo"
    spec = make_affine_model(root, "affine")
    return root, spec


def _infer_affine(server, spec):
    client = grpcclient.InferenceServerClient(server.grpc_address)
    feeds = spec.random_inputs(2)
    _assert_matches(client.infer("affine", _inputs(grpcclient, feeds)), spec.expected(feeds))


def test_stop_leaves_nothing_behind(small_repo):
    server = LocalTritonServer([small_repo[0]], device="cpu")
    server.start()
    group = process_group(server.pid)
    assert len(group) >= 2, f"expected tritonserver and its stub, found {group}"
    log_path, shm_prefix = server.log_path, server._shm_prefix
    assert glob.glob(f"/dev/shm/{shm_prefix}*")
    server.stop()
    assert not any(pid_alive(pid) for pid in group)
    assert not server.is_running() and server.pid is None
    assert not log_path.exists() and not log_path.parent.exists()
    assert not glob.glob(f"/dev/shm/{shm_prefix}*")
    server.stop()  # idempotent


def test_context_manager_stops_on_exception(small_repo):
    with pytest.raises(RuntimeError, match="boom"), LocalTritonServer([small_repo[0]], device="cpu") as server:
        group = process_group(server.pid)
        _infer_affine(server, small_repo[1])
        raise RuntimeError("boom")
    assert group and not any(pid_alive(pid) for pid in group)


def test_start_from_a_thread_that_ends_then_restart(small_repo):
    server = LocalTritonServer([small_repo[0]], device="cpu", keep_logs=True)
    worker = threading.Thread(target=server.start)
    worker.start()
    worker.join()
    try:
        time.sleep(0.5)  # PR_SET_PDEATHSIG would fire when the forking thread ends
        assert server.is_running()
        _infer_affine(server, small_repo[1])
        first = server.pid
        server.restart()
        assert server.pid != first and not pid_alive(first)
        _infer_affine(server, small_repo[1])
    finally:
        log_path = server.log_path
        server.stop()
    assert log_path.is_file() and "Started GRPCInferenceService" in log_path.read_text()
    shutil.rmtree(log_path.parent)


def test_server_dies_with_its_parent(small_repo, tmp_path):
    script = textwrap.dedent(f"""
        import sys, time
        from framework.server import LocalTritonServer
        server = LocalTritonServer([{str(small_repo[0])!r}], device="cpu").start()
        print(server.pid, server.log_path.parent, flush=True)
        time.sleep(120)
    """)
    parent = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        pid, log_dir = parent.stdout.readline().split()
        pid = int(pid)
        group = process_group(pid)
        assert pid in group
        workdir = Path(re.search(r"--model-repository=(\S+)/repository", Path(f"/proc/{pid}/cmdline").read_text()
                                 .replace("\0", " ")).group(1))
    finally:
        parent.send_signal(signal.SIGKILL)  # no atexit, no cleanup: PR_SET_PDEATHSIG and the reaper process
        parent.wait()
    deadline = time.monotonic() + 10
    while (any(pid_alive(p) for p in group) or workdir.exists()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(pid_alive(p) for p in group), "server or stubs outlived the job"
    # the reaper removed the temp repository, the log dir and the stubs' shared-memory regions
    assert not workdir.exists() and not Path(log_dir).exists()
    assert not glob.glob(f"/dev/shm/cmsfw_triton_{parent.pid}_*")


def test_broken_model_fails_with_log_tail(tmp_path):
    make_affine_model(tmp_path / "repo", "good")
    make_broken_model(tmp_path / "repo", "broken")
    server = LocalTritonServer([tmp_path / "repo"], device="cpu", wait=60)
    with pytest.raises(ServerStartError) as info:
        server.start()
    message = str(info.value)
    assert "tail of the tritonserver log" in message
    assert "broken" in message and "how to fix" in message
    assert "INVALID_PROTOBUF" in message or "Protobuf parsing failed" in message or "failed to load" in message
    assert not server.is_running()
    server.stop()
    assert server.log_path.is_file(), "the log of a failed start is kept: the error names it"
    shutil.rmtree(server.log_path.parent)


def test_port_in_use_is_reported(small_repo):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        server = LocalTritonServer([small_repo[0]], device="cpu", grpc_port=port, http_port=-1)
        with pytest.raises(ServerStartError, match=f"Socket '127.0.0.1:{port}' already in use"):
            server.start()
        assert not server.is_running()
        shutil.rmtree(server.log_path.parent)


def test_gpu_request_without_gpu_is_an_error(small_repo):
    if gpu_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(ServerStartError, match="lists no GPU"):
        LocalTritonServer([small_repo[0]], device="gpu").start()



def test_port_taken_after_picking_is_picked_again(small_repo, monkeypatch):
    import framework.server.launcher as launcher

    real_free_port = launcher.free_port
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        picks = iter([busy.getsockname()[1]])
        monkeypatch.setattr(launcher, "free_port", lambda: next(picks, None) or real_free_port())
        with LocalTritonServer([small_repo[0]], device="cpu") as server:
            assert server.grpc_port != busy.getsockname()[1]
            _infer_affine(server, small_repo[1])


def test_models_known_before_start(small_repo):
    assert LocalTritonServer([small_repo[0]]).models == ["affine"]
    assert LocalTritonServer([small_repo[0]], models=["affine"]).models == ["affine"]


def test_system_shared_memory_inputs_and_outputs(server, specs):
    import tritonclient.utils.shared_memory as shm

    spec = specs["affine"]
    feeds = spec.random_inputs(4, variable=5)
    data = feeds["INPUT"]
    key = f"/cmsfw_test_{os.getpid()}"
    client = grpcclient.InferenceServerClient(server.grpc_address)
    in_handle = shm.create_shared_memory_region("in", key + "_in", data.nbytes)
    out_handle = shm.create_shared_memory_region("out", key + "_out", data.nbytes)
    try:
        shm.set_shared_memory_region(in_handle, [data])
        client.register_system_shared_memory("in", key + "_in", data.nbytes)
        client.register_system_shared_memory("out", key + "_out", data.nbytes)
        tensor = grpcclient.InferInput("INPUT", list(data.shape), "FP32")
        tensor.set_shared_memory("in", data.nbytes)
        output = grpcclient.InferRequestedOutput("OUTPUT")
        output.set_shared_memory("out", data.nbytes)
        client.infer("affine", [tensor], outputs=[output])
        got = shm.get_contents_as_numpy(out_handle, np.float32, data.shape)
        np.testing.assert_array_equal(got, spec.expected(feeds)["OUTPUT"])
    finally:
        client.unregister_system_shared_memory()
        shm.destroy_shared_memory_region(in_handle)
        shm.destroy_shared_memory_region(out_handle)


def test_restart_after_a_crash(small_repo):
    with LocalTritonServer([small_repo[0]], device="cpu") as server:
        os.killpg(server.pid, signal.SIGKILL)
        server._process.wait()
        assert not server.is_running()
        server.start()
        _infer_affine(server, small_repo[1])


@pytest.mark.gpu
@pytest.mark.skipif(not gpu_available(), reason="no GPU: `nvidia-smi -L` lists none")
def test_gpu_instances_run_onnxruntime_on_cuda(small_repo):
    with LocalTritonServer([small_repo[0]], device="gpu", keep_logs=True) as server:
        _infer_affine(server, small_repo[1])
        client = grpcclient.InferenceServerClient(server.grpc_address)
        assert client.get_model_config("affine").config.instance_group[0].kind == mc.ModelInstanceGroup.KIND_GPU
    log_text = server.log_path.read_text()
    shutil.rmtree(server.log_path.parent)
    assert "CUDAExecutionProvider" in log_text
