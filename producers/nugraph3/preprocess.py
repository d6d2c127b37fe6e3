"""NuGraph3 preprocessing: one event's hit and space-point tables to the graph the network reads.

The same code serves the in-process producer, its SONIC twin and the Triton Python-backend model.
It reproduces the graph of the public NuGraph3 server model (``rishi2019194/triton-python-backend-nugraph3``,
``gnn_models_pip/nugraph3/1/model.py``: ``HitGraphProducer`` followed by the transforms
``PositionFeatures``, ``FeatureNorm`` and ``HierarchicalEdges`` of the NuGraph fork it loads):

- hits are grouped by ``local_plane`` (0, 1, 2 = u, v, y); within a plane they keep their input order, and
  the network's output rows for plane p follow that order (``PlaneGraph.hit_index`` gives the input rows);
- position = (wire, time) x (0.3, 0.055), in float32 as the reference computes it;
- plane edges: Delaunay triangulation of the scaled positions (scipy, qhull option ``QJ``), each triangle's
  three sides, made undirected (both directions, sorted, no duplicates);
- nexus edges: plane hit -> space point, joining the space-point table on ``hit_id_<plane>`` (an inner
  join: a space point whose hit id is negative or matches no hit of that plane has no edge to that plane);
- features = (position, integral, rms), normalised per plane with the server's fixed mean and std
  (:data:`FEATURE_MEAN`, :data:`FEATURE_STD`);
- one event node per event with an edge from every space point.

Degenerate planes give a defined graph and never raise or hang: 0 or 1 hit -> no edges; 2 hits -> one
undirected edge; 3 hits -> the triangle (even when collinear, as the reference); more hits that qhull cannot
triangulate even with joggling -> a chain joining the hits in (wire, time) order (``n_triangles`` 0).
Collinear hits and repeated positions are normally triangulated by the joggle, as in the reference.
A plane with no hits gets empty arrays; the network still runs. The reference server, unlike this code,
fails on events with fewer than 20 hits in a plane and skips events with an integral above 1e6.

Several events' graphs batch into one (:func:`batch_graphs`, a disjoint union with offsets) and the
network's outputs split back per event (:func:`split_outputs`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from framework.exceptions import InputError, did_you_mean

log = logging.getLogger(__name__)

PLANES: tuple[str, ...] = ("u", "v", "y")

HIT_INPUTS: tuple[str, ...] = (
    "hit_table_hit_id",
    "hit_table_local_plane",
    "hit_table_local_wire",
    "hit_table_local_time",
    "hit_table_integral",
    "hit_table_rms",
)
SPACEPOINT_INPUTS: tuple[str, ...] = (
    "spacepoint_table_spacepoint_id",
    "spacepoint_table_hit_id_u",
    "spacepoint_table_hit_id_v",
    "spacepoint_table_hit_id_y",
)
#: the server's input names and dtypes (Triton INT32 / FP32)
INPUT_DTYPES: dict[str, np.dtype] = {
    name: np.dtype(
        np.float32 if name in ("hit_table_local_time", "hit_table_integral", "hit_table_rms") else np.int32
    )
    for name in HIT_INPUTS + SPACEPOINT_INPUTS
}

#: (wire, time) scale of the hit position (server model, ``HitGraphProducer.pos_norm``)
POSITION_SCALE = np.array([0.3, 0.055], dtype=np.float32)

#: per-plane mean and std of the features (wire*0.3, time*0.055, integral, rms): the fixed numbers of the
#: server model (``NuGraph3_model.norm``, rows mean and std), applied as (x - mean) / std in float32
FEATURE_MEAN: dict[str, np.ndarray] = {
    "u": np.array([389.42752, 172.90794, 147.81108, 4.5563765], dtype=np.float32),
    "v": np.array([368.83023, 173.01247, 154.14513, 4.449338], dtype=np.float32),
    "y": np.array([546.2973, 172.77615, 116.974, 4.1647816], dtype=np.float32),
}
FEATURE_STD: dict[str, np.ndarray] = {
    "u": np.array([147.1627, 78.01324, 228.31424, 2.2156637], dtype=np.float32),
    "v": np.array([145.29645, 80.54078, 282.34027, 1.8969047], dtype=np.float32),
    "y": np.array([283.47656, 73.99135, 115.49256, 1.4615369], dtype=np.float32),
}


class NuGraphInputError(InputError, ValueError):
    """An event's hit or space-point table cannot be turned into a NuGraph3 graph."""


