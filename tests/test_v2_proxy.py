"""The V2-only proxies of :mod:`tests.v2_proxy` in front of the real bundled server (and a fake gRPC upstream for
metadata, deadlines, raw bytes and error mapping)."""

from __future__ import annotations

import http.client
import json
import queue
import threading
from collections.abc import Iterator
from concurrent import futures

import grpc
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from framework.server import free_port
from tests.sonic_fixtures import *  # noqa: F403
from tests.sonic_fixtures import needs_server
from tests.v2_proxy import DEFAULT_GRPC_DISABLED, GRPC_NOT_FOUND_DETAILS, GrpcV2Proxy, HttpV2Proxy

pytestmark = [*needs_server]

SCALE, OFFSET = 2.0, 1.0  # the "affine" test model: OUTPUT = INPUT * 2 + 1
SVC = "/inference.GRPCInferenceService"


def _x(shape: tuple[int, ...] = (2, 3, 4), seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


def _expected(x: np.ndarray) -> np.ndarray:
    return x * np.float32(SCALE) + np.float32(OFFSET)


@pytest.fixture
def grpc_proxy(sonic_server) -> Iterator[GrpcV2Proxy]:
    with GrpcV2Proxy(sonic_server.grpc_address) as proxy:
        yield proxy


@pytest.fixture
def http_proxy(sonic_server) -> Iterator[HttpV2Proxy]:
    with HttpV2Proxy(sonic_server.http_address) as proxy:
        yield proxy


@pytest.fixture
def strict_http_proxy(sonic_server) -> Iterator[HttpV2Proxy]:
    with HttpV2Proxy(sonic_server.http_address, reject_binary=True) as proxy:
        yield proxy


# ----------------------------------------------------------------------------------------------------------- gRPC


def _grpc_infer(client: grpcclient.InferenceServerClient, x: np.ndarray, **kw) -> np.ndarray:
    inp = grpcclient.InferInput("INPUT", list(x.shape), "FP32")
    inp.set_data_from_numpy(x)
    result = client.infer("affine", [inp], outputs=[grpcclient.InferRequestedOutput("OUTPUT")], **kw)
    return result.as_numpy("OUTPUT")


def test_grpc_metadata_and_infer(grpc_proxy):
    client = grpcclient.InferenceServerClient(grpc_proxy.address)
    try:
        assert client.is_server_live() and client.is_model_ready("affine")
        meta = client.get_model_metadata("affine", as_json=True)
        assert meta["name"] == "affine"
        assert [(t["name"], t["datatype"], t["shape"]) for t in meta["inputs"]] == [("INPUT", "FP32", ["-1", "-1", "4"])]
        x = _x()
        out = _grpc_infer(client, x)
        np.testing.assert_allclose(out, _expected(x), rtol=1e-6)
        assert out[0, 0, 0] == pytest.approx(2 * x[0, 0, 0] + 1)
        out = _grpc_infer(client, x, compression_algorithm="gzip", client_timeout=10.0, headers={"x-proxy": "yes"})
        np.testing.assert_allclose(out, _expected(x), rtol=1e-6)
    finally:
        client.close()
    assert grpc_proxy.forwarded == {"ServerLive": 1, "ModelReady": 1, "ModelMetadata": 1, "ModelInfer": 2}
    assert grpc_proxy.refused == {}
    assert grpc_proxy.counts == grpc_proxy.forwarded


def test_grpc_triton_only_methods_unimplemented(grpc_proxy, sonic_server):
    client = grpcclient.InferenceServerClient(grpc_proxy.address)
    calls = {
        "ModelConfig": lambda: client.get_model_config("affine"),
        "ModelStatistics": lambda: client.get_inference_statistics("affine"),
        "SystemSharedMemoryRegister": lambda: client.register_system_shared_memory("r", "/nope", 16),
        "SystemSharedMemoryStatus": lambda: client.get_system_shared_memory_status(),
        "SystemSharedMemoryUnregister": lambda: client.unregister_system_shared_memory(),
        "CudaSharedMemoryStatus": lambda: client.get_cuda_shared_memory_status(),
        "CudaSharedMemoryUnregister": lambda: client.unregister_cuda_shared_memory(),
        "TraceSetting": lambda: client.get_trace_settings(),
        "LogSettings": lambda: client.get_log_settings(),
    }
    try:
        for name, call in calls.items():
            with pytest.raises(InferenceServerException) as info:
                call()
            assert info.value.status() == "StatusCode.UNIMPLEMENTED", name
            assert info.value.message() == GRPC_NOT_FOUND_DETAILS == "Method not found!", name
            assert str(info.value) == "[StatusCode.UNIMPLEMENTED] Method not found!", name
    finally:
        client.close()
    assert grpc_proxy.refused == dict.fromkeys(calls, 1)
    assert grpc_proxy.forwarded == {}
    assert {f"{SVC}/{name}" for name in calls} <= DEFAULT_GRPC_DISABLED
    # the same calls work on the server itself, and through a proxy that disables nothing
    direct = grpcclient.InferenceServerClient(sonic_server.grpc_address)
    try:
        assert direct.get_model_config("affine", as_json=True)["config"]["max_batch_size"] == 8
    finally:
        direct.close()
    with GrpcV2Proxy(sonic_server.grpc_address, disabled=()) as open_proxy:
        client = grpcclient.InferenceServerClient(open_proxy.address)
        try:
            assert client.get_model_config("affine", as_json=True)["config"]["max_batch_size"] == 8
        finally:
            client.close()
        assert open_proxy.forwarded == {"ModelConfig": 1}


def test_grpc_upstream_errors_keep_code_and_details(grpc_proxy, sonic_server):
    x = _x()
    errors = []
    for address in (sonic_server.grpc_address, grpc_proxy.address):
        client = grpcclient.InferenceServerClient(address)
        try:
            inp = grpcclient.InferInput("INPUT", list(x.shape), "FP32")
            inp.set_data_from_numpy(x)
            with pytest.raises(InferenceServerException) as info:
                client.infer("no_such_model", [inp])
            errors.append((info.value.status(), info.value.message()))
        finally:
            client.close()
    assert errors[0] == errors[1]
    assert errors[0][0] != "StatusCode.UNIMPLEMENTED"
    assert grpc_proxy.forwarded == {"ModelInfer": 1}


def test_grpc_large_tensor_and_stream(grpc_proxy):
    client = grpcclient.InferenceServerClient(grpc_proxy.address)
    try:
        big = _x((8, 140_000, 4), seed=1)  # 17.9 MB each way, above grpc's 4 MB default
        assert big.nbytes > 16 * 2**20
        np.testing.assert_allclose(_grpc_infer(client, big), _expected(big), rtol=1e-6)

        results: queue.Queue = queue.Queue()
        client.start_stream(callback=lambda result, error: results.put((result, error)))
        xs = [_x((1, 2, 4), seed=s) for s in (2, 3)]
        for i, x in enumerate(xs):
            inp = grpcclient.InferInput("INPUT", list(x.shape), "FP32")
            inp.set_data_from_numpy(x)
            client.async_stream_infer("affine", [inp], request_id=str(i))
        got = {}
        for _ in xs:
            result, error = results.get(timeout=10)
            assert error is None, error
            got[result.get_response().id] = result.as_numpy("OUTPUT")
        client.stop_stream()
        for i, x in enumerate(xs):
            np.testing.assert_allclose(got[str(i)], _expected(x), rtol=1e-6)
    finally:
        client.close()
    assert grpc_proxy.forwarded == {"ModelInfer": 1, "ModelStreamInfer": 1}


class _FakeUpstream:
    """A grpc server answering ``ModelInfer`` with the reversed request bytes (recording metadata and deadline)
    and ``ServerLive`` with RESOURCE_EXHAUSTED, "busy" and a trailing metadata entry."""

    def __init__(self) -> None:
        self.seen: list[tuple[dict[str, str], float]] = []
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=2), handlers=[self])
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()

    def service(self, details):
        if details.method == f"{SVC}/ModelInfer":
            def echo(request: bytes, context) -> bytes:
                self.seen.append((dict(context.invocation_metadata()), context.time_remaining()))
                return request[::-1]
            return grpc.unary_unary_rpc_method_handler(echo)
        if details.method == f"{SVC}/ServerLive":
            def busy(request: bytes, context) -> bytes:
                context.set_trailing_metadata([("retry-after", "1")])
                context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "busy")
            return grpc.unary_unary_rpc_method_handler(busy)
        return None


