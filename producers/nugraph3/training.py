"""Training NuGraph3 on labelled NuML events (the project's generated ones), and saving the checkpoint.

    from producers.nugraph3.training import read_labelled_events, train, predict, save_checkpoint

    events = read_labelled_events("train.h5")              # generate-nugraph output (truth per hit)
    net = NuGraph3(NuGraph3Config(planar_features=32, ...))
    train(net, events, epochs=6, seed=1)
    save_checkpoint(net, "data/models/nugraph3/1/hierarchical.ckpt")   # load_network reads it
    pred = predict(load_network(path), read_labelled_events("heldout.h5"))

Targets, from the truth columns the generator writes: the filter (``hit_table_filter_label``: 1 signal,
0 noise), the semantic class of signal hits (``hit_table_semantic_label`` 0..6, -1 for noise), the event class
(``event_table_is_cc`` / ``nu_pdg`` -> cc_nue, cc_numu, cc_nutau, nc) and the vertex
(``event_table_nu_vtx_{x,y,z}``, cm). Loss: binary cross-entropy on the filter, cross-entropy on the semantic
logits of signal hits and on the event scores, mean squared error on the vertex in units of
:data:`VERTEX_SCALE` cm, summed with :data:`LOSS_WEIGHTS`.

The checkpoint holds ``state_dict`` under the reference checkpoint's names (as the NuGraph team's
``hierarchical.ckpt``), ``hyper_parameters`` as Lightning writes them, and ``training`` (how it was made):
tensors, numbers, strings and lists only, so ``torch.load(weights_only=True)`` reads it.
"""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from framework.exceptions import InputError

from .preprocess import PLANES, HitGraph, batch_graphs, build_graph

if TYPE_CHECKING:
    import torch

    from .torch_model import NuGraph3

log = logging.getLogger(__name__)

EVENT_CLASSES: tuple[str, ...] = ("cc_nue", "cc_numu", "cc_nutau", "nc")
#: the truth columns read besides the server's inputs
LABEL_COLUMNS: tuple[str, ...] = (
    "hit_table_filter_label",
    "hit_table_semantic_label",
    "event_table_is_cc",
    "event_table_nu_pdg",
    "event_table_nu_vtx_x",
    "event_table_nu_vtx_y",
    "event_table_nu_vtx_z",
)
#: the vertex loss is the squared error in units of this many cm
VERTEX_SCALE = 100.0
LOSS_WEIGHTS: dict[str, float] = {"filter": 1.0, "semantic": 1.0, "event": 0.5, "vertex": 0.5}


def event_class(is_cc: int, nu_pdg: int) -> int:
    """Index in :data:`EVENT_CLASSES` of an interaction: NC, or CC by the neutrino's flavour (|PDG| 12/14/16)."""
    if not is_cc:
        return EVENT_CLASSES.index("nc")
    flavour = {12: "cc_nue", 14: "cc_numu", 16: "cc_nutau"}.get(abs(int(nu_pdg)))
    if flavour is None:
        raise InputError(f"CC event with neutrino PDG code {nu_pdg}: expected +-12, +-14 or +-16")
    return EVENT_CLASSES.index(flavour)


@dataclass(frozen=True)
class LabelledEvents:
    """A graph (one event or a batch) with its truth. Per plane, in the graph's node order: ``filter``
    float32 (1 signal, 0 noise) and ``semantic`` int64 (0..6, -1 noise). Per event: ``event_class`` int64
    and ``vertex`` float32 [n, 3] (cm)."""

    graph: HitGraph
    filter: dict[str, np.ndarray]
    semantic: dict[str, np.ndarray]
    event_class: np.ndarray
    vertex: np.ndarray


