"""The NuGraph3 network as torch modules (imported by :mod:`producers.nugraph3.network` when needed).

Architecture of the NuGraph fork ``rishi2019194/nugraph`` (``nugraph/models/nugraph3/``, July 2024) the
checkpoint was trained with, in plain torch (no torch_geometric):

- encoder: one Linear(4 -> 128) per plane;
- ``num_iters`` times: planar message passing within each plane (128); planes -> space points (32 each,
  concatenated over the planes: 96); space points -> event node (32); event node -> space points (32);
  space points -> planes (128). Space-point and event features start at zero;
- heads: semantic Linear(128 -> 7) per plane (raw logits), filter sigmoid(Linear(128 -> 1)) per plane,
  event Linear(32 -> 4) (raw), vertex Linear(32 -> 3).

Each message-passing step is a :class:`Block`: message ``sigmoid(Linear(cat(x_target, x_source))) * x_source``
on every edge, softmax aggregation per target node and feature (torch_geometric's ``aggr="softmax"``), and
the update ``Mish(Linear(Mish(Linear(cat(aggregated, x_target)))))``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn import functional as F


@dataclass(frozen=True)
class NuGraph3Config:
    """Hyper-parameters (defaults: those of ``hierarchical.ckpt``)."""

    in_features: int = 4
    planar_features: int = 128
    nexus_features: int = 32
    interaction_features: int = 32
    planes: tuple[str, ...] = ("u", "v", "y")
    semantic_classes: tuple[str, ...] = ("pion", "muon", "kaon", "hadron", "shower", "michel", "diffuse")
    event_classes: tuple[str, ...] = ("cc_nue", "cc_numu", "cc_nutau", "nc")
    num_iters: int = 5


def softmax_aggregate(msg: Tensor, target: Tensor, num_nodes: int) -> Tensor:
    """Sum over the edges into each target node of ``msg * softmax(msg)``, the softmax taken per feature
    over those edges (torch_geometric's ``SoftmaxAggregation`` with t=1). Nodes without edges get 0."""
    idx = target.unsqueeze(1).expand_as(msg)
    zeros = msg.new_zeros((num_nodes, msg.shape[1]))
    peak = zeros.scatter_reduce(0, idx, msg, reduce="amax", include_self=False)
    ex = (msg - peak.index_select(0, target)).exp()
    norm = zeros.index_add(0, target, ex) + 1e-16
    return zeros.index_add(0, target, msg * ex / norm.index_select(0, target))


class Block(nn.Module):
    """One NuGraph message-passing step from source nodes to target nodes (keys ``edge_net.0``, ``net.0``,
    ``net.2`` as in the checkpoint)."""

    def __init__(self, source_features: int, target_features: int, out_features: int):
        super().__init__()
        self.edge_net = nn.Sequential(nn.Linear(source_features + target_features, 1), nn.Sigmoid())
        self.net = nn.Sequential(
            nn.Linear(source_features + target_features, out_features),
            nn.Mish(),
            nn.Linear(out_features, out_features),
            nn.Mish(),
        )

    def forward(self, x_source: Tensor, x_target: Tensor, edge_index: Tensor) -> Tensor:
        """*edge_index*: [2, E] as [source; target]."""
        source, target = edge_index[0], edge_index[1]
        # edge_net(cat(x_i, x_j)) computed per node and gathered per edge (the same Linear, split by columns)
        lin = self.edge_net[0]
        n_target = x_target.shape[1]
        w_target = F.linear(x_target, lin.weight[:, :n_target], lin.bias)
        w_source = F.linear(x_source, lin.weight[:, n_target:])
        weight = torch.sigmoid(w_target.index_select(0, target) + w_source.index_select(0, source))
        msg = weight * x_source.index_select(0, source)
        aggregated = softmax_aggregate(msg, target, x_target.shape[0])
        return self.net(torch.cat((aggregated, x_target), dim=1))


class NuGraph3(nn.Module):
    """NuGraph3 for inference. :meth:`forward` takes the graph as tensors (see :func:`graph_tensors` in
    :mod:`producers.nugraph3.network`) and returns the raw outputs by their server names."""

    def __init__(self, config: NuGraph3Config = NuGraph3Config()):
        super().__init__()
        c = self.config = config
        P, N, I = c.planar_features, c.nexus_features, c.interaction_features  # noqa: E741
        full_nexus = len(c.planes) * N
        self.encoder = nn.ModuleDict({p: nn.Linear(c.in_features, P) for p in c.planes})
        self.plane = nn.ModuleDict({p: Block(P, P, P) for p in c.planes})
        self.plane_to_nexus = nn.ModuleDict({p: Block(P, N, N) for p in c.planes})
        self.nexus_to_event = Block(full_nexus, I, I)
        self.event_to_nexus = Block(I, full_nexus, N)
        self.nexus_to_plane = nn.ModuleDict({p: Block(N, P, P) for p in c.planes})
        self.semantic = nn.ModuleDict({p: nn.Linear(P, len(c.semantic_classes)) for p in c.planes})
        self.filter = nn.ModuleDict({p: nn.Linear(P, 1) for p in c.planes})
        self.event = nn.Linear(I, len(c.event_classes))
        self.vertex = nn.Linear(I, 3)

    def forward(
        self,
        x: dict[str, Tensor],
        edge_plane: dict[str, Tensor],
        edge_nexus: dict[str, Tensor],
        edge_event: Tensor,
        n_events: int,
    ) -> dict[str, Tensor]:
        """Per plane: *x* [n_p, 4], *edge_plane* [2, E] (source; target), *edge_nexus* [2, N] (node; space
        point). *edge_event* [2, n_sp]: (space point; event). Returns ``e_evt`` [n_events, 4],
        ``x_semantic_<p>`` [n_p, 7], ``x_filter_<p>`` [n_p], ``v_evt`` [n_events, 3]."""
        c = self.config
        h = {p: self.encoder[p](x[p]) for p in c.planes}
        ref = h[c.planes[0]]
        sp = ref.new_zeros((edge_event.shape[1], c.nexus_features))
        evt = ref.new_zeros((n_events, c.interaction_features))
        event_to_sp = edge_event.flip(0)
        nexus_to_plane = {p: edge_nexus[p].flip(0) for p in c.planes}
        for _ in range(c.num_iters):
            h = {p: self.plane[p](h[p], h[p], edge_plane[p]) for p in c.planes}
            sp = torch.cat([self.plane_to_nexus[p](h[p], sp, edge_nexus[p]) for p in c.planes], dim=1)
            evt = self.nexus_to_event(sp, evt, edge_event)
            sp = self.event_to_nexus(evt, sp, event_to_sp)
            h = {p: self.nexus_to_plane[p](sp, h[p], nexus_to_plane[p]) for p in c.planes}
        out = {"e_evt": self.event(evt)}
        for p in c.planes:
            out[f"x_semantic_{p}"] = self.semantic[p](h[p])
        for p in c.planes:
            out[f"x_filter_{p}"] = torch.sigmoid(self.filter[p](h[p])).squeeze(-1)
        out["v_evt"] = self.vertex(evt)
        return out


#: checkpoint key prefixes (NuGraph3 LightningModule) -> ours; ``{p}`` stands for each plane
KEY_MAP = (
    ("encoder.lins.{p}.", "encoder.{p}."),
    ("core_net.plane_net.convs.<{p}___plane___{p}>.", "plane.{p}."),
    ("core_net.plane_to_nexus.convs.<{p}___nexus___sp>.", "plane_to_nexus.{p}."),
    ("core_net.nexus_to_interaction.convs.<sp___in___evt>.", "nexus_to_event."),
    ("core_net.interaction_to_nexus.convs.<evt___owns___sp>.", "event_to_nexus."),
    ("core_net.nexus_to_plane.convs.<sp___nexus___{p}>.", "nexus_to_plane.{p}."),
    ("semantic_decoder.net.{p}.", "semantic.{p}."),
    ("filter_decoder.net.{p}.0.", "filter.{p}."),
    ("event_decoder.net.", "event."),
    ("vertex_decoder.net.", "vertex."),
)
#: checkpoint entries used only in training: the decoders' loss temperatures
TRAINING_ONLY = ("event_decoder.temp", "semantic_decoder.temp", "filter_decoder.temp", "vertex_decoder.temp")


def key_pairs(planes: tuple[str, ...]) -> list[tuple[str, str]]:
    """:data:`KEY_MAP` with ``{p}`` expanded for each plane: ``(checkpoint prefix, our prefix)`` pairs."""
    pairs = []
    for theirs, ours in KEY_MAP:
        if "{p}" in theirs:
            pairs += [(theirs.format(p=p), ours.format(p=p)) for p in planes]
        else:
            pairs.append((theirs, ours))
    return pairs


def rename_state_dict(state: dict[str, Tensor], planes: tuple[str, ...]) -> dict[str, Tensor]:
    """The checkpoint's ``state_dict`` under our module names (keys of neither naming are kept as they are;
    the decoders' loss temperatures, used only in training, are dropped)."""
    pairs = key_pairs(planes)
    renamed = {}
    for key, value in state.items():
        if key in TRAINING_ONLY:
            continue
        for theirs, ours in pairs:
            if key.startswith(theirs):
                key = ours + key[len(theirs) :]
                break
        renamed[key] = value
    return renamed
