"""Export a PyTorch model to a Triton model repository: ``<name>/config.pbtxt`` + ``<name>/1/model.onnx``.

The recipe of the CMS ML guide: ``torch.onnx.export`` with a dynamic batch axis, ``onnx.checker``, then
ONNXRuntime against torch at several batch sizes; the ``config.pbtxt`` is derived from the exported graph and
written with Triton's protobuf classes (:func:`framework.server.repository.write_model_config`). The result
runs in-process (:class:`framework.ml.onnx.ONNXSession`) and on Triton, the local fallback included.

Python: :func:`export_to_triton`. Command line: ``python -m framework export-model MODULE:FUNCTION --out DIR
--name NAME`` (:func:`main`), where the function returns ``(model, example_inputs)``.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.util
import inspect
import logging
import os
import shutil
import sys
import tempfile
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..exceptions import FrameworkError, did_you_mean

if TYPE_CHECKING:
    import torch
    from tritonclient.grpc.model_config_pb2 import ModelConfig

log = logging.getLogger(__name__)

TORCH_REQUIREMENT = "torch==2.13.0"
"""What ``pip install -e '.[test]'`` / ``'.[train]'`` install (a CPU build on the project's machines)."""
DEFAULT_BATCH_SIZES = (1, 7, 64)
DEFAULT_RTOL = 1e-3
DEFAULT_ATOL = 1e-5
DEFAULT_OPSET = 17
DEFAULT_MAX_BATCH_SIZE = 64
BATCH_DIM = "N"
"""Name of the dynamic batch axis (dim 0) in the exported graph."""
PRODUCER = "cmssw-py-framework"

_MISMATCH_HINT = (
    "  The exported graph does not compute what the model computes. Usual causes: Python control flow on a "
    "tensor's values or shape, or int()/float()/.item()/.tolist() on them in forward(), which the exporter "
    "freezes at the example's values; rewrite those parts with torch operations (torch.where, tensor "
    "arithmetic on x.shape[...]) or declare the variable axes with dynamic_axes / --dynamic-axis."
)


class ExportError(FrameworkError):
    """A model cannot be exported, or the export does not reproduce the model."""


# ----------------------------------------------------------------------------- config.pbtxt
def build_model_config(onnx_path: str | os.PathLike, name: str, *,
                       max_batch_size: int = DEFAULT_MAX_BATCH_SIZE,
                       dynamic_batching: bool | Sequence[int] = True, checksum: bool = False, version: int = 1,
                       edit_config: Callable[[ModelConfig], None] | None = None) -> ModelConfig:
    """The Triton ``ModelConfig`` of an ONNX model whose inputs and outputs all have a dynamic dim 0 (the batch).

    Names, data types and dims (without the batch axis; a dynamic dim is ``-1``) come from the graph.
    ``dynamic_batching``: True for ``dynamic_batching {}``, a list for its ``preferred_batch_size``, False for
    none. ``checksum`` adds the ``checksum`` repository agent with the file's MD5 (``MD5:<version>/model.onnx``),
    as the CMS configs have. ``edit_config`` is called with the config last, for what the options here do
    not cover (``optimization``, ``instance_group``, an output's ``label_filename``, ``parameters`` ...).
    """
    import onnx
    from tritonclient.grpc import model_config_pb2 as mc
    from tritonclient.utils import np_to_triton_dtype

    from ..server.repository import file_digest

    if max_batch_size < 1:
        raise ExportError(f"max_batch_size must be at least 1 (the model has a batch axis), not {max_batch_size}")
    preferred = [] if isinstance(dynamic_batching, bool) else [int(b) for b in dynamic_batching]
    too_big = [b for b in preferred if not 0 < b <= max_batch_size]
    if too_big:
        raise ExportError(f"preferred batch sizes {too_big} are not in 1..max_batch_size ({max_batch_size})")
    graph = onnx.load(str(onnx_path), load_external_data=False).graph
    initializers = {i.name for i in graph.initializer}
    config = mc.ModelConfig(name=name, platform="onnxruntime_onnx", max_batch_size=int(max_batch_size))
    for kind, values, specs in (("input", graph.input, config.input), ("output", graph.output, config.output)):
        for value in values:
            if value.name in initializers:
                continue
            tensor = value.type.tensor_type
            dims = [d.dim_value if d.HasField("dim_value") else -1 for d in tensor.shape.dim]
            if not dims or dims[0] != -1:
                raise ExportError(
                    f"{kind} '{value.name}' of {onnx_path} has shape {dims or 'scalar'}: its first dim must be the "
                    "dynamic batch axis.\n  Return per-example results (keep dim 0 as the batch) from forward().")
            spec = specs.add(name=value.name, dims=dims[1:])
            dtype = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(tensor.elem_type))
            spec.data_type = mc.DataType.Value("TYPE_" + np_to_triton_dtype(dtype))
    if dynamic_batching is not False:
        config.dynamic_batching.SetInParent()
        config.dynamic_batching.preferred_batch_size.extend(preferred)
    if checksum:
        agent = config.model_repository_agents.agents.add(name="checksum")
        agent.parameters[f"MD5:{version}/model.onnx"] = file_digest(onnx_path)
    if edit_config is not None:
        edit_config(config)
    return config


