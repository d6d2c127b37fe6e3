"""DeepMET feature builder (the batch builder, run per event here and over whole batches against the per-event
oracle in tests/deepmet_oracle.py): embeddings, normalisation, padding, truncation, leptons; the real model."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from producers.deepmet.features import (
    CHARGE_EMBEDDING,
    INPUT_BRANCHES,
    INPUT_NAMES,
    PDGID_EMBEDDING,
    DeepMETConfig,
    build_deepmet_inputs,
    met_from_output,
)
from tests import deepmet_oracle


def build_one(ev, **kwargs) -> dict[str, np.ndarray]:
    """The batch builder on one event: its model inputs."""
    return deepmet_oracle.build_batch_event(ev, **kwargs).inputs


def lepton_momentum_sum(ev) -> tuple[float, float]:
    got = deepmet_oracle.build_batch_event(ev, ignore_leptons=True)
    return got.lepton_px, got.lepton_py

REPO_ROOT = Path(__file__).resolve().parents[1]
DEEPMET_MODEL = REPO_ROOT.parent / "shared" / "models" / "deepmet" / "1" / "model.onnx"
BUNDLED = REPO_ROOT / "data" / "samples" / "sample.root"

_CHARGE_OF = {-211: -1, -13: 1, -11: 1, 0: 0, 1: 0, 2: 0, 11: -1, 13: -1, 22: 0, 130: 0, 211: 1}


def make_event(pt, eta=None, phi=None, pdg=None, *, mass=None, d0=None, dz=None, puppi=None, from_pv=None, charge=None):
    n = len(pt)

    def arr(v, default, dtype):
        return np.asarray(default if v is None else v, dtype=dtype) * np.ones(n, dtype=dtype)

    pdg = arr(pdg, 211, np.int32)
    ev = {
        "PFCands_pt": arr(pt, 0, np.float32),
        "PFCands_eta": arr(eta, 0.0, np.float32),
        "PFCands_phi": arr(phi, 0.0, np.float32),
        "PFCands_mass": arr(mass, 0.13957, np.float32),
        "PFCands_d0": arr(d0, 0.001, np.float32),
        "PFCands_dz": arr(dz, -0.002, np.float32),
        "PFCands_puppiWeight": arr(puppi, 1.0, np.float32),
        "PFCands_charge": arr(charge, [_CHARGE_OF.get(int(p), 0) for p in pdg], np.int32),
        "PFCands_pdgId": pdg,
        "PFCands_fromPV": arr(from_pv, 3, np.int32),
    }
    assert set(ev) == set(INPUT_BRANCHES)
    return ev


def test_shapes_and_zero_padding():
    x = build_one(make_event([10.0, 20.0, 30.0]))
    assert tuple(x) == INPUT_NAMES
    assert x["input"].shape == (1, 4500, 8) and x["input"].dtype == np.float32
    for k in ("input_cat0", "input_cat1", "input_cat2"):
        assert x[k].shape == (1, 4500, 1) and x[k].dtype == np.float32
    assert x["input"][0, :3].any(axis=1).all()
    for k in INPUT_NAMES:
        assert not x[k][0, 3:].any(), k


def test_values_and_normalisation():
    ev = make_event([100.0], [1.3], [0.5], [-211], mass=[0.2], d0=[0.05], dz=[-0.3], puppi=[0.25], from_pv=[2])
    x = build_one(ev)
    pt, phi = np.float32(100.0), np.float32(0.5)
    expected = [0.05, -0.3, 1.3, 0.2, pt / 50, 0.25, pt * np.cos(phi) / 50, pt * np.sin(phi) / 50]
    np.testing.assert_allclose(x["input"][0, 0], expected, rtol=1e-6)  # mass is not scaled, as CMSSW
    assert x["input_cat0"][0, 0, 0] == 0  # charge -1
    assert x["input_cat1"][0, 0, 0] == 0  # -211
    assert x["input_cat2"][0, 0, 0] == 2
    x = build_one(ev, norm=10.0)
    assert x["input"][0, 0, 4] == pytest.approx(10.0)


def test_category_maps():
    pdgs = list(PDGID_EMBEDDING)
    charges = [_CHARGE_OF[p] for p in pdgs]
    x = build_one(make_event(np.ones(len(pdgs)), pdg=pdgs, from_pv=np.arange(len(pdgs)) % 4))
    assert x["input_cat1"][0, : len(pdgs), 0].tolist() == [PDGID_EMBEDDING[p] for p in pdgs]
    assert x["input_cat0"][0, : len(pdgs), 0].tolist() == [CHARGE_EMBEDDING[q] for q in charges]
    assert x["input_cat2"][0, : len(pdgs), 0].tolist() == (np.arange(len(pdgs)) % 4).tolist()
    assert CHARGE_EMBEDDING == {-1: 0, 0: 1, 1: 2}
    assert PDGID_EMBEDDING == {-211: 0, -13: 1, -11: 2, 0: 3, 1: 4, 2: 5, 11: 6, 13: 7, 22: 8, 130: 9, 211: 10}


def test_unknown_categories_are_errors():
    with pytest.raises(ValueError, match="pdgId"):
        build_one(make_event([1.0, 2.0], pdg=[211, -22], charge=[1, 0]))
    with pytest.raises(ValueError, match="charge"):
        build_one(make_event([1.0], pdg=[211], charge=[2]))


def test_outliers_are_zeroed():
    x = build_one(make_event([1e9, 5.0]))
    assert x["input"][0, 0, 4] == 0 and x["input"][0, 0, 6] == 0  # scale_and_rm_outlier: beyond 1e6 -> 0
    assert x["input"][0, 1, 4] == pytest.approx(0.1)


def test_more_candidates_than_slots_keeps_the_first(caplog):
    n = 5000
    pt = np.arange(1, n + 1, dtype=np.float32) / 10
    with caplog.at_level(logging.WARNING):
        x = build_one(make_event(pt))
    assert x["input"][0, :, 4] == pytest.approx(pt[:4500] / 50)
    assert "5000 candidates" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        x = build_one(make_event(pt[:4500]))
    assert "candidates" not in caplog.text
    x = build_one(make_event(pt[:20]), max_candidates=10)
    assert x["input"].shape == (1, 10, 8) and x["input"][0, -1, 4] == pytest.approx(pt[9] / 50)


def test_empty_event():
    x = build_one(make_event([]))
    assert all(not x[k].any() for k in INPUT_NAMES)


def test_ignore_leptons():
    pdg = [211, 11, -13, 22, -211]
    pt = [10.0, 20.0, 30.0, 40.0, 50.0]
    phi = [0.0, 0.5, 1.0, 1.5, 2.0]
    ev = make_event(pt, phi=phi, pdg=pdg)
    x = build_one(ev, ignore_leptons=True)
    assert x["input"][0, :4, 4].tolist() == pytest.approx([0.2, 0.8, 1.0, 0.0])
    assert x["input_cat1"][0, :3, 0].tolist() == [10, 8, 0]
    lx, ly = lepton_momentum_sum(ev)
    assert lx == pytest.approx(20 * np.cos(np.float32(0.5)) + 30 * np.cos(np.float32(1.0)), rel=1e-6)
    assert ly == pytest.approx(20 * np.sin(np.float32(0.5)) + 30 * np.sin(np.float32(1.0)), rel=1e-6)
    x = build_one(ev)
    assert x["input"][0, :5, 4].tolist() == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0])


def test_met_from_output():
    px, py, pt, phi = met_from_output(np.array([0.5, -0.2], np.float32))
    assert (px, py) == pytest.approx((25.0, -10.0), rel=1e-6)
    assert pt == pytest.approx(np.hypot(25, 10), rel=1e-6) and phi == pytest.approx(np.arctan2(-10, 25), rel=1e-6)
    px, py, _, _ = met_from_output(np.array([[0.5, -0.2]]), norm=10.0, lepton_px=1.0, lepton_py=-2.0)
    assert (px, py) == pytest.approx((4.0, 0.0), abs=1e-6)
    with pytest.raises(ValueError, match="2 values"):
        met_from_output(np.zeros(3))


@pytest.mark.shared
def test_real_deepmet_on_the_bundled_sample():
    if not DEEPMET_MODEL.is_file():
        pytest.skip(f"the CMS DeepMET model {DEEPMET_MODEL} is absent (../shared not available)")
    ort = pytest.importorskip("onnxruntime")
    uproot = pytest.importorskip("uproot")
    with uproot.open(BUNDLED) as f:
        arrays = f["Events"].arrays([*INPUT_BRANCHES, "GenMET_pt", "MET_pt"], library="np", entry_stop=40)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    session = ort.InferenceSession(str(DEEPMET_MODEL), opts, providers=["CPUExecutionProvider"])
    names = {i.name.split(":")[0]: i.name for i in session.get_inputs()}
    deep, gen, pf = [], [], []
    for i in range(len(arrays["GenMET_pt"])):
        ev = {k: arrays[k][i] for k in INPUT_BRANCHES}
        x = build_one(ev)
        out = session.run(None, {names[k]: v for k, v in x.items()})[0]
        assert out.shape == (1, 2) and np.isfinite(out).all()
        deep.append(met_from_output(out)[2])
        gen.append(arrays["GenMET_pt"][i])
        pf.append(arrays["MET_pt"][i])
    deep, gen = np.array(deep), np.array(gen)
    assert np.mean(np.abs(deep - gen)) < 30, "DeepMET should roughly follow the generator MET"


# ------------------------------------------------------------------- the batch builder vs the per-event oracle
def _columns_of(events):
    out = {}
    for name in INPUT_BRANCHES:
        values = [np.asarray(ev[name]).reshape(-1) for ev in events]
        offsets = np.zeros(len(events) + 1, np.int64)
        np.cumsum([len(v) for v in values], out=offsets[1:])
        out[name] = (np.concatenate(values), offsets)
    return out


def _event(columns, i):
    return {k: c[o[i] : o[i + 1]] for k, (c, o) in columns.items()}


def _assert_same(got, want_inputs, want_leptons, what):
    for name in INPUT_NAMES:
        a, b = got.inputs[name], want_inputs[name]
        assert a.dtype == b.dtype and a.shape == b.shape, f"{what} {name}"
        assert a.tobytes() == b.tobytes(), f"{what} {name}: values differ"
    assert (got.lepton_px, got.lepton_py) == want_leptons, what


@pytest.mark.parametrize("kwargs", [{}, {"ignore_leptons": True}, {"max_candidates": 50, "norm": 10.0}],
                         ids=["default", "ignore_leptons", "small"])
def test_batch_equals_the_per_event_oracle_bit_for_bit(tmp_path_factory, generate_sample, kwargs):
    """Every event of a 120-event generated batch: the batch builder's inputs (and lepton sums) equal the per-event
    builder's, byte for byte."""
    import uproot

    path = tmp_path_factory.mktemp("deepmet_batch") / "gen.root"
    generate_sample(path, 120, 5)
    with uproot.open(path) as f:
        arrays = f["Events"].arrays(list(INPUT_BRANCHES), library="ak")
    from framework.io.chunk import Column

    columns = {n: (c.content, c.offsets) for n, c in ((n, Column.from_awkward(arrays[n])) for n in INPUT_BRANCHES)}
    batch = build_deepmet_inputs(columns, DeepMETConfig(**kwargs))
    assert len(batch) == 120
    for i in range(120):
        ev = _event(columns, i)
        want = deepmet_oracle.build_event_inputs(ev, **kwargs)
        leptons = deepmet_oracle.lepton_momentum_sum(ev) if kwargs.get("ignore_leptons") else (0.0, 0.0)
        _assert_same(batch.event(i), want, leptons, f"event {i}")


