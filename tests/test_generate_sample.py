"""The sample generator: schema, determinism and physics plausibility of the written file."""

from __future__ import annotations

import awkward as ak
import numpy as np
import pytest
import uproot

from framework.io.schema import BRANCHES, COLLECTIONS, TREE_NAME, collection_fields
from framework.samples import CHUNK_EVENTS, generate

N_EVENTS = 400
SEED = 7


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    path = tmp_path_factory.mktemp("gen") / "events.root"
    generate(path, N_EVENTS, SEED)
    return path


@pytest.fixture(scope="module")
def events(sample) -> ak.Array:
    with uproot.open(sample) as f:
        return f[TREE_NAME].arrays()


def _branch_dtype(branch) -> np.dtype:
    interp = branch.interpretation
    if isinstance(interp, uproot.AsJagged):
        interp = interp.content
    return np.dtype(interp.to_dtype)


def _auc(signal: np.ndarray, background: np.ndarray) -> float:
    x = np.concatenate([signal, background])
    ranks = x.argsort(kind="stable").argsort() + 1.0
    return float((ranks[: len(signal)].sum() - len(signal) * (len(signal) + 1) / 2) / (len(signal) * len(background)))


# ----------------------------------------------------------------------------------------- schema
def test_every_schema_branch_is_written_with_its_dtype(sample):
    with uproot.open(sample) as f:
        tree = f[TREE_NAME]
        assert tree.num_entries == N_EVENTS
        assert set(tree.keys()) == set(BRANCHES), "branches differ from framework.io.schema.BRANCHES"
        for name, br in BRANCHES.items():
            assert _branch_dtype(tree[name]) == np.dtype(br.dtype), name


def test_collections_have_consistent_counters(events):
    for coll, counter in COLLECTIONS.items():
        for field in collection_fields(coll):
            np.testing.assert_array_equal(ak.num(events[f"{coll}_{field}"]), events[counter], err_msg=f"{coll}_{field}")


def test_schema_docs_and_collections():
    for name, br in BRANCHES.items():
        assert br.doc and br.name == name
        if br.collection is not None:
            assert name == f"{br.collection}_{br.field}"
    assert set(COLLECTIONS) == {"PFCands", "Jet", "JetPFCands", "SV", "JetSVs"}


