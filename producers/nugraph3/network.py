"""NuGraph3 network: load the NuGraph team's checkpoint into our torch code and run it on a graph.

    from producers.nugraph3.preprocess import build_graph, batch_graphs, split_outputs
    from producers.nugraph3.network import load_network, run_network

    net = load_network("../shared/models/nugraph3/1/hierarchical.ckpt")   # eval mode, CPU
    graph = batch_graphs([build_graph(inputs) for inputs in events])      # one event or several
    outputs = run_network(net, graph)                                     # numpy, by server output name
    per_event = split_outputs(outputs, graph)

Outputs (the server's names): ``e_evt`` [n_events, 4] raw scores (cc_nue, cc_numu, cc_nutau, nc),
``x_semantic_{u,v,y}`` [n_plane, 7] raw logits (pion, muon, kaon, hadron, shower, michel, diffuse),
``x_filter_{u,v,y}`` [n_plane] sigmoid, ``v_evt`` [n_events, 3] vertex. Inference only: no labels, no loss.

The checkpoint file is loaded unchanged with ``torch.load(weights_only=True)``, allowing besides tensors
only the two globals its pickled LR scheduler needs (``getattr`` and ``OneCycleLR``): far narrower than
``weights_only=False``, which would run whatever the pickle names. A file holding only a ``state_dict`` (ours or the checkpoint's names) loads too, with this checkpoint's
hyper-parameters. torch is imported only when a network is loaded (this module is scanned by the plugin
loader).
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Any

import numpy as np

from framework.exceptions import InputError

from .preprocess import PLANES, HitGraph

if TYPE_CHECKING:
    import torch

    from .torch_model import NuGraph3, NuGraph3Config

log = logging.getLogger(__name__)

OUTPUT_NAMES: tuple[str, ...] = (
    "e_evt",
    *(f"x_semantic_{p}" for p in PLANES),
    *(f"x_filter_{p}" for p in PLANES),
    "v_evt",
)


class NuGraphModelError(InputError):
    """A NuGraph3 checkpoint cannot be read or does not fit the network."""


def __getattr__(name: str) -> Any:
    # the torch classes, on first use only
    if name in ("NuGraph3", "NuGraph3Config"):
        from . import torch_model

        return getattr(torch_model, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _read_checkpoint(path: str | os.PathLike) -> dict:
    import pickle

    import torch
    from torch.optim.lr_scheduler import OneCycleLR

    if not os.path.isfile(path):
        raise NuGraphModelError(f"NuGraph3 checkpoint '{path}' does not exist")
    try:
        with torch.serialization.safe_globals([getattr, OneCycleLR]):
            return torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise NuGraphModelError(
            f"cannot read NuGraph3 checkpoint '{path}': {first}. It must be a torch file holding a "
            "Lightning checkpoint of NuGraph3 (or a state_dict) with no Python objects beyond tensors"
        ) from None


def _config_from(ckpt: dict) -> NuGraph3Config:
    from .torch_model import NuGraph3Config

    hp = ckpt.get("hyper_parameters")
    if hp is None:
        return NuGraph3Config()
    off = [h for h in ("event_head", "semantic_head", "filter_head", "vertex_head") if not hp.get(h, True)]
    if off:
        raise NuGraphModelError(
            f"this NuGraph3 checkpoint was trained without {', '.join(off)}; the network needs all four heads"
        )
    names = ("in_features", "planar_features", "nexus_features", "interaction_features", "num_iters")
    tuples = ("planes", "semantic_classes", "event_classes")
    kwargs = {k: int(hp[k]) for k in names if k in hp} | {k: tuple(hp[k]) for k in tuples if k in hp}
    config = NuGraph3Config(**kwargs)
    if config.planes != PLANES:
        raise NuGraphModelError(f"NuGraph3 checkpoint has planes {config.planes}; the graph has {PLANES}")
    return config


def load_network(path: str | os.PathLike, device: str | torch.device = "cpu") -> NuGraph3:
    """The NuGraph3 network with the weights of checkpoint *path*, in eval mode on *device*."""
    import torch

    from .torch_model import NuGraph3, rename_state_dict

    ckpt = _read_checkpoint(path)
    if not isinstance(ckpt, dict):
        raise NuGraphModelError(f"NuGraph3 checkpoint '{path}' holds a {type(ckpt).__name__}, not a dict")
    state = ckpt.get("state_dict", ckpt)
    config = _config_from(ckpt)
    net = NuGraph3(config)
    ours = set(net.state_dict())
    state = rename_state_dict(state, config.planes)
    unknown = sorted(set(state) - ours)
    if unknown:
        raise NuGraphModelError(
            f"NuGraph3 checkpoint '{path}' has weights this network does not know: {', '.join(unknown[:5])}"
            + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else "")
        )
    missing = sorted(ours - set(state))
    if missing:
        raise NuGraphModelError(f"NuGraph3 checkpoint '{path}' lacks weights: {', '.join(missing[:5])}")
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise NuGraphModelError(f"NuGraph3 checkpoint '{path}' does not fit the network: {e}") from None
    log.debug("loaded NuGraph3 from %s (%s)", path, config)
    return net.to(torch.device(device)).eval()


def graph_tensors(graph: HitGraph, device: str | torch.device = "cpu") -> dict[str, Any]:
    """The keyword arguments of ``NuGraph3.forward`` for *graph*, as tensors on *device*."""
    import torch

    def t(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(a)).to(device)

    return {
        "x": {p: t(graph.x[p]) for p in graph.planes},
        "edge_plane": {p: t(graph.edge_plane[p]) for p in graph.planes},
        "edge_nexus": {p: t(graph.edge_nexus[p]) for p in graph.planes},
        "edge_event": t(graph.edge_event),
        "n_events": graph.n_events,
    }


def run_network(net: NuGraph3, graph: HitGraph) -> dict[str, np.ndarray]:
    """The outputs of *net* for *graph* (one event or a batch), as float32 numpy arrays by output name."""
    import torch

    device = next(net.parameters()).device
    with torch.inference_mode():
        out = net(**graph_tensors(graph, device))
    return {name: out[name].float().cpu().numpy() for name in OUTPUT_NAMES}