def test_a_bad_event_fails_alone_with_the_per_event_message():
    good = make_event([10.0, 20.0], pdg=[211, 22])
    bad_pdg = make_event([1.0, 2.0], pdg=[211, -22], charge=[1, 0])
    bad_charge = make_event([1.0], pdg=[211], charge=[2])
    columns = _columns_of([good, bad_pdg, good, bad_charge, make_event([])])
    batch = build_deepmet_inputs(columns)
    for i in (0, 2, 4):
        _assert_same(batch.event(i), deepmet_oracle.build_event_inputs(_event(columns, i)), (0.0, 0.0), f"event {i}")
    for i, ev in ((1, bad_pdg), (3, bad_charge)):
        with pytest.raises(ValueError) as want:
            deepmet_oracle.build_event_inputs(ev)
        with pytest.raises(ValueError) as got:
            batch.event(i)
        assert str(got.value) == str(want.value)
    with pytest.raises(ValueError, match="max_candidates"):
        DeepMETConfig(max_candidates=0)
    with pytest.raises(KeyError, match="PFCands_fromPV"):
        build_deepmet_inputs({k: v for k, v in columns.items() if k != "PFCands_fromPV"})


def _per_event_produce(self, event):
    """The inputs producer on the per-event oracle."""
    c = self.config
    ev = event.getBranches(INPUT_BRANCHES)
    leptons = deepmet_oracle.lepton_momentum_sum(ev) if c.ignore_leptons else (0.0, 0.0)
    inputs = deepmet_oracle.build_event_inputs(ev, max_candidates=c.max_candidates, norm=c.norm,
                                               ignore_leptons=c.ignore_leptons)
    event.put(deepmet_oracle.DeepMETInputs(inputs, *leptons))


