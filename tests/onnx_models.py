"""Tiny ONNX models and Triton repositories for tests, built with ``onnx.helper`` in a temporary directory.

Every ``make_*`` function writes ``<repo>/<name>/config.pbtxt`` (with Triton's protobuf classes) and the model
files, and returns a :class:`ModelSpec` that knows the model's inputs and outputs, can draw random inputs
(:meth:`ModelSpec.random_inputs`) and compute the expected outputs with ONNXRuntime directly
(:meth:`ModelSpec.expected`). ``make_repository`` builds a repository with the standard set used by tests.

    affine      y = x * scale + offset, input dims configurable (default [-1, 4], batched, dynamic batching)
    multi_io    names with ':' and '/', two FP32 inputs + one INT64 input, four outputs
    fixed       no batching (max_batch_size 0), fixed dims [5, 3] -> [5, 2] (MatMul)
    slow        Python-backend model that sleeps ``delay_s`` and returns its input (timeout tests)
    broken      ONNX config whose model.onnx is garbage (load failure)
"""

from __future__ import annotations

import hashlib
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
from google.protobuf import text_format
from onnx import TensorProto, helper, numpy_helper
from tritonclient.grpc import model_config_pb2 as mc

OPSET = 17
IR_VERSION = 8

_NP_TO_ONNX = {np.dtype("float32"): TensorProto.FLOAT, np.dtype("float64"): TensorProto.DOUBLE,
               np.dtype("int64"): TensorProto.INT64, np.dtype("int32"): TensorProto.INT32}
_NP_TO_TRITON = {np.dtype("float32"): "TYPE_FP32", np.dtype("float64"): "TYPE_FP64",
                 np.dtype("int64"): "TYPE_INT64", np.dtype("int32"): "TYPE_INT32"}


@dataclass
class TensorSpec:
    name: str
    dims: list[int]
    """Triton dims, without the batch dimension when the model batches; -1 = variable."""
    dtype: np.dtype