def test_grpc_raw_bytes_metadata_deadline_errors():
    fake = _FakeUpstream()
    try:
        with GrpcV2Proxy(f"127.0.0.1:{fake.port}") as proxy, grpc.insecure_channel(proxy.address) as channel:
            infer = channel.unary_unary(f"{SVC}/ModelInfer")
            assert infer(b"\x00raw bytes", timeout=5.0, metadata=[("x-token", "abc")]) == b"setyb war\x00"
            assert infer(b"no deadline") == b"enildaed on"
            (meta, remaining), (_, no_deadline) = fake.seen
            assert meta["x-token"] == "abc"
            assert 3.0 < remaining <= 5.05  # gRPC's deadline arithmetic may round up by a few ms
            assert no_deadline > 1e6  # no deadline upstream either

            with pytest.raises(grpc.RpcError) as info:
                channel.unary_unary(f"{SVC}/ServerLive")(b"")
            assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert info.value.details() == "busy"
            assert ("retry-after", "1") in tuple(info.value.trailing_metadata())

            for method in (f"{SVC}/ModelConfig", "/other.Service/Method"):
                with pytest.raises(grpc.RpcError) as info:
                    channel.unary_unary(method)(b"")
                assert (info.value.code(), info.value.details()) == (grpc.StatusCode.UNIMPLEMENTED,
                                                                     "Method not found!")
            assert proxy.forwarded == {"ModelInfer": 2, "ServerLive": 1}
            assert proxy.refused == {"ModelConfig": 1, "/other.Service/Method": 1}
    finally:
        fake.server.stop(None)


