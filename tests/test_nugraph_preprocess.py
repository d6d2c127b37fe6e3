"""NuGraph3 preprocessing (producers/nugraph3/preprocess.py): the graph of the two real events against the
public NuGraph3 code (its intermediates in the reference npz, the counts of DESIGN.md §11), degenerate
planes, bad input, determinism, batching and splitting."""

from __future__ import annotations

import concurrent.futures

import numpy as np
import pytest

from producers.nugraph3.preprocess import (
    FEATURE_MEAN,
    FEATURE_STD,
    PLANES,
    NuGraphInputError,
    batch_graphs,
    build_graph,
    delaunay_edges,
    split_outputs,
)
from tests.nugraph_events import raw_event, reference, small_event, synthetic_event


def _edge_set(edges: np.ndarray) -> set[tuple[int, int]]:
    return set(map(tuple, edges.T.tolist()))


def _check_edges(edges: np.ndarray, n: int) -> None:
    """Plane edges are int64 [2, E], in range, without self-loops, symmetric and without duplicates."""
    assert edges.dtype == np.int64 and edges.shape[0] == 2
    assert np.all((edges >= 0) & (edges < n))
    assert not np.any(edges[0] == edges[1])
    pairs = _edge_set(edges)
    assert len(pairs) == edges.shape[1]
    assert pairs == {(b, a) for a, b in pairs}


