"""The sample generator as a file writer: edges (0 and 1 events, several chunks), atomic writes, the CLI,
and the bundled sample."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import uproot

import framework.samples.writer as gen
from framework.io.schema import BRANCHES, TREE_NAME
from framework.samples import CHUNK_EVENTS, generate
from framework.samples.cli import main

REPO_ROOT = Path(__file__).resolve().parents[1]
BUNDLED = REPO_ROOT / "data" / "samples" / "sample.root"


def test_zero_events_is_a_valid_readable_file(tmp_path):
    path = tmp_path / "empty.root"
    generate(path, 0, 1)
    with uproot.open(path) as f:
        tree = f[TREE_NAME]
        assert tree.num_entries == 0
        assert set(tree.keys()) == set(BRANCHES)
        arrays = tree.arrays()
    assert len(arrays) == 0


def test_one_event(tmp_path):
    path = tmp_path / "one.root"
    generate(path, 1, 5, run=42, events_per_lumi=1)
    with uproot.open(path) as f:
        a = f[TREE_NAME].arrays()
    assert len(a) == 1
    assert a.run[0] == 42 and a.event[0] == 1 and a.luminosityBlock[0] == 1
    assert a.nPFCands[0] > 100


def test_several_chunks_and_lumi_numbering(tmp_path):
    path = tmp_path / "chunks.root"
    n = CHUNK_EVENTS + 7
    generate(path, n, 3, run=9, events_per_lumi=50)
    with uproot.open(path) as f:
        a = f[TREE_NAME].arrays(["run", "luminosityBlock", "event", "nJet", "Jet_pt"])
    assert len(a) == n
    np.testing.assert_array_equal(a.event, np.arange(1, n + 1))
    np.testing.assert_array_equal(a.luminosityBlock, 1 + np.arange(n) // 50)
    assert ak.all(a.run == 9)
    np.testing.assert_array_equal(ak.num(a.Jet_pt), a.nJet)


def test_failed_generation_leaves_no_file(tmp_path, monkeypatch):
    calls = []
    original = gen.generate_chunk

    def failing(rng, n_events, first_index, run, events_per_lumi):
        calls.append(first_index)
        if first_index > 0:
            raise RuntimeError("boom in chunk 2")
        return original(rng, n_events, first_index, run, events_per_lumi)

    monkeypatch.setattr(gen, "generate_chunk", failing)
    path = tmp_path / "out.root"
    with pytest.raises(RuntimeError, match="boom"):
        generate(path, CHUNK_EVENTS + 1, 1)
    assert calls == [0, CHUNK_EVENTS], "the first chunk was written before the failure"
    assert not path.exists()
    assert list(tmp_path.iterdir()) == [], "no temporary file left behind"


def test_failed_generation_keeps_an_existing_file(tmp_path, monkeypatch):
    path = tmp_path / "out.root"
    path.write_bytes(b"previous content")

    def failing(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(gen, "generate_chunk", failing)
    with pytest.raises(RuntimeError):
        generate(path, 10, 1)
    assert path.read_bytes() == b"previous content"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.root"]


def test_written_file_has_default_permissions(tmp_path):
    path = tmp_path / "perm.root"
    generate(path, 1, 1)
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_events": -1}, "n_events"),
        ({"events_per_lumi": 0}, "events_per_lumi"),
        ({"run": -3}, "run"),
        ({"compression": "zstd"}, "compression"),
    ],
)
def test_bad_arguments(tmp_path, kwargs, message):
    args = {"n_events": 1, "seed": 1, **kwargs}
    with pytest.raises(ValueError, match=message):
        generate(tmp_path / "x.root", args.pop("n_events"), args.pop("seed"), **args)
    assert list(tmp_path.iterdir()) == []


def test_cli_main_writes_the_file(tmp_path):
    path = tmp_path / "sub" / "cli.root"
    assert main(["--events", "4", "--seed", "3", str(path)]) == 0
    with uproot.open(path) as f:
        assert f[TREE_NAME].num_entries == 4
    # same content as the function with the same seed
    ref = tmp_path / "ref.root"
    generate(ref, 4, 3)
    with uproot.open(path) as fa, uproot.open(ref) as fb:
        assert ak.array_equal(fa[TREE_NAME]["PFCands_pt"].array(), fb[TREE_NAME]["PFCands_pt"].array())


def test_cli_main_reports_bad_values(tmp_path, caplog):
    with caplog.at_level(logging.ERROR):
        assert main(["--events", "-2", str(tmp_path / "bad.root")]) == 1
    assert "n_events" in caplog.text
    with pytest.raises(SystemExit):
        main(["--events", "many", str(tmp_path / "bad.root")])


def test_module_runs_as_a_script(tmp_path):
    path = tmp_path / "script.root"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.run(
        [sys.executable, "-m", "framework.samples.cli", "--events", "2", "--seed", "1", str(path)],
        capture_output=True, text=True, env=env, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert path.is_file()


def test_bundled_sample_is_what_the_generator_writes(tmp_path):
    """data/samples/sample.root = ``python -m framework generate --events 200 --seed 1`` (zlib level 1: fast to read)."""
    if not BUNDLED.is_file():
        pytest.fail(f"the bundled sample {BUNDLED} is missing; regenerate it with the command in this docstring")
    assert BUNDLED.stat().st_size < 3_000_000
    ref = tmp_path / "ref.root"
    generate(ref, 200, 1)
    with uproot.open(BUNDLED) as fa, uproot.open(ref) as fb:
        a, b = fa[TREE_NAME].arrays(), fb[TREE_NAME].arrays()
    assert len(a) == 200
    for name in BRANCHES:
        assert ak.all(ak.flatten(a[name], axis=None) == ak.flatten(b[name], axis=None)), (
            f"{name} differs: the generator changed since the bundled sample was written; regenerate it"
        )
