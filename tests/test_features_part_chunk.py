"""ParticleTransformer AK4 inputs for a whole chunk (``features.build_part_inputs``, the one builder): every event
equals the per-event reference ``build_part_inputs`` exactly (dtype, shape, bytes), on the bundled sample, on a
generated sample with the edge cases, and on hand-made events; ``Chunk.cached``; the producer's ``prepare`` on a
chunk and without one; and the main job's ParT products bit-identical to a job using the per-event builder."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import uproot

from framework.core.principal import EventPrincipal
from framework.io.chunk import Chunk, Column, SourceEvent
from producers.particle_transformer_ak4 import taginfo_producer
from producers.particle_transformer_ak4.features import (
    INPUT_BRANCHES,
    INPUT_NAMES,
    PartConfig,
    PartInputs,
)
from producers.particle_transformer_ak4.features import build_part_inputs as build_batch
from tests.part_oracle import build_part_inputs
from tests.test_features_part import charged, make_event, neutral


def build_part_inputs_chunk(columns, **kwargs) -> PartInputs:
    """The batch builder with the oracle's keyword arguments."""
    return build_batch(columns, PartConfig(**kwargs))


REPO_ROOT = Path(__file__).resolve().parents[1]
BUNDLED = REPO_ROOT / "data" / "samples" / "sample.root"

#: keyword arguments compared: the producers' (pad to the event maximum), fixed slots, non-default min_slots
VARIANTS = [
    pytest.param({}, id="pad_to_event_max"),
    pytest.param({"pad_to_event_max": False}, id="fixed_slots"),
    pytest.param({"min_slots": 3}, id="min_slots_3"),
    pytest.param({"min_slots": 0, "is_weighted_jet": True}, id="min_slots_0_weighted"),
    pytest.param({"max_cpf": 7, "max_npf": 4, "max_sv": 2, "min_slots": 2, "jet_radius": 0.3}, id="small_limits"),
]


# ------------------------------------------------------------------------------------------- helpers
def read_columns(path: Path) -> dict[str, Column]:
    """The input branches of *path* as the framework holds them (``Column.from_awkward`` of uproot arrays)."""
    with uproot.open(path) as f:
        arrays = f["Events"].arrays(list(INPUT_BRANCHES), library="ak")
    return {name: Column.from_awkward(arrays[name]) for name in INPUT_BRANCHES}


def as_pairs(columns: dict[str, Column]) -> dict[str, tuple[np.ndarray, np.ndarray | None]]:
    return {name: (col.content, col.offsets) for name, col in columns.items()}


