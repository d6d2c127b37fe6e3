"""The sample generators are bit-identical to the reference: the SHA-256 of every array of a few generated files.

``tests/data/generator_hashes.json`` holds, per file and per branch (ROOT) or dataset (HDF5), the SHA-256 of the
array's bytes (jagged branches: of the flattened values and of the counts). The files are generated through the
command line (``python -m framework generate ...`` / ``generate-nugraph``) with the arguments in :data:`CASES`:
the main flavour, the released-PFNano flavour, DQM runs with bad lumi sections of each anomaly type and a
NuGraph file. Any change of the generated numbers (values, order of the random draws, dtypes) shows here.

When a change of the generator is intended, refresh the reference and commit it with the change:
``.venv/bin/python tests/test_samples_identical.py --refresh``.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import uproot

from framework.cli import main as cli_main

HASHES = Path(__file__).parent / "data" / "generator_hashes.json"

#: file name -> command-line arguments (the output path is appended)
CASES: dict[str, list[str]] = {
    "main.root": ["generate", "--events", "300", "--seed", "5"],
    "pfnano_released.root": ["generate", "--events", "300", "--seed", "5", "--flavour", "pfnano-released"],
    "dqm_met_tail.root": ["generate", "--events", "300", "--seed", "6", "--run", "4", "--lumis-per-run", "3",
                          "--events-per-lumi", "50", "--bad-lumis", "2,4:3", "--anomaly", "met-tail",
                          "--branches", "*"],
    "dqm_dead_region.root": ["generate", "--events", "300", "--seed", "7", "--lumis-per-run", "2",
                             "--events-per-lumi", "60", "--bad-lumis", "1:2=dead-region,2:1=met-tail+dead-region",
                             "--branches", "MET_*,Jet_*,nJetPFCands,JetPFCands_jetIdx,JetSVs_*"],
    "nugraph.h5": ["generate-nugraph", "--events", "12", "--seed", "5", "--events-per-subrun", "5"],
}


def _sha(values: np.ndarray) -> str:
    a = np.ascontiguousarray(values)
    return f"{a.dtype.str}:{a.size}:{hashlib.sha256(a.tobytes()).hexdigest()}"


def _root_hashes(path: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    with uproot.open(path) as f:
        for tree_name in sorted(f.keys(cycle=False, filter_classname="TTree")):
            tree = f[tree_name]
            for name in tree.keys():
                arr = tree[name].array(library="ak")
                key = f"{tree_name}/{name}"
                if arr.ndim > 1:
                    out[key] = _sha(np.asarray(ak.flatten(arr)))
                    out[key + "#counts"] = _sha(np.asarray(ak.num(arr), np.int64))
                else:
                    out[key] = _sha(np.asarray(arr))
    return out


def _hdf5_hashes(path: Path) -> dict[str, str]:
    import h5py

    out: dict[str, str] = {}

    def visit(name: str, obj) -> None:
        if isinstance(obj, h5py.Dataset):
            out[name] = _sha(np.asarray(obj[()]))
        for attr in sorted(obj.attrs):
            out[f"{name}@{attr}"] = _sha(np.asarray(obj.attrs[attr]))

    with h5py.File(path, "r") as f:
        f.visititems(visit)
    return out


def file_hashes(workdir: Path, name: str) -> dict[str, str]:
    """Generate case *name* into *workdir* with the command line and return its array hashes."""
    path = workdir / name
    rc = cli_main([*CASES[name], str(path)])
    assert rc == 0, f"generating {name} failed (exit code {rc})"
    return _hdf5_hashes(path) if name.endswith(".h5") else _root_hashes(path)


@pytest.fixture(scope="module")
def reference() -> dict[str, dict[str, str]]:
    assert HASHES.is_file(), f"{HASHES} is missing; create it with: .venv/bin/python {__file__} --refresh"
    return json.loads(HASHES.read_text())


@pytest.mark.parametrize("name", list(CASES))
def test_generated_arrays_are_bit_identical(name, reference, tmp_path):
    if name.endswith(".h5"):
        pytest.importorskip("h5py", reason="the NuGraph generator writes HDF5 with h5py")
    assert name in reference, f"no reference for {name}; refresh: .venv/bin/python tests/test_samples_identical.py --refresh"
    got = file_hashes(tmp_path, name)
    want = reference[name]
    missing = sorted(set(want) - set(got))
    extra = sorted(set(got) - set(want))
    changed = sorted(k for k in set(want) & set(got) if want[k] != got[k])
    assert not (missing or extra or changed), (
        f"{name} ({' '.join(CASES[name])}) differs from tests/data/generator_hashes.json: "
        f"changed {changed[:8]}{' ...' if len(changed) > 8 else ''} ({len(changed)}), missing {missing[:8]}, "
        f"new {extra[:8]}. The generator must stay bit-identical (same seed -> same arrays, same order of the "
        "random draws); if the change is intended, refresh the reference with "
        "`.venv/bin/python tests/test_samples_identical.py --refresh` and commit it with the change."
    )


def _refresh() -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        table = {name: file_hashes(Path(tmp), name) for name in CASES}
    HASHES.parent.mkdir(parents=True, exist_ok=True)
    HASHES.write_text(json.dumps(table, indent=1, sort_keys=True) + "\n")
    print(f"wrote {HASHES} ({sum(len(v) for v in table.values())} hashes)")


if __name__ == "__main__":
    if sys.argv[1:] != ["--refresh"]:
        raise SystemExit(f"usage: {sys.argv[0]} --refresh   (regenerate tests/data/generator_hashes.json)")
    _refresh()
