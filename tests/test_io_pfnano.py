"""PFNano files as released (cms-jet/PFNano): the input layer recognises the flavour from the branch names and
derives the canonical branches the released layout lacks (:mod:`framework.io.pfnano`).

The released file is written from a generated one (:func:`framework.io.pfnano.write_released`), so every
derived column is checked against the generator's original. Agreement, and why it is what it is:

* ``JetPFCands_btagSip2dVal``: bit-identical for every link to a candidate with track details (``|d0|``, signed
  by the jet direction in the transverse plane from the stored phis, as IPTools) but where candidate and jet
  have the same stored phi (1 link in 4000: the generator's sign is float noise there); taking the sign of
  ``btagSip3dVal`` instead would be wrong for 24% of these links (prompt tracks, whose 3D sign follows dz);
* ``JetPFCands_btagSip2dSig``: the same up to the generator's 12-bit mantissa rounding of the stored value
  (relative ``2**-12``);
* ``PFCands_fromPV``: neutral candidates exactly (CMSSW: PV 0, UsedInFitTight -> 3); charged ones 84% (bound
  80%): the generator's joint distribution of (fromPV, pvAssocQuality) is not CMSSW's rule everywhere (15% of
  its fromPV=3 tracks have quality 6, which ``PackedCandidate::fromPV`` turns into 2; pileup tracks of quality
  5 far from the PV are NoPV there but PVLoose in CMSSW), and without track details only PUPPI tells PV from PU;
* ``PFCands_hcalFraction``: exact (0) for every candidate but neutral hadrons (130, 1), which get 1 while the
  generator draws Beta(8, 1.5) / Beta(8, 2) (means 0.84 / 0.80): mean |difference| bounded at 0.25;
* ``PFCands_d0``/``dz``: as generated where PFNano stores track details; PFNano's -1 elsewhere reads as 0 (the
  generated value of neutrals; for charged candidates below 0.5 GeV the value is lost).

The physics: on the released file ParT's b scores rank the jets like on the original (Spearman >= 0.95,
measured 0.9997 with the bundled model and 0.9995 with the CMS model; b-vs-light AUC within 0.02, measured
within 0.0002); DeepMET's px, py, pt stay within 1.5 GeV median / 6 GeV at most of the original's (measured
0.45 / 3.1 GeV in pt, 0.40 / 4.2 GeV in px, on a MET of ~20 GeV: from the derived fromPV and the d0/dz that
PFNano does not keep for charged candidates below 0.5 GeV).

There is no real PFNano file with candidates here: the NanoAOD file in ../shared has ``Jet_btagDeepFlavB`` but
no PF candidates, so the ranking against CMS's stored b-tagger on real jets cannot be run (a test checks that
this is still the case).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import uproot

import framework.config as cms
from framework.core.processor import build_module
from framework.exceptions import InputError
from framework.io import pfnano
from framework.io.schema import BRANCHES, COLLECTIONS
from framework.samples.cli import main as generate_main
from tests.main_fixtures import CONFIG, FLAVOURS, MET, SCORES, assert_same_events, run_main

EVENTS = 150
SEED = 20240
DERIVED = ("JetPFCands_btagSip2dVal", "JetPFCands_btagSip2dSig", "PFCands_fromPV", "PFCands_hcalFraction")
CONVERTED = ("PFCands_d0", "PFCands_dz")
CANONICAL = DERIVED + CONVERTED + ("PFCands_charge", "PFCands_pdgId", "PFCands_pt", "PFCands_phi", "PFCands_d0Err",
                                   "JetPFCands_btagSip3dVal", "JetPFCands_pFCandsIdx", "JetPFCands_jetIdx", "Jet_phi")


# ------------------------------------------------------------------------------------------- helpers
def copy_tree(src: Path, dst: Path, drop: set[str]) -> None:
    """*src* without the branches *drop*, in NanoAOD layout (``nX`` counters, ``X_field`` branches)."""
    with uproot.open(src) as f:
        tree = f["Events"]
        names = [n for n in tree.keys() if n not in drop and not (n[:1] == "n" and n[1:] in COLLECTIONS)]
        a = tree.arrays(names)
    out, groups = {}, {}
    for n in names:
        coll, _, field = n.partition("_")
        if coll in COLLECTIONS:
            groups.setdefault(coll, {})[field] = a[n]
        else:
            out[n] = a[n]
    out.update({coll: ak.zip(fields) for coll, fields in groups.items()})
    with uproot.recreate(dst) as f:
        f.mktree("Events", {k: pfnano._item_type(v) for k, v in out.items()}).extend(out)


def open_source(*paths: Path, chunk: int = 64):
    cls, params = build_module(cms.Source("RootSource", fileNames=[str(p) for p in paths], chunkSize=chunk), "source")
    source = cls("source", params)
    source.open()
    return source


def read_through_source(path: Path, names, chunk: int = 64) -> dict[str, ak.Array]:
    """*names* as the job's modules see them (derived where the file lacks them), chunk by chunk."""
    source = open_source(path, chunk=chunk)
    source.require(list(names))
    parts: dict[str, list] = {n: [] for n in names}
    seen = set()
    while (ev := source.next()) is not None:
        if (ev.file_name, ev.chunk.start) in seen:
            continue
        seen.add((ev.file_name, ev.chunk.start))
        for n in names:
            parts[n].append(ev.chunk.column(n).take(np.arange(len(ev.chunk))))
    source.close()
    return {n: ak.concatenate(p) for n, p in parts.items()}


