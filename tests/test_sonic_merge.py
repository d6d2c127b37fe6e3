"""Client-side merging of several streams' events into one request (``Client.mergeEvents``): the padding helper,
a job whose events are merged over both transports (every event gets its own outputs, exactly), and the cases
where the option is refused."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from framework.exceptions import ConfigurationError, FrameworkError
from framework.sonic.merge import pad_concat
from framework.sonic.service import server_statistics
from framework.sonic.transport import ServerAddress, make_transport
from tests.sonic_fixtures import *  # noqa: F403
from tests.sonic_fixtures import make_process, needs_server, run
from tests.test_sonic_transports import (
    PROTOCOLS,
    TransportTestProducer,
    affine4_module,
    check_affine4_products,
    port_of,
    server_pset,
)

EVENTS = 400


def test_pad_concat_pads_variable_dims_at_the_end():
    a = np.arange(2 * 2 * 3, dtype=np.float32).reshape(2, 2, 3)
    b = np.ones((1, 4, 3), np.float32)
    out = pad_concat([a, b])
    assert out.shape == (3, 4, 3) and out.dtype == np.float32
    np.testing.assert_array_equal(out[:2, :2], a)
    assert not out[:2, 2:].any(), "padding must be zeros"
    np.testing.assert_array_equal(out[2], b[0])
    same = pad_concat([a, a])
    np.testing.assert_array_equal(same, np.concatenate([a, a]))


def _success(server, model: str) -> int:
    transport = make_transport(ServerAddress(server.grpc_address, True))
    try:
        return server_statistics(transport.statistics(model)).success
    finally:
        transport.close()


@pytest.mark.slow
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_events_merged_across_streams_get_their_own_outputs(sonic_server, protocol, caplog):
    """8 streams, Async, mergeEvents=4 on affine4 (1..5 entries per event): every event's output is exactly its
    own ``3x - 1``, and fewer requests than events reached the server (the merger's summary says how many)."""
    TransportTestProducer.reset_counts()
    before = _success(sonic_server, "affine4")
    process = make_process({"m": affine4_module(mergeEvents=4)}, events=EVENTS, streams=8, threads=2,
                           servers=[server_pset(protocol, port_of(sonic_server, protocol))])
    with caplog.at_level(logging.INFO, logger="framework.sonic"):
        report, products = run(process)
    assert report.processed == EVENTS
    check_affine4_products(products, "m", EVENTS)
    requests = _success(sonic_server, "affine4") - before
    lines = [r.getMessage() for r in caplog.records if "merged requests" in r.getMessage()]
    assert len(lines) == 1, lines
    assert f"{EVENTS} events in {requests} merged requests" in lines[0], (lines[0], requests)
    assert requests < EVENTS, f"{requests} requests for {EVENTS} events: nothing was merged"


def test_merge_events_refused_where_it_cannot_work(sonic_server, caplog):
    """Sync mode: a warning and one request per event (outputs still right)."""
    TransportTestProducer.reset_counts()
    process = make_process({"m": affine4_module(mergeEvents=4, mode="Sync")}, events=20, streams=2,
                           servers=[server_pset("grpc", sonic_server.grpc_port)])
    with caplog.at_level(logging.INFO, logger="framework.sonic"):
        report, products = run(process)
    check_affine4_products(products, "m", 20)
    assert any("mergeEvents = 4 ignored: the mode is not Async" in r.getMessage() for r in caplog.records)
    assert not any("merged requests" in r.getMessage() for r in caplog.records)


def test_merge_events_below_one_is_a_configuration_error(sonic_server):
    process = make_process({"m": affine4_module(mergeEvents=0)}, events=1,
                           servers=[server_pset("grpc", sonic_server.grpc_port)])
    with pytest.raises((ConfigurationError, FrameworkError), match="mergeEvents must be >= 1"):
        run(process)


pytestmark = needs_server