@dataclass(frozen=True)
class HitGraph:
    """The NuGraph3 graph of one event or of a batch of events (a disjoint union).

    Per plane p (keys of the dicts, in :data:`PLANES` order), over all events of the batch:

    - ``x[p]``: float32 [n_p, 4], normalised (wire*0.3, time*0.055, integral, rms);
    - ``edge_plane[p]``: int64 [2, E_p], directed plane edges (both directions of each Delaunay side),
      as [source; target] node indices into ``x[p]``;
    - ``edge_nexus[p]``: int64 [2, N_p], [node index into ``x[p]``; space-point index];
    - ``hit_index[p]``: int64 [n_p], the row of each node in its own event's hit table;
    - ``hit_id[p]``: int64 [n_p], the hit_id of each node;
    - ``n_hits[p]``, ``n_triangles[p]``: int64 [n_events].

    ``n_spacepoints``: int64 [n_events]. Nodes and space points are stored event after event.
    """

    x: dict[str, np.ndarray]
    edge_plane: dict[str, np.ndarray]
    edge_nexus: dict[str, np.ndarray]
    hit_index: dict[str, np.ndarray]
    hit_id: dict[str, np.ndarray]
    n_hits: dict[str, np.ndarray]
    n_triangles: dict[str, np.ndarray]
    n_spacepoints: np.ndarray
    planes: tuple[str, ...] = PLANES

    @property
    def n_events(self) -> int:
        return int(self.n_spacepoints.shape[0])

    @property
    def spacepoint_event(self) -> np.ndarray:
        """int64 [total space points]: the event (index in the batch) of each space point."""
        return np.repeat(np.arange(self.n_events, dtype=np.int64), self.n_spacepoints)

    @property
    def edge_event(self) -> np.ndarray:
        """int64 [2, total space points]: [space-point index; event index], one edge per space point
        (the reference's ``("sp", "in", "evt")``; the network also uses it reversed)."""
        return np.stack([np.arange(int(self.n_spacepoints.sum()), dtype=np.int64), self.spacepoint_event])


def _column(inputs: Mapping[str, object], name: str) -> np.ndarray:
    arr = np.asarray(inputs[name])
    if arr.ndim != 1:
        if arr.ndim == 0 or sum(d != 1 for d in arr.shape) > 1:
            raise NuGraphInputError(
                f"NuGraph3 input '{name}' has shape {arr.shape}; it must be one value per row (shape [n] or [1, n])"
            )
        arr = arr.reshape(-1)
    want = INPUT_DTYPES[name]
    if want.kind == "i" and arr.dtype.kind == "f":
        if arr.size and not np.all(np.isfinite(arr) & (arr == np.round(arr))):
            raise NuGraphInputError(f"NuGraph3 input '{name}' must hold integers, got non-integer values")
    if arr.dtype.kind not in "iuf" and arr.size:
        raise NuGraphInputError(f"NuGraph3 input '{name}' must be numeric, got dtype {arr.dtype}")
    return arr.astype(want, copy=False)


def read_inputs(inputs: Mapping[str, object]) -> dict[str, np.ndarray]:
    """The NuGraph3 input tensors of *inputs* as NumPy arrays, checked: a
    missing or unexpected name is an :class:`InputError`.
    """
    missing = [n for n in INPUT_DTYPES if n not in inputs]
    if missing:
        extra = [str(k) for k in inputs if k not in INPUT_DTYPES]
        hints = "".join(did_you_mean(m, extra) for m in missing)
        raise NuGraphInputError(
            f"NuGraph3 inputs lack {', '.join(repr(m) for m in missing)}.{hints} "
            f"Give all of: {', '.join(INPUT_DTYPES)}"
        )
    cols = {name: _column(inputs, name) for name in INPUT_DTYPES}
    for table in (HIT_INPUTS, SPACEPOINT_INPUTS):
        lengths = {name: cols[name].shape[0] for name in table}
        if len(set(lengths.values())) > 1:
            raise NuGraphInputError(
                "NuGraph3 inputs of one table must have the same length, got "
                + ", ".join(f"{k}={v}" for k, v in lengths.items())
            )
    plane = cols["hit_table_local_plane"]
    bad = np.flatnonzero((plane < 0) | (plane >= len(PLANES)))
    if bad.size:
        raise NuGraphInputError(
            f"hit_table_local_plane must be 0, 1 or 2 (planes {', '.join(PLANES)}); "
            f"{bad.size} hit(s) have other values, first at row {bad[0]}: {plane[bad[0]]}"
        )
    for name in ("hit_table_local_time", "hit_table_integral", "hit_table_rms"):
        nonfinite = np.flatnonzero(~np.isfinite(cols[name]))
        if nonfinite.size:
            raise NuGraphInputError(
                f"NuGraph3 input '{name}' has {nonfinite.size} non-finite value(s), first at row {nonfinite[0]}"
            )
    return cols


