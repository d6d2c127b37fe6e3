"""NuGraph3 twins in ``configs/nugraph3_cfg.py``: the direct job (preprocessing and network in the job) against
the same computation done by hand, on generated and on the two real events; the SONIC twin (the project's
Python-backend model on the bundled tritonserver) against the direct one over gRPC and over HTTP; batching of
several events into one ``execute`` under 8 streams (proved by the server's statistics), each event getting its
own outputs; the reference server's unbatched layout; bad input.

Model: the bundled ``data/models/nugraph3`` when its checkpoint exists, else the real checkpoint of ../shared in
a directory without ``config.pbtxt`` (served with the project's config). Direct vs SONIC tolerance: every value
within ``TOL * max(1, |value|)`` (1e-5 absolute on the probabilities; relative on the vertex, in cm): the server
batches several events into one graph, which changes float32 rounding (measured: <= 3e-6 on the probabilities).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import awkward as ak
import h5py
import numpy as np
import pytest

from framework.config.types import plain
from framework.configloader import load_config
from framework.exceptions import ConfigurationError, InputError
from framework.samples import generate_nugraph
from framework.server import LocalTritonServer
from framework.server.repository import read_model_config
from framework.sonic.client import TritonClient
from framework.sonic.errors import TritonServerError
from framework.sonic.transport import ServerAddress, make_transport
from producers.nugraph3.common import EVENT_CLASSES, SEMANTIC_CLASSES, product_instances, softmax
from producers.nugraph3.model_repo import check_model_dir, model_config, served_model_dir, write_model_config
from producers.nugraph3.network import load_network, run_network
from producers.nugraph3.preprocess import INPUT_DTYPES, PLANES, build_graph
from tests.main_fixtures import (
    REPO_ROOT,
    SERVER_MARKS,
    SERVER_OK,
    SERVER_REASON,
    in_repo,
    read_output,
    run_main,
)
from tests.nugraph_events import CHECKPOINT, NUGRAPH_DIR, need, reference
from tests.test_io_nugraph import read_events

CONFIG = REPO_ROOT / "configs" / "nugraph3_cfg.py"
BUNDLED = REPO_ROOT / "data" / "models" / "nugraph3"
REAL_FILES = (NUGRAPH_DIR / "NeutrinoML_rishi.h5", NUGRAPH_DIR / "nugraph3_raw_event.h5")
LABEL = "nuGraph3"
EVENTS = 10
TOL = 1e-5


# ----------------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    """The bundled model when trained, else the real checkpoint in a directory without config.pbtxt."""
    if (BUNDLED / "1" / "hierarchical.ckpt").is_file():
        return BUNDLED
    real = need(CHECKPOINT)
    path = tmp_path_factory.mktemp("nugraph3_model") / "nugraph3"
    (path / "1").mkdir(parents=True)
    (path / "1" / "hierarchical.ckpt").symlink_to(real)
    return path


@pytest.fixture(scope="module")
def events_file(tmp_path_factory) -> Path:
    return generate_nugraph(tmp_path_factory.mktemp("nugraph_events") / "events.h5", EVENTS, 11)


@pytest.fixture(scope="module")
def direct_run(tmp_path_factory, model_dir, events_file):
    out = tmp_path_factory.mktemp("nugraph_direct") / "direct.root"
    return run_main(out, f"inputFiles={events_file}", f"nugraphModel={model_dir}", config=CONFIG)


@pytest.fixture(scope="module")
def server(model_dir, tmp_path_factory):
    """A running bundled server with our NuGraph3 model (``nugraph3``) and the same network in the reference's
    unbatched layout (``nugraph3_ref``: max_batch_size 0, 1-D tensors)."""
    if not SERVER_OK:
        pytest.skip(SERVER_REASON)
    repo = tmp_path_factory.mktemp("nugraph_repo")
    served = served_model_dir(model_dir)
    (repo / "nugraph3").symlink_to(served, target_is_directory=True)
    ref = repo / "nugraph3_ref"
    ref.mkdir()
    (ref / "1").symlink_to(served / "1", target_is_directory=True)
    write_model_config(ref / "config.pbtxt", name="nugraph3_ref", max_batch_size=0)
    with LocalTritonServer([repo], device="cpu") as srv:
        yield srv


def _run(*args: str, customise=()) -> None:
    """Run the NuGraph3 config in this process with ``key=value`` *args*."""
    from framework.runner import run_config

    with in_repo():
        run_config(str(CONFIG), list(args), progress=False, customise=customise)


def _tables(ev: dict) -> dict[str, np.ndarray]:
    return {name: np.asarray(ev[name]) for name in INPUT_DTYPES}


def by_hand(checkpoint: Path, events: list[dict]) -> list[dict[str, np.ndarray]]:
    """The branches of each event computed here: graph, network, softmax."""
    net = load_network(checkpoint)
    result = []
    for ev in events:
        tables = _tables(ev)
        out = run_network(net, build_graph(tables))
        values: dict[str, np.ndarray] = {}
        for p in PLANES:
            values[f"filter_{p}"] = out[f"x_filter_{p}"]
            probs = softmax(out[f"x_semantic_{p}"])
            for k, c in enumerate(SEMANTIC_CLASSES):
                values[f"semantic_{p}_{c}"] = probs[:, k]
        for k, c in enumerate(EVENT_CLASSES):
            values[f"event_{c}"] = softmax(out["e_evt"][0])[k]
        for k, c in enumerate("xyz"):
            values[f"vertex_{c}"] = out["v_evt"][0, k]
        result.append(values)
    return result


def assert_branches(arrays: dict[str, ak.Array], events: list[dict], expected: list[dict], tol: float, what: str):
    """The job's branches: every product, one value per hit of each plane in input order, softmaxes summing to 1,
    and equal to *expected* within ``tol * max(1, |value|)``."""
    names = [f"{LABEL}_{i}" for i in product_instances()]
    assert sorted(n for n in arrays if n.startswith(LABEL + "_")) == sorted(names), what
    assert len(arrays[names[0]]) == len(events), what
    for i, (ev, want) in enumerate(zip(events, expected)):
        plane = np.asarray(ev["hit_table_local_plane"])
        for k, p in enumerate(PLANES):
            n = int((plane == k).sum())
            assert len(arrays[f"{LABEL}_filter_{p}"][i]) == n, f"{what}: event {i} plane {p}: {n} hits"
            total = sum(np.asarray(arrays[f"{LABEL}_semantic_{p}_{c}"][i], np.float64) for c in SEMANTIC_CLASSES)
            np.testing.assert_allclose(total, 1.0, atol=1e-5, err_msg=f"{what}: semantic softmax, plane {p}")
        total = sum(float(arrays[f"{LABEL}_event_{c}"][i]) for c in EVENT_CLASSES)
        assert abs(total - 1.0) < 1e-5, f"{what}: event {i}: event softmax sums to {total}"
        for instance, value in want.items():
            got = np.asarray(arrays[f"{LABEL}_{instance}"][i], np.float64)
            value = np.asarray(value, np.float64)
            assert got.shape == value.shape, f"{what}: event {i} {instance}: shape {got.shape} != {value.shape}"
            bound = tol * np.maximum(1.0, np.abs(value))
            assert np.all(np.abs(got - value) <= bound), (
                f"{what}: event {i} {instance}: largest difference {np.abs(got - value).max():.3g}")


def assert_twins_agree(direct: Path, sonic: Path, events: list[dict], what: str) -> None:
    a, b = read_output(direct), read_output(sonic)
    assert ak.to_list(a["event"]) == ak.to_list(b["event"]), f"{what}: different events"
    expected = [{i: np.asarray(a[f"{LABEL}_{i}"][k]) for i in product_instances()} for k in range(len(events))]
    assert_branches(b, events, expected, TOL, what)


# ------------------------------------------------------------------------------------------ the model config
def test_project_config_is_the_spec():
    """data/models/nugraph3/config.pbtxt is what the framework writes for a directory without one."""
    assert read_model_config(BUNDLED / "config.pbtxt") == model_config()
    ref = model_config(max_batch_size=0)
    assert [list(o.dims) for o in ref.output if o.name in ("e_evt", "v_evt")] == [[1, 4], [1, 3]]
    assert not ref.HasField("dynamic_batching") and not any(i.allow_ragged_batch for i in ref.input)


def test_served_model_dir(tmp_path):
    real = tmp_path / "real"
    (real / "1").mkdir(parents=True)
    (real / "1" / "hierarchical.ckpt").write_bytes(b"not read here")
    served = served_model_dir(real)
    assert served != real.resolve() and served.name == "nugraph3"
    assert read_model_config(served / "config.pbtxt") == model_config()
    assert (served / "1" / "hierarchical.ckpt").read_bytes() == b"not read here"
    assert served_model_dir(real) == served, "made once per process"
    write_model_config(real / "config.pbtxt")
    assert served_model_dir(real) == real.resolve(), "a directory with a config.pbtxt is served as it is"


def test_bad_model_dirs(tmp_path):
    with pytest.raises(ConfigurationError, match="does not exist"):
        check_model_dir(tmp_path / "nowhere")
    (tmp_path / "empty" / "1").mkdir(parents=True)
    with pytest.raises(ConfigurationError, match=r"has no \{version\}/hierarchical.ckpt \(found: 1\)"):
        check_model_dir(tmp_path / "empty")


def test_modifier_swaps_the_twin(model_dir):
    direct, _ = load_config(str(CONFIG), ["inputFiles=x.h5"])
    sonic, _ = load_config(str(CONFIG), ["inputFiles=x.h5", "sonic=1", "nugraphModel=../shared/models/nugraph3"])
    assert list(direct.modules_()) == list(sonic.modules_())
    assert direct.nuGraph3.type_() == "NuGraph3Producer" and sonic.nuGraph3.type_() == "NuGraph3SonicProducer"
    assert plain(sonic.nuGraph3.Client.modelName) == "nugraph3"
    assert plain(sonic.nuGraph3.modelDir) == "../shared/models/nugraph3"
    assert plain(sonic.nuGraph3.Client.modelConfigPath) == "", "no config.pbtxt there: made at job start"
    assert "TritonService" in sonic.services_()


# ------------------------------------------------------------------------------------------------ direct job
@pytest.mark.slow
def test_direct_job_equals_by_hand(direct_run, model_dir, events_file):
    events = read_events([events_file], list(INPUT_DTYPES))
    assert len(events) == EVENTS
    expected = by_hand(model_dir / "1" / "hierarchical.ckpt", events)
    assert_branches(direct_run.arrays(), events, expected, 1e-6, "direct job")


@pytest.mark.slow
@pytest.mark.shared
def test_direct_job_on_real_events(tmp_path):
    """Both real events (one file per layout) with the real checkpoint; the small one also against the outputs of
    the public NuGraph3 code (reference npz)."""
    files = [need(f) for f in REAL_FILES]
    need(CHECKPOINT)
    run = run_main(tmp_path / "real.root", f"inputFiles={','.join(map(str, files))}",
                   "nugraphModel=../shared/models/nugraph3", config=CONFIG)
    events = read_events(files, list(INPUT_DTYPES))
    assert [len(e["hit_table_hit_id"]) for e in events] == [189, 1284]
    arrays = run.arrays()
    assert_branches(arrays, events, by_hand(CHECKPOINT, events), 1e-6, "direct job, real events")
    ref = reference()
    for p in PLANES:
        np.testing.assert_allclose(np.asarray(arrays[f"{LABEL}_filter_{p}"][0]), ref[f"x_filter_{p}"], atol=3e-5)
        probs = softmax(ref[f"x_semantic_{p}"])
        got = np.stack([np.asarray(arrays[f"{LABEL}_semantic_{p}_{c}"][0]) for c in SEMANTIC_CLASSES], axis=1)
        np.testing.assert_allclose(got, probs, atol=3e-5)


# ------------------------------------------------------------------------------------------------- SONIC
@pytest.mark.slow
@pytest.mark.parametrize("protocol", [pytest.param(p, marks=SERVER_MARKS) for p in ("grpc", "http")])
def test_sonic_equals_direct(protocol, direct_run, model_dir, events_file, tmp_path):
    """The job's local fallback server (the bundled tritonserver, started by the job) over each protocol."""
    run = run_main(tmp_path / f"sonic_{protocol}.root", f"inputFiles={events_file}", f"nugraphModel={model_dir}",
                   "sonic=1", f"protocol={protocol}", config=CONFIG)
    assert run.fallback_started()
    events = read_events([events_file], list(INPUT_DTYPES))
    assert_twins_agree(direct_run.output, run.output, events, f"SONIC over {protocol}")