@dataclass
class ModelSpec:
    name: str
    path: Path
    """The model directory ``<repo>/<name>``."""
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    max_batch_size: int
    onnx_path: Path | None = None
    extra: dict = field(default_factory=dict)

    @property
    def input_names(self) -> list[str]:
        return [t.name for t in self.inputs]

    @property
    def output_names(self) -> list[str]:
        return [t.name for t in self.outputs]

    def random_inputs(self, batch: int = 2, *, variable: int = 3, seed: int = 0) -> dict[str, np.ndarray]:
        """Random inputs; ``batch`` entries when the model batches, ``-1`` dims replaced by ``variable``."""
        rng = np.random.default_rng(seed)
        feeds = {}
        for t in self.inputs:
            shape = [variable if d < 0 else d for d in t.dims]
            if self.max_batch_size > 0:
                shape = [batch, *shape]
            if np.issubdtype(t.dtype, np.integer):
                feeds[t.name] = rng.integers(-50, 50, size=shape).astype(t.dtype)
            else:
                feeds[t.name] = rng.normal(size=shape).astype(t.dtype)
        return feeds

    def expected(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The outputs of ONNXRuntime run directly on the model file."""
        assert self.onnx_path is not None, f"{self.name} has no ONNX file"
        return run_onnxruntime(self.onnx_path, feeds, self.output_names)


def run_onnxruntime(onnx_path: str | Path, feeds: dict[str, np.ndarray],
                    output_names: list[str] | None = None) -> dict[str, np.ndarray]:
    """Run an ONNX file with ONNXRuntime on the CPU; outputs by name."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    names = output_names or [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, feeds), strict=True))


def md5(path: str | Path) -> str:
    return hashlib.md5(Path(path).read_bytes()).hexdigest()


def tamper(path: str | Path, offset: int = -16) -> None:
    """Flip one byte of a file (default: near its end, inside the weights)."""
    data = bytearray(Path(path).read_bytes())
    data[offset] ^= 0xFF
    Path(path).write_bytes(bytes(data))


# ----------------------------------------------------------------------------- writers
def write_config(model_dir: Path, name: str, inputs: list[TensorSpec], outputs: list[TensorSpec], *,
                 max_batch_size: int, platform: str = "onnxruntime_onnx", backend: str = "",
                 dynamic_batching: bool = True, preferred_batch_size: list[int] | None = None,
                 checksum: dict[str, str] | None = None, labels: dict[str, str] | None = None,
                 parameters: dict[str, str] | None = None, graph_level: int | None = None,
                 max_queue_delay_us: int = 0) -> mc.ModelConfig:
    """Write ``config.pbtxt`` with the protobuf classes; ``labels`` maps output name -> label file name."""
    config = mc.ModelConfig(name=name, max_batch_size=max_batch_size)
    if platform:
        config.platform = platform
    if backend:
        config.backend = backend
    for t in inputs:
        config.input.add(name=t.name, data_type=mc.DataType.Value(_NP_TO_TRITON[np.dtype(t.dtype)]), dims=t.dims)
    for t in outputs:
        out = config.output.add(name=t.name, data_type=mc.DataType.Value(_NP_TO_TRITON[np.dtype(t.dtype)]),
                                dims=t.dims)
        if labels and t.name in labels:
            out.label_filename = labels[t.name]
    if dynamic_batching and max_batch_size > 0:
        config.dynamic_batching.SetInParent()
        if preferred_batch_size:
            config.dynamic_batching.preferred_batch_size.extend(preferred_batch_size)
        config.dynamic_batching.max_queue_delay_microseconds = max_queue_delay_us
    if graph_level is not None:
        config.optimization.graph.level = graph_level
    if checksum:
        agent = config.model_repository_agents.agents.add(name="checksum")
        for key, value in checksum.items():
            agent.parameters[key] = value
    for key, value in (parameters or {}).items():
        config.parameters[key].string_value = value
    model_dir.mkdir(parents=True, exist_ok=True)
    (model_dir / "config.pbtxt").write_text(text_format.MessageToString(config))
    return config


def _value_info(t: TensorSpec, batched: bool, prefix: str) -> onnx.ValueInfoProto:
    shape: list = [f"{prefix}_d{i}" if d < 0 else d for i, d in enumerate(t.dims)]
    if batched:
        shape = ["batch", *shape]
    return helper.make_tensor_value_info(t.name, _NP_TO_ONNX[np.dtype(t.dtype)], shape)


def _save_onnx(graph: onnx.GraphProto, path: Path) -> None:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="tests")
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))


def _finish(repo: Path, name: str, nodes: list, inputs: list[TensorSpec], outputs: list[TensorSpec],
            initializers: list, max_batch_size: int, *, version: int = 1, checksum: bool = False,
            labels: dict[str, list[str]] | None = None, **config_kw) -> ModelSpec:
    model_dir = Path(repo) / name
    batched = max_batch_size > 0
    graph = helper.make_graph(nodes, name,
                              [_value_info(t, batched, f"in{i}") for i, t in enumerate(inputs)],
                              [_value_info(t, batched, f"out{i}") for i, t in enumerate(outputs)],
                              initializer=initializers)
    onnx_path = model_dir / str(version) / "model.onnx"
    _save_onnx(graph, onnx_path)
    label_files = {}
    for output, names in (labels or {}).items():
        filename = f"{name}_labels.txt"
        (model_dir / filename).write_text("\n".join(names) + "\n")
        label_files[output] = filename
    sums = {f"MD5:{version}/model.onnx": md5(onnx_path)} if checksum else None
    write_config(model_dir, name, inputs, outputs, max_batch_size=max_batch_size, checksum=sums,
                 labels=label_files, **config_kw)
    return ModelSpec(name, model_dir, inputs, outputs, max_batch_size, onnx_path)