def test_start_stop_idempotent(sonic_server):
    for proxy in (GrpcV2Proxy(sonic_server.grpc_address), HttpV2Proxy(sonic_server.http_address)):
        with pytest.raises(RuntimeError):
            proxy.address  # noqa: B018 - never started
        assert proxy.start() is proxy
        port = proxy.port
        assert proxy.start() is proxy and proxy.port == port and proxy.address == f"127.0.0.1:{port}"
        proxy.stop()
        proxy.stop()
        proxy.start()
        assert proxy.port == port  # the same port again
        proxy.stop()
    # stopping the HTTP proxy closes the client connections it keeps alive
    proxy = HttpV2Proxy(sonic_server.http_address).start()
    conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=5)
    try:
        conn.request("GET", "/v2/health/live")
        assert conn.getresponse().read() == b""
        proxy.stop()
        with pytest.raises((ConnectionError, http.client.HTTPException)):
            conn.request("GET", "/v2/health/live")
            conn.getresponse()
    finally:
        conn.close()
        proxy.stop()


# ----------------------------------------------------------------------------------------------------------- HTTP


def _http_infer(client: httpclient.InferenceServerClient, x: np.ndarray, *, binary: bool,
                outputs: bool = True, **kw) -> np.ndarray:
    inp = httpclient.InferInput("INPUT", list(x.shape), "FP32")
    inp.set_data_from_numpy(x, binary_data=binary)
    outs = [httpclient.InferRequestedOutput("OUTPUT", binary_data=binary)] if outputs else None
    return client.infer("affine", [inp], outputs=outs, **kw).as_numpy("OUTPUT")