def _counts(graph) -> dict[str, tuple[int, int, int]]:
    """Per plane: (triangles, undirected plane edges, nexus edges)."""
    return {
        p: (int(graph.n_triangles[p][0]), graph.edge_plane[p].shape[1] // 2, graph.edge_nexus[p].shape[1])
        for p in PLANES
    }


@pytest.mark.shared
def test_small_event_equals_reference_intermediates():
    ref = reference()
    graph = build_graph(small_event())
    plane_of_hit = ref["hit_table_local_plane"]
    for i, p in enumerate(PLANES):
        # hit order: the input order of the hits of plane p
        assert np.array_equal(graph.hit_id[p], ref[f"order_hit_id_{p}"])
        assert np.array_equal(graph.hit_index[p], np.flatnonzero(plane_of_hit == i))
        assert np.array_equal(ref["hit_table_hit_id"][graph.hit_index[p]], graph.hit_id[p])
        assert graph.x[p].dtype == np.float32 and graph.x[p].shape == (len(graph.hit_id[p]), 4)
        np.testing.assert_allclose(graph.x[p], ref[f"x_in_{p}"], rtol=0, atol=1e-6)
        _check_edges(graph.edge_plane[p], graph.x[p].shape[0])
        assert _edge_set(graph.edge_plane[p]) == _edge_set(ref[f"edge_plane_{p}"])
        assert _edge_set(graph.edge_nexus[p]) == _edge_set(ref[f"edge_nexus_{p}"])
    assert graph.n_spacepoints.tolist() == [len(ref["spacepoint_table_spacepoint_id"])]


@pytest.mark.shared
def test_small_event_counts():
    graph = build_graph(small_event())
    assert {p: int(graph.n_hits[p][0]) for p in PLANES} == {"u": 70, "v": 58, "y": 61}
    assert _counts(graph) == {"u": (130, 199, 71), "v": (105, 162, 72), "y": (113, 173, 72)}
    assert graph.n_spacepoints.tolist() == [72]
    # the event node: one edge from every space point
    assert np.array_equal(graph.edge_event, np.stack([np.arange(72), np.zeros(72, dtype=np.int64)]))


@pytest.mark.shared
def test_raw_event_counts():
    graph = build_graph(raw_event())
    assert {p: int(graph.n_hits[p][0]) for p in PLANES} == {"u": 279, "v": 640, "y": 365}
    assert _counts(graph) == {"u": (549, 827, 1276), "v": (1268, 1907, 1451), "y": (719, 1083, 1248)}
    assert graph.n_spacepoints.tolist() == [1461]
    for p in PLANES:
        _check_edges(graph.edge_plane[p], graph.x[p].shape[0])
        nexus = graph.edge_nexus[p]
        assert np.all(
            (nexus[0] >= 0) & (nexus[0] < graph.x[p].shape[0]) & (nexus[1] >= 0) & (nexus[1] < 1461)
        )


@pytest.mark.shared
def test_features_are_scaled_positions_and_normalised():
    inputs = small_event()
    graph = build_graph(inputs)
    for i, p in enumerate(PLANES):
        rows = inputs["hit_table_local_plane"] == i
        raw = graph.x[p] * FEATURE_STD[p] + FEATURE_MEAN[p]
        np.testing.assert_allclose(
            raw[:, 0], inputs["hit_table_local_wire"][rows] * 0.3, rtol=1e-5, atol=1e-3
        )
        np.testing.assert_allclose(
            raw[:, 1], inputs["hit_table_local_time"][rows] * 0.055, rtol=1e-5, atol=1e-3
        )
        np.testing.assert_allclose(raw[:, 2], inputs["hit_table_integral"][rows], rtol=1e-5, atol=1e-3)
        np.testing.assert_allclose(raw[:, 3], inputs["hit_table_rms"][rows], rtol=1e-5, atol=1e-4)


@pytest.mark.shared
def test_deterministic_and_independent_of_other_events():
    small, raw = small_event(), raw_event()
    first = build_graph(raw)
    build_graph(small)
    again = build_graph(raw)
    for p in PLANES:
        for field in ("x", "edge_plane", "edge_nexus", "hit_index"):
            assert np.array_equal(getattr(first, field)[p], getattr(again, field)[p]), (field, p)


def _in_time(fn, *args, seconds: float = 60.0):
    """fn(*args), failing the test if it has not returned within *seconds* (a hang is a failure)."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(fn, *args).result(timeout=seconds)


@pytest.mark.parametrize(
    "n, edges, triangles",
    [(0, 0, 0), (1, 0, 0), (2, 2, 0), (3, 6, 1)],
    ids=["no-hit", "one-hit", "two-hits", "three-hits"],
)
def test_few_hits(n, edges, triangles):
    pos = np.array([[10, 100.0], [12, 130.0], [15, 90.0]])[:n]
    graph = _in_time(build_graph, synthetic_event({0: pos, 1: np.array([[5, 50.0], [6, 60.0]])}))
    assert graph.x["u"].shape == (n, 4) and graph.edge_plane["u"].shape == (2, edges)
    assert int(graph.n_triangles["u"][0]) == triangles
    _check_edges(graph.edge_plane["u"], n)
    # a plane without any hit gets empty arrays
    assert graph.x["y"].shape == (0, 4) and graph.edge_plane["y"].shape == (2, 0)
    assert graph.edge_nexus["y"].shape == (2, 0) and graph.hit_index["y"].shape == (0,)


def _connected(edges: np.ndarray, n: int) -> bool:
    seen, todo = {0}, [0]
    adjacency: dict[int, list[int]] = {}
    for a, b in edges.T.tolist():
        adjacency.setdefault(a, []).append(b)
    while todo:
        for b in adjacency.get(todo.pop(), []):
            if b not in seen:
                seen.add(b)
                todo.append(b)
    return len(seen) == n


@pytest.mark.parametrize(
    "pos",
    [
        np.stack([np.arange(3, 3 + 3 * 40, 3), np.full(40, 500.0)], axis=1),  # same time: a horizontal line
        np.stack([np.full(40, 700), np.linspace(100, 4000, 40)], axis=1),  # same wire: a vertical line
        np.stack([np.arange(40), np.arange(40) * 6.0], axis=1),  # a diagonal line
        np.full((25, 2), [300, 2000.0]),  # all at one position (qhull cannot joggle them apart)
        np.zeros((6, 2)),  # all at the origin
        np.repeat(
            np.stack([np.arange(0, 100, 7), np.arange(0, 100, 7) ** 1.5], axis=1), 3, axis=0
        ),  # triplicates
    ],
    ids=["collinear-time", "collinear-wire", "collinear-diagonal", "one-position", "origin", "repeated"],
)
def test_degenerate_plane_gives_a_connected_graph(pos):
    graph = _in_time(build_graph, synthetic_event({0: pos, 1: pos[:4], 2: pos[:1]}))
    n = len(pos)
    for p, count in (("u", n), ("v", min(n, 4)), ("y", 1)):
        assert graph.x[p].shape == (count, 4) and np.all(np.isfinite(graph.x[p]))
        _check_edges(graph.edge_plane[p], count)
        assert _connected(graph.edge_plane[p], count), p


def test_chain_when_qhull_cannot_triangulate():
    pos = np.full((5, 2), 7.5, dtype=np.float32)
    edges, triangles = delaunay_edges(pos)
    assert triangles == 0
    assert _edge_set(edges) == {(0, 1), (1, 0), (1, 2), (2, 1), (2, 3), (3, 2), (3, 4), (4, 3)}


def test_nexus_edges_are_an_inner_join_on_hit_id():
    # hits 0-3 in u, 4-5 in v, 6 in y; space points name hits by id, -1 or an unknown id joins nothing
    event = synthetic_event(
        {0: [[1, 10], [2, 20], [3, 30], [4, 40]], 1: [[1, 10], [2, 20]], 2: [[9, 90]]},
        spacepoints=[[0, 4, 6], [3, -1, 6], [-1, 5, 99], [2, 4, -1]],
    )
    graph = build_graph(event)
    assert _edge_set(graph.edge_nexus["u"]) == {(0, 0), (3, 1), (2, 3)}
    assert _edge_set(graph.edge_nexus["v"]) == {(0, 0), (1, 2), (0, 3)}
    assert _edge_set(graph.edge_nexus["y"]) == {(0, 0), (0, 1)}
    assert graph.n_spacepoints.tolist() == [4]


def test_hit_order_follows_input_order_within_each_plane():
    # planes interleaved and unsorted: each plane keeps the order of its hits in the input
    event = synthetic_event({2: [[5, 1.0]], 0: [[7, 2.0], [3, 3.0]], 1: [[1, 4.0]]})
    event["hit_table_local_plane"] = np.array([2, 0, 1, 0], dtype=np.int32)
    event["hit_table_local_wire"] = np.array([5, 7, 1, 3], dtype=np.int32)
    event["hit_table_hit_id"] = np.array([40, 30, 20, 10], dtype=np.int32)
    graph = build_graph(event)
    assert graph.hit_index["u"].tolist() == [1, 3] and graph.hit_id["u"].tolist() == [30, 10]
    assert graph.hit_index["v"].tolist() == [2] and graph.hit_index["y"].tolist() == [0]
    raw_wire = graph.x["u"][:, 0] * FEATURE_STD["u"][0] + FEATURE_MEAN["u"][0]
    np.testing.assert_allclose(raw_wire, [7 * 0.3, 3 * 0.3], atol=1e-3)


def test_bad_inputs_are_named():
    event = synthetic_event({0: [[1, 10], [2, 20]]})
    event["hit_table_localplane"] = event.pop("hit_table_local_plane")
    with pytest.raises(
        NuGraphInputError, match=r"lack 'hit_table_local_plane'.*Did you mean 'hit_table_localplane'"
    ):
        build_graph(event)
    event = synthetic_event({0: [[1, 10], [2, 20]]})
    event["hit_table_local_plane"] = np.array([0, 3], dtype=np.int32)
    with pytest.raises(NuGraphInputError, match=r"must be 0, 1 or 2.*first at row 1: 3"):
        build_graph(event)
    event = synthetic_event({0: [[1, 10], [2, 20]]})
    event["hit_table_rms"] = event["hit_table_rms"][:1]
    with pytest.raises(NuGraphInputError, match=r"same length.*hit_table_rms=1"):
        build_graph(event)
    event = synthetic_event({0: [[1, 10], [2, 20]]})
    event["hit_table_integral"] = np.array([1.0, np.nan], dtype=np.float32)
    with pytest.raises(NuGraphInputError, match=r"hit_table_integral.*non-finite.*row 1"):
        build_graph(event)


def test_batch_is_a_disjoint_union_and_outputs_split_back():
    a = build_graph(
        synthetic_event(
            {0: np.arange(16).reshape(8, 2) * [3, 50.0] % 97, 1: [[1, 1], [2, 5]]},
            spacepoints=[[0, 8, -1], [1, 9, -1]],
        )
    )
    b = build_graph(
        synthetic_event(
            {0: [[1, 1], [4, 2], [2, 9], [7, 7]], 2: [[3, 3], [5, 5], [1, 8]]},
            spacepoints=[[0, -1, 4], [2, -1, 6], [3, -1, 5]],
        )
    )
    batch = batch_graphs([a, b])
    assert batch.n_events == 2 and batch.n_spacepoints.tolist() == [2, 3]
    for p in PLANES:
        na = a.x[p].shape[0]
        assert np.array_equal(batch.x[p], np.concatenate([a.x[p], b.x[p]]))
        ea = a.edge_plane[p].shape[1]
        assert np.array_equal(batch.edge_plane[p][:, :ea], a.edge_plane[p])
        assert np.array_equal(batch.edge_plane[p][:, ea:], b.edge_plane[p] + na)
        xa = a.edge_nexus[p].shape[1]
        assert np.array_equal(batch.edge_nexus[p][:, xa:], b.edge_nexus[p] + np.array([[na], [2]]))
        assert batch.n_hits[p].tolist() == [na, b.x[p].shape[0]]
    assert batch.edge_event.tolist() == [[0, 1, 2, 3, 4], [0, 0, 1, 1, 1]]
    assert batch_graphs([a]) is a

    # outputs with recognisable rows split back to each event's share
    outputs = {"e_evt": np.array([[1.0], [2.0]])}
    for p in PLANES:
        outputs[f"x_filter_{p}"] = np.arange(batch.x[p].shape[0], dtype=np.float32)
    parts = split_outputs(outputs, batch)
    assert [e["e_evt"].tolist() for e in parts] == [[[1.0]], [[2.0]]]
    for p in PLANES:
        na = a.x[p].shape[0]
        assert parts[0][f"x_filter_{p}"].tolist() == list(range(na))
        assert parts[1][f"x_filter_{p}"].tolist() == list(range(na, batch.x[p].shape[0]))
    with pytest.raises(ValueError, match="'x_filter_u' has 3 rows"):
        split_outputs({"x_filter_u": np.zeros(3)}, batch)
