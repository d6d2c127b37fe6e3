"""Generator runs with bad luminosity sections: the truth tree, the good sections untouched, the noisy MET tail
in the METSig histogram, the dead region empty with the jet links renumbered, CLI errors, and the bundled
data/samples/dqm.root."""

from __future__ import annotations

from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import uproot

from framework.samples import anomalies, generate
from framework.samples.cli import main

BUNDLED = Path(__file__).resolve().parents[1] / "data" / "samples" / "dqm.root"
#: how data/samples/dqm.root was written (4 runs x 20 lumis x 100 events; run 4 has the bad sections)
BUNDLED_COMMAND = ("python -m framework generate --events 8000 --seed 10 --events-per-lumi 100 --lumis-per-run 20 "
                   "--bad-lumis '4:3,4:8,4:13,4:17,4:5=dead-region,4:11=dead-region,4:19=dead-region,"
                   "4:15=met-tail+dead-region' --branches 'MET_*,PuppiMET_*,Jet_pt,Jet_eta,Jet_phi,PV_npvs' data/samples/dqm.root")
BAD = {(2, 1): "met-tail", (2, 3): "met-tail", (2, 2): "dead-region", (1, 3): "met-tail+dead-region"}
TAIL = 15.0  # METSig bins 15-50 and the overflow of the 51-bin ME


def _in_dead_region(eta, phi):
    return (eta >= anomalies.DEAD_ETA[0]) & (eta < anomalies.DEAD_ETA[1]) & (phi >= anomalies.DEAD_PHI[0]) & (
        phi < anomalies.DEAD_PHI[1])


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """The same events (2 runs x 3 lumis x 80) clean and with BAD: MET, jets and their links."""
    d = tmp_path_factory.mktemp("anomalies")
    kw = dict(events_per_lumi=80, lumis_per_run=3, branches=["MET_*", "Jet_*", "JetPFCands_jetIdx",
                                                             "JetPFCands_pFCandsIdx", "JetSVs_*", "PV_npvs"])
    generate(d / "clean.root", 480, 4, **kw)
    generate(d / "bad.root", 480, 4, bad_lumis=BAD, **kw)
    out = []
    for name in ("clean.root", "bad.root"):
        with uproot.open(d / name) as f:
            out.append((f["Events"].arrays(library="ak"), f["LuminosityBlocks"].arrays(library="np")))
    return out


def _lumi_mask(events, keys):
    return np.isin(events.run.to_numpy() * 1000 + events.luminosityBlock.to_numpy(), [r * 1000 + lumi for r, lumi in keys])


def test_truth_tree_and_the_good_sections_are_untouched(files):
    (clean, _), (bad, truth) = files
    assert list(zip(truth["run"], truth["luminosityBlock"])) == [(r, lumi) for r in (1, 2) for lumi in (1, 2, 3)]
    want = {k: sum(anomalies.ANOMALIES[n] for n in v.split("+")) for k, v in BAD.items()}
    assert {k: m for k, m in zip(zip(truth["run"], truth["luminosityBlock"]), truth["anomalies"]) if m} == want
    assert truth["isBad"].tolist() == [k in BAD for k in zip(truth["run"], truth["luminosityBlock"])]
    assert truth["nEvents"].tolist() == [80] * 6
    good = ~_lumi_mask(bad, BAD)
    assert good.sum() == 160
    for field in bad.fields:  # every branch of the good sections equals the clean file's
        assert ak.all(ak.flatten(bad[field][good], axis=None) == ak.flatten(clean[field][good], axis=None)), field


def test_noisy_met_tail(files):
    (clean, _), (bad, _) = files
    tail_lumis = [k for k, v in BAD.items() if "met-tail" in v]
    sel = _lumi_mask(bad, tail_lumis)
    changed = bad.MET_pt.to_numpy()[sel] != clean.MET_pt.to_numpy()[sel]
    assert 0.25 < changed.mean() < 0.55  # MET_TAIL_FRACTION = 0.4 of 240 events
    assert np.all(bad.MET_sumEt.to_numpy()[sel][changed] > clean.MET_sumEt.to_numpy()[sel][changed])
    sig_bad, sig_clean = bad.MET_significance.to_numpy(), clean.MET_significance.to_numpy()
    # the METSig histogram's tail: several times the good sections' in each bad one
    good_tail = np.mean(sig_bad[~_lumi_mask(bad, BAD)] >= TAIL)
    for key in tail_lumis:
        m = _lumi_mask(bad, [key])
        assert np.mean(sig_bad[m] >= TAIL) > 2 * good_tail > 0, key
        assert np.mean(sig_clean[m] >= TAIL) < np.mean(sig_bad[m] >= TAIL)
    # MET_significance is the documented toy
    met, sumet = bad.MET_pt.to_numpy().astype(float), bad.MET_sumEt.to_numpy().astype(float)
    np.testing.assert_allclose(sig_bad, met**2 / (anomalies.MET_SIG_RESOLUTION**2 * sumet), rtol=1e-5)