def read_labelled_events(path: str | os.PathLike, max_events: int = -1) -> list[LabelledEvents]:
    """The events of the NuML file *path* (pynuml layout with truth, as ``generate-nugraph`` writes it), one
    :class:`LabelledEvents` each. Raises :class:`InputError` for a file without the truth columns."""
    from framework.io.hdf5source import SERVER_INPUTS, describe, open_file

    path = os.fspath(path)
    with open_file(path) as f:
        layout = describe(path, f)
        names = [*SERVER_INPUTS, *LABEL_COLUMNS]
        missing = [n for n in names if n not in layout.columns]
        if missing:
            raise InputError(
                f"{path} lacks the NuGraph3 training columns {', '.join(missing)}: train on events with truth, "
                "e.g. from python -m framework generate-nugraph"
            )
        n = layout.n_events if max_events < 0 else min(max_events, layout.n_events)
        cols = layout.read(f, names, 0, n)
    events = []
    for i in range(n):
        ev = {
            name: c.content[c.offsets[i] : c.offsets[i + 1]] if c.offsets is not None else c.content[i]
            for name, c in cols.items()
        }
        graph = build_graph({name: ev[name] for name in SERVER_INPUTS})
        rows = graph.hit_index
        filt, sem = ev["hit_table_filter_label"], ev["hit_table_semantic_label"]
        events.append(
            LabelledEvents(
                graph=graph,
                filter={p: filt[rows[p]].astype(np.float32) for p in graph.planes},
                semantic={p: sem[rows[p]].astype(np.int64) for p in graph.planes},
                event_class=np.array([event_class(ev["event_table_is_cc"], ev["event_table_nu_pdg"])]),
                vertex=np.array([[ev[f"event_table_nu_vtx_{c}"] for c in "xyz"]], dtype=np.float32),
            )
        )
    return events


def batch_events(events: Sequence[LabelledEvents]) -> LabelledEvents:
    """Several events as one batch (:func:`batch_graphs` with the truth concatenated alike)."""
    if len(events) == 1:
        return events[0]
    planes = events[0].graph.planes
    return LabelledEvents(
        graph=batch_graphs([e.graph for e in events]),
        filter={p: np.concatenate([e.filter[p] for e in events]) for p in planes},
        semantic={p: np.concatenate([e.semantic[p] for e in events]) for p in planes},
        event_class=np.concatenate([e.event_class for e in events]),
        vertex=np.concatenate([e.vertex for e in events]),
    )


def losses(out: dict[str, torch.Tensor], batch: LabelledEvents) -> dict[str, torch.Tensor]:
    """The loss terms (unweighted) of the network outputs *out* for *batch*: filter, semantic, event, vertex."""
    import torch
    from torch.nn import functional as F

    planes = batch.graph.planes
    score = torch.cat([out[f"x_filter_{p}"] for p in planes])
    target = torch.from_numpy(np.concatenate([batch.filter[p] for p in planes]))
    logits = torch.cat([out[f"x_semantic_{p}"] for p in planes])
    sem = torch.from_numpy(np.concatenate([batch.semantic[p] for p in planes]))
    signal = sem >= 0
    vertex = torch.from_numpy(batch.vertex)
    return {
        "filter": F.binary_cross_entropy(score.clamp(1e-6, 1 - 1e-6), target),
        "semantic": F.cross_entropy(logits[signal], sem[signal]) if bool(signal.any()) else logits.sum() * 0,
        "event": F.cross_entropy(out["e_evt"], torch.from_numpy(batch.event_class)),
        "vertex": F.mse_loss(out["v_evt"] / VERTEX_SCALE, vertex / VERTEX_SCALE),
    }


def init_weights(net: NuGraph3) -> NuGraph3:
    """Re-initialise *net* for training from scratch: He-normal weights, zero biases. torch's default
    initialisation shrinks the features at every one of the network's many Linear-Mish layers (there is no
    residual path), so after a few iterations they no longer depend on the hit and the gradients reaching
    the encoder vanish (~1e-10); with this one they keep their scale. Draws from torch's global generator."""
    from torch import nn

    for module in net.modules():
        if isinstance(module, nn.Linear):
            nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
            nn.init.zeros_(module.bias)
    return net


