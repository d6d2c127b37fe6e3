"""NuGraph3 network (producers/nugraph3/network.py) with the real checkpoint: outputs equal those of the public
NuGraph3 code for the small event (reference npz, <= 1e-4 absolute). The large event has no external
reference: there we check that the batched forward of both events equals each event alone (<= 1e-4), that
the outputs are finite with the right shapes, and that filter scores are probabilities."""

from __future__ import annotations

import numpy as np
import pytest

from producers.nugraph3.preprocess import PLANES, batch_graphs, build_graph, split_outputs
from tests.nugraph_events import CHECKPOINT, need, raw_event, reference, small_event, synthetic_event

torch = pytest.importorskip("torch", reason="the NuGraph3 network is torch code")

from producers.nugraph3.network import (  # noqa: E402
    OUTPUT_NAMES,
    NuGraphModelError,
    load_network,
    run_network,
)

TOLERANCE = 1e-4  # absolute, against the public NuGraph3 code (issue 9)


@pytest.fixture(scope="module")
def net():
    return load_network(need(CHECKPOINT))


@pytest.fixture(scope="module")
def random_net():
    """The architecture with seeded random weights (for what needs no real checkpoint)."""
    from producers.nugraph3.network import NuGraph3

    torch.manual_seed(7)
    return NuGraph3().eval()


def _check_shapes(out: dict[str, np.ndarray], graph) -> None:
    assert set(out) == set(OUTPUT_NAMES)
    assert out["e_evt"].shape == (graph.n_events, 4) and out["v_evt"].shape == (graph.n_events, 3)
    for p in PLANES:
        n = graph.x[p].shape[0]
        assert out[f"x_semantic_{p}"].shape == (n, 7) and out[f"x_filter_{p}"].shape == (n,)
        assert np.all((out[f"x_filter_{p}"] >= 0) & (out[f"x_filter_{p}"] <= 1))
    for name, value in out.items():
        assert value.dtype == np.float32 and np.all(np.isfinite(value)), name


@pytest.mark.shared
def test_small_event_equals_public_nugraph3(net):
    ref = reference()
    graph = build_graph(small_event())
    out = run_network(net, graph)
    _check_shapes(out, graph)
    for name in OUTPUT_NAMES:
        np.testing.assert_allclose(out[name], ref[name], rtol=0, atol=TOLERANCE, err_msg=name)


@pytest.mark.shared
def test_network_on_reference_intermediates_equals_public_nugraph3(net):
    """The network alone, fed the reference's own graph (its normalised features and edges)."""
    from producers.nugraph3.network import graph_tensors

    ref = reference()
    graph = build_graph(small_event())
    inputs = graph_tensors(graph)
    for p in PLANES:
        inputs["x"][p] = torch.from_numpy(ref[f"x_in_{p}"])
        inputs["edge_plane"][p] = torch.from_numpy(ref[f"edge_plane_{p}"])
        inputs["edge_nexus"][p] = torch.from_numpy(ref[f"edge_nexus_{p}"])
    with torch.inference_mode():
        out = net(**inputs)
    for name in OUTPUT_NAMES:
        np.testing.assert_allclose(out[name].numpy(), ref[name], rtol=0, atol=TOLERANCE, err_msg=name)


@pytest.mark.shared
@pytest.mark.slow
def test_batched_forward_equals_each_event_alone(net):
    small, raw = build_graph(small_event()), build_graph(raw_event())
    alone = [run_network(net, small), run_network(net, raw)]
    _check_shapes(alone[1], raw)
    batch = batch_graphs([raw, small, raw])
    together = split_outputs(run_network(net, batch), batch)
    for got, want in zip(together, [alone[1], alone[0], alone[1]]):
        for name in OUTPUT_NAMES:
            np.testing.assert_allclose(got[name], want[name], rtol=0, atol=TOLERANCE, err_msg=name)
    # the small event's outputs inside the batch still equal the public code's
    ref = reference()
    for name in OUTPUT_NAMES:
        np.testing.assert_allclose(together[1][name], ref[name], rtol=0, atol=TOLERANCE, err_msg=name)


def test_degenerate_event_runs(random_net):
    """Planes with 0, 1 and 2 hits and no space point: the network still gives defined outputs."""
    graph = build_graph(synthetic_event({0: [[10, 100.0], [11, 120.0]], 2: [[40, 300.0]]}))
    out = run_network(random_net, graph)
    _check_shapes(out, graph)
    assert out["x_semantic_v"].shape == (0, 7)


def test_softmax_aggregation_matches_its_definition():
    from producers.nugraph3.torch_model import softmax_aggregate

    gen = torch.Generator().manual_seed(3)
    msg = torch.randn(40, 5, generator=gen, dtype=torch.float64) * 10
    target = torch.randint(0, 7, (40,), generator=gen)
    target[target == 4] = 5  # node 4 receives nothing
    got = softmax_aggregate(msg, target, 8)
    for node in range(8):
        m = msg[target == node]
        want = (m * torch.softmax(m, dim=0)).sum(dim=0) if len(m) else torch.zeros(5, dtype=torch.float64)
        torch.testing.assert_close(got[node], want, rtol=1e-12, atol=1e-12)


def test_state_dict_file_loads_the_same_network(random_net, tmp_path):
    path = tmp_path / "nugraph3_state.pt"
    torch.save(random_net.state_dict(), path)
    again = load_network(path)
    graph = build_graph(
        synthetic_event(
            {0: np.arange(20).reshape(10, 2) * [2, 31.0], 1: [[1, 2], [3, 4], [5, 1]]},
            spacepoints=[[0, 10, -1], [4, 11, -1]],
        )
    )
    a, b = run_network(random_net, graph), run_network(again, graph)
    for name in OUTPUT_NAMES:
        assert np.array_equal(a[name], b[name]), name


def test_bad_checkpoints_are_named(random_net, tmp_path):
    with pytest.raises(NuGraphModelError, match="does not exist"):
        load_network(tmp_path / "missing.ckpt")
    state = dict(random_net.state_dict())
    state["extra_head.weight"] = torch.zeros(2)
    torch.save({"state_dict": state}, tmp_path / "extra.ckpt")
    with pytest.raises(NuGraphModelError, match="does not know: extra_head.weight"):
        load_network(tmp_path / "extra.ckpt")
    state = {k: v for k, v in random_net.state_dict().items() if not k.startswith("vertex.")}
    torch.save(state, tmp_path / "short.ckpt")
    with pytest.raises(NuGraphModelError, match="lacks weights: vertex.bias, vertex.weight"):
        load_network(tmp_path / "short.ckpt")
    torch.save(
        {"state_dict": dict(random_net.state_dict()), "hyper_parameters": {"vertex_head": False}},
        tmp_path / "h.ckpt",
    )
    with pytest.raises(NuGraphModelError, match="without vertex_head"):
        load_network(tmp_path / "h.ckpt")
    (tmp_path / "text.ckpt").write_text("not a checkpoint")
    with pytest.raises(NuGraphModelError, match="cannot read NuGraph3 checkpoint"):
        load_network(tmp_path / "text.ckpt")