# ----------------------------------------------------------------------------- export
def export_to_triton(model: torch.nn.Module, example_inputs: Mapping[str, Any] | Sequence[Any] | Any,
                     out_dir: str | os.PathLike, name: str, *, input_names: Sequence[str] | None = None,
                     output_names: Sequence[str] | None = None,
                     dynamic_axes: Mapping[str, Sequence[int]] | None = None,
                     max_batch_size: int = DEFAULT_MAX_BATCH_SIZE, dynamic_batching: bool | Sequence[int] = True,
                     checksum: bool = False, edit_config: Callable[[ModelConfig], None] | None = None,
                     opset: int = DEFAULT_OPSET, version: int = 1, check: bool = True,
                     batch_sizes: Sequence[int] = DEFAULT_BATCH_SIZES, rtol: float = DEFAULT_RTOL,
                     atol: float = DEFAULT_ATOL, seed: int = 0) -> Path:
    """Export ``model`` as the Triton model ``<out_dir>/<name>`` (ONNX); returns the model directory.

    Writes ``<name>/<version>/model.onnx`` (``torch.onnx.export``, TorchScript exporter, dim 0 of every input
    and output dynamic, node doc strings dropped, checked by ``onnx.checker``) and ``<name>/config.pbtxt``
    (:func:`build_model_config`; other files in ``<name>/`` are left alone). Unless ``check`` is False,
    ONNXRuntime (CPU) is first compared with torch at each of ``batch_sizes``, on rows drawn from the example
    inputs (give a few distinct rows, e.g. 8), within ``rtol``/``atol``; a mismatch raises
    :class:`ExportError` naming the output, the batch size and the largest difference, and writes nothing.

    ``example_inputs``: a dict ``{input name: tensor}`` (passed by the parameter names of ``forward`` when the
    keys are such names, else positionally in order), a tuple of tensors (named by ``input_names``, default
    the parameter names of ``forward``) or one tensor; numpy arrays are accepted. All share dim 0, the batch.
    ``output_names``: one per tensor ``forward`` returns (default ``output`` / ``output_0``, ``output_1`` ...).
    ``dynamic_axes``: other variable axes, ``{input or output name: [axis, ...]}`` counting the batch axis
    as 0 (e.g. ``{"particles": [1]}`` for a variable particle count: ``dims: [-1, F]`` in the config).
    ``max_batch_size``, ``dynamic_batching``, ``checksum``, ``edit_config``: see :func:`build_model_config`.
    The model is run in eval mode (its training flag is restored afterwards).

    Example::

        import torch
        from framework.ml.export import export_to_triton

        class Tagger(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.net = torch.nn.Sequential(torch.nn.Linear(5, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2))

            def forward(self, particles, jet):          # [N, n, 4], [N, 1]
                return torch.softmax(self.net(torch.cat([particles.sum(1), jet], -1)), -1)

        path = export_to_triton(Tagger(), {"particles": torch.randn(8, 10, 4), "jet": torch.randn(8, 1)},
                                "models", "tagger", output_names=["probs"], dynamic_axes={"particles": [1]},
                                max_batch_size=256, dynamic_batching=[64])
        # models/tagger/config.pbtxt, models/tagger/1/model.onnx: serve with `python -m framework serve
        # --models models`, or run in-process with framework.ml.onnx.ONNXSession(path / "1" / "model.onnx")
    """
    torch = import_torch()
    if not isinstance(model, torch.nn.Module):
        raise ExportError(f"model must be a torch.nn.Module, not {type(model).__name__}")
    if not name or name.startswith(".") or os.sep in name or name != name.strip():
        raise ExportError(f"model name {name!r} cannot be a directory name: use letters, digits, '_' or '-'")
    if version < 1:
        raise ExportError(f"version must be a positive integer (Triton's version directory), not {version}")
    args, in_names = _bind_inputs(torch, model, example_inputs, input_names)
    device = next(iter(model.parameters()), torch.empty(0)).device
    args = [a.to(device) for a in args]  # the example on the model's device (ONNXRuntime gets CPU copies)
    model_dir = Path(out_dir) / name
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            outputs = _call(torch, model, args, "on the example inputs")
        out_names = _names(output_names, len(outputs), "output", ["output"] if len(outputs) == 1 else None)
        ranks = {n: t.ndim for n, t in zip(in_names + out_names, args + outputs)}
        axes = _axes(in_names, out_names, ranks, dynamic_axes or {})
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{name}.export-", dir=out_dir))
        try:
            onnx_path = tmp / "model.onnx"
            tracer_warnings = _export(torch, model, args, onnx_path, in_names, out_names, axes, opset, name)
            config = build_model_config(onnx_path, name, max_batch_size=max_batch_size,
                                        dynamic_batching=dynamic_batching, checksum=checksum, version=version,
                                        edit_config=edit_config)
            if check:
                _compare(torch, model, args, onnx_path, name, in_names, out_names, batch_sizes, rtol, atol,
                         seed, tracer_warnings)
            from ..server.repository import write_model_config

            (model_dir / str(version)).mkdir(parents=True, exist_ok=True)
            os.replace(onnx_path, model_dir / str(version) / "model.onnx")
            write_model_config(config, model_dir / "config.pbtxt")
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    finally:
        model.train(was_training)
    log.info("exported model '%s': %s and %s (inputs %s, outputs %s)", name, model_dir / "config.pbtxt",
             model_dir / str(version) / "model.onnx", ", ".join(in_names), ", ".join(out_names))
    return model_dir


