"""ParticleTransformer AK4 feature builder (the batch builder, run here on one event at a time):
hand-computed values, CMSSW ordering, bounds, slot counts and padding, edge cases; and the real CMS model on
the bundled sample. tests/test_features_part_chunk.py checks whole batches against the per-event oracle."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from producers.particle_transformer_ak4.features import (
    CPF_FEATURES,
    INPUT_BRANCHES,
    INPUT_NAMES,
    NPF_FEATURES,
    SV_FEATURES,
)
from tests.part_oracle import build_batch_event as build_part_inputs

REPO_ROOT = Path(__file__).resolve().parents[1]
PART_MODEL = REPO_ROOT.parent / "shared" / "models" / "particletransformer_AK4" / "1" / "model.onnx"
BUNDLED = REPO_ROOT / "data" / "samples" / "sample.root"
PION = 0.13957

CPF = {name: i for i, name in enumerate(CPF_FEATURES)}
NPF = {name: i for i, name in enumerate(NPF_FEATURES)}
SVF = {name: i for i, name in enumerate(SV_FEATURES)}

_CAND_DEFAULTS = {"mass": 0.0, "charge": 0, "pdgId": 22, "puppiWeight": 1.0, "pvAssocQuality": 7, "trkChi2": 0.0,
                  "trkQuality": 0, "hcalFraction": 0.0}
_LINK_FIELDS = ("btagSip2dVal", "btagSip2dSig", "btagSip3dVal", "btagSip3dSig", "btagJetDistVal")
_SV_DEFAULTS = {"mass": 2.0, "chi2": 1.0, "ndof": 3.0, "dxy": 0.1, "dxySig": 10.0, "dlen": 0.2, "dlenSig": 12.0,
                "pAngle": 0.05, "ntracks": 3}


def charged(pt, eta, phi, charge=1, **kw):
    return {"pt": pt, "eta": eta, "phi": phi, "mass": PION, "charge": charge, "pdgId": 211 * charge,
            "trkChi2": 1.0, "trkQuality": 4, **kw}


def neutral(pt, eta, phi, pdgId=22, **kw):
    return {"pt": pt, "eta": eta, "phi": phi, "pdgId": pdgId, **kw}


def make_event(jets=(), cands=(), links=(), svs=()) -> dict[str, np.ndarray]:
    """jets: (pt, eta, phi, mass); cands: dicts; links: (jet, cand) or (jet, cand, {btag field: value});
    svs: dicts with pt, eta, phi and optional SV fields."""
    ev: dict[str, np.ndarray] = {}
    jets = list(jets)
    for i, f in enumerate(("pt", "eta", "phi", "mass")):
        ev[f"Jet_{f}"] = np.array([j[i] for j in jets], np.float32)
    cands = [{**_CAND_DEFAULTS, **c} for c in cands]
    for f in ("pt", "eta", "phi", "mass", "puppiWeight", "trkChi2", "hcalFraction"):
        ev[f"PFCands_{f}"] = np.array([c[f] for c in cands], np.float32)
    for f in ("charge", "pdgId", "pvAssocQuality", "trkQuality"):
        ev[f"PFCands_{f}"] = np.array([c[f] for c in cands], np.int32)
    links = [tuple(link) + ({},) if len(link) == 2 else tuple(link) for link in links]
    ev["JetPFCands_jetIdx"] = np.array([link[0] for link in links], np.int32)
    ev["JetPFCands_pFCandsIdx"] = np.array([link[1] for link in links], np.int32)
    for f in _LINK_FIELDS:
        ev[f"JetPFCands_{f}"] = np.array([link[2].get(f, 0.0) for link in links], np.float32)
    svs = [{**_SV_DEFAULTS, **s} for s in svs]
    for f in ("pt", "eta", "phi", "mass", "chi2", "ndof", "dxy", "dxySig", "dlen", "dlenSig", "pAngle"):
        ev[f"SV_{f}"] = np.array([s[f] for s in svs], np.float32)
    ev["SV_ntracks"] = np.array([s["ntracks"] for s in svs], np.int32)
    assert set(ev) == set(INPUT_BRANCHES)
    return ev


def f64(x) -> float:
    """The float32 value the builder sees, as float64."""
    return float(np.float32(x))


def p4(pt, eta, phi, mass):
    pt, eta, phi, mass = map(f64, (pt, eta, phi, mass))
    px, py, pz = pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)
    return np.array([px, py, pz, np.sqrt(px * px + py * py + pz * pz + mass * mass)])


# ---------------------------------------------------------------------------- hand-computed values
def test_one_charged_candidate_by_hand():
    jet = (50.0, 0.5, 0.1, 5.0)
    cand = charged(10.0, 0.6, 0.2, puppiWeight=0.8, pvAssocQuality=6, trkChi2=1.5, trkQuality=4)
    btag = {"btagSip2dVal": 0.01, "btagSip2dSig": 5.0, "btagSip3dVal": 0.02, "btagSip3dSig": 6.0,
            "btagJetDistVal": -0.005}
    x, has = build_part_inputs(make_event([jet], [cand], [(0, 0, btag)]))
    assert has.tolist() == [True]
    assert x["input_1"].shape == (1, 1, 16) and x["input_4"].shape == (1, 1, 4)
    assert x["input_2"].shape == (1, 1, 8) and x["input_3"].shape == (1, 1, 14)
    assert all(x[k].dtype == np.float32 for k in INPUT_NAMES)

    j = p4(*jet)
    c = p4(10.0, 0.6, 0.2, PION)
    u = j[:3] / np.linalg.norm(j[:3])
    p = c[:3]
    pmag = np.linalg.norm(p)
    ppar = p @ u
    pperp = np.linalg.norm(np.cross(p, u))
    e_pi = np.sqrt(pmag**2 + PION**2)
    expected = {
        "trackEtaRel": 0.5 * np.log((e_pi + ppar) / (e_pi - ppar)),
        "trackPtRel": pperp,
        "trackPPar": ppar,
        "trackDeltaR": np.hypot(f64(0.6) - f64(0.5), f64(0.2) - f64(0.1)),
        "trackPParRatio": ppar / pmag,
        "trackSip2dVal": f64(0.01),
        "trackSip2dSig": 5.0,
        "trackSip3dVal": f64(0.02),
        "trackSip3dSig": 6.0,
        "trackJetDistVal": f64(-0.005),
        "ptrel": 10.0 / 50.0 - 1.0,  # catch_infs_and_bound(pt/jetpt, 0, -1, 0, offset -1)
        "drminsv": 0.0,  # no SV: mindr stays 0.4, minus jet radius
        "vtx_ass": 6,
        "puppiw": f64(0.8),
        "chi2": 1.5,
        "quality": 4,
    }
    got = x["input_1"][0, 0]
    for name, value in expected.items():
        assert got[CPF[name]] == pytest.approx(value, rel=2e-6, abs=1e-6), name
    np.testing.assert_allclose(x["input_4"][0, 0], c, rtol=1e-6)
    for k in ("input_2", "input_3", "input_5", "input_6"):
        assert not x[k].any(), k


def test_neutral_candidates_by_hand():
    jet = (40.0, -1.0, 3.0, 4.0)
    photon = neutral(4.0, -0.9, 2.8, puppiWeight=0.5)
    hadron = neutral(8.0, -1.15, -3.1, pdgId=130, hcalFraction=0.7)  # across the phi = pi boundary
    x, has = build_part_inputs(make_event([jet], [photon, hadron], [(0, 0), (0, 1)]))
    assert has.tolist() == [True]
    assert x["input_1"].shape == (1, 1, 16) and not x["input_1"].any()
    rows = x["input_2"][0]
    # no SV: sorted by pt/jet pt descending -> hadron first
    dphi_h = (f64(-3.1) - f64(3.0) + np.pi) % (2 * np.pi) - np.pi
    deta_h = f64(-1.15) - f64(-1.0)
    exp_h = [8.0 / 40.0 - 1, abs(deta_h) - 0.5, abs(dphi_h) - 0.5, np.hypot(deta_h, dphi_h) - 0.6, 0, f64(0.7), 0, 1]
    deta_g, dphi_g = f64(-0.9) - f64(-1.0), f64(2.8) - f64(3.0)
    exp_g = [4.0 / 40.0 - 1, abs(deta_g) - 0.5, abs(dphi_g) - 0.5, np.hypot(deta_g, dphi_g) - 0.6, 1, 0, 0, f64(0.5)]
    np.testing.assert_allclose(rows[0], exp_h, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(rows[1], exp_g, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(x["input_5"][0, 0], p4(8.0, -1.15, -3.1, 0.0), rtol=1e-6)


def test_neutral_bounds():
    jet = (20.0, 0.0, 0.0, 1.0)
    far = neutral(30.0, 0.0, 1.2)  # ptrel > 1 -> 0; |dphi| - 0.5 > 0 -> 0; dR - 0.6 > 0 -> 0
    x, _ = build_part_inputs(make_event([jet], [far], [(0, 0)]))
    row = x["input_2"][0, 0]
    assert row[NPF["ptrel"]] == 0 and row[NPF["phirel"]] == 0 and row[NPF["deltaR"]] == 0
    assert row[NPF["etarel"]] == pytest.approx(-0.5)


def test_charged_bounds_and_non_finite_values():
    jet = (20.0, 0.0, 0.0, 2.0)
    btag = {"btagSip2dVal": 100.0, "btagSip2dSig": -5.0, "btagSip3dVal": -3.0, "btagSip3dSig": np.nan,
            "btagJetDistVal": -50.0}
    cand = charged(60.0, 0.05, 0.0, trkChi2=np.inf)
    x, _ = build_part_inputs(make_event([jet], [cand], [(0, 0, btag)]))
    row = x["input_1"][0, 0]
    assert row[CPF["trackSip2dVal"]] == 70  # bound [-1, 70]
    assert row[CPF["trackSip2dSig"]] == -1
    assert row[CPF["trackSip3dVal"]] == -1
    assert row[CPF["trackSip3dSig"]] == 0  # NaN -> 0
    assert row[CPF["trackJetDistVal"]] == -20
    assert row[CPF["chi2"]] == 300  # inf -> 300
    assert row[CPF["ptrel"]] == 0  # pt/jetpt = 3 -> 3 - 1 > 0 -> 0
    assert row[CPF["trackPtRel"]] <= 4 and row[CPF["trackEtaRel"]] <= 15


def test_drminsv_uses_all_svs_of_the_event():
    jet = (50.0, 0.0, 0.0, 5.0)
    cands = [charged(5.0, 0.1, 0.0), neutral(5.0, -0.1, 0.0)]
    sv_near = {"pt": 10.0, "eta": 0.1, "phi": 0.1}  # dR 0.1 to the charged, 0.2236 to the neutral
    sv_far = {"pt": 10.0, "eta": 3.0, "phi": 2.0}
    x, _ = build_part_inputs(make_event([jet], cands, [(0, 0), (0, 1)], [sv_far, sv_near]))
    assert x["input_1"][0, 0, CPF["drminsv"]] == pytest.approx(f64(0.1) - 0.4, abs=1e-6)
    dr_n = np.hypot(f64(-0.1) - f64(0.1), 0 - f64(0.1))
    assert x["input_2"][0, 0, NPF["drminsv"]] == pytest.approx(dr_n - 0.4, abs=1e-6)


def test_secondary_vertex_features_by_hand():
    jet = (60.0, 1.0, -0.5, 8.0)
    sv = {"pt": 25.0, "eta": 1.1, "phi": -0.45, "mass": 3.1, "chi2": 1.25, "ndof": 4.0, "dxy": 0.3, "dxySig": 900.0,
          "dlen": 0.5, "dlenSig": 20.0, "pAngle": 0.03, "ntracks": 4}
    x, has = build_part_inputs(make_event([jet], [charged(5.0, 1.0, -0.5)], [(0, 0)], [sv]))
    row = x["input_3"][0, 0]
    deta, dphi = f64(1.1) - f64(1.0), f64(-0.45) - f64(-0.5)
    e_sv, e_jet = p4(25.0, 1.1, -0.45, 3.1)[3], p4(*jet)[3]
    expected = {
        "pt": 25.0, "deltaR": np.hypot(deta, dphi) - 0.5, "mass": f64(3.1), "etarel": abs(deta) - 0.5,
        "phirel": abs(dphi) - 0.5, "ntracks": 4, "chi2": 5.0, "normchi2": 1.25, "dxy": f64(0.3), "dxysig": 800.0,
        "d3d": 0.5, "d3dsig": 20.0, "costhetasvpv": np.cos(f64(0.03)), "enratio": e_sv / e_jet,
    }
    for name, value in expected.items():
        assert row[SVF[name]] == pytest.approx(value, rel=1e-5, abs=1e-6), name
    np.testing.assert_allclose(x["input_6"][0, 0], p4(25.0, 1.1, -0.45, 3.1), rtol=1e-6)
    assert has.tolist() == [True]


def test_weighted_jet_ptrel_uses_the_puppi_weight():
    ev = make_event([(50.0, 0.0, 0.0, 5.0)], [charged(10.0, 0.1, 0.0, puppiWeight=0.5)], [(0, 0)])
    x, _ = build_part_inputs(ev, is_weighted_jet=True)
    assert x["input_1"][0, 0, CPF["ptrel"]] == pytest.approx(0.5 * 10 / 50 - 1)


# --------------------------------------------------------------------------------------- ordering
def test_charged_order_sip2dsig_then_drminsv_then_ptrel():
    jet = (100.0, 0.0, 0.0, 10.0)
    cands = [
        charged(2.0, 0.10, 0.00),  # sig 1
        charged(3.0, 0.00, 0.10),  # sig 5
        charged(4.0, -0.10, 0.00),  # sig 3, far from the SV
        charged(5.0, 0.20, 0.20),  # sig 3, close to the SV
        charged(6.0, -0.20, -0.20),  # sig NaN: ranks last
        charged(7.0, 0.00, -0.30),  # sig 3, far, higher pt than cand 2 but same drmin (0.4 default)
    ]
    sigs = [1.0, 5.0, 3.0, 3.0, np.nan, 3.0]
    links = [(0, i, {"btagSip2dSig": s, "btagSip2dVal": 0.001 * (i + 1)}) for i, s in enumerate(sigs)]
    sv = {"pt": 10.0, "eta": 0.25, "phi": 0.25}
    x, _ = build_part_inputs(make_event([jet], cands, links, [sv]))
    order = np.rint(x["input_1"][0, :, CPF["trackSip2dVal"]] * 1000).astype(int) - 1
    assert order.tolist() == [1, 3, 5, 2, 0, 4]
    np.testing.assert_allclose(x["input_4"][0, :, 0], [p4(**{k: cands[i][k] for k in ("pt", "eta", "phi", "mass")})[0]
                                                        for i in order], rtol=1e-6)


def test_neutral_order_drminsv_then_ptrel():
    jet = (100.0, 0.0, 0.0, 10.0)
    cands = [neutral(2.0, 0.1, 0.0), neutral(9.0, -0.2, 0.0), neutral(4.0, 0.0, 0.3), neutral(1.0, 0.0, -0.3)]
    x, _ = build_part_inputs(make_event([jet], cands, [(0, i) for i in range(4)]))
    assert x["input_5"][0, :, 3].tolist() == pytest.approx(
        [p4(c["pt"], c["eta"], c["phi"], 0)[3] for c in (cands[1], cands[2], cands[0], cands[3])], rel=1e-5)
    # an SV next to the softest neutral puts it first
    sv = {"pt": 5.0, "eta": 0.0, "phi": -0.32}
    x, _ = build_part_inputs(make_event([jet], cands, [(0, i) for i in range(4)], [sv]))
    assert x["input_2"][0, 0, NPF["ptrel"]] == pytest.approx(1.0 / 100 - 1)


def test_svs_sorted_by_dxy_significance_and_matched_by_cone():
    jet = (80.0, 0.0, 0.0, 8.0)
    svs = [
        {"pt": 11.0, "eta": 0.1, "phi": 0.0, "dxySig": 5.0},
        {"pt": 12.0, "eta": -0.1, "phi": 0.1, "dxySig": 30.0},
        {"pt": 13.0, "eta": 0.6, "phi": 0.0, "dxySig": 100.0},  # outside the cone
        {"pt": 14.0, "eta": 0.0, "phi": -0.2, "dxySig": np.nan},  # catch_infs -> 0: last
        {"pt": 15.0, "eta": 0.2, "phi": 0.2, "dxySig": 12.0},
    ]
    x, _ = build_part_inputs(make_event([jet], [charged(5.0, 0.0, 0.0)], [(0, 0)], svs))
    assert x["input_3"][0, :, SVF["pt"]].tolist() == [12.0, 15.0, 11.0, 14.0]
    assert x["input_3"][0, 3, SVF["dxysig"]] == 0


# ---------------------------------------------------------------------------------- slots, padding
def test_slot_limits_keep_the_highest_ranked():
    jet = (400.0, 0.0, 0.0, 30.0)
    n_ch, n_ne = 40, 30
    rng = np.random.default_rng(3)
    cands = [charged(1.0 + i, *rng.uniform(-0.25, 0.25, 2)) for i in range(n_ch)]
    cands += [neutral(1.0 + i, *rng.uniform(-0.25, 0.25, 2)) for i in range(n_ne)]
    sigs = rng.permutation(n_ch).astype(float)
    links = [(0, i, {"btagSip2dSig": sigs[i]}) for i in range(n_ch)] + [(0, n_ch + i) for i in range(n_ne)]
    svs = [{"pt": 5.0, "eta": 0.01 * k, "phi": 0.0, "dxySig": float(k)} for k in range(8)]
    x, has = build_part_inputs(make_event([jet], cands, links, svs))
    assert x["input_1"].shape == (1, 25, 16) and x["input_2"].shape == (1, 25, 8) and x["input_3"].shape == (1, 5, 14)
    assert x["input_4"].shape == (1, 25, 4) and x["input_5"].shape == (1, 25, 4) and x["input_6"].shape == (1, 5, 4)
    assert x["input_1"][0, :, CPF["trackSip2dSig"]].tolist() == list(range(39, 14, -1))
    assert x["input_3"][0, :, SVF["dxysig"]].tolist() == [7, 6, 5, 4, 3]
    assert (x["input_5"][0, :, 3] > 0).all()
    assert has.tolist() == [True]


def _two_jet_event():
    jets = [(60.0, 0.0, 0.0, 6.0), (40.0, 1.5, 2.0, 4.0), (30.0, -1.5, -2.0, 3.0)]
    cands = [charged(5.0, 0.1, 0.0), charged(4.0, -0.1, 0.0), charged(3.0, 0.0, 0.1), charged(6.0, 1.5, 2.1),
             neutral(2.0, 1.6, 2.0)]
    links = [(0, 0, {"btagSip2dSig": 3.0}), (0, 1, {"btagSip2dSig": 2.0}), (0, 2, {"btagSip2dSig": 1.0}),
             (1, 3), (1, 4)]
    return make_event(jets, cands, links)


def test_padding_to_the_event_maximum():
    x, has = build_part_inputs(_two_jet_event())
    assert has.tolist() == [True, True, False]  # the third jet has no candidate
    assert x["input_1"].shape == (3, 3, 16)  # largest charged count: 3
    assert x["input_2"].shape == (3, 1, 8)  # largest neutral count: 1
    assert x["input_3"].shape == (3, 1, 14)  # no SV: at least one (zero) slot
    assert x["input_6"].shape == (3, 1, 4)
    assert (x["input_4"][1, 1:] == 0).all() and (x["input_4"][1, 0] != 0).all()
    assert not any(x[k][2].any() for k in INPUT_NAMES)


def test_padding_to_the_maximum_slots_gives_the_same_content():
    ev = _two_jet_event()
    small, has_small = build_part_inputs(ev)
    full, has_full = build_part_inputs(ev, pad_to_event_max=False)
    np.testing.assert_array_equal(has_small, has_full)
    for k, slots in zip(INPUT_NAMES, (25, 25, 5, 25, 25, 5), strict=True):
        assert full[k].shape[1] == slots
        n = small[k].shape[1]
        np.testing.assert_array_equal(full[k][:, :n], small[k])
        assert not full[k][:, n:].any()


def test_min_slots():
    x, _ = build_part_inputs(_two_jet_event(), min_slots=4)
    assert [x[k].shape[1] for k in INPUT_NAMES] == [4, 4, 4, 4, 4, 4]
    x, _ = build_part_inputs(_two_jet_event(), min_slots=0)
    assert [x[k].shape[1] for k in INPUT_NAMES] == [3, 1, 0, 3, 1, 0]
    with pytest.raises(ValueError, match="min_slots"):
        build_part_inputs(_two_jet_event(), min_slots=6)


# ------------------------------------------------------------------------------------------ edges
def test_event_without_jets():
    ev = make_event([], [charged(5.0, 0.0, 0.0)], [], [{"pt": 5.0, "eta": 0.0, "phi": 0.0}])
    x, has = build_part_inputs(ev)
    assert has.shape == (0,) and has.dtype == bool
    assert [x[k].shape for k in INPUT_NAMES] == [(0, 1, 16), (0, 1, 8), (0, 1, 14), (0, 1, 4), (0, 1, 4), (0, 1, 4)]
    x, _ = build_part_inputs(ev, pad_to_event_max=False)
    assert [x[k].shape[1] for k in INPUT_NAMES] == [25, 25, 5, 25, 25, 5]


def test_completely_empty_event():
    x, has = build_part_inputs(make_event())
    assert has.shape == (0,) and x["input_1"].shape == (0, 1, 16)


def test_jets_that_cmssw_does_not_fill():
    jets = [(14.0, 0.0, 0.0, 1.0), (50.0, 2.6, 0.0, 5.0), (50.0, 0.0, 2.0, 5.0), (50.0, -1.0, -2.0, 5.0)]
    cands = [charged(5.0, 0.0, 0.0), charged(5.0, 2.6, 0.0), charged(0.9, 0.0, 2.0), neutral(0.5, 0.0, 2.1),
             charged(3.0, -1.0, -2.0)]
    svs = [{"pt": 5.0, "eta": 0.0, "phi": 0.0}, {"pt": 5.0, "eta": 2.6, "phi": 0.0}]
    x, has = build_part_inputs(make_event(jets, cands, [(i, i) for i in range(4)] + [(3, 4)], svs))
    # pt < 15; |eta| > 2.5; only candidates below 0.95 GeV; a good jet
    assert has.tolist() == [False, False, False, True]
    for k in INPUT_NAMES:
        assert not x[k][:3].any(), k
    assert x["input_1"][3, 0].any()
    x, has = build_part_inputs(make_event(jets, cands, [(i, i) for i in range(4)] + [(3, 4)], svs), min_jet_pt=10,
                               max_jet_eta=3.0, min_candidate_pt=0.0)
    assert has.tolist() == [True, True, True, True]


def test_bad_links_and_missing_branches():
    ev = make_event([(50.0, 0.0, 0.0, 5.0)], [charged(5.0, 0.0, 0.0)], [(0, 0)])
    bad = dict(ev, JetPFCands_jetIdx=np.array([1], np.int32))
    with pytest.raises(ValueError, match="jetIdx out of range"):
        build_part_inputs(bad)
    bad = dict(ev, JetPFCands_pFCandsIdx=np.array([3], np.int32))
    with pytest.raises(ValueError, match="pFCandsIdx out of range"):
        build_part_inputs(bad)
    missing = {k: v for k, v in ev.items() if k != "SV_pAngle"}
    with pytest.raises(KeyError, match="SV_pAngle"):
        build_part_inputs(missing)


def test_reads_only_the_declared_branches():
    ev = _two_jet_event()

    class Strict(dict):
        def __getitem__(self, key):
            assert key in INPUT_BRANCHES, f"undeclared branch {key}"
            return super().__getitem__(key)

    build_part_inputs(Strict(ev))


# ------------------------------------------------------------------------------- the real model
def _sample_events():
    uproot = pytest.importorskip("uproot")
    if not BUNDLED.is_file():
        pytest.fail(f"bundled sample {BUNDLED} is missing")
    with uproot.open(BUNDLED) as f:
        arrays = f["Events"].arrays([*INPUT_BRANCHES, "Jet_hadronFlavour"], library="np")
    n = len(arrays["Jet_pt"])
    return [{k: v[i] for k, v in arrays.items()} for i in range(n)]


@pytest.mark.shared
def test_real_particle_transformer_on_the_bundled_sample():
    if not PART_MODEL.is_file():
        pytest.skip(f"the CMS ParT model {PART_MODEL} is absent (../shared not available)")
    ort = pytest.importorskip("onnxruntime")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    session = ort.InferenceSession(str(PART_MODEL), opts, providers=["CPUExecutionProvider"])
    scores, flav, masks = [], [], []
    for i, ev in enumerate(_sample_events()):
        x, has = build_part_inputs(ev)
        if len(has) == 0:
            continue
        out = session.run(["softmax"], x)[0]
        assert out.shape == (len(has), 6)
        if i < 40:  # padding to the event maximum or to 25/25/5 changes the outputs by ~1e-7
            full, _ = build_part_inputs(ev, pad_to_event_max=False)
            np.testing.assert_allclose(session.run(["softmax"], full)[0][has], out[has], atol=1e-4)
        scores.append(out)
        flav.append(ev["Jet_hadronFlavour"])
        masks.append(has)
    scores, flav, has = np.concatenate(scores), np.concatenate(flav), np.concatenate(masks)
    assert has.mean() > 0.95
    assert np.isfinite(scores[has]).all()
    np.testing.assert_allclose(scores[has].sum(axis=1), 1.0, atol=1e-4)
    probb = scores[:, 0] + scores[:, 1] + scores[:, 2]
    assert probb[has & (flav == 5)].mean() > probb[has & (flav == 0)].mean() + 0.2
