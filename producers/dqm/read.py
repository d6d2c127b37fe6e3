"""Reading DQM monitoring elements back from a ROOT file (uproot), in the folder naming of DQM's file saver
that ``RootOutputModule`` writes (:func:`framework.io.output.dqm_key`):
``DQMData/Run <run>/<Subsystem>/By Lumi Section <l>-<l>/<folders/name>`` per lumi section and
``DQMData/Run <run>/<Subsystem>/Run summary/<folders/name>`` per run."""

from __future__ import annotations

import os
import re

import numpy as np
import uproot

from framework import extras

hist = extras.hist("reading DQM histograms")

__all__ = ["read_lumi_histograms", "read_run_histograms", "me_matrix"]

_KEY = re.compile(r"DQMData/Run (\d+)/([^/]+)/(?:By Lumi Section (\d+)-(\d+)|Run summary)/(.+)")


def _read(path: str | os.PathLike, lumis: bool) -> dict[tuple[int, int], dict[str, hist.Hist]]:
    out: dict[tuple[int, int], dict[str, hist.Hist]] = {}
    with uproot.open(path) as f:
        if "DQMData" not in f:
            return out
        keys = f["DQMData"].keys(recursive=True, cycle=False, filter_classname=["TH1*", "TH2*", "TH3*", "TProfile*"])
        for key in keys:
            m = _KEY.fullmatch(f"DQMData/{key}")
            if m is None or (m.group(3) is not None) != lumis:
                continue
            run, top, first, rest = int(m.group(1)), m.group(2), m.group(3), m.group(5)
            name = top if rest == top else f"{top}/{rest}"
            out.setdefault((run, int(first) if first else 0), {})[name] = f[f"DQMData/{key}"].to_hist()
    return dict(sorted(out.items()))


def read_lumi_histograms(path: str | os.PathLike) -> dict[tuple[int, int], dict[str, hist.Hist]]:
    """``{(run, lumi): {ME path: hist.Hist}}`` of the per-lumi-section MEs in *path*, sorted by (run, lumi)
    (a section saved as a range ``l1-l2`` is keyed by ``l1``). The histograms keep their flow bins."""
    return _read(path, lumis=True)


def read_run_histograms(path: str | os.PathLike) -> dict[int, dict[str, hist.Hist]]:
    """``{run: {ME path: hist.Hist}}`` of the per-run MEs (``Run summary``) in *path*."""
    return {run: mes for (run, _), mes in _read(path, lumis=False).items()}


def me_matrix(histograms: dict[tuple[int, int], dict[str, hist.Hist]], name: str, *, flow: bool = False
              ) -> tuple[list[tuple[int, int]], np.ndarray]:
    """One ME over the lumi sections, one row each (the input of a per-lumi anomaly model): the
    ``(run, lumi)`` keys that have it and an array ``[n_lumis, n_bins]`` of its contents (a 2-D ME flattened
    row-major, x slowest), float64, without the flow bins unless *flow*."""
    keys = [k for k, mes in histograms.items() if name in mes]
    if not keys:
        known = sorted({n for mes in histograms.values() for n in mes})
        raise KeyError(f"no monitoring element {name!r}; the lumi sections have: {', '.join(known) or 'none'}")
    rows = [np.asarray(histograms[k][name].values(flow=flow), dtype=np.float64).ravel() for k in keys]
    return keys, np.stack(rows)