@pytest.mark.slow
def test_main_job_deepmet_bit_identical_to_the_per_event_builder(tmp_path, monkeypatch):
    """``configs/miniaod_cfg.py`` on 120 events of the bundled sample, 4 streams and 2 chunks: the DeepMET products
    (batch builder) equal those of the same job with the per-event oracle, bit for bit."""
    import awkward as ak

    from framework.io.source import RootSource
    from producers.deepmet import inputs_producer
    from tests.main_fixtures import run_main

    job = ["maxEvents=120", "wantSummary=0", "numStreams=4"]
    monkeypatch.setitem(RootSource.parameters, "chunkSize", 64)
    with monkeypatch.context() as m:
        m.setattr(inputs_producer.DeepMETInputsProducer, "produce", _per_event_produce)
        reference = run_main(tmp_path / "per_event.root", *job).arrays()
    got = run_main(tmp_path / "batch.root", *job).arrays()
    names = [k for k in reference if k.startswith("deepMETProducer_")]
    assert sorted(names) == [f"deepMETProducer_{q}" for q in ("phi", "pt", "px", "py")]
    for name in names:
        a, b = np.asarray(ak.to_numpy(reference[name])), np.asarray(ak.to_numpy(got[name]))
        assert len(a) == 120 and a.dtype == b.dtype and a.tobytes() == b.tobytes(), name
