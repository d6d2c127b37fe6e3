"""The producer-facing API of the SONIC client (inputs, outputs, batch size and mode, errors) used directly, and
the helpers that need no server (addresses, recoverable errors, SSL options of the service)."""

from __future__ import annotations

import numpy as np
import pytest
from tritonclient.utils import InferenceServerException

from framework.core.params import Params, check_parameters
from framework.sonic import (
    SslOptions,
    TritonClient,
    TritonDataError,
    TritonService,
    is_recoverable,
)
from framework.sonic.client import grpc_url, is_local_address
from tests.sonic_fixtures import *  # noqa: F403
from tests.sonic_fixtures import SERVER_OK, SERVER_REASON, assert_same, client_shm_segments


def triton(test):
    """Needs the bundled server: marked ``triton``, skipped with the reason where it cannot run."""
    return pytest.mark.triton(pytest.mark.skipif(not SERVER_OK, reason=SERVER_REASON)(test))


# ----------------------------------------------------------------------------- no server needed
@pytest.mark.parametrize("address, local", [
    ("127.0.0.1:8001", True), ("localhost:8001", True), ("[::1]:8001", True), ("unix:/tmp/triton.sock", True),
    ("10.1.2.3:8001", False), ("triton.cern.ch:443", False), ("[2001:db8::1]:8001", False),
])
def test_is_local_address(address, local):
    assert is_local_address(address) is local


def test_grpc_url():
    assert grpc_url("host", 8001) == "host:8001"
    assert grpc_url("::1", 8001) == "[::1]:8001"
    assert grpc_url("unix:/tmp/s.sock", None) == "unix:/tmp/s.sock"


@pytest.mark.parametrize("status, message, recoverable", [
    ("StatusCode.UNAVAILABLE", "failed to connect to all addresses", True),
    ("StatusCode.DEADLINE_EXCEEDED", "Deadline Exceeded", True),
    ("StatusCode.INTERNAL", "recvmsg: Connection reset by peer", True),
    ("StatusCode.INVALID_ARGUMENT", "Unable to find system shared memory region: 'x'", True),
    ("StatusCode.INVALID_ARGUMENT", "unexpected shape for input 'INPUT'", False),
    ("StatusCode.NOT_FOUND", "Request for unknown model: 'm' is not found", False),
])
def test_recoverable_errors(status, message, recoverable):
    assert is_recoverable(InferenceServerException(msg=message, status=status)) is recoverable


def test_service_passes_ssl_files(tmp_path):
    files = {}
    for key in ("rootCertificates", "privateKey", "certificateChain"):
        files[key] = tmp_path / f"{key}.pem"
        files[key].write_text("-----BEGIN CERTIFICATE-----\n")
    given = {"servers": [{"name": "secure", "address": "triton.example.org", "port": 443, "useSsl": True,
                          **{k: str(v) for k, v in files.items()}},
                         {"name": "plain", "address": "127.0.0.1", "port": 8001}]}
    service = TritonService("TritonService", Params(check_parameters(TritonService.parameters, given, "service")))
    servers = service.servers()
    assert servers["secure"] == ("triton.example.org:443", False, SslOptions(*(str(files[k]) for k in files)),
                                 "grpc")
    assert servers["plain"] == ("127.0.0.1:8001", True, None, "grpc")


# ----------------------------------------------------------------------------- with the server
@pytest.fixture
def client(sonic_server):
    with TritonClient({"modelName": "affine", "mode": "Sync"}, server=sonic_server.grpc_address) as c:
        yield c


@triton
def test_inputs_and_outputs_by_name(client):
    assert list(client.input) == ["INPUT"] and list(client.output) == ["OUTPUT"]
    inp = client.input["INPUT"]
    assert inp.dims == (-1, 4) and inp.variableDims and inp.datatype == "FP32" and inp.dtype == np.float32
    assert client.maxBatchSize == 8 and not client.noBatch
    with pytest.raises(TritonDataError, match=r"has no input 'INPT'\. Did you mean 'INPUT'\?"):
        client.input["INPT"]
    assert "INPT" not in client.input and client.input.get("INPT") is None