def test_http_metadata_and_infer(http_proxy):
    client = httpclient.InferenceServerClient(http_proxy.address)
    try:
        assert client.is_server_ready() and client.is_model_ready("affine")
        meta = client.get_model_metadata("affine")
        assert [(t["name"], t["datatype"], t["shape"]) for t in meta["inputs"]] == [("INPUT", "FP32", [-1, -1, 4])]
        x = _x()
        for binary in (True, False):
            np.testing.assert_allclose(_http_infer(client, x, binary=binary), _expected(x), rtol=1e-6)
        np.testing.assert_allclose(_http_infer(client, x, binary=True, outputs=False), _expected(x), rtol=1e-6)
        big = _x((8, 140_000, 4), seed=1)
        np.testing.assert_allclose(_http_infer(client, big, binary=True), _expected(big), rtol=1e-6)
        for algorithm in ("gzip", "deflate"):
            out = _http_infer(client, x, binary=True, request_compression_algorithm=algorithm,
                              response_compression_algorithm=algorithm)
            np.testing.assert_allclose(out, _expected(x), rtol=1e-6)
    finally:
        client.close()
    assert http_proxy.forwarded == {"GET /v2/health/ready": 1, "GET /v2/models/affine/ready": 1,
                                    "GET /v2/models/affine": 1, "POST /v2/models/affine/infer": 6}
    assert http_proxy.refused == {}


def test_http_triton_only_endpoints_404(http_proxy, sonic_server):
    client = httpclient.InferenceServerClient(http_proxy.address)
    calls = {
        "GET /v2/models/affine/config": lambda: client.get_model_config("affine"),
        "GET /v2/models/affine/versions/1/config": lambda: client.get_model_config("affine", "1"),
        "GET /v2/models/affine/stats": lambda: client.get_inference_statistics("affine"),
        "GET /v2/models/stats": lambda: client.get_inference_statistics(),
        "POST /v2/systemsharedmemory/region/r/register":
            lambda: client.register_system_shared_memory("r", "/nope", 16),
        "GET /v2/systemsharedmemory/status": lambda: client.get_system_shared_memory_status(),
        "POST /v2/cudasharedmemory/unregister": lambda: client.unregister_cuda_shared_memory(),
        "GET /v2/trace/setting": lambda: client.get_trace_settings(),
        "GET /v2/models/affine/trace/setting": lambda: client.get_trace_settings("affine"),
        "GET /v2/logging": lambda: client.get_log_settings(),
    }
    try:
        for name, call in calls.items():
            with pytest.raises(InferenceServerException) as info:
                call()
            assert (info.value.status(), info.value.message(), str(info.value)) == \
                ("404", "Not Found", "[404] Not Found"), name
        assert client.is_server_live()  # the keep-alive connection survives the refusals
    finally:
        client.close()
    assert http_proxy.refused == dict.fromkeys(calls, 1)
    assert http_proxy.forwarded == {"GET /v2/health/live": 1}
    with HttpV2Proxy(sonic_server.http_address, disable_config=False) as open_proxy:
        client = httpclient.InferenceServerClient(open_proxy.address)
        try:
            assert client.get_model_config("affine")["max_batch_size"] == 8
            with pytest.raises(InferenceServerException, match=r"^\[404\] Not Found$"):
                client.get_inference_statistics("affine")
        finally:
            client.close()
        assert open_proxy.forwarded == {"GET /v2/models/affine/config": 1}