def train(
    net: NuGraph3,
    events: Sequence[LabelledEvents],
    *,
    epochs: int,
    batch_size: int = 16,
    lr: float = 3e-3,
    seed: int = 0,
    progress: Callable[[int, dict[str, float]], None] | None = None,
) -> list[dict[str, float]]:
    """Train *net* in place on *events* (Adam, one-cycle learning rate *lr*, :data:`VERTEX_SCALE` times
    higher for the vertex head, which answers in cm; batches of *batch_size* events in an order drawn from
    *seed*); returns the mean loss terms per epoch, also passed to *progress*."""
    import torch

    from .network import graph_tensors

    if not events:
        raise ValueError("train needs at least one event")
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    n_batches = -(-len(events) // batch_size)
    # the vertex head answers in cm: Adam moves a weight by about lr per step, so it gets VERTEX_SCALE x lr
    head = {id(p) for p in net.vertex.parameters()}
    groups = [
        {"params": [p for p in net.parameters() if id(p) not in head], "lr": lr},
        {"params": list(net.vertex.parameters()), "lr": lr * VERTEX_SCALE},
    ]
    opt = torch.optim.Adam(groups)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=[g["lr"] for g in groups], total_steps=epochs * n_batches, pct_start=0.2
    )
    with torch.no_grad():  # start the vertex at the events' mean position
        net.vertex.bias.copy_(torch.from_numpy(np.concatenate([e.vertex for e in events]).mean(0)))
    net.train()
    history = []
    for epoch in range(epochs):
        order = rng.permutation(len(events))
        sums: dict[str, float] = {}
        for b in range(n_batches):
            batch = batch_events([events[i] for i in order[b * batch_size : (b + 1) * batch_size]])
            out = net(**graph_tensors(batch.graph))
            terms = losses(out, batch)
            total = sum(LOSS_WEIGHTS[k] * v for k, v in terms.items())
            opt.zero_grad()
            total.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 5.0)
            opt.step()
            sched.step()
            for k, v in (*terms.items(), ("total", total)):
                sums[k] = sums.get(k, 0.0) + v.item() / n_batches
        history.append(sums)
        if progress is not None:
            progress(epoch, sums)
    net.eval()
    return history


def predict(net: NuGraph3, events: Sequence[LabelledEvents], batch_size: int = 32) -> dict[str, np.ndarray]:
    """*net*'s outputs on *events* with the truth, flattened over planes and events: ``filter_score``,
    ``filter_label``, ``semantic_pred`` / ``semantic_label`` (signal hits only), ``event_pred`` /
    ``event_label``, ``vertex_pred`` / ``vertex_true`` [n, 3] (cm)."""
    from .network import run_network

    parts: dict[str, list[np.ndarray]] = {}
    for start in range(0, len(events), batch_size):
        batch = batch_events(events[start : start + batch_size])
        out = run_network(net, batch.graph)
        planes = batch.graph.planes
        sem = np.concatenate([batch.semantic[p] for p in planes])
        logits = np.concatenate([out[f"x_semantic_{p}"] for p in planes])
        for k, v in {
            "filter_score": np.concatenate([out[f"x_filter_{p}"] for p in planes]),
            "filter_label": np.concatenate([batch.filter[p] for p in planes]).astype(bool),
            "semantic_pred": logits[sem >= 0].argmax(1),
            "semantic_label": sem[sem >= 0],
            "event_pred": out["e_evt"].argmax(1),
            "event_label": batch.event_class,
            "vertex_pred": out["v_evt"],
            "vertex_true": batch.vertex,
        }.items():
            parts.setdefault(k, []).append(v)
    return {k: np.concatenate(v) for k, v in parts.items()}


def reference_state_dict(state: dict[str, Any], planes: Sequence[str] = PLANES) -> dict[str, Any]:
    """*state* (our module names) under the reference checkpoint's names: the inverse of
    :func:`producers.nugraph3.torch_model.rename_state_dict`."""
    from .torch_model import key_pairs

    pairs = key_pairs(tuple(planes))
    renamed = {}
    for key, value in state.items():
        for theirs, ours in pairs:
            if key.startswith(ours):
                key = theirs + key[len(ours) :]
                break
        renamed[key] = value
    return renamed


def save_checkpoint(net: NuGraph3, path: str | os.PathLike, training: dict[str, Any] | None = None) -> Path:
    """Write *net* as a NuGraph3 checkpoint that :func:`producers.nugraph3.network.load_network` reads:
    ``state_dict`` (reference names, contiguous CPU tensors), ``hyper_parameters`` and *training* (plain
    values describing how it was trained). Written atomically, the same bytes for the same weights; returns
    the path."""
    import torch

    config = asdict(net.config)
    hyper = {k: list(v) if isinstance(v, tuple) else v for k, v in config.items()}
    hyper |= {"event_head": True, "semantic_head": True, "filter_head": True, "vertex_head": True}
    state = {k: v.detach().cpu().contiguous().clone() for k, v in net.state_dict().items()}
    ckpt = {
        "state_dict": reference_state_dict(state, net.config.planes),
        "hyper_parameters": hyper,
        "training": dict(training or {}),
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    buffer = io.BytesIO()  # the archive's inner name would otherwise be the temporary file's
    torch.save(ckpt, buffer)
    try:
        tmp.write_bytes(buffer.getvalue())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