def _faces_to_edges(faces: np.ndarray, n: int) -> np.ndarray:
    """Triangles [T, 3] to sorted, unique, undirected edges [2, E] (torch_geometric's FaceToEdge)."""
    a = np.concatenate([faces[:, 0], faces[:, 1], faces[:, 0]])
    b = np.concatenate([faces[:, 1], faces[:, 2], faces[:, 2]])
    return _undirected(a, b, n)


def _undirected(a: np.ndarray, b: np.ndarray, n: int) -> np.ndarray:
    row = np.concatenate([a, b]).astype(np.int64)
    col = np.concatenate([b, a]).astype(np.int64)
    key = np.unique(row * n + col)
    return np.stack([key // n, key % n]) if key.size else np.zeros((2, 0), dtype=np.int64)


def delaunay_edges(pos: np.ndarray) -> tuple[np.ndarray, int]:
    """Undirected plane edges [2, E] (int64) and the number of triangles for positions *pos* [n, 2].

    As torch_geometric's ``Delaunay`` + ``FaceToEdge`` the reference applies: fewer than 2 points -> no
    edge, 2 -> one edge, 3 -> their triangle, more -> ``scipy.spatial.Delaunay(pos, qhull_options="QJ")``.
    When qhull fails even with joggling, the points are joined in a chain in (x, y) order (0 triangles).
    """
    n = int(pos.shape[0])
    if n < 2:
        return np.zeros((2, 0), dtype=np.int64), 0
    if n == 2:
        return np.array([[0, 1], [1, 0]], dtype=np.int64), 0
    if n == 3:
        return _faces_to_edges(np.array([[0, 1, 2]]), n), 1
    from framework import extras

    spatial = extras.scipy_spatial("the NuGraph3 preprocessing (Delaunay triangulation)")
    Delaunay, QhullError = spatial.Delaunay, spatial.QhullError

    try:
        faces = Delaunay(np.asarray(pos, dtype=np.float64), qhull_options="QJ").simplices
    except (QhullError, ValueError) as e:
        log.debug(
            "qhull could not triangulate %d points (%s); joining them in a chain", n, str(e).splitlines()[0]
        )
        order = np.lexsort((pos[:, 1], pos[:, 0]))
        return _undirected(order[:-1], order[1:], n), 0
    return _faces_to_edges(faces, n), int(faces.shape[0])


def _nexus_edges(plane_hit_id: np.ndarray, sp_hit_id: np.ndarray) -> np.ndarray:
    """[index in plane; space-point index] for every space point whose hit id matches a hit of the plane
    (an inner join, in space-point order; a negative hit id matches nothing)."""
    order = np.argsort(plane_hit_id, kind="stable")
    ids = plane_hit_id[order]
    lo = np.searchsorted(ids, sp_hit_id, side="left")
    count = np.searchsorted(ids, sp_hit_id, side="right") - lo
    count[sp_hit_id < 0] = 0
    total = int(count.sum())
    sp = np.repeat(np.arange(sp_hit_id.shape[0], dtype=np.int64), count)
    within = np.arange(total, dtype=np.int64) - np.repeat(np.cumsum(count) - count, count)
    hit = order[np.repeat(lo, count) + within].astype(np.int64)
    return np.stack([hit, sp]) if total else np.zeros((2, 0), dtype=np.int64)


def build_graph(inputs: Mapping[str, object]) -> HitGraph:
    """The NuGraph3 graph of one event from its 10 input arrays, named as the server's inputs
    (:data:`INPUT_DTYPES`: ``hit_table_{hit_id, local_plane, local_wire, local_time, integral, rms}``,
    ``spacepoint_table_{spacepoint_id, hit_id_u, hit_id_v, hit_id_y}``; -1 = no hit in that plane).

    Values are cast to the server's dtypes (int32, float32) first. Raises :class:`NuGraphInputError` for a
    missing input, tables of inconsistent length, a plane number other than 0-2 or non-finite values.
    """
    cols = read_inputs(inputs)
    plane_of_hit = cols["hit_table_local_plane"]
    n_sp = cols["spacepoint_table_spacepoint_id"].shape[0]
    x, edge_plane, edge_nexus, hit_index, hit_id, n_hits, n_tri = {}, {}, {}, {}, {}, {}, {}
    for i, p in enumerate(PLANES):
        rows = np.flatnonzero(plane_of_hit == i).astype(np.int64)
        pos = (
            np.stack(
                [cols["hit_table_local_wire"][rows].astype(np.float32), cols["hit_table_local_time"][rows]],
                axis=1,
            )
            * POSITION_SCALE
        )
        feats = np.concatenate(
            [pos, cols["hit_table_integral"][rows, None], cols["hit_table_rms"][rows, None]], axis=1
        )
        x[p] = ((feats - FEATURE_MEAN[p]) / FEATURE_STD[p]).astype(np.float32)
        edge_plane[p], triangles = delaunay_edges(pos)
        ids = cols["hit_table_hit_id"][rows]
        edge_nexus[p] = _nexus_edges(ids, cols[f"spacepoint_table_hit_id_{p}"])
        hit_index[p] = rows
        hit_id[p] = ids.astype(np.int64)
        n_hits[p] = np.array([rows.shape[0]], dtype=np.int64)
        n_tri[p] = np.array([triangles], dtype=np.int64)
    return HitGraph(
        x=x,
        edge_plane=edge_plane,
        edge_nexus=edge_nexus,
        hit_index=hit_index,
        hit_id=hit_id,
        n_hits=n_hits,
        n_triangles=n_tri,
        n_spacepoints=np.array([n_sp], dtype=np.int64),
    )


def batch_graphs(graphs: Sequence[HitGraph]) -> HitGraph:
    """One graph of all *graphs* (a disjoint union): nodes, space points and events concatenated in order,
    edge indices shifted by the nodes and space points before them. One graph is returned as it is."""
    if not graphs:
        raise ValueError("batch_graphs needs at least one graph")
    if len(graphs) == 1:
        return graphs[0]
    planes = graphs[0].planes
    if any(g.planes != planes for g in graphs):
        raise ValueError("batch_graphs: the graphs have different planes")
    sp_offset = np.cumsum([0] + [int(g.n_spacepoints.sum()) for g in graphs[:-1]])
    edge_plane, edge_nexus = {}, {}
    for p in planes:
        node_offset = np.cumsum([0] + [g.x[p].shape[0] for g in graphs[:-1]])
        edge_plane[p] = np.concatenate([g.edge_plane[p] + o for g, o in zip(graphs, node_offset)], axis=1)
        edge_nexus[p] = np.concatenate(
            [g.edge_nexus[p] + np.array([[o], [s]]) for g, o, s in zip(graphs, node_offset, sp_offset)],
            axis=1,
        )

    def cat(field: str) -> dict[str, np.ndarray]:
        return {p: np.concatenate([getattr(g, field)[p] for g in graphs]) for p in planes}

    return HitGraph(
        x=cat("x"),
        edge_plane=edge_plane,
        edge_nexus=edge_nexus,
        hit_index=cat("hit_index"),
        hit_id=cat("hit_id"),
        n_hits=cat("n_hits"),
        n_triangles=cat("n_triangles"),
        n_spacepoints=np.concatenate([g.n_spacepoints for g in graphs]),
        planes=planes,
    )


def split_outputs(outputs: Mapping[str, np.ndarray], graph: HitGraph) -> list[dict[str, np.ndarray]]:
    """The outputs of the network for the batch *graph*, one dict per event.

    Outputs named ``*_<plane>`` (``x_semantic_u``, ``x_filter_y``, ...) have one row per node of that plane
    and are cut by ``graph.n_hits``; the others (``e_evt``, ``v_evt``) have one row per event.
    """
    per_event: list[dict[str, np.ndarray]] = [{} for _ in range(graph.n_events)]
    for name, value in outputs.items():
        plane = name.rsplit("_", 1)[-1] if "_" in name else ""
        counts = graph.n_hits[plane] if plane in graph.planes else np.ones(graph.n_events, dtype=np.int64)
        if value.shape[0] != int(counts.sum()):
            raise ValueError(
                f"output '{name}' has {value.shape[0]} rows; the batch has {int(counts.sum())} "
                f"{'hits in plane ' + plane if plane in graph.planes else 'events'}"
            )
        bounds = np.cumsum(counts)[:-1]
        for event, part in zip(per_event, np.split(value, bounds)):
            event[name] = part
    return per_event