def _statistics(server: LocalTritonServer, model: str) -> tuple[int, int, dict[int, int]]:
    """(requests, executions, executions by batch size) of *model* so far."""
    transport = make_transport(ServerAddress(server.grpc_address, True))
    try:
        stats = transport.statistics(model)
    finally:
        transport.close()
    requests = sum(int(s.get("inference_count", 0)) for s in stats)
    executions = sum(int(s.get("execution_count", 0)) for s in stats)
    by_size: dict[int, int] = {}
    for s in stats:
        for b in s.get("batch_stats", []):
            by_size[int(b["batch_size"])] = by_size.get(int(b["batch_size"]), 0) + int(b["compute_infer"]["count"])
    return requests, executions, by_size


def _sonic_on(server: LocalTritonServer, model: str, output: Path, events_file: Path, model_dir: Path, streams: int,
              protocol: str = "grpc") -> tuple[int, int, dict[int, int]]:
    """Run the SONIC job against *server*'s *model*; (requests, executions, executions by batch size) it caused."""
    served = Path(server.repositories[0]) / model

    def use_model(process):
        process.nuGraph3.Client.modelName = model
        process.nuGraph3.Client.modelConfigPath = str(served / "config.pbtxt")

    port = server.http_port if protocol == "http" else server.grpc_port
    before = _statistics(server, model)
    _run(f"inputFiles={events_file}", f"nugraphModel={model_dir}", "sonic=1", "address=127.0.0.1", f"port={port}",
         f"protocol={protocol}", f"numStreams={streams}", f"outputFile={output}", customise=[use_model])
    after = _statistics(server, model)
    sizes = {k: v - before[2].get(k, 0) for k, v in after[2].items() if v > before[2].get(k, 0)}
    return after[0] - before[0], after[1] - before[1], sizes