def import_torch():
    """``import torch``, or a :class:`~framework.exceptions.MissingExtra` that says how to install it."""
    from .. import extras

    return extras.torch("exporting a PyTorch model (export-model)")


def _names(given: Sequence[str] | None, n: int, what: str, default: Sequence[str] | None) -> list[str]:
    names = list(given) if given is not None else list(default or [f"{what}_{i}" for i in range(n)])
    if len(names) != n:
        raise ExportError(f"{len(names)} {what} names {names} for {n} {what}s: give exactly one name per {what}")
    if len(set(names)) != n or not all(isinstance(s, str) and s for s in names):
        raise ExportError(f"{what} names must be distinct non-empty strings, got {names}")
    return names


def _as_tensor(torch, value: Any, what: str):
    if isinstance(value, np.ndarray):
        value = torch.from_numpy(np.ascontiguousarray(value))
    if not isinstance(value, torch.Tensor):
        raise ExportError(f"{what} must be a torch.Tensor (or numpy array), not {type(value).__name__}")
    if value.ndim == 0:
        raise ExportError(f"{what} is a scalar: every input needs dim 0, the batch axis")
    return value.detach()


def _bind_inputs(torch, model, example_inputs, input_names) -> tuple[list, list[str]]:
    """The example tensors in the order ``forward`` takes them, and their names."""
    params = [p.name for p in inspect.signature(model.forward).parameters.values()
              if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if isinstance(example_inputs, Mapping):
        if input_names is not None:
            raise ExportError("give the input names as the keys of example_inputs or as input_names, not both")
        keys = list(example_inputs)
        if set(keys) <= set(params):
            keys.sort(key=params.index)
        args = [_as_tensor(torch, example_inputs[k], f"example input '{k}'") for k in keys]
        names = _names(keys, len(keys), "input", None)
    else:
        if isinstance(example_inputs, (torch.Tensor, np.ndarray)):
            example_inputs = (example_inputs,)
        if not isinstance(example_inputs, (tuple, list)):
            raise ExportError("example_inputs must be a dict {name: tensor}, a tuple of tensors or a tensor, "
                              f"not {type(example_inputs).__name__}")
        args = [_as_tensor(torch, a, f"example input {i}") for i, a in enumerate(example_inputs)]
        default = params[: len(args)] if len(params) >= len(args) else None
        names = _names(input_names, len(args), "input", default)
    if not args:
        raise ExportError("example_inputs is empty: give one tensor per input of forward()")
    sizes = {n: int(a.shape[0]) for n, a in zip(names, args)}
    if len(set(sizes.values())) != 1:
        raise ExportError(f"the example inputs must share dim 0 (the batch axis); their sizes are {sizes}")
    return args, names


def _call(torch, model, args, where: str) -> list:
    """Run the model; its outputs as a list of tensors."""
    try:
        result = model(*args)
    except Exception as exc:  # noqa: BLE001 - the user's model: say what failed, where
        raise ExportError(f"calling the model {where} failed: {type(exc).__name__}: {exc}") from exc
    outputs = list(result) if isinstance(result, (tuple, list)) else [result]
    if not outputs or not all(isinstance(o, torch.Tensor) for o in outputs):
        raise ExportError("forward() must return a tensor or a tuple/list of tensors, got "
                          f"{type(result).__name__}" + (" (return a tuple instead of a dict)" if isinstance(result, dict) else ""))
    return outputs


def _axes(in_names: list[str], out_names: list[str], ranks: dict[str, int],
          extra: Mapping[str, Sequence[int]]) -> dict:
    axes: dict[str, dict[int, str]] = {n: {0: BATCH_DIM} for n in in_names + out_names}
    for tensor, dims in extra.items():
        if tensor not in axes:
            raise ExportError(f"dynamic_axes names '{tensor}', which is no input or output."
                              + did_you_mean(tensor, axes) + f" Inputs: {in_names}, outputs: {out_names}.")
        for axis in dims:
            if not isinstance(axis, int) or not 1 <= axis < ranks[tensor]:
                raise ExportError(f"dynamic axis {axis!r} of '{tensor}' (rank {ranks[tensor]}) is not one of "
                                  f"its axes 1..{ranks[tensor] - 1}; axis 0, the batch, is always dynamic")
            axes[tensor][axis] = f"n_{tensor}" if axis == 1 else f"n_{tensor}_{axis}"
    return axes


def _export(torch, model, args, path: Path, in_names, out_names, axes, opset: int, name: str) -> list[str]:
    """``torch.onnx.export`` + tidy + ``onnx.checker``; returns the exporter's TracerWarnings."""
    import onnx

    with warnings.catch_warnings(record=True) as caught, _stdout_to_debug_log():
        warnings.simplefilter("always")
        try:
            # the TorchScript exporter: the torch.export-based one (dynamo=True) needs onnxscript
            torch.onnx.export(model, tuple(args), str(path), input_names=in_names, output_names=out_names,
                              dynamic_axes=axes, opset_version=opset, do_constant_folding=True, dynamo=False)
        except Exception as exc:  # noqa: BLE001 - many exporter exception types
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            raise ExportError(f"torch.onnx.export cannot export model '{name}': {type(exc).__name__}: {first}\n"
                              "  Rewrite that part with operations the exporter supports, or try a newer opset "
                              f"(opset= / --opset; this was {opset}).") from exc
    tracer = list(dict.fromkeys(str(w.message).strip() for w in caught
                                if issubclass(w.category, torch.jit.TracerWarning)))
    for message in tracer:
        log.warning("exporter: %s", message)
    proto = onnx.load(str(path))
    for node in proto.graph.node:
        node.doc_string = ""  # source locations: smaller and reproducible files
    proto.producer_name = PRODUCER
    dropped = [n for n in in_names if n not in {i.name for i in proto.graph.input}]
    if dropped:
        log.warning("model '%s': forward() does not use the inputs %s, so the exported graph and config.pbtxt "
                    "leave them out", name, dropped)
    try:
        onnx.checker.check_model(proto, full_check=True)
    except Exception as exc:  # noqa: BLE001 - onnx raises ValidationError and InferenceError
        raise ExportError(f"onnx.checker rejects the exported model '{name}': {exc}") from exc
    onnx.save(proto, str(path))
    return tracer


@contextlib.contextmanager
def _stdout_to_debug_log():
    """Send what is written to file descriptor 1 meanwhile to the debug log: the TorchScript exporter prints
    its whole IR graph there when it fails (torch 2.13 leaves its ONNX log switched on)."""
    sys.stdout.flush()
    saved = os.dup(1)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 1)
        try:
            yield
        finally:
            sys.stdout.flush()
            os.dup2(saved, 1)
            os.close(saved)
            sink.seek(0)
            text = sink.read().decode(errors="replace").strip()
            if text:
                log.debug("exporter output:\n%s", text)


