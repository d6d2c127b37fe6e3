"""Are two job outputs identical? Every tree's branches (values, NaN-aware) and every histogram, file by file:

    python scripts/compare_outputs.py BEFORE_DIR AFTER_DIR miniaod.root ng.root dqm.root

Prints per file the keys found in one only and the branches / histograms that differ; exit 1 if any differ.
Used to check that a redesign keeps the outputs bit-identical (run the same jobs on both trees first:
scripts/reference_jobs.sh TREE OUTDIR)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import awkward as ak
import numpy as np
import uproot


def differences(a_path: Path, b_path: Path) -> list[str]:
    """What differs between the two files: keys in one only, branches with other values, histograms."""
    with uproot.open(a_path) as a, uproot.open(b_path) as b:
        ka, kb = set(a.keys(cycle=False)), set(b.keys(cycle=False))
        found = [f"only in one: {k}" for k in sorted(ka ^ kb)]
        for k in sorted(ka & kb):
            oa, ob = a[k], b[k]
            if isinstance(oa, uproot.TTree):
                if set(oa.keys()) != set(ob.keys()):
                    found.append(f"{k}: branches in one only {sorted(set(oa.keys()) ^ set(ob.keys()))}")
                found += [f"{k}/{br}" for br in oa.keys() if br in set(ob.keys())
                          and not ak.array_equal(oa[br].array(), ob[br].array(), equal_nan=True)]
            elif hasattr(oa, "axes") and not np.array_equal(oa.values(flow=True), ob.values(flow=True)):
                found.append(k)
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    parser.add_argument("files", nargs="+")
    ns = parser.parse_args(argv)
    missing = [str(d / n) for n in ns.files for d in (ns.before, ns.after) if not (d / n).is_file()]
    if missing:
        print(f"error: no such output file: {', '.join(missing)} (run the jobs first: scripts/reference_jobs.sh)",
              file=sys.stderr)
        return 2
    any_diff = False
    for name in ns.files:
        found = differences(ns.before / name, ns.after / name)
        any_diff |= bool(found)
        print(f"{name}: {'identical' if not found else f'{len(found)} differ: ' + ', '.join(found)}")
    return 1 if any_diff else 0


if __name__ == "__main__":
    sys.exit(main())