@pytest.mark.slow
@pytest.mark.triton
def test_events_batched_across_streams(server, direct_run, model_dir, events_file, tmp_path):
    """8 streams: Triton hands one execute several events of different sizes; each gets its own outputs."""
    out = tmp_path / "batched.root"
    requests, executions, sizes = _sonic_on(server, "nugraph3", out, events_file, model_dir, 8)
    assert requests == EVENTS
    assert executions < requests and max(sizes) > 1, (
        f"no batching: {requests} requests in {executions} executions, by batch size {sizes}")
    events = read_events([events_file], list(INPUT_DTYPES))
    assert len({len(e["hit_table_hit_id"]) for e in events}) == EVENTS, "events of different sizes"
    assert_twins_agree(direct_run.output, out, events, f"8 streams, executions by batch size {sizes}")


@pytest.mark.slow
@pytest.mark.triton
def test_reference_layout_unbatched(server, direct_run, model_dir, events_file, tmp_path):
    """A server model in the reference's layout (max_batch_size 0, 1-D tensors): one event per execute."""
    out = tmp_path / "unbatched.root"
    requests, executions, _ = _sonic_on(server, "nugraph3_ref", out, events_file, model_dir, 4)
    assert requests == executions == EVENTS
    events = read_events([events_file], list(INPUT_DTYPES))
    assert_twins_agree(direct_run.output, out, events, "reference layout")