def test_dead_region_is_empty_and_the_jet_links_follow(files):
    (clean, _), (bad, _) = files
    dead = _lumi_mask(bad, [k for k, v in BAD.items() if "dead-region" in v])
    in_region = _in_dead_region(bad.Jet_eta, bad.Jet_phi)
    assert ak.sum(in_region[dead]) == 0
    assert ak.sum(_in_dead_region(clean.Jet_eta, clean.Jet_phi)[dead]) > 10  # there were jets to remove
    assert ak.sum(in_region[~dead]) > 10
    # the other jets stay, with their links: each kept jet's candidates and vertices are the ones it had
    keep = ~_in_dead_region(clean.Jet_eta, clean.Jet_phi)[dead]
    assert ak.all(bad.Jet_pt[dead] == clean.Jet_pt[dead][keep]) and ak.all(bad.nJet[dead] == ak.sum(keep, axis=1))
    b, c = bad[dead], clean[dead]
    links = [(b[f"{coll}_jetIdx"].to_list(), b[f"{coll}_{idx}"].to_list(), c[f"{coll}_jetIdx"].to_list(),
              c[f"{coll}_{idx}"].to_list()) for coll, idx in (("JetPFCands", "pFCandsIdx"), ("JetSVs", "sVIdx"))]
    for i, kept in enumerate(keep.to_list()):
        for new, old in enumerate(np.flatnonzero(kept)):
            for jet_b, idx_b, jet_c, idx_c in links:
                got = [x for j, x in zip(jet_b[i], idx_b[i]) if j == new]
                assert got == [x for j, x in zip(jet_c[i], idx_c[i]) if j == old], (i, new, old)
    assert ak.all(ak.num(b.JetPFCands_jetIdx) == ak.sum(b.Jet_nConstituents, axis=1))


@pytest.mark.parametrize("args,message", [
    (["--lumis-per-run", "3", "--bad-lumis", "2:3=dead-regoin"], "Did you mean 'dead-region'"),
    (["--lumis-per-run", "3", "--bad-lumis", "5:1"], "run 5, lumi 1 is not in the file"),
    (["--bad-lumis", "x"], "write LUMI, RUN:LUMI"),
    (["--branches", "Jet_ptt"], "Did you mean 'Jet_pt'"),
    (["--flavour", "pfnano-released", "--bad-lumis", "1"], "need --flavour generated"),
])
def test_cli_errors(tmp_path, caplog, args, message):
    out = tmp_path / "x.root"
    assert main(["--events", "20", "--events-per-lumi", "5", *args, str(out)]) == 1
    assert message in caplog.text and not out.exists()


def test_bundled_dqm_sample():
    """data/samples/dqm.root: BUNDLED_COMMAND; its first 500 events (run 1: good) are what the generator writes,
    and its truth tree says which sections of run 4 are bad; those differ as the anomalies say."""
    if not BUNDLED.is_file():
        pytest.fail(f"{BUNDLED} is missing; write it with: {BUNDLED_COMMAND}")
    assert BUNDLED.stat().st_size < 2_000_000
    with uproot.open(BUNDLED) as f:
        events = f["Events"].arrays(library="ak")
        truth = f["LuminosityBlocks"].arrays(library="np")
    assert len(events) == 8000 and len(truth["run"]) == 80
    bad = {(int(r), int(lumi)): int(m) for r, lumi, m in zip(truth["run"], truth["luminosityBlock"], truth["anomalies"]) if m}
    assert bad == {(4, 3): 1, (4, 8): 1, (4, 13): 1, (4, 17): 1, (4, 5): 2, (4, 11): 2, (4, 19): 2, (4, 15): 3}
    code = events.run.to_numpy().astype(np.int64) * 1000 + events.luminosityBlock.to_numpy()
    keys, lumi_of_event = np.unique(code, return_inverse=True)
    keys = [(int(k) // 1000, int(k) % 1000) for k in keys]
    tail = np.bincount(lumi_of_event, weights=events.MET_significance.to_numpy() >= TAIL) / np.bincount(lumi_of_event)
    dead = np.bincount(np.repeat(lumi_of_event, events.nJet.to_numpy()),
                       weights=ak.flatten(_in_dead_region(events.Jet_eta, events.Jet_phi)).to_numpy(), minlength=80)
    is_bad = np.asarray([k in bad for k in keys])
    tail_bad = np.asarray([bad.get(k, 0) & 1 for k in keys], bool)
    dead_bad = np.asarray([bad.get(k, 0) & 2 for k in keys], bool)
    assert tail[tail_bad].min() > tail[~is_bad].max()
    assert np.all(dead[dead_bad] == 0) and dead[~is_bad].min() > 5


def test_bundled_dqm_sample_is_what_the_command_writes(tmp_path):
    ref = tmp_path / "ref.root"
    generate(ref, 500, 10, events_per_lumi=100, lumis_per_run=20,
             branches=["MET_*", "PuppiMET_*", "Jet_pt", "Jet_eta", "Jet_phi", "PV_npvs"])
    with uproot.open(BUNDLED) as fa, uproot.open(ref) as fb:
        a, b = fa["Events"].arrays(entry_stop=500), fb["Events"].arrays()
    assert a.fields == b.fields
    for name in a.fields:
        assert ak.all(ak.flatten(a[name], axis=None) == ak.flatten(b[name], axis=None)), (
            f"{name} differs: regenerate data/samples/dqm.root with {BUNDLED_COMMAND}")