def _compare(torch, model, args, onnx_path: Path, name: str, in_names: list[str], out_names: list[str],
             batch_sizes: Sequence[int], rtol: float, atol: float, seed: int, tracer_warnings: list[str]) -> None:
    """ONNXRuntime (CPU) against torch at each batch size, on rows drawn from the example inputs."""
    from .onnx import ONNXSession

    session = ONNXSession(str(onnx_path), device="cpu", threads=1, name=name)
    rng = np.random.default_rng(seed)
    n_examples = int(args[0].shape[0])
    worst = 0.0
    for batch in batch_sizes:
        rows = torch.from_numpy(rng.integers(0, n_examples, size=int(batch))).to(args[0].device)
        inputs = [a[rows] for a in args]
        with torch.no_grad():
            expected = _call(torch, model, inputs, f"at batch size {batch}")
        got = session.run({n: a.cpu().numpy() for n, a in zip(in_names, inputs) if n in session.inputs}, out_names)
        for out, ref in zip(out_names, expected):
            ref = ref.detach().cpu().numpy()
            res = got[out]
            problem = None
            if res.shape != ref.shape:
                problem = f"onnxruntime gives shape {list(res.shape)}, torch {list(ref.shape)}"
            else:
                res64, ref64 = res.astype(np.float64), ref.astype(np.float64)
                bad = ~np.isclose(res64, ref64, rtol=rtol, atol=atol, equal_nan=True)
                diff = float(np.nanmax(np.abs(res64 - ref64), initial=0.0))
                worst = max(worst, diff)
                if bad.any():
                    problem = (f"max |onnxruntime - torch| = {diff:.3g} ({int(bad.sum())} of {bad.size} values "
                               f"outside rtol {rtol:g}, atol {atol:g})")
            if problem:
                warned = "".join(f"\n    {w.splitlines()[0]}" for w in tracer_warnings[:5])
                raise ExportError(
                    f"model '{name}': output '{out}' at batch size {batch}: {problem}. Nothing was written.\n"
                    + _MISMATCH_HINT
                    + (f"\n  The exporter warned:{warned}" if warned else ""))
    log.info("onnxruntime matches torch at batch sizes %s (max |difference| %.3g)",
             ", ".join(map(str, batch_sizes)), worst)