# ----------------------------------------------------------------------------- models
def make_affine_model(repo: str | Path, name: str = "affine", *, input_dims: list[int] | tuple = (-1, 4),
                      max_batch_size: int = 8, scale: float = 2.0, offset: float = 1.0,
                      input_name: str = "INPUT", output_name: str = "OUTPUT", dtype: str = "float32",
                      checksum: bool = False, labels: list[str] | None = None, version: int = 1,
                      **config_kw) -> ModelSpec:
    """``output = input * scale + offset`` (same dims). ``checksum`` adds the CMS MD5 checksum agent."""
    dt = np.dtype(dtype)
    inp = TensorSpec(input_name, list(input_dims), dt)
    out = TensorSpec(output_name, list(input_dims), dt)
    inits = [numpy_helper.from_array(np.array(scale, dtype=dt), "scale"),
             numpy_helper.from_array(np.array(offset, dtype=dt), "offset")]
    nodes = [helper.make_node("Mul", [input_name, "scale"], ["scaled"]),
             helper.make_node("Add", ["scaled", "offset"], [output_name])]
    return _finish(repo, name, nodes, [inp], [out], inits, max_batch_size, version=version, checksum=checksum,
                   labels={output_name: labels} if labels else None, **config_kw)


def make_multi_io_model(repo: str | Path, name: str = "multi_io", *, features: int = 3,
                        max_batch_size: int = 16, **config_kw) -> ModelSpec:
    """Inputs ``x:0``, ``y/in:0`` (FP32 [features]) and ``n:0`` (INT64 [2]); outputs ``sum:0`` = x+y,
    ``prod/Mul:0`` = x*y, ``norm:0`` = sum(x*x) ([1]) and ``n_plus_one:0`` = n+1 (INT64)."""
    f32, i64 = np.dtype("float32"), np.dtype("int64")
    inputs = [TensorSpec("x:0", [features], f32), TensorSpec("y/in:0", [features], f32), TensorSpec("n:0", [2], i64)]
    outputs = [TensorSpec("sum:0", [features], f32), TensorSpec("prod/Mul:0", [features], f32),
               TensorSpec("norm:0", [1], f32), TensorSpec("n_plus_one:0", [2], i64)]
    inits = [numpy_helper.from_array(np.array([-1], dtype=np.int64), "axes"),
             numpy_helper.from_array(np.array(1, dtype=np.int64), "one")]
    nodes = [helper.make_node("Add", ["x:0", "y/in:0"], ["sum:0"]),
             helper.make_node("Mul", ["x:0", "y/in:0"], ["prod/Mul:0"]),
             helper.make_node("Mul", ["x:0", "x:0"], ["sq"]),
             helper.make_node("ReduceSum", ["sq", "axes"], ["norm:0"], keepdims=1),
             helper.make_node("Add", ["n:0", "one"], ["n_plus_one:0"])]
    return _finish(repo, name, nodes, inputs, outputs, inits, max_batch_size, **config_kw)


def make_fixed_model(repo: str | Path, name: str = "fixed", *, rows: int = 5, features: int = 3,
                     out_features: int = 2, seed: int = 1, **config_kw) -> ModelSpec:
    """No batching (``max_batch_size: 0``): ``OUTPUT [rows, out_features] = INPUT [rows, features] @ W``."""
    f32 = np.dtype("float32")
    weights = np.random.default_rng(seed).normal(size=(features, out_features)).astype(f32)
    inputs = [TensorSpec("INPUT", [rows, features], f32)]
    outputs = [TensorSpec("OUTPUT", [rows, out_features], f32)]
    nodes = [helper.make_node("MatMul", ["INPUT", "W"], ["OUTPUT"])]
    return _finish(repo, name, nodes, inputs, outputs, [numpy_helper.from_array(weights, "W")], 0,
                   dynamic_batching=False, **config_kw)


_SLOW_MODEL_PY = textwrap.dedent('''\
    """Test model: sleeps `delay_s` (config parameter), then returns its input."""
    import json
    import time

    import triton_python_backend_utils as pb_utils


    class TritonPythonModel:
        def initialize(self, args):
            config = json.loads(args["model_config"])
            self.delay = float(config["parameters"]["delay_s"]["string_value"])

        def execute(self, requests):
            time.sleep(self.delay)
            responses = []
            for request in requests:
                x = pb_utils.get_input_tensor_by_name(request, "INPUT").as_numpy()
                responses.append(pb_utils.InferenceResponse([pb_utils.Tensor("OUTPUT", x.copy())]))
            return responses
    ''')