@triton
def test_set_shape_and_batch_size(client):
    x = np.ones((3, 2, 4), dtype=np.float32)
    client.setBatchSize(3)
    client.input["INPUT"].setShape([2, 4])
    client.input["INPUT"].toServer(x)
    assert client.batchSize == 3 and client.input["INPUT"].shape() == (2, 4)
    client.evaluate()
    assert_same(client.output["OUTPUT"].fromServer(), x * 2 + 1)
    client.reset()
    client.input["INPUT"].setShape([5, 4])
    with pytest.raises(TritonDataError, match=r"setShape said \[5, 4\], but the data has shape \[2, 4\]"):
        client.input["INPUT"].toServer(x)
    client.reset()
    client.setBatchSize(2)
    client.input["INPUT"].toServer(x)  # the client owns the batch: it is checked when the request is made
    with pytest.raises(TritonDataError, match=r"input 'INPUT' has 3 entries, but setBatchSize\(2\) was called"):
        client.evaluate()
    client.reset()
    with pytest.raises(TritonDataError, match=r"expected shape \[-1, 4\]"):
        client.input["INPUT"].setShape([2, 3])


@triton
def test_missing_inputs_and_early_outputs(client):
    client.reset()
    with pytest.raises(TritonDataError, match=r"no input was given.*setBatchSize\(0\)"):
        client.evaluate()
    with pytest.raises(TritonDataError, match=r"output 'OUTPUT'.*no result yet"):
        client.output["OUTPUT"].fromServer()
    client.reset()
    client.setBatchSize(0)
    client.evaluate()
    assert client.output["OUTPUT"].fromServer().shape == (0, 0, 4)


@triton
def test_lists_and_ragged_switch(client):
    # a list of same-shaped entries is stacked (rectangular) ...
    client.reset()
    client.input["INPUT"].toServer([np.ones((2, 4), np.float32), np.zeros((2, 4), np.float32)])
    client.evaluate()
    assert client.batchMode == "Rectangular" and client.output["OUTPUT"].shape == (2, 2, 4)
    # ... entries of different shapes switch to ragged mode (one request each); reset goes back
    client.reset()
    entries = [np.ones((1, 4), np.float32), np.ones((3, 4), np.float32)]
    client.input["INPUT"].toServer(entries)
    assert client.batchMode == "Ragged"
    client.evaluate()
    out = client.output["OUTPUT"].fromServer()
    assert [o.shape for o in out] == [(1, 4), (3, 4)]
    with pytest.raises(TritonDataError, match="ragged output"):
        _ = client.output["OUTPUT"].shape
    client.reset()
    assert client.batchMode == "Rectangular"
    # Python lists of numbers take the model's dtype
    client.input["INPUT"].toServer([[[1, 2, 3, 4]]])
    client.evaluate()
    assert_same(client.output["OUTPUT"].fromServer(), np.array([[[3, 5, 7, 9]]], dtype=np.float32))


@triton
def test_no_batch_model(sonic_server):
    with TritonClient({"modelName": "fixed", "mode": "Async"}, server=sonic_server.grpc_address) as c:
        assert c.noBatch
        with pytest.raises(TritonDataError, match=r"expected shape \[5, 3\]"):
            c.input["INPUT"].toServer(np.ones((1, 5, 3), np.float32))
        c.reset()
        with pytest.raises(TritonDataError, match=r"does not batch"):
            c.setBatchSize(2)
        c.reset()
        c.input["INPUT"].toServer(np.ones((5, 3), np.float32))
        c.evaluate()
        assert c.output["OUTPUT"].shape == (5, 2)
    assert client_shm_segments() == []


@triton
def test_shared_memory_refused_falls_back_to_grpc(sonic_server, monkeypatch, caplog):
    """A 'local' server that cannot open our regions (e.g. in a container with its own /dev/shm): a warning,
    then the tensors travel in the gRPC messages."""
    from framework.sonic import shm as shm_module

    def refuse(self, grpc_client, timeout=None):
        raise InferenceServerException(msg="Unable to open shared memory region", status="StatusCode.INTERNAL")

    monkeypatch.setattr(shm_module.ShmRegion, "register", refuse)
    with TritonClient({"modelName": "affine4", "mode": "Async"}, server=sonic_server.grpc_address) as c:
        assert c._shm is None
        c.input["INPUT"].toServer(np.ones((2, 4), np.float32))
        c.evaluate()
        assert_same(c.output["OUTPUT"].fromServer(), np.full((2, 4), 2.0, np.float32))
    assert "cannot use this machine's shared memory" in caplog.text
    assert client_shm_segments() == []
