"""NuGraph3 as a Triton Python-backend model: the server preprocesses the raw tables and runs the network.

The one implementation of the served model; a NuGraph3 model directory has no ``model.py`` of its own: its
``config.pbtxt`` names this module in the ``python_module`` parameter, and the local server's repository
translation (:mod:`framework.server.repository`) writes a ``model.py`` that puts the job's ``sys.path`` first
and imports :class:`TritonPythonModel` from here. So the stub runs the same preprocessing
(:mod:`~producers.nugraph3.preprocess`) and network (:mod:`~producers.nugraph3.network`) as the direct twin.

Parameters of the config: ``checkpoint_filename`` (in the version directory, default ``hierarchical.ckpt``),
``torch_threads`` (intra-op threads per instance; 0 = torch's default). An instance of kind GPU runs the network
on its GPU when torch has CUDA.

Batching (``max_batch_size`` > 0, see :mod:`~producers.nugraph3.model_repo`): each request holds one event
(inputs ``[1, n]``); ``execute`` gets every request the dynamic batcher merged, builds each event's graph,
runs the network once on their disjoint union (:func:`~producers.nugraph3.preprocess.batch_graphs`) and
answers each request with its own event's rows (outputs ``[1, ...]``). With ``max_batch_size: 0`` (the
reference server's layout) inputs are 1-D and outputs as in DESIGN.md section 11. A request whose tables
are not a valid event gets its own error; when the merged run fails, the events are run one by one so that
the error reaches the request that caused it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

try:  # only importable inside the Triton Python-backend stub
    import triton_python_backend_utils as pb_utils
except ImportError:  # pragma: no cover - imported outside Triton (lint, tests)
    pb_utils = None

from .network import OUTPUT_NAMES
from .preprocess import INPUT_DTYPES, HitGraph, batch_graphs, build_graph, split_outputs

EVENT_OUTPUTS = ("e_evt", "v_evt")
"""Outputs with one row per event (the others have one row per hit of their plane)."""


def request_event(arrays: Mapping[str, np.ndarray], batched: bool) -> dict[str, np.ndarray]:
    """One request's 10 tables as 1-D arrays: ``[1, n]`` each when *batched*, else ``[n]``."""
    event = {}
    for name, array in arrays.items():
        if batched:
            if array.ndim != 2 or array.shape[0] != 1:
                raise ValueError(
                    f"input '{name}' has shape {list(array.shape)}; this model takes one event per request: "
                    "[1, n] (Triton merges the requests of several events itself)")
            array = array[0]
        event[name] = array
    return event


def event_outputs(outputs: Mapping[str, np.ndarray], batched: bool) -> dict[str, np.ndarray]:
    """One event's network outputs (``split_outputs``) shaped as the config's outputs."""
    if not batched:
        return dict(outputs)
    return {name: value if name in EVENT_OUTPUTS else value[None] for name, value in outputs.items()}


def run_events(net: Any, graphs: Sequence[HitGraph]) -> list[dict[str, np.ndarray]]:
    """The network's outputs for each of *graphs*, from one run on their union."""
    from .network import run_network

    batch = batch_graphs(list(graphs))
    return split_outputs(run_network(net, batch), batch)


class TritonPythonModel:
    """NuGraph3 answering (dynamically batched) Triton requests; see the module docstring."""

    def initialize(self, args: dict) -> None:
        import torch

        from .network import load_network

        config = json.loads(args["model_config"])
        params = {k: v.get("string_value", "") for k, v in config.get("parameters", {}).items()}
        self.model_name = config["name"]
        self.batched = int(config.get("max_batch_size", 0)) > 0
        inputs = {i["name"] for i in config.get("input", [])}
        outputs = [o["name"] for o in config.get("output", [])]
        if inputs != set(INPUT_DTYPES) or set(outputs) - set(OUTPUT_NAMES):
            raise ValueError(
                f"model '{self.model_name}': the config's inputs must be {sorted(INPUT_DTYPES)} and its outputs "
                f"some of {list(OUTPUT_NAMES)}; got inputs {sorted(inputs)}, outputs {outputs}")
        self.outputs = outputs
        threads = int(params.get("torch_threads") or 0)
        if threads > 0:
            torch.set_num_threads(threads)
        device = "cpu"
        if args.get("model_instance_kind") == "GPU" and torch.cuda.is_available():
            device = f"cuda:{int(args.get('model_instance_device_id') or 0)}"
        path = os.path.join(args["model_repository"], args["model_version"],
                            params.get("checkpoint_filename") or "hierarchical.ckpt")
        self.net = load_network(path, device)
        pb_utils.Logger.log_info(f"{self.model_name}: loaded {path} on {device}, {torch.get_num_threads()} threads, "
                                 f"{'batched' if self.batched else 'one event per execute'}")

    def _event(self, request) -> dict[str, np.ndarray]:
        arrays = {}
        for name in INPUT_DTYPES:
            tensor = pb_utils.get_input_tensor_by_name(request, name)
            if tensor is None:
                raise ValueError(f"input '{name}' is missing from the request")
            arrays[name] = tensor.as_numpy()
        return request_event(arrays, self.batched)

    def _response(self, outputs: Mapping[str, np.ndarray]):
        shaped = event_outputs(outputs, self.batched)
        return pb_utils.InferenceResponse(output_tensors=[
            pb_utils.Tensor(name, np.ascontiguousarray(shaped[name], dtype=np.float32)) for name in self.outputs])

    def _error(self, exc: BaseException):
        message = f"model '{self.model_name}': {type(exc).__name__}: {exc}"
        return pb_utils.InferenceResponse(output_tensors=[], error=pb_utils.TritonError(message))

    def execute(self, requests: list) -> list:
        responses: list = [None] * len(requests)
        graphs: dict[int, HitGraph] = {}
        for i, request in enumerate(requests):
            try:
                graphs[i] = build_graph(self._event(request))
            except Exception as exc:  # noqa: BLE001 - reported to the client that sent it
                responses[i] = self._error(exc)
        good = list(graphs)
        if len(good) > 1:
            try:
                for i, outputs in zip(good, run_events(self.net, [graphs[i] for i in good]), strict=True):
                    responses[i] = self._response(outputs)
                good = []
            except Exception:  # noqa: BLE001 - run one by one below, to blame the right request
                pass
        for i in good:
            try:
                responses[i] = self._response(run_events(self.net, [graphs[i]])[0])
            except Exception as exc:  # noqa: BLE001
                responses[i] = self._error(exc)
        return responses

    def finalize(self) -> None:
        self.net = None


__all__ = ["EVENT_OUTPUTS", "TritonPythonModel", "event_outputs", "request_event", "run_events"]