def make_slow_model(repo: str | Path, name: str = "slow", *, delay_s: float = 2.0, dims: list[int] | tuple = (4,),
                    max_batch_size: int = 8) -> ModelSpec:
    """Python-backend model that sleeps ``delay_s`` per execution and returns its input (FP32)."""
    f32 = np.dtype("float32")
    model_dir = Path(repo) / name
    inputs, outputs = [TensorSpec("INPUT", list(dims), f32)], [TensorSpec("OUTPUT", list(dims), f32)]
    config = write_config(model_dir, name, inputs, outputs, max_batch_size=max_batch_size, platform="",
                          backend="python", parameters={"delay_s": str(delay_s)})
    group = config.instance_group.add(count=1, kind=mc.ModelInstanceGroup.KIND_CPU)
    del group
    (model_dir / "config.pbtxt").write_text(text_format.MessageToString(config))
    (model_dir / "1").mkdir(parents=True, exist_ok=True)
    (model_dir / "1" / "model.py").write_text(_SLOW_MODEL_PY)
    return ModelSpec(name, model_dir, inputs, outputs, max_batch_size, None, {"delay_s": delay_s})


def make_broken_model(repo: str | Path, name: str = "broken") -> ModelSpec:
    """An ONNX model whose ``model.onnx`` is not ONNX: the server fails to load it."""
    spec = make_affine_model(repo, name)
    assert spec.onnx_path is not None
    spec.onnx_path.write_bytes(b"this is not an ONNX file\n")
    return spec


def make_repository(root: str | Path, *, slow: bool = False, delay_s: float = 2.0) -> dict[str, ModelSpec]:
    """A repository ``root`` with ``affine`` (with labels and checksum), ``multi_io``, ``fixed`` and, when
    ``slow``, the ``slow`` Python-backend model. Returns the specs by name."""
    root = Path(root)
    specs = [make_affine_model(root, "affine", checksum=True, labels=["a", "b", "c", "d"], preferred_batch_size=[4],
                               graph_level=-1),
             make_multi_io_model(root, "multi_io"),
             make_fixed_model(root, "fixed")]
    if slow:
        specs.append(make_slow_model(root, "slow", delay_s=delay_s))
    return {s.name: s for s in specs}


# ----------------------------------------------------------------------------- process helpers for server tests
def process_group(pgid: int) -> list[int]:
    """PIDs of the live (non-zombie) processes whose process group is ``pgid`` (read from /proc)."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        fields = text[text.rfind(")") + 2:].split()
        if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            pids.append(int(stat.parent.name))
    return sorted(pids)


def pid_alive(pid: int) -> bool:
    """True when ``pid`` exists and is not a zombie."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return text[text.rfind(")") + 2:].split()[0] not in ("Z", "X")


def _hex_address(text: str) -> tuple[str, int]:
    address, port = text.split(":")
    raw = bytes.fromhex(address)
    if len(raw) == 4:
        ip = ".".join(str(b) for b in raw[::-1])
    else:  # IPv6: four little-endian 32-bit words
        import ipaddress

        address6 = ipaddress.IPv6Address(b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4)))
        ip = str(address6.ipv4_mapped or address6)  # gRPC listens on ::ffff:127.0.0.1
    return ip, int(port, 16)


def listening_sockets(pids: list[int]) -> list[tuple[str, int]]:
    """(address, port) of every TCP socket in LISTEN state owned by one of ``pids`` (from /proc/net/tcp{,6})."""
    inodes = set()
    for pid in pids:
        for fd in Path(f"/proc/{pid}/fd").glob("*"):
            try:
                target = fd.readlink().as_posix()
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            cols = line.split()
            if cols[3] == "0A" and cols[9] in inodes:  # 0A = LISTEN
                found.append(_hex_address(cols[1]))
    return sorted(found)