def test_http_reject_binary(strict_http_proxy):
    client = httpclient.InferenceServerClient(strict_http_proxy.address)
    x = _x()
    try:
        with pytest.raises(InferenceServerException) as info:
            _http_infer(client, x, binary=True)
        assert info.value.status() == "400"
        assert info.value.message().startswith("Binary tensor data is not supported")
        # JSON inputs but no outputs: tritonclient asks for binary_data_output
        with pytest.raises(InferenceServerException, match=r"^\[400\] Binary tensor data.*binary_data_output"):
            _http_infer(client, x, binary=False, outputs=False)
        # JSON inputs, binary outputs
        inp = httpclient.InferInput("INPUT", list(x.shape), "FP32")
        inp.set_data_from_numpy(x, binary_data=False)
        with pytest.raises(InferenceServerException, match=r"^\[400\] Binary tensor data.*output 'OUTPUT'"):
            client.infer("affine", [inp], outputs=[httpclient.InferRequestedOutput("OUTPUT", binary_data=True)])
        np.testing.assert_allclose(_http_infer(client, x, binary=False), _expected(x), rtol=1e-6)
        for algorithm in ("gzip", "deflate"):  # the proxy looks into compressed bodies
            with pytest.raises(InferenceServerException, match=r"^\[400\] .*binary_data_output"):
                _http_infer(client, x, binary=False, outputs=False, request_compression_algorithm=algorithm)
            out = _http_infer(client, x, binary=False, request_compression_algorithm=algorithm,
                              response_compression_algorithm=algorithm)
            np.testing.assert_allclose(out, _expected(x), rtol=1e-6)
    finally:
        client.close()
    assert strict_http_proxy.refused == {"POST /v2/models/affine/infer": 5}
    assert strict_http_proxy.forwarded == {"POST /v2/models/affine/infer": 3}
    assert strict_http_proxy.counts == {"POST /v2/models/affine/infer": 8}


def test_http_keep_alive_head_and_bad_upstream(http_proxy):
    conn = http.client.HTTPConnection("127.0.0.1", http_proxy.port, timeout=10)
    try:
        conn.request("GET", "/v2/health/ready")
        response = conn.getresponse()
        assert (response.status, response.read()) == (200, b"")
        sock = conn.sock
        conn.request("GET", "/v2/models/affine/config?x=1")
        response = conn.getresponse()
        assert response.status == 404 and response.getheader("Content-Type") == "application/json"
        assert json.loads(response.read()) == {"error": "Not Found"}
        body = json.dumps({"inputs": [{"name": "INPUT", "shape": [1, 1, 4], "datatype": "FP32",
                                       "data": [1, 2, 3, 4]}]})
        conn.request("POST", "/v2/models/affine/infer", body=body, headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        assert response.status == 200
        assert json.loads(response.read())["outputs"][0]["data"] == [3, 5, 7, 9]
        conn.request("HEAD", "/v2/health/ready")
        response = conn.getresponse()
        assert response.read() == b""  # no body on HEAD; Triton answers 405 with Content-Length 30, passed on
        assert (response.status, response.getheader("Content-Length")) == (405, "30")
        assert conn.sock is sock  # one client connection throughout
    finally:
        conn.close()
    assert http_proxy.counts["GET /v2/models/affine/config"] == 1
    with HttpV2Proxy(f"127.0.0.1:{free_port()}") as dead:
        client = httpclient.InferenceServerClient(dead.address)
        try:
            with pytest.raises(InferenceServerException) as info:
                client.get_server_metadata()
            assert info.value.status() == "502"
            assert info.value.message().startswith(f"upstream {dead.upstream} unreachable")
            assert not client.is_server_live()  # False (not an exception) on a non-200 answer
        finally:
            client.close()


def test_concurrent_clients(grpc_proxy, http_proxy):
    errors: list[BaseException] = []

    def work(seed: int) -> None:
        try:
            x = _x((4, 5, 4), seed=seed)
            g = grpcclient.InferenceServerClient(grpc_proxy.address)
            h = httpclient.InferenceServerClient(http_proxy.address)
            try:
                for _ in range(3):
                    np.testing.assert_allclose(_grpc_infer(g, x), _expected(x), rtol=1e-6)
                    np.testing.assert_allclose(_http_infer(h, x, binary=seed % 2 == 0), _expected(x), rtol=1e-6)
            finally:
                g.close()
                h.close()
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(seed,)) for seed in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors, errors
    assert grpc_proxy.forwarded == {"ModelInfer": 12}
    assert http_proxy.forwarded == {"POST /v2/models/affine/infer": 12}