@pytest.mark.slow
@pytest.mark.triton
def test_protocols_give_identical_outputs(server, model_dir, events_file, tmp_path):
    """One stream (no merging of events): gRPC and HTTP give bit-identical branches."""
    outputs = {}
    for protocol in ("grpc", "http"):
        outputs[protocol] = tmp_path / f"{protocol}.root"
        requests, executions, _ = _sonic_on(server, "nugraph3", outputs[protocol], events_file, model_dir, 1, protocol)
        assert requests == executions == EVENTS, protocol
    a, b = read_output(outputs["grpc"]), read_output(outputs["http"])
    assert sorted(a) == sorted(b)
    for name in a:
        assert ak.to_list(a[name]) == ak.to_list(b[name]), f"{name} differs between gRPC and HTTP"


@pytest.mark.triton
def test_server_rejects_a_bad_event(server):
    """A request whose tables disagree gets its own error from the server, naming the model and the problem."""
    tables = {name: np.zeros(3, dtype=dtype) for name, dtype in INPUT_DTYPES.items()}
    tables["hit_table_rms"] = np.zeros(2, np.float32)
    with TritonClient({"modelName": "nugraph3", "mode": "Sync"}, server=server.http_address, protocol="http") as c:
        c.setBatchSize(1)
        for name, array in tables.items():
            c.input[name].toServer(array[None])
        with pytest.raises(TritonServerError, match="must have the same length.*hit_table_rms=2"):
            c.evaluate()


