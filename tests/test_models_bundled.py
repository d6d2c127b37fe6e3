"""The project's own models in ``data/models`` (trained by ``scripts/train_part.py`` / ``train_deepmet.py``).

They must be drop-in replacements of the real CMS models: the same I/O (names, dtypes, dims) as the models
in ``../shared/models`` and as their own ``config.pbtxt``, the MD5 of ``model.onnx`` in the checksum agent,
outputs that do not depend on zero padding, and physics performance on held-out generated events (a seed
the training scripts never use): ParT b-vs-light AUC >= 0.85, DeepMET resolution better than raw PF MET.

No torch here: the models run with ONNXRuntime, the inputs come from the producers' feature builders.
"""

from __future__ import annotations

import hashlib
import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
MODELS = REPO_ROOT / "data" / "models"
SHARED_MODELS = REPO_ROOT.parent / "shared" / "models"
PART = "particletransformer_AK4"
DEEPMET = "deepmet"
BUNDLED = (PART, DEEPMET)

#: held-out sample: a seed the training scripts do not use (train_part: 101, train_deepmet: 202)
HELDOUT_SEED = 777_001
HELDOUT_EVENTS = 2000
AUC_MIN = 0.85
PART_LABELS = ["b", "bb", "lepb", "c", "uds", "g"]
PART_SLOTS = {"input_1": 25, "input_2": 25, "input_3": 5, "input_4": 25, "input_5": 25, "input_6": 5}
DEEPMET_NAMES = {"input": "input:0", "input_cat0": "input_cat0:0", "input_cat1": "input_cat1:0",
                 "input_cat2": "input_cat2:0"}
DEEPMET_OUTPUT = "output/BiasAdd:0"
NORM = 50.0