# ----------------------------------------------------------------------------- command line
def load_factory(spec: str) -> Callable[[], Any]:
    """The function named by ``MODULE:FUNCTION`` (a dotted module importable from here, or a ``.py`` file)."""
    module_name, sep, func_name = spec.rpartition(":")
    if not sep or not module_name or not func_name.isidentifier():
        raise ExportError(f"'{spec}' is not MODULE:FUNCTION, e.g. mymodels.py:make_model or mypkg.models:make_model")
    from_file = module_name.endswith(".py") or os.sep in module_name
    where = module_name if from_file else f"module '{module_name}'"
    try:
        if from_file:
            path = Path(module_name)
            if not path.is_file():
                raise ExportError(f"'{spec}': file {path} does not exist (looked from {Path.cwd()})")
            sys.path.insert(0, str(path.resolve().parent))  # so that the file can import its neighbours
            import_spec = importlib.util.spec_from_file_location(f"_export_{path.stem}", path)
            module = importlib.util.module_from_spec(import_spec)
            import_spec.loader.exec_module(module)
        else:
            module = importlib.import_module(module_name)
    except ExportError:
        raise
    except ModuleNotFoundError as exc:
        if not from_file and exc.name and f"{module_name}.".startswith(f"{exc.name}."):
            raise ExportError(f"cannot import module '{module_name}' ({exc}).\n  Run from the directory that "
                              "holds it, set PYTHONPATH, or give the path of a .py file (path/to/file.py:FUNCTION)."
                              ) from None
        raise ExportError(f"importing {where} failed: {type(exc).__name__}: {exc}") from exc
    except Exception as exc:  # noqa: BLE001 - the user's module
        raise ExportError(f"importing {where} failed: {type(exc).__name__}: {exc}") from exc
    fn = getattr(module, func_name, None)
    if not callable(fn):
        functions = sorted(n for n, v in vars(module).items() if inspect.isfunction(v) and not n.startswith("_")
                           and v.__module__ == module.__name__)
        listed = ", ".join(functions[:10]) + (f" ... ({len(functions)} in all)" if len(functions) > 10 else "")
        raise ExportError(f"{where} has no function '{func_name}'." + did_you_mean(func_name, functions)
                          + f" Its functions: {listed or 'none'}.")
    return fn


