"""NuML HDF5 input (NuMLSource) and the LArTPC event generator: the two real NuGraph events (pynuml columnar
and pandas HDFStore layouts) against the reference inputs, generate -> read round trips, a job writing ROOT,
and the error cases."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
import uproot

import framework.config as cms
from framework.cli import main as cli_main
from framework.core.params import Params
from framework.core.processor import EventProcessor
from framework.exceptions import InputError
from framework.io.hdf5source import SERVER_INPUTS, NuMLSource
from framework.samples import generate_event, generate_nugraph

NUGRAPH_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "nugraph"
PYNUML_FILE = NUGRAPH_DIR / "NeutrinoML_rishi.h5"
PANDAS_FILE = NUGRAPH_DIR / "nugraph3_raw_event.h5"
REFERENCE = NUGRAPH_DIR / "reference_NeutrinoML_rishi.npz"
TRUTH = ["hit_table_semantic_label", "hit_table_filter_label", "hit_table_instance_label", "event_table_nu_pdg"]


def _shared(path: Path) -> Path:
    if not path.is_file():
        pytest.skip(f"{path} (real NuGraph event in ../shared) is absent")
    return path


def read_events(paths, names, skip=0, max_events=-1, chunk=100) -> list[dict]:
    """Every event of *paths* through NuMLSource: ``{name: value, 'id': (run, lumi, event)}``."""
    src = NuMLSource("source", Params({"fileNames": [str(p) for p in paths], "skipEvents": skip, "chunkSize": chunk}))
    src.open(skip=skip, max_events=max_events)
    try:
        src.require(names)
        events = []
        while (ev := src.next()) is not None:
            events.append({"id": ev.event_id(), **{n: ev.branch(n) for n in names}})
        return events
    finally:
        src.close()


def _check_spacepoints(ev: dict) -> None:
    """Space points refer to existing hits of the right plane, and to at least two planes."""
    ids = dict(zip(ev["hit_table_hit_id"].tolist(), ev["hit_table_local_plane"].tolist()))
    refs = np.stack([ev[f"spacepoint_table_hit_id_{p}"] for p in "uvy"])
    assert np.all((refs >= 0).sum(axis=0) >= 2)
    for plane, row in enumerate(refs):
        assert all(ids[h] == plane for h in row[row >= 0].tolist())


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> Path:
    return generate_nugraph(tmp_path_factory.mktemp("nugraph") / "events.h5", 25, 5)


# ------------------------------------------------------------------------------------------ real events
def test_pynuml_event_equals_reference_inputs():
    ref = np.load(_shared(REFERENCE))
    (ev,) = read_events([_shared(PYNUML_FILE)], [*SERVER_INPUTS, "event_table_nu_pdg", "event_table_is_cc"])
    for name, dtype in SERVER_INPUTS.items():
        assert ev[name].dtype == ref[name].dtype == dtype, name
        assert np.array_equal(ev[name], ref[name]), name
    assert ev["id"] == (7010, 1705, 85251)
    assert np.bincount(ev["hit_table_local_plane"]).tolist() == [70, 58, 61]
    assert len(ev["spacepoint_table_spacepoint_id"]) == 72
    assert (int(ev["event_table_nu_pdg"]), int(ev["event_table_is_cc"])) == (14, 0)
    _check_spacepoints(ev)


def test_pandas_event_in_file_order():
    path = _shared(PANDAS_FILE)
    (ev,) = read_events([path], [*SERVER_INPUTS, "event_table_is_cc", "event_table_nu_vtx_corr_x"])
    assert np.bincount(ev["hit_table_local_plane"]).tolist() == [279, 640, 365]
    assert len(ev["spacepoint_table_spacepoint_id"]) == 1461
    assert all(ev[n].dtype == d for n, d in SERVER_INPUTS.items())
    with h5py.File(path) as f:  # rows exactly as stored (not sorted by plane)
        assert np.array_equal(ev["hit_table_local_time"], f["hit_table/block0_values"][:, 0])
        assert np.array_equal(ev["spacepoint_table_hit_id_y"], f["spacepoint_table/block0_values"][:, 3])
    assert int(ev["event_table_is_cc"]) == 0 and abs(float(ev["event_table_nu_vtx_corr_x"]) - 144.7) < 0.01
    assert ev["id"] == (1, 1, 1)  # the file has no IDs
    _check_spacepoints(ev)


def test_both_layouts_in_one_input():
    events = read_events([_shared(PANDAS_FILE), _shared(PYNUML_FILE)], list(SERVER_INPUTS))
    assert [len(e["hit_table_hit_id"]) for e in events] == [1284, 189]
    assert [e["id"] for e in events] == [(1, 1, 1), (7010, 1705, 85251)]


# ------------------------------------------------------------------------------------------ generator
def test_generated_round_trip(generated, tmp_path):
    events = read_events([generated], [*SERVER_INPUTS, *TRUTH, "spacepoint_table_position_z"], chunk=7)
    assert len(events) == 25
    for i, ev in enumerate(events):
        truth, hits, sp = generate_event(np.random.default_rng([5, i]))  # the same draws as the file
        assert ev["id"] == (1, 1, i + 1)
        assert all(ev[n].dtype == d for n, d in SERVER_INPUTS.items())
        assert np.array_equal(ev["hit_table_integral"], hits["integral"].astype(np.float32))
        assert np.array_equal(ev["spacepoint_table_hit_id_u"], sp["hit_id"][:, 0])
        assert int(ev["event_table_nu_pdg"]) == truth["nu_pdg"]
        n = len(ev["hit_table_hit_id"])
        assert 100 <= n <= 1500 and np.array_equal(ev["hit_table_hit_id"], np.arange(n))
        assert set(np.unique(ev["hit_table_local_plane"])) == {0, 1, 2}
        sem, filt = ev["hit_table_semantic_label"], ev["hit_table_filter_label"]
        assert sem.min() >= -1 and sem.max() <= 6 and set(np.unique(filt)) <= {0, 1}
        assert np.array_equal(sem == -1, filt == 0)
        assert np.all((ev["spacepoint_table_position_z"] >= 0) & (ev["spacepoint_table_position_z"] <= 1036.8))
        _check_spacepoints(ev)
    labels = np.concatenate([e["hit_table_semantic_label"] for e in events])
    assert set(np.unique(labels)) >= {-1, 0, 1, 3, 4, 6}  # background, pion, muon, hadron, shower, diffuse

    # determinism: same seed -> same file content; another seed -> other events
    again = generate_nugraph(tmp_path / "again.h5", 25, 5)
    other = generate_nugraph(tmp_path / "other.h5", 25, 6)
    with h5py.File(generated) as a, h5py.File(again) as b, h5py.File(other) as c:
        for table in ("event_table", "hit_table", "spacepoint_table"):
            for name in a[table]:
                assert np.array_equal(a[table][name][:], b[table][name][:]), (table, name)
        assert not np.array_equal(a["event_table/nu_energy"][:], c["event_table/nu_energy"][:])


def test_skip_max_and_chunks(generated):
    whole = read_events([generated], ["hit_table_rms", "spacepoint_table_hit_id_v"])
    part = read_events([generated], ["hit_table_rms", "spacepoint_table_hit_id_v"], skip=5, max_events=12, chunk=4)
    assert [e["id"][2] for e in part] == list(range(6, 18))
    for a, b in zip(part, whole[5:17]):
        assert np.array_equal(a["hit_table_rms"], b["hit_table_rms"])
        assert np.array_equal(a["spacepoint_table_hit_id_v"], b["spacepoint_table_hit_id_v"])
    assert read_events([generated], ["hit_table_rms"], skip=30) == []


def test_job_writes_root(generated, tmp_path):
    out = tmp_path / "out.root"
    process = cms.Process("NUGRAPH")
    process.source = cms.Source("NuMLSource", fileNames=[str(generated)], chunkSize=10)
    process.maxEvents.input = 20
    process.sum = cms.EDProducer("TestBranchSumProducer", src="hit_table_integral")
    process.p = cms.Path(process.sum)
    process.out = cms.OutputModule("RootOutputModule", fileName=str(out),
                                   outputCommands=["drop *", "keep run", "keep event", "keep hit_table_*",
                                                   "keep spacepoint_table_hit_id_*", "keep event_table_is_cc", "keep sum"])
    process.e = cms.EndPath(process.out)
    import tests.plugins  # noqa: F401 - TestBranchSumProducer

    report = EventProcessor(process).run()
    assert report.processed == 20
    names = [*SERVER_INPUTS, *TRUTH[:3], "event_table_is_cc"]
    want = read_events([generated], [n for n in names if n != "spacepoint_table_spacepoint_id"], max_events=20)
    with uproot.open(out) as f:
        got = f["Events"].arrays(library="np")
    assert got["event"].tolist() == list(range(1, 21))
    for i, ev in enumerate(want):
        for n, value in ev.items():
            if n != "id":
                assert np.array_equal(got[n][i], value) and got[n][i].dtype == value.dtype, (n, i)
        assert got["sum"][i] == np.sum(ev["hit_table_integral"], dtype=np.float64)

    process.source.skipEvents = 25  # no event: an empty tree with the IDs
    assert EventProcessor(process).run().processed == 0
    with uproot.open(out) as f:
        assert f["Events"].num_entries == 0 and {"run", "event"} <= set(f["Events"].keys())


def test_cli(tmp_path, capsys):
    assert cli_main(["generate-nugraph", "--events", "2", "--seed", "3", str(tmp_path / "cli.h5")]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cli.h5"]  # no temporary file left
    assert len(read_events([tmp_path / "cli.h5"], ["hit_table_rms"])) == 2
    assert cli_main(["generate-nugraph", "--events", "-1", str(tmp_path / "x.h5")]) == 2
    assert "--events must be >= 0" in capsys.readouterr().err
    assert not (tmp_path / "x.h5").exists()


# ------------------------------------------------------------------------------------------ errors
def _error(paths, names=("hit_table_rms",)) -> str:
    with pytest.raises(InputError) as e:
        read_events(paths, list(names))
    return str(e.value)


def test_bad_files(generated, tmp_path):
    assert "input file not found" in _error([tmp_path / "evnets.h5"])
    (tmp_path / "empty.h5").write_bytes(b"")
    assert "is empty" in _error([tmp_path / "empty.h5"])
    (tmp_path / "text.h5").write_text("not hdf5\n" * 50)
    assert "cannot read" in _error([tmp_path / "text.h5"]) and "not HDF5" in _error([tmp_path / "text.h5"])
    with uproot.recreate(tmp_path / "events.root") as f:
        f["Events"] = {"x": np.zeros(2)}
    assert "It is a ROOT file: read it with cms.Source('RootSource'" in _error([tmp_path / "events.root"])
    data = generated.read_bytes()
    (tmp_path / "cut.h5").write_bytes(data[: len(data) // 2])
    assert "truncated" in _error([tmp_path / "cut.h5"])
    damaged = bytearray(data)
    at = len(data) * 3 // 10
    damaged[at : at + 2000] = bytes(2000)
    (tmp_path / "damaged.h5").write_bytes(damaged)
    assert "may be corrupt" in _error([tmp_path / "damaged.h5"], SERVER_INPUTS)
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f.create_dataset("tracks/pt", data=np.zeros(3))
        f.create_dataset("weights", data=np.zeros(3))
    msg = _error([tmp_path / "other.h5"])
    assert "not a NuML file" in msg and "tracks/ (pt)" in msg and "weights" in msg


def test_missing_columns_and_tables(generated, tmp_path):
    msg = _error([generated], ["hit_table_integrall"])
    assert "column 'hit_table_integrall' not found" in msg and "'hit_table_integral'" in msg and "pynuml" in msg
    no_sp = tmp_path / "no_sp.h5"
    with h5py.File(generated) as a, h5py.File(no_sp, "w") as b:
        for table in ("event_table", "hit_table"):
            a.copy(table, b)
    assert "no table 'spacepoint_table'; its tables: event_table, hit_table" in _error([no_sp], ["spacepoint_table_hit_id_u"])
    bad = tmp_path / "bad_seq.h5"
    with h5py.File(generated) as a, h5py.File(bad, "w") as b:
        for table in a:
            a.copy(table, b)
        b["hit_table/event_id.seq_cnt"][0, 1] += 1
    assert "does not describe" in _error([bad])
    # a job names the module that reads the missing column
    process = cms.Process("MISSING")
    process.source = cms.Source("NuMLSource", fileNames=[str(generated)])
    process.sum = cms.EDProducer("TestBranchSumProducer", src="hit_table_charge")
    process.p = cms.Path(process.sum)
    import tests.plugins  # noqa: F401

    with pytest.raises(InputError, match=r"'hit_table_charge' not found .*Needed by module 'sum'"):
        EventProcessor(process).run()