def flat(a) -> np.ndarray:
    return np.asarray(ak.flatten(a, axis=None))


def rank(x: np.ndarray) -> np.ndarray:
    order = np.argsort(x, kind="stable")
    r = np.empty(len(x))
    r[order] = np.arange(len(x))
    _, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
    return (np.bincount(inverse, weights=r) / counts)[inverse]  # ties share their mean rank


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(rank(a), rank(b))[0, 1])


def auc(score: np.ndarray, signal: np.ndarray) -> float:
    r = rank(score) + 1
    n1, n0 = signal.sum(), (~signal).sum()
    return float((r[signal].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


# ------------------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def files(tmp_path_factory, generate_sample) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("pfnano")
    files = {"generated": root / "generated.root", "released": root / "released.root"}
    generate_sample(files["generated"], EVENTS, SEED)
    pfnano.write_released(files["generated"], files["released"])
    files["minimal"] = root / "minimal.root"  # released, without the fields the framework never reads
    copy_tree(files["released"], files["minimal"], {"PFCands_vtxChi2", "PFCands_puppiWeightNoLep", "PFCands_lostInnerHits"})
    files["unknown"] = root / "unknown.root"  # candidates, but no pvAssocQuality: neither flavour
    copy_tree(files["generated"], files["unknown"], {"PFCands_pvAssocQuality", "PFCands_fromPV",
                                                     "JetPFCands_btagSip2dVal", "JetPFCands_btagSip2dSig"})
    files["nocands"] = root / "nocands.root"
    copy_tree(files["generated"], files["nocands"], {n for n in BRANCHES if n.startswith(pfnano.CANDIDATE_PREFIXES)})
    return files


@pytest.fixture(scope="module")
def columns(files) -> dict[str, dict[str, ak.Array]]:
    """The canonical columns read through RootSource: from the generated file, and from the released one."""
    return {kind: read_through_source(files[kind], CANONICAL) for kind in ("generated", "released")}


@pytest.fixture(scope="module")
def stored(files) -> dict[str, ak.Array]:
    """The released file's branches as stored."""
    with uproot.open(files["released"]) as f:
        return f["Events"].arrays(["PFCands_d0", "PFCands_d0Err", "PFCands_dz", "PFCands_charge", "PFCands_pt"])


# ------------------------------------------------------------------------------------- the layout
def test_released_layout(files):
    with uproot.open(files["released"]) as f:
        names = set(f["Events"].keys())
    cands = {n for n in names if n.startswith(pfnano.CANDIDATE_PREFIXES)}
    assert cands == {f"PFCands_{f}" for f in pfnano.RELEASED_PFCANDS} | {f"JetPFCands_{f}" for f in pfnano.RELEASED_JETPFCANDS}
    others = {n for n in BRANCHES if not n.startswith(pfnano.CANDIDATE_PREFIXES) and n not in ("nPFCands", "nJetPFCands")}
    assert names - cands == others | {"nPFCands", "nJetPFCands"}
    assert not set(DERIVED) & names
    assert pfnano.recognise(names) is pfnano.RELEASED
    with uproot.open(files["generated"]) as f:
        assert pfnano.recognise(f["Events"].keys()) is pfnano.GENERATED
    with uproot.open(files["minimal"]) as f:
        assert pfnano.recognise(f["Events"].keys()) is pfnano.RELEASED  # the unread fields are not required
    for kind in ("unknown", "nocands"):
        with uproot.open(files[kind]) as f:
            assert pfnano.recognise(f["Events"].keys()) is None
            assert pfnano.has_candidates(f["Events"].keys()) == (kind == "unknown")


def test_released_file_stores_pfnano_minus_one_without_track_details(stored):
    charge, pt = flat(stored["PFCands_charge"]), flat(stored["PFCands_pt"])
    details = (charge != 0) & (pt > 0.5)
    for name in ("PFCands_d0", "PFCands_d0Err", "PFCands_dz"):
        values = flat(stored[name])
        assert (values[~details] == -1).all(), name
    assert (flat(stored["PFCands_d0Err"])[details] > 0).all()
    assert (~details).sum() > 1000 and details.sum() > 1000  # both kinds are there


# ------------------------------------------------------------------------------- derived vs original
def _links(columns):
    """The two files' columns, and per link: the 3D IP, whether the candidate has track details in PFNano,
    and sin(jet phi - candidate phi)."""
    g, r = columns["generated"], columns["released"]
    idx = g["JetPFCands_pFCandsIdx"]
    charge, pt, phi = (flat(ak.flatten(g[f"PFCands_{f}"][idx])) for f in ("charge", "pt", "phi"))
    jet_phi = flat(ak.flatten(g["Jet_phi"][g["JetPFCands_jetIdx"]]))
    sin_dphi = np.sin(jet_phi.astype(np.float64) - phi.astype(np.float64))
    return g, r, flat(g["JetPFCands_btagSip3dVal"]), (charge != 0) & (pt > 0.5), sin_dphi


def test_derived_sip2d_matches_the_generator(columns):
    g, r, sip3, details, sin_dphi = _links(columns)
    orig, got = flat(g["JetPFCands_btagSip2dVal"]), flat(r["JetPFCands_btagSip2dVal"])
    assert ak.to_list(ak.num(r["JetPFCands_btagSip2dVal"])) == ak.to_list(ak.num(g["JetPFCands_btagSip2dVal"]))
    assert got.dtype == np.float32
    # bit-identical: |d0| with the transverse sign from the phis; where the stored phis are equal the
    # generator's sign is float noise and the derived one follows IPTools (prod >= 0: +)
    tie = sin_dphi == 0
    assert (got[details & ~tie] == orig[details & ~tie]).all()
    assert (got[details & tie] == np.abs(orig[details & tie])).all() and (details & tie).sum() <= 5
    assert (got[~details] == 0).all()  # neutral, or packed without track details: 0, as TrackInfoBuilder
    # the sign of the 3D IP would be wrong for a good part of the (mostly prompt) tracks
    other_sign = float((np.sign(orig[details]) != np.sign(sip3[details])).mean())
    assert other_sign > 0.1, f"2D and 3D signs differ on {other_sign:.1%} of the links"

    sig_orig, sig = flat(g["JetPFCands_btagSip2dSig"]), flat(r["JetPFCands_btagSip2dSig"])
    np.testing.assert_allclose(sig[details & ~tie], sig_orig[details & ~tie], rtol=2.0**-12, atol=0)
    assert (sig[~details] == 0).all()


def test_derived_from_pv_matches_the_generator(columns):
    g, r = columns["generated"], columns["released"]
    orig, got = flat(g["PFCands_fromPV"]), flat(r["PFCands_fromPV"])
    assert got.dtype == np.int32 and got.shape == orig.shape
    neutral = flat(g["PFCands_charge"]) == 0
    assert (got[neutral] == 3).all() and (orig[neutral] == 3).all()
    charged_agreement = float((got[~neutral] == orig[~neutral]).mean())
    assert charged_agreement >= 0.80, f"charged candidates: fromPV agrees on {charged_agreement:.1%}"
    assert set(np.unique(got)) <= {0, 1, 2, 3}


def test_from_pv_follows_packed_candidate_rules():
    # (charge, pdgId, quality, dz, dzErr, puppiWeight) -> CMSSW's fromPV with the estimated vertex association
    cases = [
        ((0, 22, 7, -1.0, -1.0, 0.3), 3),      # neutral: PV 0, UsedInFitTight
        ((1, 211, 7, 0.01, 0.01, 1.0), 3),     # used in the PV fit
        ((1, 211, 6, 0.01, 0.01, 1.0), 2),     # at the PV, loose fit: PVTight
        ((1, 211, 5, 0.02, 0.001, 1.0), 2),    # |dz| < 0.03 cm: dz-compatible with PV 0
        ((1, 211, 5, 0.2, 0.05, 1.0), 2),      # |dz|/dzErr = 4 < 5: compatible
        ((1, 211, 5, 2.0, 0.05, 0.0), 1),      # another vertex by dz: PVLoose
        ((1, 211, 7, 2.0, 0.05, 0.0), 0),      # used in another vertex's fit: NoPV
        ((-1, 13, 7, 2.0, 0.05, 0.0), 2),      # muons are PVTight wherever they are associated
        ((1, 211, 7, -1.0, -1.0, 1.0), 3),     # no track details: PUPPI kept it, the PV
        ((1, 211, 6, -1.0, -1.0, 0.0), 0),     # no track details, PUPPI rejected it
    ]
    args = [np.array(v) for v in zip(*(c for c, _ in cases))]
    assert pfnano.derive_from_pv(*args).tolist() == [want for _, want in cases]


def test_derived_hcal_fraction_matches_the_generator(columns):
    g, r = columns["generated"], columns["released"]
    orig, got = flat(g["PFCands_hcalFraction"]), flat(r["PFCands_hcalFraction"])
    assert got.dtype == np.float32
    hadron = np.isin(np.abs(flat(g["PFCands_pdgId"])), (1, 130))
    assert (got[~hadron] == 0).all() and (orig[~hadron] == 0).all()
    assert (got[hadron] == 1).all()
    diff = float(np.abs(got[hadron] - orig[hadron]).mean())
    assert 0 < diff <= 0.25, f"neutral hadrons: mean |derived - generated| = {diff:.3f}"


def test_d0_dz_without_track_details_read_as_zero(columns, stored):
    g, r = columns["generated"], columns["released"]
    details = flat(stored["PFCands_d0Err"]) > 0
    for name in CONVERTED:
        orig, got = flat(g[name]), flat(r[name])
        assert (got[details] == orig[details]).all(), name
        assert (got[~details] == 0).all(), name
        neutral = flat(g["PFCands_charge"]) == 0
        assert (got[neutral] == orig[neutral]).all(), name  # neutral candidates: exactly the generated 0


# ----------------------------------------------------------------------------------- source behaviour
def test_each_derivation_is_named_once_and_not_an_input_branch(files):
    source = open_source(files["released"], files["minimal"], chunk=32)
    source.require(list(DERIVED + CONVERTED) + ["Jet_pt"])
    source.require(list(DERIVED))  # a second require adds no second warning
    warnings = source.warnings()
    for name in DERIVED + CONVERTED:
        named = [w for w in warnings if w.startswith(name + " ")]
        assert len(named) == 1 and "2 of 2 input files" in named[0], warnings
    assert not set(DERIVED) & set(source.branchNames())
    ev = source.next()
    assert set(ev.chunk.loaded) >= set(DERIVED)  # read ahead with the chunk
    source.close()


def test_pass_through_writes_no_derived_branch(files, tmp_path):
    from framework.core.processor import EventProcessor

    out = tmp_path / "copy.root"
    process = cms.Process("COPY")
    process.source = cms.Source("RootSource", fileNames=[str(files["released"])], chunkSize=64)
    process.out = cms.OutputModule("RootOutputModule", fileName=str(out), outputCommands=["keep *"])
    process.e = cms.EndPath(process.out)
    report = EventProcessor(process).run()
    with uproot.open(files["released"]) as f, uproot.open(out) as g:
        names = set(f["Events"].keys())
        assert set(g["Events"].keys()) == names  # the stored branches, nothing derived
        a, b = f["Events"].arrays(library="ak"), g["Events"].arrays(library="ak")
    for name in names - set(CONVERTED):
        assert ak.to_list(a[name]) == ak.to_list(b[name]), name
    # d0/dz as the job reads them: PFNano's -1 (no track details) as 0; d0Err/dzErr keep the -1, so nothing is lost
    for name in CONVERTED:
        err = flat(a[name + "Err"])
        assert (flat(b[name])[err < 0] == 0).all() and (flat(b[name])[err > 0] == flat(a[name])[err > 0]).all()
        assert (flat(b[name + "Err"]) == err).all()
    assert [w.split()[0] for w in report.warnings] == ["PFCands_d0", "PFCands_dz"]


def test_generated_file_derives_nothing(files):
    source = open_source(files["generated"])
    source.require(list(DERIVED + CONVERTED))
    assert source.warnings() == []
    source.close()


def test_released_file_without_a_non_derivable_branch(files):
    source = open_source(files["released"])
    with pytest.raises(InputError) as err:
        source.require({"PFCands_fromPVV": ["'x' (X)"]})
    text = str(err.value)
    assert "branch 'PFCands_fromPVV' not found" in text and "Did you mean" in text
    assert "no PF candidates" not in text


def test_generate_cli_writes_the_released_flavour(tmp_path):
    out = tmp_path / "cli.root"
    assert generate_main(["--events", "5", "--seed", "3", "--flavour", "pfnano-released", str(out)]) == 0
    with uproot.open(out) as f:
        assert pfnano.recognise(f["Events"].keys()) is pfnano.RELEASED and f["Events"].num_entries == 5
    assert [p.name for p in tmp_path.iterdir()] == ["cli.root"]  # no temporary file left


# ------------------------------------------------------------------------------------- command line
@pytest.fixture(scope="module")
def cli_errors(files, run_framework, tmp_path_factory):
    root = tmp_path_factory.mktemp("pfnano_cli")
    cases = {kind: root / kind for kind in ("unknown", "nocands")}
    for d in cases.values():
        d.mkdir()
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {kind: pool.submit(run_framework, "run", CONFIG, f"inputFiles={files[kind]}", "maxEvents=5",
                                     f"outputFile={d / 'out.root'}") for kind, d in cases.items()}
        return {kind: (f.result(), cases[kind]) for kind, f in futures.items()}


def _fatal(proc) -> str:
    assert proc.returncode == 3, proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    blocks = proc.stderr.split("----- Begin Fatal Exception -----\n")
    assert len(blocks) == 2, proc.stderr
    message = blocks[1].split("\n----- End Fatal Exception -----")[0]
    assert "\n" not in message and len(message) < 1200, message
    return message


def test_cli_unknown_flavour_says_what_the_file_has_and_lacks(cli_errors, files):
    proc, out_dir = cli_errors["unknown"]
    message = _fatal(proc)
    assert str(files["unknown"]) in message and "in no known PFNano flavour" in message
    assert "Needed by" not in message and "needed by module" in message
    assert "PFCands_{pt, eta" in message and "JetPFCands_{jetIdx" in message  # what it has
    assert "'generated'" in message and "lacks PFCands_{fromPV, pvAssocQuality}" in message  # per flavour
    assert "'pfnano-released'" in message and "lacks PFCands_{pvAssocQuality}" in message
    assert "Fix:" in message and "--flavour pfnano-released" in message
    assert "no PF candidates" not in message
    assert list(out_dir.iterdir()) == []


def test_cli_file_without_candidates_keeps_its_message(cli_errors, files):
    proc, out_dir = cli_errors["nocands"]
    message = _fatal(proc)
    assert str(files["nocands"]) in message and "it has no PF candidates (PFCands_*, JetPFCands_*)" in message
    assert list(out_dir.iterdir()) == []


# ---------------------------------------------------------------------------------------- main job
def _jobs(files, tmp_path_factory, *extra: str):
    root = tmp_path_factory.mktemp("pfnano_job")
    return {kind: run_main(root / f"{kind}.root", f"inputFiles={files[kind]}", f"maxEvents={EVENTS}", "wantSummary=0",
                           *extra)
            for kind in ("generated", "released")}


def _b_score(arrays) -> np.ndarray:
    return flat(sum(arrays[f"{SCORES}_{f}"] for f in FLAVOURS[:3])).astype(np.float64)


def assert_same_physics(jobs, spearman_min: float = 0.95, auc_tol: float = 0.02) -> dict[str, float]:
    g, r = jobs["generated"].arrays(), jobs["released"].arrays()
    assert_same_events(g, r, "released vs generated")  # same branches; Jet_*, MET_*, ... identical
    assert not {n for n in r if n.startswith(pfnano.CANDIDATE_PREFIXES)}
    for name in DERIVED:
        assert sum(name in w for w in jobs["released"].report.warnings) == 1, jobs["released"].report.warnings
    assert jobs["generated"].report.warnings == []
    bg, br = _b_score(g), _b_score(r)
    scored = bg >= 0
    assert (br[~scored] == bg[~scored]).all()  # jets without candidates: -1 in both
    rho = spearman(bg[scored], br[scored])
    assert rho >= spearman_min, f"Spearman of the b scores {rho:.4f}"
    flavour = flat(g["Jet_hadronFlavour"])
    sel = scored & np.isin(flavour, (0, 5))
    a_g, a_r = auc(bg[sel], flavour[sel] == 5), auc(br[sel], flavour[sel] == 5)
    assert abs(a_g - a_r) <= auc_tol, f"b-vs-light AUC {a_g:.4f} (generated) vs {a_r:.4f} (released)"
    return {"spearman": rho, "auc_generated": a_g, "auc_released": a_r}


@pytest.mark.slow
def test_main_job_on_released_pfnano(files, tmp_path_factory):
    jobs = _jobs(files, tmp_path_factory)
    assert_same_physics(jobs)
    g, r = jobs["generated"].arrays(), jobs["released"].arrays()
    diff = np.abs(flat(g[f"{MET}_pt"]) - flat(r[f"{MET}_pt"]))
    assert np.median(diff) <= 1.5 and diff.max() <= 6.0, f"DeepMET pt: median |d| {np.median(diff):.2f}, max {diff.max():.2f} GeV"
    for comp in ("px", "py"):
        d = np.abs(flat(g[f"{MET}_{comp}"]) - flat(r[f"{MET}_{comp}"]))
        assert np.median(d) <= 1.5 and d.max() <= 6.0, comp


@pytest.mark.slow
@pytest.mark.shared
def test_main_job_on_released_pfnano_with_the_cms_part_model(files, tmp_path_factory, shared_dir):
    model = shared_dir / "models" / "particletransformer_AK4"
    if not (model / "1" / "model.onnx").is_file():
        pytest.skip(f"{model} (the CMS ParT AK4 model) is absent")
    assert_same_physics(_jobs(files, tmp_path_factory, f"partModel={model}"))


@pytest.mark.shared
def test_shared_nanoaod_has_a_stored_tagger_but_no_candidates(nanoaod_file):
    # why ParT cannot be compared with Jet_btagDeepFlavB on real jets here
    with uproot.open(nanoaod_file) as f:
        names = f["Events"].keys()
    assert "Jet_btagDeepFlavB" in names and "Jet_hadronFlavour" in names
    assert not pfnano.has_candidates(names) and pfnano.recognise(names) is None