def _training_common():
    spec = importlib.util.spec_from_file_location("training_common", REPO_ROOT / "scripts" / "training_common.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


tc = _training_common()


def model_path(name: str, root: Path = MODELS) -> Path:
    return root / name / "1" / "model.onnx"


def session(path: Path):
    if not path.is_file():
        pytest.fail(f"{path} is missing: run scripts/train_part.py / scripts/train_deepmet.py", pytrace=False)
    return tc.ort_session(path, threads=2)


def io_signature(path: Path) -> dict[str, list[tuple[str, str, list[int]]]]:
    """(name, type, dims) of every input and output, a dynamic dim (named or not) as -1."""
    sess = session(path)

    def sig(args):
        return [(a.name, a.type, [d if isinstance(d, int) else -1 for d in a.shape]) for a in args]

    return {"inputs": sig(sess.get_inputs()), "outputs": sig(sess.get_outputs())}


def md5_from_config(config) -> str | None:
    for agent in config.model_repository_agents.agents:
        if agent.name == "checksum":
            return agent.parameters.get("MD5:1/model.onnx")
    return None


def pad_slots(feeds: dict[str, np.ndarray], slots: dict[str, int]) -> dict[str, np.ndarray]:
    """Cut or zero-pad axis 1 of every input to ``slots[name]``."""
    out = {}
    for name, a in feeds.items():
        n = slots[name]
        b = np.zeros((a.shape[0], n, a.shape[2]), np.float32)
        k = min(n, a.shape[1])
        b[:, :k] = a[:, :k]
        out[name] = b
    return out


# ------------------------------------------------------------------------------ held-out sample


@pytest.fixture(scope="module")
def heldout_file(tmp_path_factory, generate_sample) -> Path:
    path = tmp_path_factory.mktemp("heldout") / "heldout.root"
    generate_sample(path, HELDOUT_EVENTS, HELDOUT_SEED)
    return path


def _columns(path, names):
    """The batch builders' input: every event of *path* as columns."""
    import uproot

    from framework.io.chunk import columns_of

    with uproot.open(path) as f:
        return columns_of(f["Events"].arrays(list(names), library="ak"), names)


@pytest.fixture(scope="module")
def part_heldout(heldout_file):
    """ParT inputs of every held-out jet with candidates (padded to the maximum slots), its hadron
    flavour, and the bundled model's scores."""
    from producers.particle_transformer_ak4.features import INPUT_BRANCHES, build_part_inputs

    parts: dict[str, list[np.ndarray]] = {name: [] for name in PART_SLOTS}
    flavour = []
    batch = build_part_inputs(_columns(heldout_file, INPUT_BRANCHES))
    for i, ev in enumerate(tc.iter_events(heldout_file)):
        inputs, has_candidates = batch.event(i)
        keep = np.asarray(has_candidates, bool)
        if not keep.any():
            continue
        for name, a in pad_slots({k: v[keep] for k, v in inputs.items()}, PART_SLOTS).items():
            parts[name].append(a)
        flavour.append(np.asarray(ev["Jet_hadronFlavour"])[: len(keep)][keep])
    feeds = {k: np.concatenate(v) for k, v in parts.items()}
    scores = tc.run_onnx(session(model_path(PART)), feeds)["softmax"]
    return feeds, np.concatenate(flavour), scores


@pytest.fixture(scope="module")
def deepmet_heldout(heldout_file):
    """Per held-out event: the bundled DeepMET's MET, raw PF MET and GenMET (px, py in GeV)."""
    from producers.deepmet.features import INPUT_BRANCHES, build_deepmet_inputs

    inputs = build_deepmet_inputs(_columns(heldout_file, INPUT_BRANCHES))
    sess = session(model_path(DEEPMET))
    predicted, pf, gen, batch = [], [], [], []

    def flush():
        feeds = {DEEPMET_NAMES[k]: np.concatenate([b[k] for b in batch]) for k in DEEPMET_NAMES}
        predicted.append(sess.run([DEEPMET_OUTPUT], feeds)[0] * NORM)
        batch.clear()

    for i, ev in enumerate(tc.iter_events(heldout_file)):
        batch.append(inputs.event(i).inputs)
        pt = np.asarray(ev["PFCands_pt"], np.float64)
        phi = np.asarray(ev["PFCands_phi"], np.float64)
        pf.append((-np.sum(pt * np.cos(phi)), -np.sum(pt * np.sin(phi))))
        gpt, gphi = float(ev["GenMET_pt"]), float(ev["GenMET_phi"])
        gen.append((gpt * math.cos(gphi), gpt * math.sin(gphi)))
        if len(batch) == 16:
            flush()
    if batch:
        flush()
    return np.concatenate(predicted), np.asarray(pf), np.asarray(gen)


# ------------------------------------------------------------------------------ files and I/O


@pytest.mark.parametrize("name", BUNDLED)
def test_md5_in_config_matches_model(name):
    config = tc.parse_model_config(MODELS / name / "config.pbtxt")
    expected = md5_from_config(config)
    assert expected, f"{name}/config.pbtxt has no checksum agent with key MD5:1/model.onnx"
    actual = hashlib.md5(model_path(name).read_bytes()).hexdigest()
    assert actual == expected, f"{name}: MD5 of 1/model.onnx is {actual}, config.pbtxt says {expected}"


@pytest.mark.parametrize("name", BUNDLED)
def test_model_is_small_and_runs_with_opset_17(name):
    import onnx

    size = model_path(name).stat().st_size
    assert size < 3 * 1024**2, f"{name}/1/model.onnx is {size / 1024**2:.1f} MB (limit 3 MB)"
    model = onnx.load(str(model_path(name)))
    opsets = {o.domain or "ai.onnx": o.version for o in model.opset_import}
    assert opsets.get("ai.onnx", 0) <= 17, f"{name}: opset {opsets}"


@pytest.mark.parametrize("name", BUNDLED)
def test_io_matches_own_config(name):
    config = tc.parse_model_config(MODELS / name / "config.pbtxt")
    from tritonclient.grpc import model_config_pb2 as mc

    assert config.name == name
    assert config.platform == "onnxruntime_onnx"
    assert config.max_batch_size > 0
    sig = io_signature(model_path(name))
    for kind, declared in (("inputs", config.input), ("outputs", config.output)):
        model_io = {n: (t, dims) for n, t, dims in sig[kind]}
        assert [t.name for t in declared] == [n for n, _, _ in sig[kind]], f"{name} {kind} names differ"
        for t in declared:
            onnx_type, dims = model_io[t.name]
            assert t.data_type == mc.TYPE_FP32 and onnx_type == "tensor(float)", f"{name} {t.name}: {onnx_type}"
            assert dims[0] == -1, f"{name} {t.name}: the batch dim must be dynamic, got {dims}"
            assert list(t.dims) == dims[1:], f"{name} {t.name}: config dims {list(t.dims)}, model {dims}"


@pytest.mark.shared
@pytest.mark.parametrize("name", BUNDLED)
def test_io_matches_real_cms_model(name):
    real = model_path(name, SHARED_MODELS)
    if not real.is_file():
        pytest.skip(f"{real} is absent (the ../shared checkout with the real CMS models)")
    assert io_signature(model_path(name)) == io_signature(real)


@pytest.mark.shared
@pytest.mark.parametrize("name", BUNDLED)
def test_config_matches_real_cms_config(name):
    real = SHARED_MODELS / name / "config.pbtxt"
    if not real.is_file():
        pytest.skip(f"{real} is absent (the ../shared checkout with the real CMS models)")
    ours = tc.parse_model_config(MODELS / name / "config.pbtxt")
    theirs = tc.parse_model_config(real)
    # everything but the checksum agent (the real DeepMET config has none)
    for c in (ours, theirs):
        c.ClearField("model_repository_agents")
    assert ours == theirs
    if name == PART:
        assert (MODELS / name / "particletransformer_labels.txt").read_text().split() == (
            SHARED_MODELS / name / "particletransformer_labels.txt"
        ).read_text().split()


def test_part_labels_file():
    labels = (MODELS / PART / "particletransformer_labels.txt").read_text().split()
    assert labels == PART_LABELS


# ------------------------------------------------------------------------------ ParT behaviour


@pytest.mark.slow
def test_part_padding_invariance(part_heldout):
    feeds, _, _ = part_heldout
    jets = {k: v[:300] for k, v in feeds.items()}
    short = pad_slots(jets, {k: 5 for k in PART_SLOTS})  # the same jets (first 5 slots) ...
    long = pad_slots(short, {k: 25 for k in PART_SLOTS})  # ... padded with zeros to 25
    sess = session(model_path(PART))
    a = tc.run_onnx(sess, short)["softmax"]
    b = tc.run_onnx(sess, long)["softmax"]
    diff = float(np.abs(a - b).max())
    assert diff < 1e-5, f"padding 5 -> 25 slots changes the ParT outputs by {diff:.2e}"


def test_part_jet_without_candidates_is_finite():
    feeds = {k: np.zeros((2, n, f), np.float32)
             for (k, n), f in zip(PART_SLOTS.items(), (16, 8, 14, 4, 4, 4), strict=True)}
    out = tc.run_onnx(session(model_path(PART)), feeds)["softmax"]
    assert out.shape == (2, 6)
    assert np.isfinite(out).all(), out


@pytest.mark.slow
def test_part_b_vs_light_auc(part_heldout):
    _, flavour, scores = part_heldout
    assert np.isfinite(scores).all()
    np.testing.assert_allclose(scores.sum(axis=1), 1.0, atol=1e-5)
    sel = (flavour == 5) | (flavour == 0)
    n_b, n_light = int((flavour[sel] == 5).sum()), int((flavour[sel] == 0).sum())
    assert n_b > 100 and n_light > 100, f"too few jets: {n_b} b, {n_light} light"
    discriminant = scores[:, 0] + scores[:, 1] + scores[:, 2]
    auc = tc.auc(discriminant[sel], flavour[sel] == 5)
    print(f"ParT-IO b vs light AUC = {auc:.4f} ({n_b} b jets, {n_light} light jets)")
    assert auc >= AUC_MIN, f"ParT-IO b vs light AUC = {auc:.4f} < {AUC_MIN} ({n_b} b, {n_light} light jets)"


# ------------------------------------------------------------------------------ DeepMET behaviour


@pytest.mark.slow
def test_deepmet_beats_raw_pf_met(deepmet_heldout):
    predicted, pf, gen = deepmet_heldout
    assert np.isfinite(predicted).all()
    rms_model = np.sqrt(np.mean((predicted - gen) ** 2, axis=0))
    rms_pf = np.sqrt(np.mean((pf - gen) ** 2, axis=0))
    msg = (f"RMS(MET - GenMET) px, py: DeepMET-IO {rms_model[0]:.2f}, {rms_model[1]:.2f} GeV; "
           f"raw PF MET {rms_pf[0]:.2f}, {rms_pf[1]:.2f} GeV ({len(gen)} events)")
    print(msg)
    assert (rms_model < rms_pf).all(), msg


def test_deepmet_zero_candidates_give_zero_met():
    feeds = {n: np.zeros((1, 4500, 8 if n == "input:0" else 1), np.float32) for n in DEEPMET_NAMES.values()}
    out = session(model_path(DEEPMET)).run([DEEPMET_OUTPUT], feeds)[0]
    assert out.shape == (1, 2)
    np.testing.assert_array_equal(out, 0.0)


# ------------------------------------------------------------------------------ served by Triton


@pytest.mark.triton
@pytest.mark.slow
def test_bundled_models_served_by_triton_equal_onnxruntime(part_heldout):
    """The bundled tritonserver loads both models (checksums verified) and answers as ONNXRuntime does."""
    from framework.server import LocalTritonServer, bundled_server_available

    available, reason = bundled_server_available()
    if not available:
        pytest.skip(reason)
    import tritonclient.grpc as grpcclient

    feeds, _, _ = part_heldout
    part_feeds = pad_slots({k: v[:7] for k, v in feeds.items()}, {k: 12 if n == 25 else n
                                                                    for k, n in PART_SLOTS.items()})
    rng = np.random.default_rng(3)
    x = np.zeros((2, 4500, 8), np.float32)
    x[:, :300] = rng.normal(size=(2, 300, 8)) * 0.3
    deepmet_feeds = {"input:0": x}
    for name, n in (("input_cat0:0", 3), ("input_cat1:0", 11), ("input_cat2:0", 4)):
        cat = np.zeros((2, 4500, 1), np.float32)
        cat[:, :300] = rng.integers(0, n, size=(2, 300, 1))
        deepmet_feeds[name] = cat

    def infer(client, model, feeds, output):
        inputs = []
        for name, value in feeds.items():
            tensor = grpcclient.InferInput(name, list(value.shape), "FP32")
            tensor.set_data_from_numpy(value)
            inputs.append(tensor)
        return client.infer(model, inputs).as_numpy(output)

    with LocalTritonServer([MODELS], device="cpu", models=list(BUNDLED)) as server:
        client = grpcclient.InferenceServerClient(server.grpc_address)
        for model, model_feeds, output in ((PART, part_feeds, "softmax"),
                                           (DEEPMET, deepmet_feeds, DEEPMET_OUTPUT)):
            got = infer(client, model, model_feeds, output)
            expected = tc.run_onnx(session(model_path(model)), model_feeds)[output]
            np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0, err_msg=model)