def test_event_numbering(events):
    np.testing.assert_array_equal(events.run, np.ones(N_EVENTS))
    np.testing.assert_array_equal(events.event, np.arange(1, N_EVENTS + 1))
    np.testing.assert_array_equal(events.luminosityBlock, 1 + np.arange(N_EVENTS) // 100)


# ------------------------------------------------------------------------------------ determinism
def test_same_seed_same_content_different_seed_different(tmp_path):
    a, b, c = tmp_path / "a.root", tmp_path / "b.root", tmp_path / "c.root"
    generate(a, 30, 11)
    generate(b, 30, 11, compression="lzma")  # the codec does not change the content
    generate(c, 30, 12)
    with uproot.open(a) as fa, uproot.open(b) as fb, uproot.open(c) as fc:
        xa, xb, xc = (f[TREE_NAME].arrays() for f in (fa, fb, fc))
    for name in BRANCHES:
        assert ak.all(ak.flatten(xa[name], axis=None) == ak.flatten(xb[name], axis=None)), name
    assert not ak.array_equal(xa["PFCands_pt"], xc["PFCands_pt"])
    assert not ak.array_equal(xa["Jet_pt"], xc["Jet_pt"])


def test_complete_chunks_do_not_depend_on_the_number_of_events(tmp_path, events):
    """Events are generated in chunks of CHUNK_EVENTS, each from its own seed sequence: a complete chunk is
    the same whatever comes after it."""
    path = tmp_path / "short.root"
    generate(path, CHUNK_EVENTS + 3, SEED)
    with uproot.open(path) as f:
        short = f[TREE_NAME].arrays()
    for name in ("PFCands_pt", "Jet_pt", "JetPFCands_btagSip3dSig", "SV_mass", "MET_pt"):
        assert ak.array_equal(short[name][:CHUNK_EVENTS], events[name][:CHUNK_EVENTS]), name
    assert not ak.array_equal(short["PFCands_pt"][CHUNK_EVENTS:], events["PFCands_pt"][CHUNK_EVENTS:CHUNK_EVENTS + 3])


# ---------------------------------------------------------------------------------------- physics
def test_multiplicities(events):
    n = ak.to_numpy(events.nPFCands)
    assert 300 < n.mean() < 1500 and n.max() <= 4500
    njet = ak.to_numpy(events.nJet)
    assert (njet == 0).any(), "some events must have no jets"
    assert njet.max() <= 8
    nconst = ak.to_numpy(ak.flatten(events.Jet_nConstituents))
    assert 0 < (nconst == 0).mean() < 0.05, "a few jets (about 1%) have no candidates"
    in_jets = ak.sum(events.nJetPFCands) / ak.sum(events.nPFCands)
    assert in_jets < 0.3, "most candidates are from pileup / underlying event, not in jets"


def test_flavour_mix(events):
    hf = ak.to_numpy(ak.flatten(events.Jet_hadronFlavour))
    assert set(np.unique(hf)) <= {0, 4, 5}
    assert 0.2 < (hf == 5).mean() < 0.36
    assert 0.05 < (hf == 4).mean() < 0.16
    pf = ak.to_numpy(ak.flatten(events.Jet_partonFlavour))
    assert (np.abs(pf[hf == 5]) == 5).mean() > 0.8


def test_candidate_content(events):
    pdg = ak.to_numpy(ak.flatten(events.PFCands_pdgId))
    charge = ak.to_numpy(ak.flatten(events.PFCands_charge))
    assert set(np.unique(pdg)) <= {211, -211, 11, -11, 13, -13, 22, 130, 1, 2}
    neutral = np.isin(pdg, [22, 130, 1, 2])
    np.testing.assert_array_equal(charge == 0, neutral)
    np.testing.assert_array_equal(charge[pdg == 211], 1)
    np.testing.assert_array_equal(charge[np.isin(pdg, [11, 13])], -1)
    for name in ("d0", "dz", "d0Err", "dzErr", "trkChi2"):
        assert (ak.to_numpy(ak.flatten(events[f"PFCands_{name}"]))[neutral] == 0).all(), name
    assert (ak.to_numpy(ak.flatten(events.PFCands_d0Err))[~neutral] > 0).all()
    puppi = ak.to_numpy(ak.flatten(events.PFCands_puppiWeight))
    assert ((puppi >= 0) & (puppi <= 1)).all()
    assert set(np.unique(ak.to_numpy(ak.flatten(events.PFCands_fromPV)))) <= {0, 1, 2, 3}
    assert set(np.unique(ak.to_numpy(ak.flatten(events.PFCands_pvAssocQuality)))) <= set(range(8))
    hcal = ak.to_numpy(ak.flatten(events.PFCands_hcalFraction))
    assert (hcal[pdg == 22] == 0).all() and (hcal[pdg == 130] > 0).mean() > 0.99


def test_links_in_range_ordered_and_in_cone(events):
    lj, lc = events.JetPFCands_jetIdx, events.JetPFCands_pFCandsIdx
    assert ak.all(lj >= 0) and ak.all(lj < events.nJet)
    assert ak.all(lc >= 0) and ak.all(lc < events.nPFCands)
    pt = events.PFCands_pt[lc]
    for i in range(20):
        j, p = ak.to_numpy(lj[i]), ak.to_numpy(pt[i])
        assert (np.diff(j) >= 0).all(), "links ordered by jet"
        same = np.diff(j) == 0
        assert (np.diff(p)[same] <= 0).all(), "within a jet, by candidate pt descending"
    deta = events.PFCands_eta[lc] - events.Jet_eta[lj]
    dphi = (events.PFCands_phi[lc] - events.Jet_phi[lj] + np.pi) % (2 * np.pi) - np.pi
    assert ak.max(np.hypot(deta, dphi)) < 0.4
    counts = [np.bincount(ak.to_numpy(j), minlength=n) for j, n in zip(lj, ak.to_numpy(events.nJet), strict=True)]
    np.testing.assert_array_equal(np.concatenate(counts), ak.to_numpy(ak.flatten(events.Jet_nConstituents)))
    sj, ss = events.JetSVs_jetIdx, events.JetSVs_sVIdx
    assert ak.all(sj < events.nJet) and ak.all(ss < events.nSV) and ak.all(sj >= 0) and ak.all(ss >= 0)
    counts = [np.bincount(ak.to_numpy(j), minlength=n) for j, n in zip(sj, ak.to_numpy(events.nJet), strict=True)]
    np.testing.assert_array_equal(np.concatenate(counts), ak.to_numpy(ak.flatten(events.Jet_nSVs)))


def test_jet_is_the_sum_of_its_candidates(events):
    lj, lc = events.JetPFCands_jetIdx, events.JetPFCands_pFCandsIdx
    pt, eta, phi = events.PFCands_pt[lc], events.PFCands_eta[lc], events.PFCands_phi[lc]
    px, py = ak.flatten(pt * np.cos(phi)), ak.flatten(pt * np.sin(phi))
    gidx = ak.flatten(lj + np.cumsum(np.r_[0, ak.to_numpy(events.nJet)[:-1]])[:, None] * ak.ones_like(lj))
    n = int(ak.sum(events.nJet))
    gidx = ak.to_numpy(gidx).astype(np.int64)
    sx = np.bincount(gidx, ak.to_numpy(px), n)
    sy = np.bincount(gidx, ak.to_numpy(py), n)
    spt = np.bincount(gidx, ak.to_numpy(ak.flatten(pt)), n)
    jpt = ak.to_numpy(ak.flatten(events.Jet_pt))
    has = ak.to_numpy(ak.flatten(events.Jet_nConstituents)) > 0
    ratio = jpt[has] / spt[has]
    assert ((ratio > 0.9) & (ratio < 1.001)).all(), "jet pt close to (and below) the scalar sum of its candidates"
    vec = np.hypot(sx, sy)[has] / jpt[has]
    assert np.median(np.abs(vec - 1)) < 0.005 and np.quantile(np.abs(vec - 1), 0.98) < 0.05
    assert (jpt >= 15).all()
    del eta


def _charged_link_table(events):
    lj, lc = events.JetPFCands_jetIdx, events.JetPFCands_pFCandsIdx
    flav = ak.to_numpy(ak.flatten(events.Jet_hadronFlavour[lj]))
    charged = ak.to_numpy(ak.flatten(events.PFCands_charge[lc])) != 0
    offs = np.cumsum(np.r_[0, ak.to_numpy(events.nJet)[:-1]])
    gjet = ak.to_numpy(ak.flatten(lj + offs[:, None] * ak.ones_like(lj))).astype(np.int64)
    return flav, charged, gjet


def test_b_jets_have_displaced_tracks_and_heavy_vertices(events):
    flav, charged, gjet = _charged_link_table(events)
    sig = ak.to_numpy(ak.flatten(events.JetPFCands_btagSip3dSig))
    njets = int(ak.sum(events.nJet))
    hf = ak.to_numpy(ak.flatten(events.Jet_hadronFlavour))
    n_disp = np.bincount(gjet[charged & (sig > 3)], minlength=njets)
    assert n_disp[hf == 5].mean() > 1.5
    assert n_disp[hf == 5].mean() > 4 * n_disp[hf == 0].mean()
    assert n_disp[hf == 4].mean() > n_disp[hf == 0].mean()
    big = charged & (np.abs(sig) > 3)
    assert (sig[big & (flav == 5)] > 0).mean() > 0.85, "displaced b tracks are mostly positively signed"
    assert 0.3 < (sig[big & (flav == 0)] > 0).mean() < 0.7, "light-jet tails are symmetric"
    prompt = sig[charged & (flav == 0)]
    assert 0.4 < np.std(np.clip(prompt, -5, 5)) < 2.0

    # secondary vertices linked to jets
    sj, ss = events.JetSVs_jetIdx, events.JetSVs_sVIdx
    mass = ak.to_numpy(ak.flatten(events.SV_mass[ss]))
    sflav = ak.to_numpy(ak.flatten(events.Jet_hadronFlavour[sj]))
    nb, nc, nl = ((hf == f).sum() for f in (5, 4, 0))
    frac_b = ((sflav == 5) & (mass > 1.5)).sum() / nb
    frac_l = ((sflav == 0) & (mass > 1.5)).sum() / nl
    assert frac_b > 0.5 and frac_l < 0.03
    assert 0.15 < (sflav == 4).sum() / nc < 0.5
    assert 0.005 < (sflav == 0).sum() / nl < 0.07, "rare fake SVs in light jets"
    assert np.median(ak.to_numpy(ak.flatten(events.SV_dlenSig[ss]))[sflav == 5]) > 5


def test_a_simple_tagger_separates_b_from_light_but_not_perfectly(events):
    """TrackCounting-like tagger: the 2nd highest Sip3dSig of the jet's charged tracks."""
    charged = events.PFCands_charge[events.JetPFCands_pFCandsIdx] != 0
    sig = ak.where(charged, events.JetPFCands_btagSip3dSig, -10.0)
    per_jet = ak.unflatten(ak.flatten(sig), ak.flatten(events.Jet_nConstituents))  # links are grouped by jet
    second = ak.fill_none(ak.pad_none(ak.sort(per_jet, axis=1, ascending=False), 2, axis=1)[:, 1], -10.0)
    score = ak.to_numpy(second)
    hf = ak.to_numpy(ak.flatten(events.Jet_hadronFlavour))
    auc = _auc(score[hf == 5], score[hf == 0])
    assert 0.8 < auc < 0.99, auc


def test_link_features_are_consistent(events):
    lj, lc = events.JetPFCands_jetIdx, events.JetPFCands_pFCandsIdx
    charged = ak.to_numpy(ak.flatten(events.PFCands_charge[lc])) != 0
    d0 = ak.to_numpy(ak.flatten(events.PFCands_d0[lc])).astype(np.float64)
    d0err = ak.to_numpy(ak.flatten(events.PFCands_d0Err[lc])).astype(np.float64)
    f = {k: ak.to_numpy(ak.flatten(events[f"JetPFCands_btag{k}"])).astype(np.float64)
         for k in ("EtaRel", "PtRatio", "PParRatio", "Sip2dVal", "Sip2dSig", "Sip3dVal", "Sip3dSig", "JetDistVal")}
    for k, v in f.items():
        assert (v[~charged] == 0).all(), f"btag{k} of neutrals"
    np.testing.assert_allclose(np.abs(f["Sip2dVal"][charged]), np.abs(d0[charged]), rtol=2e-3, atol=1e-7)
    np.testing.assert_allclose(f["Sip2dSig"][charged], f["Sip2dVal"][charged] / d0err[charged], rtol=5e-3, atol=1e-4)
    assert (np.abs(f["Sip3dVal"]) >= np.abs(f["Sip2dVal"]) * (1 - 2e-3) - 1e-7).all()
    assert (f["JetDistVal"] <= 0).all()
    assert (np.abs(f["JetDistVal"]) <= np.abs(f["Sip3dVal"]) * (1 + 2e-3) + 1e-7).all()
    # kinematics: recompute eta_rel, ratios from the stored 4-vectors
    pt = ak.to_numpy(ak.flatten(events.PFCands_pt[lc])).astype(np.float64)
    eta = ak.to_numpy(ak.flatten(events.PFCands_eta[lc])).astype(np.float64)
    phi = ak.to_numpy(ak.flatten(events.PFCands_phi[lc])).astype(np.float64)
    jeta = ak.to_numpy(ak.flatten(events.Jet_eta[lj])).astype(np.float64)
    jphi = ak.to_numpy(ak.flatten(events.Jet_phi[lj])).astype(np.float64)
    p = np.stack([pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)], 1)
    u = np.stack([np.cos(jphi), np.sin(jphi), np.sinh(jeta)], 1)
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    pmag = np.linalg.norm(p, axis=1)
    ppar = np.sum(p * u, axis=1)
    energy = np.sqrt(pmag**2 + 0.13957**2)
    etarel = 0.5 * np.log((energy + ppar) / (energy - ppar))
    np.testing.assert_allclose(f["EtaRel"][charged], etarel[charged], rtol=5e-3, atol=5e-3)
    np.testing.assert_allclose(f["PParRatio"][charged], (ppar / pmag)[charged], atol=2e-3)
    np.testing.assert_allclose(f["PtRatio"][charged], np.linalg.norm(np.cross(p, u), axis=1)[charged] / pmag[charged],
                               rtol=5e-3, atol=2e-3)


