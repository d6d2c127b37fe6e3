"""Helpers of the main-job tests (``tests/test_main_*.py``): running ``configs/miniaod_cfg.py`` in-process,
reading its ROOT output, the direct-vs-SONIC tolerances, and an independent "has candidates" oracle.

The tolerances of "direct equals SONIC" (used by every test that compares the two):

* ParT AK4 scores (``pfParticleTransformerAK4JetTags_*``): ``|direct - sonic| <= SCORE_ATOL = 1e-5`` absolute;
* DeepMET (``deepMETProducer_*``): within ``MET_RTOL = 1e-4`` relative to the event's DeepMET magnitude, i.e.
  ``|d px|, |d py|, |d pt| <= 1e-4 * pt`` and ``|d phi| <= 1e-4`` rad (the relative error of the MET vector's
  direction). A per-component relative tolerance would be ill-defined for components near zero (px, py or phi
  of a MET pointing along an axis), where the Triton server's dynamic batching legitimately changes the
  float32 rounding by a few 1e-6.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import pytest
import uproot

from framework.server import bundled_server_available

REPO_ROOT = Path(__file__).resolve().parents[1]
CONFIG = REPO_ROOT / "configs" / "miniaod_cfg.py"
RUN_SONIC = REPO_ROOT / "configs" / "run_sonic.py"
SAMPLE = REPO_ROOT / "data" / "samples" / "sample.root"
MODELS = REPO_ROOT / "data" / "models"
MAKEFILE = REPO_ROOT / "Makefile"

SERVER_OK, SERVER_REASON = bundled_server_available()
SERVER_MARKS = [pytest.mark.triton, pytest.mark.skipif(not SERVER_OK, reason=SERVER_REASON)]
"""``pytestmark`` of a module whose tests all need the bundled server."""


def needs_server(test):
    """Decorator: the test needs the bundled ``tritonserver`` (marked ``triton``; skipped with the reason)."""
    for mark in reversed(SERVER_MARKS):
        test = mark(test)
    return test


#: ``parametrize("twin", TWINS)``: the direct job, and the SONIC job (which needs the server)
TWINS = [pytest.param("direct"), pytest.param("sonic", marks=SERVER_MARKS)]

SCORES = "pfParticleTransformerAK4JetTags"
MET = "deepMETProducer"
FLAVOURS = ("probb", "probbb", "problepb", "probc", "probuds", "probg")
SCORE_BRANCHES = tuple(f"{SCORES}_{f}" for f in FLAVOURS)
MET_BRANCHES = tuple(f"{MET}_{c}" for c in ("px", "py", "pt", "phi"))
PRODUCT_BRANCHES = SCORE_BRANCHES + MET_BRANCHES

SCORE_ATOL = 1e-5
MET_RTOL = 1e-4
TOLERANCE_TEXT = (f"ParT scores within {SCORE_ATOL:g} absolute; DeepMET px, py, pt within {MET_RTOL:g} x pt "
                  f"and phi within {MET_RTOL:g} rad (relative to the MET vector)")

# events 10..59 of the bundled sample: they hold events without jets (17, 20, 36, 43, 45) and jets without
# candidates (in events 52 and 58), which the product tests need
SKIP = 10
EVENTS = 50


@contextmanager
def in_repo() -> Iterator[None]:
    """The configs name their models and sample relative to the repository root."""
    old = os.getcwd()
    os.chdir(REPO_ROOT)
    try:
        yield
    finally:
        os.chdir(old)


@contextmanager
def captured_logs(name: str = "framework") -> Iterator[list[str]]:
    """The messages (INFO and above) logged under *name* while the block runs."""
    messages: list[str] = []

    class _Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            messages.append(record.getMessage())

    logger = logging.getLogger(name)
    handler = _Keep(logging.INFO)
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield messages
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)


@dataclass
class JobRun:
    output: Path
    report: Any
    process: Any
    log: list[str] = field(default_factory=list)

    def arrays(self) -> dict[str, ak.Array]:
        return read_output(self.output)

    def fallback_started(self) -> bool:
        return any("starting the local fallback server" in m for m in self.log)


def run_main(output: Path, *args: str, config: Path = CONFIG) -> JobRun:
    """Run *config* in-process (``framework.runner.run_config``) with ``key=value`` *args*, writing *output*."""
    from framework.runner import run_config

    with in_repo(), captured_logs() as log:
        report, process = run_config(str(config), [*args, f"outputFile={output}"], progress=False)
    assert output.is_file(), f"the job wrote no {output}"
    return JobRun(output, report, process, list(log))


def read_output(path: Path | str) -> dict[str, ak.Array]:
    tree = uproot.open(path)["Events"]
    return {k: tree[k].array() for k in tree.keys()}


def flat(a: Any) -> np.ndarray:
    return np.asarray(ak.flatten(a, axis=None) if isinstance(a, ak.Array) else a, dtype=np.float64)


def assert_same_events(a: dict[str, ak.Array], b: dict[str, ak.Array], what: str) -> None:
    """Same branches, and every branch that is not a product (events, jets, MET, ...) identical."""
    assert sorted(a) == sorted(b), f"{what}: different branches: {sorted(set(a) ^ set(b))}"
    for name in a:
        if name.startswith((SCORES + "_", MET + "_")):
            continue
        assert ak.to_list(a[name]) == ak.to_list(b[name]), f"{what}: branch {name} differs"


def assert_twins_agree(direct: dict[str, ak.Array], sonic: dict[str, ak.Array], what: str) -> None:
    """Every product of *direct* and *sonic* agrees within the stated tolerance (module docstring)."""
    for name in SCORE_BRANCHES:
        d, s = direct[name], sonic[name]
        assert ak.to_list(ak.num(d)) == ak.to_list(ak.num(s)), f"{what}: {name}: different jet counts"
        diff = np.abs(flat(d) - flat(s))
        worst = float(diff.max()) if diff.size else 0.0
        assert worst <= SCORE_ATOL, (
            f"{what}: {name}: max |direct - sonic| = {worst:.3g} > {SCORE_ATOL:g} ({TOLERANCE_TEXT})")
    pt = np.abs(flat(direct[f"{MET}_pt"]))
    for comp in ("px", "py", "pt", "phi"):
        name = f"{MET}_{comp}"
        d, s = flat(direct[name]), flat(sonic[name])
        assert d.shape == s.shape, f"{what}: {name}: {d.shape} vs {s.shape} values"
        assert np.isfinite(d).all() and np.isfinite(s).all(), f"{what}: {name}: non-finite values"
        diff = np.abs(d - s)
        if comp == "phi":
            diff = np.abs((d - s + np.pi) % (2 * np.pi) - np.pi)
            limit = np.full_like(d, MET_RTOL)
        else:
            limit = MET_RTOL * pt
        bad = np.flatnonzero(diff > limit)
        assert bad.size == 0, (
            f"{what}: {name}: {bad.size} events beyond tolerance ({TOLERANCE_TEXT}); first: event index {bad[0]}, "
            f"direct {d[bad[0]]!r}, sonic {s[bad[0]]!r}")


def sample_has_candidates(path: Path, skip: int, n: int) -> list[np.ndarray]:
    """Per event of ``path[skip:skip+n]``: which jets CMSSW's ParT tag-info producer fills with at least one
    candidate (``pt >= 15``, ``|eta| <= 2.5``, a linked candidate with ``pt >= 0.95``); computed here from the
    raw branches, independently of the producers' feature code."""
    tree = uproot.open(path)["Events"]
    a = tree.arrays(["Jet_pt", "Jet_eta", "JetPFCands_jetIdx", "JetPFCands_pFCandsIdx", "PFCands_pt"],
                    entry_start=skip, entry_stop=skip + n)
    out = []
    for ev in a:
        jpt, jeta = np.asarray(ev.Jet_pt), np.asarray(ev.Jet_eta)
        links_jet, links_cand = np.asarray(ev.JetPFCands_jetIdx), np.asarray(ev.JetPFCands_pFCandsIdx)
        cand_pt = np.asarray(ev.PFCands_pt)
        has = np.zeros(len(jpt), bool)
        for j, c in zip(links_jet, links_cand):
            if cand_pt[c] >= 0.95:
                has[j] = True
        out.append(has & (jpt >= 15.0) & (np.abs(jeta) <= 2.5))
    return out


def assert_score_conventions(arrays: dict[str, ak.Array], has_candidates: list[np.ndarray], what: str) -> None:
    """One score per jet; -1 exactly for jets without candidates, in [0, 1] for the others."""
    njet = np.asarray(arrays["nJet"])
    assert len(njet) == len(has_candidates), f"{what}: {len(njet)} events, expected {len(has_candidates)}"
    for name in SCORE_BRANCHES:
        scores = arrays[name]
        assert np.array_equal(np.asarray(ak.num(scores)), njet), f"{what}: {name}: not one score per jet"
        for i, (row, has) in enumerate(zip(scores, has_candidates)):
            row = np.asarray(row)
            assert len(row) == len(has), f"{what}: {name}, event {i}: {len(row)} scores for {len(has)} jets"
            assert (row[~has] == np.float32(-1.0)).all(), (
                f"{what}: {name}, event {i}: jets without candidates must score exactly -1, got {row[~has]}")
            assert ((row[has] >= 0) & (row[has] <= 1)).all(), (
                f"{what}: {name}, event {i}: scores of jets with candidates outside [0, 1]: {row[has]}")