# ----------------------------------------------------------------------------------------------- bad input


def test_missing_table_is_a_clear_error(events_file, model_dir, tmp_path):
    bad = tmp_path / "no_spacepoints.h5"
    shutil.copy(events_file, bad)
    with h5py.File(bad, "a") as f:
        del f["spacepoint_table"]
    out = tmp_path / "out.root"
    result = subprocess.run([sys.executable, "-m", "framework", "run", str(CONFIG), f"inputFiles={bad}",
                             f"nugraphModel={model_dir}", f"outputFile={out}"], cwd=REPO_ROOT, capture_output=True,
                            text=True, timeout=300)
    message = result.stderr
    assert result.returncode != 0 and "Traceback" not in message, message
    assert "spacepoint_table" in message and "nuGraph3Inputs" in message and str(bad) in message, message
    assert not out.exists()


def test_bad_plane_is_a_clear_error(events_file, model_dir, tmp_path):
    bad = tmp_path / "bad_plane.h5"
    shutil.copy(events_file, bad)
    with h5py.File(bad, "a") as f:
        f["hit_table"]["local_plane"][5, 0] = 7
    out = tmp_path / "out.root"
    with pytest.raises(Exception) as err:
        _run(f"inputFiles={bad}", f"nugraphModel={model_dir}", f"outputFile={out}", "maxEvents=1")
    message = str(err.value)
    assert "hit_table_local_plane must be 0, 1 or 2" in message and "nuGraph3Inputs" in message, message
    assert not out.exists()


@pytest.mark.parametrize("sonic, message", [
    ("0", r"NuGraph3 checkpoint '.*nugraph3/1/hierarchical.ckpt' does not exist"),
    ("1", r"NuGraph3 model directory '.*nugraph3' has no \{version\}/hierarchical.ckpt"),
])
def test_model_without_checkpoint_is_a_clear_error(events_file, tmp_path, sonic, message):
    model = tmp_path / "nugraph3"
    (model / "1").mkdir(parents=True)
    out = tmp_path / "out.root"
    with pytest.raises((ConfigurationError, InputError), match=message):
        _run(f"inputFiles={events_file}", f"nugraphModel={model}", f"outputFile={out}", f"sonic={sonic}")
    assert not out.exists()
