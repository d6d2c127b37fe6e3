"""``python -m framework compare`` on the main job (report.json, report.md, plots), a planted disagreement
(``compare --files``), and the ``make run`` job end to end. Real runs on the bundled sample, real server."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys

import awkward as ak
import numpy as np
import pytest
import uproot

from tests.main_fixtures import (
    CONFIG,
    MAKEFILE,
    MET,
    MET_BRANCHES,
    PRODUCT_BRANCHES,
    REPO_ROOT,
    SCORE_BRANCHES,
    SCORES,
    SERVER_MARKS,
    in_repo,
    read_output,
)

pytestmark = SERVER_MARKS

COMPARE_EVENTS = 20
PERTURBED = f"{SCORES}_probc"
DELTA = 0.01


@pytest.fixture(scope="module")
def compared(tmp_path_factory):
    """``compare configs/miniaod_cfg.py maxEvents=20 --out DIR`` (in-process ``framework.compare.main``)."""
    from framework.compare import main

    out = tmp_path_factory.mktemp("compare") / "report"
    with in_repo():
        code = main([str(CONFIG), f"maxEvents={COMPARE_EVENTS}", "--out", str(out)])
    return code, out


# ------------------------------------------------------------------------------------------------ compare
def test_compare_agrees_with_a_complete_report(compared):
    code, out = compared
    assert code == 0
    report = json.loads((out / "report.json").read_text())
    assert report["agree"] is True
    products = {p["branch"]: p for p in report["products"]}
    assert len(products) == len(report["products"]), "a branch is reported twice"
    assert set(products) == set(PRODUCT_BRANCHES)
    for name, p in products.items():
        for key in ("max_abs", "max_rel", "atol", "rtol"):
            assert isinstance(p[key], (int, float)) and np.isfinite(p[key]), f"{name}: {key} = {p[key]!r}"
        assert p["ok"] is True and p["n_bad"] == 0
        assert p["max_abs"] <= p["atol"] + p["rtol"], f"{name}: {p}"
        assert p["n_values"] > 0
    assert products[f"{MET}_pt"]["n_values"] == COMPARE_EVENTS


def test_compare_reports_both_runs_with_timing(compared):
    _, out = compared
    runs = json.loads((out / "report.json").read_text())["runs"]
    assert set(runs) == {"direct", "sonic"}
    expected_types = {
        "direct": {SCORES: "ParticleTransformerAK4ONNXJetTagsProducer", MET: "DeepMETProducer"},
        "sonic": {SCORES: "ParticleTransformerAK4SonicJetTagsProducer", MET: "DeepMETSonicProducer"},
    }
    for name, run in runs.items():
        assert run["processed"] == COMPARE_EVENTS
        timing = run["timing"]
        assert timing["events"] == COMPARE_EVENTS
        assert timing["events_per_s"] > 0 and timing["wall_s"] > 0
        for label, type_ in expected_types[name].items():
            module = timing["modules"][label]
            assert module["type"] == type_, f"{name}: {label} ran as {module['type']}"
            assert module["calls"] == COMPARE_EVENTS
        assert (out / f"{name}.root").is_file()
        assert uproot.open(out / f"{name}.root")["Events"].num_entries == COMPARE_EVENTS


def test_compare_markdown_has_the_table(compared):
    _, out = compared
    text = (out / "report.md").read_text()
    assert "**Result: AGREE**" in text
    assert "| product | values | max abs diff | max rel diff | atol | rtol | outside | ok |" in text
    for name in PRODUCT_BRANCHES:
        assert re.search(rf"^\| {re.escape(name)} \| \d+ \|.*\| yes \|$", text, re.M), f"no table row for {name}"
    assert re.search(r"^\| direct \| 20 \|", text, re.M) and re.search(r"^\| sonic \| 20 \|", text, re.M)


def test_compare_plots(compared):
    _, out = compared
    plots = json.loads((out / "report.json").read_text())["plots"]
    expected = [f"{name}.png" for name in SCORE_BRANCHES + MET_BRANCHES] + ["physics_1.png", "physics_2.png"]
    assert sorted(plots) == sorted(expected)
    for name in expected:
        data = (out / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000, f"{name}: not a real PNG ({len(data)} bytes)"


def test_compare_page_renders_in_a_browser_with_its_plots(compared):
    """index.html: self-contained, every product's verdict row, the timing, and every plot loaded in Chromium."""
    from tests.browser import CHROMIUM, REASON, render

    _, out = compared
    page = (out / "index.html").read_text()
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page), "the page loads something from the network"
    for name in SCORE_BRANCHES + MET_BRANCHES:
        assert f"<td>{name}</td>" in page, f"no verdict row for {name}"
    assert "PASS" in page and "events/s" in page and "ROC" in page and "GenMET" in page
    if CHROMIUM is None:
        pytest.skip(REASON)
    seen = render(out / "index.html")
    n_plots = len(json.loads((out / "report.json").read_text())["plots"])
    assert seen["images_total"] == n_plots and seen["images_loaded"] == n_plots, seen["errors"]
    assert "every product agrees within tolerance" in seen["dom"]


