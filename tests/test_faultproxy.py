"""The fault-injection proxy (:mod:`tests.faultproxy`) in front of the real session server, driven with the real
``tritonclient`` over gRPC and HTTP: it passes calls through, a reset fails a call in flight, a stall makes a call
with a client timeout time out, a slow proxy adds at least its delay, and after ``pass_through`` calls work again."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from tests.faultproxy import FaultProxy
from tests.sonic_fixtures import *  # noqa: F403
from tests.sonic_fixtures import SLOW_DELAY, needs_server

pytestmark = needs_server

PROTOCOLS = ["grpc", "http"]


def _client(protocol: str, port: int, timeout: float | None = None):
    url = f"127.0.0.1:{port}"
    if protocol == "grpc":
        import tritonclient.grpc as grpcclient

        return grpcclient, grpcclient.InferenceServerClient(url)
    import tritonclient.http as httpclient

    kw = {} if timeout is None else {"connection_timeout": timeout, "network_timeout": timeout}
    return httpclient, httpclient.InferenceServerClient(url, **kw)


def _infer(protocol: str, port: int, model: str = "affine4", value: float = 2.0,
           timeout: float | None = None) -> np.ndarray:
    """One inference of *model* (FP32 [n, 4]) through the proxy on *port*; the output array."""
    mod, client = _client(protocol, port, timeout)
    try:
        x = np.full((2, 4), value, dtype=np.float32)
        inp = mod.InferInput("INPUT", list(x.shape), "FP32")
        inp.set_data_from_numpy(x)
        kw = {"client_timeout": timeout} if protocol == "grpc" and timeout is not None else {}
        result = client.infer(model, [inp], outputs=[mod.InferRequestedOutput("OUTPUT")], **kw)
        return result.as_numpy("OUTPUT")
    finally:
        client.close()


def _port(server, protocol: str) -> int:
    return server.grpc_port if protocol == "grpc" else server.http_port


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_pass_through_and_counters(sonic_server, protocol):
    with FaultProxy(("127.0.0.1", _port(sonic_server, protocol))) as proxy:
        assert proxy.listen_port > 0 and proxy.listen_port != _port(sonic_server, protocol)
        mod, client = _client(protocol, proxy.listen_port)
        try:
            assert client.is_server_live()
        finally:
            client.close()
        out = _infer(protocol, proxy.listen_port, value=2.0)
        np.testing.assert_allclose(out, np.full((2, 4), 3.0 * 2.0 - 1.0, dtype=np.float32))
        assert proxy.connections >= 1 and proxy.bytes_up > 0 and proxy.bytes_down > 0


def test_only_loopback_targets():
    with pytest.raises(ValueError, match="loopback"):
        FaultProxy(("10.1.2.3", 8001))


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_reset_fails_the_call_in_flight_then_recovers(sonic_server, protocol):
    """A call on the ``slow`` model (the server sleeps SLOW_DELAY s) is in flight when the proxy resets: it fails
    well before the server would have answered. The next call through the proxy works."""
    with FaultProxy(("127.0.0.1", _port(sonic_server, protocol))) as proxy:
        outcome: dict[str, object] = {}

        def call() -> None:
            t0 = time.monotonic()
            try:
                outcome["out"] = _infer(protocol, proxy.listen_port, model="slow")
            except Exception as e:  # noqa: BLE001 - the client's error is what we look at
                outcome["error"] = e
            outcome["seconds"] = time.monotonic() - t0

        t = threading.Thread(target=call)
        t.start()
        deadline = time.monotonic() + 5
        while proxy.bytes_up < 100 or proxy.live_connections == 0:  # the request went up
            assert time.monotonic() < deadline, "the request never reached the proxy"
            time.sleep(0.01)
        time.sleep(0.1)
        proxy.reset()
        assert proxy.live_connections == 0
        t.join(10)
        assert not t.is_alive()
        assert "error" in outcome, f"the call in flight survived the reset: {outcome}"
        assert outcome["seconds"] < SLOW_DELAY + 0.5, outcome
        out = _infer(protocol, proxy.listen_port, value=1.0)  # new connection: works
        np.testing.assert_allclose(out, np.full((2, 4), 2.0, dtype=np.float32))


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_drop_then_reset_fails_the_next_call(sonic_server, protocol):
    with FaultProxy(("127.0.0.1", _port(sonic_server, protocol))) as proxy:
        mod, client = _client(protocol, proxy.listen_port, timeout=2.0)
        try:
            assert client.is_server_live()
            before = proxy.connections
            proxy.drop()
            proxy.reset()
            with pytest.raises(Exception) as err:  # noqa: B017 - the transports raise different kinds
                client.is_server_live()
            assert not isinstance(err.value, AssertionError)
            # it tries to reconnect and is dropped; gRPC may first fail fast from its channel state and
            # reconnect only after its backoff (about 1 s), so later calls are allowed to see the new connection
            deadline = time.monotonic() + 10.0
            while proxy.connections <= before and time.monotonic() < deadline:
                with pytest.raises(Exception):  # noqa: B017 - every call fails while the proxy drops
                    client.is_server_live()
                time.sleep(0.2)
            assert proxy.connections > before
        finally:
            client.close()
        proxy.pass_through()
        np.testing.assert_allclose(_infer(protocol, proxy.listen_port, value=0.0),
                                   np.full((2, 4), -1.0, dtype=np.float32))


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_stall_times_out_then_pass_through_recovers(sonic_server, protocol):
    with FaultProxy(("127.0.0.1", _port(sonic_server, protocol))) as proxy:
        proxy.stall()
        t0 = time.monotonic()
        with pytest.raises(Exception) as err:  # noqa: B017
            _infer(protocol, proxy.listen_port, timeout=0.5)
        seconds = time.monotonic() - t0
        assert 0.4 < seconds < 5, seconds
        text = f"{type(err.value).__name__}: {err.value}".lower()
        assert "deadline" in text or "timeout" in text or "timed out" in text, text
        assert proxy.connections >= 1  # accepted, then stalled
        proxy.pass_through()
        np.testing.assert_allclose(_infer(protocol, proxy.listen_port, value=2.0, timeout=5.0),
                                   np.full((2, 4), 5.0, dtype=np.float32))


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_slow_adds_latency(sonic_server, protocol):
    delay = 0.25
    with FaultProxy(("127.0.0.1", _port(sonic_server, protocol))) as proxy:
        mod, client = _client(protocol, proxy.listen_port)
        try:
            x = np.ones((1, 4), dtype=np.float32)
            inp = mod.InferInput("INPUT", [1, 4], "FP32")
            inp.set_data_from_numpy(x)

            def timed() -> float:
                t0 = time.monotonic()
                client.infer("affine4", [inp])
                return time.monotonic() - t0

            timed()  # connection set up
            fast = min(timed() for _ in range(3))
            proxy.slow(delay)
            slow = timed()  # request up and answer down: at least one delayed chunk each way
            proxy.pass_through()
            again = min(timed() for _ in range(3))
        finally:
            client.close()
    assert slow >= 2 * delay, (fast, slow)
    assert slow > fast + delay and again < slow - delay, (fast, slow, again)