def _csv(text: str) -> list[str]:
    return [s.strip() for s in text.split(",") if s.strip()]


def _ints(text: str) -> list[int]:
    try:
        return [int(s) for s in _csv(text)]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def _axis(text: str) -> tuple[str, int]:
    tensor, sep, axis = text.rpartition(":")
    if not sep or not tensor or not axis.isdigit():
        raise argparse.ArgumentTypeError(f"expected NAME:AXIS (e.g. particles:1), got {text!r}")
    return tensor, int(axis)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m framework export-model MODULE:FUNCTION --out DIR --name NAME [options]``."""
    parser = argparse.ArgumentParser(
        prog="python -m framework export-model",
        description="Export a PyTorch model to a Triton model repository (<out>/<name>/config.pbtxt + "
                    "1/model.onnx) and check ONNXRuntime against torch. FUNCTION takes no arguments and returns "
                    "(model, example_inputs): a torch.nn.Module and a dict {input name: tensor} or a tuple of "
                    "tensors, all with the batch as dim 0.")
    parser.add_argument("factory", metavar="MODULE:FUNCTION",
                        help="e.g. mymodels.py:make_model (a file) or mypkg.models:make_model (importable from here)")
    parser.add_argument("--out", required=True, type=Path, help="model repository directory (created if needed)")
    parser.add_argument("--name", required=True, help="model name (the directory <out>/<name>)")
    parser.add_argument("--input-names", type=_csv, help="comma-separated, for a tuple of example inputs")
    parser.add_argument("--output-names", type=_csv, help="comma-separated, one per output of forward()")
    parser.add_argument("--dynamic-axis", type=_axis, action="append", default=[], metavar="NAME:AXIS",
                        help="another variable axis (repeatable), e.g. particles:1; the batch axis 0 always is")
    parser.add_argument("--max-batch-size", type=int, default=DEFAULT_MAX_BATCH_SIZE, help="(default %(default)s)")
    parser.add_argument("--preferred-batch-sizes", type=_ints, default=[], metavar="B,...",
                        help="the dynamic batcher's preferred_batch_size")
    parser.add_argument("--no-dynamic-batching", action="store_true", help="no dynamic_batching block")
    parser.add_argument("--checksum", action="store_true", help="add the checksum agent (MD5 of model.onnx)")
    parser.add_argument("--opset", type=int, default=DEFAULT_OPSET, help="ONNX opset (default %(default)s)")
    parser.add_argument("--model-version", type=int, default=1, help="version directory (default %(default)s)")
    parser.add_argument("--batch-sizes", type=_ints, default=list(DEFAULT_BATCH_SIZES), metavar="B,...",
                        help="batch sizes of the ONNXRuntime-vs-torch check (default 1,7,64)")
    parser.add_argument("--rtol", type=float, default=DEFAULT_RTOL, help="(default %(default)s)")
    parser.add_argument("--atol", type=float, default=DEFAULT_ATOL, help="(default %(default)s)")
    parser.add_argument("--no-check", action="store_true", help="skip the ONNXRuntime-vs-torch comparison")
    args = parser.parse_args(argv)

    factory = load_factory(args.factory)
    try:
        result = factory()
    except Exception as exc:  # noqa: BLE001 - the user's function
        raise ExportError(f"{args.factory}() raised {type(exc).__name__}: {exc}\n"
                          "  (run again with --traceback for the full traceback)") from exc
    if not isinstance(result, (tuple, list)) or len(result) != 2:
        raise ExportError(f"{args.factory}() must return (model, example_inputs), "
                          f"got {type(result).__name__}" + (f" of length {len(result)}" if isinstance(result, (tuple, list)) else ""))
    dynamic_axes: dict[str, list[int]] = {}
    for tensor, axis in args.dynamic_axis:
        dynamic_axes.setdefault(tensor, []).append(axis)
    export_to_triton(
        result[0], result[1], args.out, args.name, input_names=args.input_names, output_names=args.output_names,
        dynamic_axes=dynamic_axes, max_batch_size=args.max_batch_size,
        dynamic_batching=False if args.no_dynamic_batching else (args.preferred_batch_sizes or True),
        checksum=args.checksum, opset=args.opset, version=args.model_version, check=not args.no_check,
        batch_sizes=args.batch_sizes, rtol=args.rtol, atol=args.atol)
    return 0