def columns_of_events(events: list[dict[str, np.ndarray]]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per-event branch dicts -> chunk columns (flat content + offsets)."""
    out = {}
    for name in INPUT_BRANCHES:
        values = [np.asarray(ev[name]) for ev in events]
        offsets = np.zeros(len(events) + 1, np.int64)
        np.cumsum([len(v) for v in values], out=offsets[1:])
        out[name] = (np.concatenate(values) if values else np.zeros(0, np.float32), offsets)
    return out


def event_of(columns, i: int) -> dict[str, np.ndarray]:
    ev = {}
    for name in INPUT_BRANCHES:
        content, offsets = columns[name]
        ev[name] = content[i] if offsets is None else content[offsets[i] : offsets[i + 1]]
    return ev


def assert_identical(got, want, what: str) -> None:
    """Exactly equal: dtype, shape and every byte (so also NaN payloads and the sign of zeros)."""
    (x, has), (xr, hr) = got, want
    assert sorted(x) == sorted(xr) == sorted(INPUT_NAMES), what
    for name in (*INPUT_NAMES, "has_candidates"):
        a, b = (has, hr) if name == "has_candidates" else (x[name], xr[name])
        assert a.dtype == b.dtype, f"{what} {name}: dtype {a.dtype} vs {b.dtype}"
        assert a.shape == b.shape, f"{what} {name}: shape {a.shape} vs {b.shape}"
        if a.tobytes() != b.tobytes():
            diff = np.abs(a.astype(np.float64) - b.astype(np.float64))
            bad = np.argwhere(~((a == b) | (np.isnan(a) & np.isnan(b))))
            pytest.fail(f"{what} {name}: {len(bad)} values differ, first at {bad[:1].tolist()}, "
                        f"max |diff| {np.nanmax(diff) if diff.size else 0}")


def assert_chunk_equals_reference(columns, what: str, **kwargs) -> PartInputs:
    batch = build_part_inputs_chunk(columns, **kwargs)
    n = len(next(iter(columns.values()))[1]) - 1
    assert len(batch) == n
    for i in range(n):
        assert_identical(batch.event(i), build_part_inputs(event_of(columns, i), **kwargs), f"{what}, event {i}")
    return batch


# ------------------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def bundled_columns():
    if not BUNDLED.is_file():
        pytest.fail(f"bundled sample {BUNDLED} is missing")
    return as_pairs(read_columns(BUNDLED))


@pytest.fixture(scope="module")
def generated_columns(tmp_path_factory, generate_sample):
    path = tmp_path_factory.mktemp("part_chunk") / "gen.root"
    generate_sample(path, 300, 1)
    return as_pairs(read_columns(path))


def _counts(columns):
    """Per event / per jet counts the edge-case assertions need."""
    n = len(columns["Jet_pt"][1]) - 1
    joff, loff, poff, soff = (columns[b][1] for b in ("Jet_pt", "JetPFCands_jetIdx", "PFCands_pt", "SV_pt"))
    link_ev = np.repeat(np.arange(n), np.diff(loff))
    jet = joff[link_ev] + columns["JetPFCands_jetIdx"][0]
    cand = poff[link_ev] + columns["JetPFCands_pFCandsIdx"][0]
    selected = columns["PFCands_pt"][0][cand] >= 0.95
    charged_ = columns["PFCands_charge"][0][cand] != 0
    n_jets = joff[-1]
    return {
        "jets": np.diff(joff),
        "svs": np.diff(soff),
        "links_per_jet": np.bincount(jet, minlength=n_jets),
        "charged_per_jet": np.bincount(jet[selected & charged_], minlength=n_jets),
        "neutral_per_jet": np.bincount(jet[selected & ~charged_], minlength=n_jets),
    }


# ---------------------------------------------------------------------------------- equality: samples
@pytest.mark.parametrize("kwargs", VARIANTS)
def test_bundled_sample_every_event_equals_the_per_event_builder(bundled_columns, kwargs):
    assert_chunk_equals_reference(bundled_columns, "bundled sample", **kwargs)


def test_generated_sample_has_the_edge_cases(generated_columns):
    c = _counts(generated_columns)
    assert (c["jets"] == 0).any(), "no event without jets"
    assert (c["svs"] == 0).any(), "no event without SV"
    assert (c["svs"] > 1).any(), "no event with several SVs"
    assert (c["links_per_jet"] == 0).any(), "no jet without candidates"
    assert (c["charged_per_jet"] > 25).any(), "no jet with more than 25 charged candidates"
    assert (c["neutral_per_jet"] > 8).any()


@pytest.mark.parametrize("kwargs", VARIANTS)
def test_generated_sample_every_event_equals_the_per_event_builder(generated_columns, kwargs):
    assert_chunk_equals_reference(generated_columns, "generated sample", **kwargs)


def test_chunks_that_start_inside_the_columns(generated_columns):
    """Offsets that do not start at 0 (a chunk cut out of larger columns), chunks of 1 and of 0 events."""
    for start, stop in ((37, 120), (5, 6), (299, 300), (10, 10)):
        sub = {name: (content, offsets[start : stop + 1]) for name, (content, offsets) in generated_columns.items()}
        batch = assert_chunk_equals_reference(sub, f"events {start}..{stop}")
        assert len(batch) == stop - start


def test_one_event_gives_views_into_the_chunk_buffers(generated_columns):
    batch = build_part_inputs_chunk(generated_columns)
    jets = np.diff(generated_columns["Jet_pt"][1])
    i = int(np.flatnonzero(jets >= 2)[0])
    x, has = batch.event(i)
    for a in (*x.values(), has):
        assert a.base is not None, "not a view"
        assert not a.flags.writeable, "the chunk's arrays are shared: read-only"
        assert a.flags.c_contiguous
    assert batch.event(i)[0]["input_1"].base is x["input_1"].base
    with pytest.raises(IndexError):
        batch.event(len(batch))


# ------------------------------------------------------------------------------ equality: hand-made
def _hand_made_events() -> list[dict[str, np.ndarray]]:
    jet = (60.0, 0.0, 0.0, 6.0)
    sv_near = {"pt": 10.0, "eta": 0.1, "phi": 0.1, "dxySig": 3.0}
    sv_far = {"pt": 9.0, "eta": 2.0, "phi": -2.0, "dxySig": np.nan}
    rng = np.random.default_rng(5)
    many = [charged(1.0 + 0.1 * i, *rng.uniform(-0.3, 0.3, 2)) for i in range(40)]
    many += [neutral(1.0 + 0.1 * i, *rng.uniform(-0.3, 0.3, 2)) for i in range(30)]
    many_links = [(0, i, {"btagSip2dSig": float(i % 7), "btagSip3dSig": np.inf if i == 3 else 1.0})
                  for i in range(40)] + [(0, 40 + i) for i in range(30)]
    svs = [{"pt": 5.0 + k, "eta": 0.02 * k, "phi": -0.01 * k, "dxySig": float(k % 3)} for k in range(8)]
    ties = [charged(5.0, 0.1, 0.0), charged(5.0, 0.1, 0.0), neutral(5.0, -0.1, 0.0), neutral(5.0, -0.1, 0.0)]
    return [
        make_event(),  # completely empty
        make_event([], [charged(5.0, 0.0, 0.0)], [], [sv_near]),  # no jet, a candidate and an SV
        make_event([jet], [charged(5.0, 0.1, 0.0), neutral(3.0, -0.1, 0.1)], [(0, 0), (0, 1)], [sv_far, sv_near]),
        make_event([jet, (40.0, 1.0, 2.0, 4.0)], many, many_links, svs),  # > 25 charged / neutral, > 5 SVs
        make_event([(14.0, 0.0, 0.0, 1.0), (50.0, 2.6, 0.0, 5.0), jet], [charged(0.5, 0.0, 0.0), charged(5.0, 2.6, 0.0)],
                   [(0, 0), (1, 1), (2, 0)], [sv_near]),  # unfilled jets, a jet with only a soft candidate
        make_event([jet, jet], ties, [(1, i) for i in range(4)], []),  # ties keep the link order; jet 0 empty
        make_event([jet], [charged(5.0, 0.05, 0.0, puppiWeight=np.nan, trkChi2=np.inf)],
                   [(0, 0, {"btagSip2dVal": np.nan, "btagJetDistVal": -1e35})], [sv_near]),
        make_event([jet], [charged(5.0, 0.1, 0.0), neutral(3.0, -0.1, 0.1), charged(2.0, np.nan, 0.0)],
                   [(0, 0), (0, 1), (0, 2)], [sv_near, {"pt": 3.0, "eta": np.nan, "phi": 0.0}]),  # NaN drminsv
    ]


@pytest.mark.parametrize("kwargs", VARIANTS)
def test_hand_made_edge_cases(kwargs):
    assert_chunk_equals_reference(columns_of_events(_hand_made_events()), "hand-made", **kwargs)


def test_events_with_bad_links_fail_as_in_the_per_event_builder():
    events = _hand_made_events()
    good = events[2]
    bad_jet = dict(good, JetPFCands_jetIdx=np.array([0, 3], np.int32))
    bad_cand = dict(good, JetPFCands_pFCandsIdx=np.array([0, -1], np.int32))
    columns = columns_of_events([events[3], bad_jet, good, bad_cand, events[0]])
    batch = build_part_inputs_chunk(columns)
    for i in (0, 2, 4):
        assert_identical(batch.event(i), build_part_inputs(event_of(columns, i)), f"event {i}")
    with pytest.raises(ValueError, match="jetIdx out of range"):
        batch.event(1)
    with pytest.raises(ValueError, match="pFCandsIdx out of range"):
        batch.event(3)


def test_branches_of_one_collection_that_disagree_are_an_error():
    """NanoAOD gives a collection one counter; a batch whose branches of one collection disagree is broken,
    and the error names the branches and the event."""
    events = _hand_made_events()
    short = dict(events[2], JetPFCands_btagSip2dVal=np.zeros(1, np.float32))
    columns = columns_of_events([events[3], short, events[2]])
    with pytest.raises(ValueError, match=r"JetPFCands collection disagree.*'JetPFCands_btagSip2dVal' has 1 values "
                                         r"and 'JetPFCands_jetIdx' has 2 in event 1"):
        build_part_inputs_chunk(columns)


def test_flat_per_event_branches():
    """A branch given as (content, None) holds one value per event, as a scalar for the per-event builder."""
    events = [make_event([(60.0, 0.0, 0.0, 6.0)], [charged(5.0, 0.1, 0.0)], [(0, 0)],
                         [{"pt": 5.0 + i, "eta": 0.1 * i, "phi": 0.0, "dxySig": float(i)}]) for i in range(4)]
    columns = columns_of_events(events)
    for name in INPUT_BRANCHES:
        if name.startswith("SV_"):
            columns[name] = (columns[name][0], None)
    assert_chunk_equals_reference(columns, "flat SV branches")


def test_missing_branch_and_bad_min_slots():
    columns = columns_of_events(_hand_made_events())
    with pytest.raises(KeyError, match="SV_pAngle"):
        build_part_inputs_chunk({k: v for k, v in columns.items() if k != "SV_pAngle"})
    with pytest.raises(ValueError, match="min_slots"):
        build_part_inputs_chunk(columns, min_slots=6)


# ------------------------------------------------------------------------------------- Chunk.cached
def _chunk_of(columns: dict[str, Column], reads: list[str] | None = None) -> Chunk:
    n = len(columns["Jet_pt"].offsets) - 1 if "Jet_pt" in columns else 0

    def reader(names, start, stop):
        if reads is not None:
            reads.extend(names)
        return {name: columns[name] for name in names}

    return Chunk("mem", 0, n, reader)


def test_chunk_cached_computes_once_under_concurrency():
    chunk = _chunk_of({"Jet_pt": Column(np.zeros(3, np.float32), np.array([0, 1, 3], np.int64))})
    calls = []
    start = threading.Barrier(8)

    def factory(c):
        calls.append(threading.get_ident())
        c.column("Jet_pt")  # reading a column inside the factory (the chunk's lock is not held)
        time.sleep(0.05)
        return object()

    results = [None] * 8

    def worker(k):
        start.wait()
        results[k] = chunk.cached("key", factory)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1
    assert all(r is results[0] for r in results)
    assert chunk.cached("key", factory) is results[0] and len(calls) == 1
    other = chunk.cached(("other", 1), lambda c: "x")
    assert other == "x" and chunk.cached(("other", 1), lambda c: "y") == "x"


def test_chunk_cached_does_not_keep_a_failure():
    chunk = _chunk_of({})
    tries = []

    def failing(c):
        tries.append(1)
        raise RuntimeError("boom")

    for _ in range(2):
        with pytest.raises(RuntimeError, match="boom"):
            chunk.cached("k", failing)
    assert len(tries) == 2
    assert chunk.cached("k", lambda c: 42) == 42


# ---------------------------------------------------------------------------- the tag-info producer
def _tag_info_producer():
    from framework.core.params import Params

    return taginfo_producer.ParticleTransformerAK4TagInfoProducer(
        "tagInfos", Params(dict(taginfo_producer.TAGINFO_PARAMETERS)))


def test_tag_info_producer_builds_once_per_chunk(generated_columns, monkeypatch):
    """One batch computation per chunk, however many events read it; each event's product equals the per-event
    oracle's, bit for bit; only the declared branches are read."""
    columns = {name: Column(content, offsets) for name, (content, offsets) in generated_columns.items()}
    reads: list[str] = []
    chunk = _chunk_of(columns, reads)
    calls = []
    real = taginfo_producer.build_part_inputs
    monkeypatch.setattr(taginfo_producer, "build_part_inputs", lambda *a, **k: calls.append(1) or real(*a, **k))
    producer = _tag_info_producer()
    n = len(columns["Jet_pt"].offsets) - 1
    for i in range(n):
        principal = EventPrincipal(i, SourceEvent(chunk, i, i, "mem", (1, 1, i + 1)))
        producer.produce(principal.view("tagInfos"))
        want = build_part_inputs(principal.view().getBranches(INPUT_BRANCHES))
        assert_identical(principal.products[("tagInfos", "")], want, f"tag info, event {i}")
    assert len(calls) == 1
    assert sorted(set(reads)) == sorted(INPUT_BRANCHES)


def test_tag_info_producer_on_an_event_without_input_branches():
    from framework.exceptions import InputError

    principal = EventPrincipal(0, SourceEvent(None, 0, 0, "", (1, 1, 1)))
    with pytest.raises(InputError, match="EmptySource"):
        _tag_info_producer().produce(principal.view("tagInfos"))


# ------------------------------------------------------------------------------------- the main job
def _per_event_produce(self, event):
    """The tag-info producer on the per-event oracle."""
    c = self.config
    event.put(build_part_inputs(event.getBranches(INPUT_BRANCHES), max_cpf=c.max_cpf, max_npf=c.max_npf,
                                max_sv=c.max_sv, min_slots=c.min_slots, pad_to_event_max=True))


@pytest.mark.slow
def test_main_job_part_scores_bit_identical_to_the_per_event_builder(tmp_path, monkeypatch):
    """``configs/miniaod_cfg.py`` on the 200 events of the bundled sample: the ParT products of the job (chunk
    builder; one chunk and 1 stream, and 4 chunks shared by 4 streams) equal those of the same job with the
    per-event builder, bit for bit; everything else in the output too."""
    from framework.io.source import RootSource
    from tests.main_fixtures import SCORE_BRANCHES, run_main

    job = ["maxEvents=200", "wantSummary=0"]
    with monkeypatch.context() as m:
        m.setattr(taginfo_producer.ParticleTransformerAK4TagInfoProducer, "produce", _per_event_produce)
        m.setattr(taginfo_producer, "build_part_inputs", lambda *a, **k: pytest.fail("the reference uses no batch builder"))
        reference = run_main(tmp_path / "per_event.root", *job, "numStreams=1").arrays()

    calls = []
    real = taginfo_producer.build_part_inputs
    monkeypatch.setattr(taginfo_producer, "build_part_inputs", lambda *a, **k: calls.append(1) or real(*a, **k))
    runs = {"1 stream, 1 chunk": run_main(tmp_path / "chunk_1.root", *job, "numStreams=1").arrays()}
    assert len(calls) == 1
    monkeypatch.setitem(RootSource.parameters, "chunkSize", 64)
    runs["4 streams, 4 chunks"] = run_main(tmp_path / "chunk_4.root", *job, "numStreams=4").arrays()
    assert len(calls) == 1 + 4

    assert len(reference["nJet"]) == 200
    assert sorted(SCORE_BRANCHES) == sorted(k for k in reference if k.startswith("pfParticleTransformerAK4JetTags_"))
    for what, arrays in runs.items():
        assert sorted(arrays) == sorted(reference), what
        for name in reference:
            a, b = reference[name], arrays[name]
            assert a.ndim == b.ndim and len(a) == len(b), f"{what}: {name}: structure"
            if a.ndim > 1:
                assert np.array_equal(ak.num(a), ak.num(b)), f"{what}: {name}: counts"
            fa, fb = np.asarray(ak.flatten(a, axis=None)), np.asarray(ak.flatten(b, axis=None))
            assert fa.dtype == fb.dtype and fa.tobytes() == fb.tobytes(), f"{what}: {name} differs"