def test_met(events):
    gen_x = ak.to_numpy(events.GenMET_pt * np.cos(events.GenMET_phi))
    gen_y = ak.to_numpy(events.GenMET_pt * np.sin(events.GenMET_phi))
    # reco MET is minus the vector sum of the candidates
    pt, phi = events.PFCands_pt, events.PFCands_phi
    mx = -ak.to_numpy(ak.sum(pt * np.cos(phi), axis=1))
    my = -ak.to_numpy(ak.sum(pt * np.sin(phi), axis=1))
    np.testing.assert_allclose(np.hypot(mx, my), ak.to_numpy(events.MET_pt), rtol=1e-3, atol=1e-2)
    w = events.PFCands_puppiWeight
    qx = -ak.to_numpy(ak.sum(w * pt * np.cos(phi), axis=1))
    qy = -ak.to_numpy(ak.sum(w * pt * np.sin(phi), axis=1))
    np.testing.assert_allclose(np.hypot(qx, qy), ak.to_numpy(events.PuppiMET_pt), rtol=1e-3, atol=1e-2)
    # both scatter around GenMET, by tens of GeV at most; PUPPI is closer
    rms_pf = np.sqrt(np.mean((mx - gen_x) ** 2 + (my - gen_y) ** 2) / 2)
    rms_puppi = np.sqrt(np.mean((qx - gen_x) ** 2 + (qy - gen_y) ** 2) / 2)
    assert 3 < rms_pf < 40 and rms_puppi < rms_pf
    assert abs(np.mean(mx - gen_x)) < 5 and abs(np.mean(my - gen_y)) < 5
    assert ak.mean(events.GenMET_pt) > 10


def test_primary_vertex(events):
    npvs = ak.to_numpy(events.PV_npvs)
    assert npvs.min() >= 1 and 15 < npvs.mean() < 60
    assert np.std(ak.to_numpy(events.PV_z)) > 1.0
    assert np.std(ak.to_numpy(events.PV_x)) < 0.01