def _rewrite(src, dst, branch: str, delta: float) -> tuple[int, int]:
    """Write *src* again to *dst* with uproot, with *delta* added to *branch* for one jet with candidates
    (score >= 0); every other branch (names, types, values) kept. Returns (event, jet) changed."""
    tree = uproot.open(src)["Events"]
    arrays = {k: tree[k].array() for k in tree.keys()}
    types = {k: str(tree[k].interpretation) for k in tree.keys()}
    scores = arrays[branch]
    event = next(i for i in range(len(scores)) if len(scores[i]) and scores[i][0] >= 0)
    flat = ak.to_numpy(ak.flatten(scores)).copy()
    flat[int(np.sum(ak.num(scores)[:event]))] += np.float32(delta)
    arrays[branch] = ak.unflatten(flat, ak.num(scores))

    jagged = {k for k in arrays if arrays[k].ndim > 1}
    groups: dict[str, dict[str, ak.Array]] = {}
    for k in jagged:
        prefix, field = k.split("_", 1)
        assert f"n{prefix}" in arrays, f"no counter n{prefix} for {k}"
        groups.setdefault(prefix, {})[field] = arrays[k]
    counters = {f"n{p}" for p in groups}
    content = {k: v for k, v in arrays.items() if k not in jagged and k not in counters}
    content.update({prefix: ak.zip(fields) for prefix, fields in groups.items()})
    with uproot.recreate(dst) as f:
        f.mktree("Events", content)  # a TTree, as the framework writes (f["Events"] = ... would be an RNTuple)
    written = uproot.open(dst)["Events"]
    assert {k: str(written[k].interpretation) for k in written.keys()} == types, "rewrite changed the branches"
    return event, 0


@pytest.fixture(scope="module")
def perturbed(compared, tmp_path_factory):
    _, out = compared
    dst = tmp_path_factory.mktemp("planted") / "perturbed.root"
    where = _rewrite(out / "direct.root", dst, PERTURBED, DELTA)
    return out / "direct.root", dst, where


def test_planted_file_differs_in_one_value_only(perturbed):
    direct, planted, (event, jet) = perturbed
    a, b = read_output(direct), read_output(planted)
    assert sorted(a) == sorted(b)
    for name in a:
        if name != PERTURBED:
            assert ak.to_list(a[name]) == ak.to_list(b[name]), f"{name} changed"
    diff = ak.to_numpy(ak.flatten(b[PERTURBED] - a[PERTURBED]))
    assert np.count_nonzero(diff) == 1
    assert diff[np.flatnonzero(diff)[0]] == pytest.approx(DELTA, abs=1e-6)
    assert b[PERTURBED][event][jet] - a[PERTURBED][event][jet] == pytest.approx(DELTA, abs=1e-6)


def test_compare_files_flags_exactly_the_planted_branch(perturbed, run_framework, tmp_path):
    direct, planted, _ = perturbed
    out = tmp_path / "report"
    result = run_framework("compare", "--files", direct, planted, "--out", out, "--no-plots")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert PERTURBED in result.stderr and "DISAGREE" in result.stdout
    report = json.loads((out / "report.json").read_text())
    assert report["agree"] is False
    products = {p["branch"]: p for p in report["products"]}
    assert set(products) == set(PRODUCT_BRANCHES)
    assert [name for name, p in products.items() if not p["ok"]] == [PERTURBED]
    bad = products[PERTURBED]
    assert bad["n_bad"] == 1 and bad["max_abs"] == pytest.approx(DELTA, abs=1e-6)
    assert all(p["max_abs"] == 0 for name, p in products.items() if name != PERTURBED)
    assert report["runs"] == {}


# ----------------------------------------------------------------------------------------------- make run
def _make_run_commands(events: int, out_dir) -> list[list[str]]:
    """The recipe of the Makefile's ``run`` target, every line, with its variables expanded (``EVENTS`` =
    *events*, ``PY`` = this interpreter, the venv's) and the paths under ``out/`` moved into *out_dir*."""
    text = MAKEFILE.read_text()
    variables = dict(re.findall(r"^(\w+)\s*(?::=|\?=|=)\s*(.*?)\s*$", text, re.M))
    variables.update(EVENTS=str(events), PY=sys.executable)
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if re.match(r"^run\s*:", line))
    recipe = []
    for line in lines[start + 1:]:
        if not line.startswith("\t"):
            break
        recipe.append(line.strip().lstrip("@-"))
    commands = []
    for line in recipe:
        for _ in range(5):
            line = re.sub(r"\$\((\w+)\)", lambda m: variables[m.group(1)], line)
        assert "$" not in line, f"unexpanded make syntax in the run recipe: {line}"
        line = re.sub(r"(?<![^\s=])out(?=/|\s|$)", str(out_dir), line)  # a path starting with out
        commands.append(shlex.split(line))
    return commands


def test_make_run_job_end_to_end(tmp_path):
    """``make run``'s recipe, line by line, on a fresh (absent) output directory, with EVENTS=20."""
    out = tmp_path / "out"
    commands = _make_run_commands(20, out)
    framework_commands = [c for c in commands if c[1:3] == ["-m", "framework"]]
    assert [c[3] for c in framework_commands] == ["run", "compare"], commands
    results = {}
    for cmd in commands:
        assert not any(re.search(r"(?<![^\s=])out(/|$)", a) for a in cmd), f"output left in the repository: {cmd}"
        result = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=150)
        assert result.returncode == 0, f"{shlex.join(cmd)}:\n{result.stdout}\n{result.stderr}"
        assert "Traceback" not in result.stderr
        results[cmd[3] if cmd in framework_commands else cmd[0]] = result
    assert "TrigReport: events processed = 20" in results["run"].stdout
    assert "**Result: AGREE**" in results["compare"].stdout
    outputs = [a.split("=", 1)[1] for a in framework_commands[0] if a.startswith("outputFile=")]
    assert len(outputs) == 1 and outputs[0].startswith(str(out))
    tree = uproot.open(outputs[0])["Events"]
    assert tree.num_entries == 20
    assert {*SCORE_BRANCHES, *MET_BRANCHES, "nJet", "Jet_pt", "event"} <= set(tree.keys())
    report = json.loads((out / "compare" / "report.json").read_text())
    assert report["agree"] is True and report["runs"]["sonic"]["processed"] == 20
