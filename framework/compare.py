"""``compare``: run the same events direct (in-process ONNXRuntime) and via SONIC (Triton), then
report the agreement of every product, the timing both ways, and plots.

    python -m framework compare configs/miniaod_cfg.py maxEvents=200 [address=HOST port=8001]
        [--out DIR] [--atol 1e-4] [--rtol 1e-4]
    python -m framework compare --files direct.root sonic.root [--out DIR]

Exit code 0 when every product agrees within tolerance, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from dataclasses import asdict, dataclass
from typing import Any

import awkward as ak
import numpy as np
import uproot

from .exceptions import FrameworkError, InputError

log = logging.getLogger(__name__)

@dataclass
class BranchDiff:
    branch: str
    n_values: int
    max_abs: float
    max_rel: float
    atol: float
    rtol: float
    n_bad: int
    ok: bool


def _flat(a: Any) -> np.ndarray:
    if isinstance(a, ak.Array):
        a = ak.flatten(a, axis=None)
    return np.asarray(a, dtype=np.float64)


def compare_arrays(name: str, a: Any, b: Any, atol: float, rtol: float) -> BranchDiff:
    """Largest absolute and relative differences; ok if |a-b| <= atol + rtol*|a| everywhere."""
    if isinstance(a, ak.Array) and not ak.all(ak.num(a, axis=1) == ak.num(b, axis=1)) if a.ndim > 1 else False:
        return BranchDiff(name, 0, float("inf"), float("inf"), atol, rtol, -1, False)
    fa, fb = _flat(a), _flat(b)
    if fa.shape != fb.shape:
        return BranchDiff(name, int(fa.size), float("inf"), float("inf"), atol, rtol, -1, False)
    if fa.size == 0:
        return BranchDiff(name, 0, 0.0, 0.0, atol, rtol, 0, True)
    both_nan = np.isnan(fa) & np.isnan(fb)
    diff = np.where(both_nan, 0.0, np.abs(fa - fb))
    diff = np.where(np.isnan(diff), np.inf, diff)
    rel = diff / np.maximum(np.abs(fa), 1e-12)
    bad = diff > atol + rtol * np.abs(fa)
    return BranchDiff(name, int(fa.size), float(diff.max()), float(np.where(diff == 0, 0, rel).max()), atol, rtol,
                      int(bad.sum()), not bool(bad.any()))


def product_branches(tree: Any, input_branches: set[str] | None = None) -> list[str]:
    """Branches written from products: the floating-point ones not found in the input."""
    names = []
    for k in tree.keys():
        if input_branches is not None and k in input_branches:
            continue
        interp = str(tree[k].interpretation)
        if "f4" in interp or "f8" in interp:
            names.append(k)
    return names


def compare_files(direct: str, sonic: str, *, atol: float, rtol: float, branches: list[str] | None = None,
                  input_file: str | None = None) -> list[BranchDiff]:
    """Compare the product branches of two outputs of the same events."""
    for p in (direct, sonic):
        if not os.path.exists(p):
            raise InputError(f"output to compare not found: {p}")
    td, ts = uproot.open(direct)["Events"], uproot.open(sonic)["Events"]
    if td.num_entries != ts.num_entries:
        raise FrameworkError(f"{direct} has {td.num_entries} events but {sonic} has {ts.num_entries}; not the same events")
    inputs: set[str] | None = None
    if input_file:
        inputs = set(uproot.open(input_file)["Events"].keys())
    names = branches or product_branches(td, inputs)
    missing = [n for n in names if n not in ts]
    if missing:
        raise FrameworkError(f"{sonic} lacks branches {missing} that {direct} has")
    return [compare_arrays(n, td[n].array(), ts[n].array(), atol, rtol) for n in names]


def compare_lumis(direct: str, sonic: str, *, atol: float, rtol: float) -> list[BranchDiff]:
    """Compare the floating-point lumi products (``LuminosityBlocks`` tree, e.g. a per-section score) of two
    outputs of the same events; none when the direct output has no such tree."""
    with uproot.open(direct) as fd, uproot.open(sonic) as fs:
        if "LuminosityBlocks" not in fd:
            return []
        names = product_branches(fd["LuminosityBlocks"])
        if not names:
            return []
        if "LuminosityBlocks" not in fs:
            raise FrameworkError(f"{sonic} has no LuminosityBlocks tree, {direct} has {names}")
        td, ts = fd["LuminosityBlocks"], fs["LuminosityBlocks"]
        ids = ["run", "luminosityBlock"]
        if any(not np.array_equal(td[k].array(library="np"), ts[k].array(library="np")) for k in ids if k in td):
            raise FrameworkError(f"{direct} and {sonic} hold other luminosity sections; not the same events")
        missing = [n for n in names if n not in ts]
        if missing:
            raise FrameworkError(f"{sonic} lacks the lumi products {missing} that {direct} has")
        return [compare_arrays(f"LuminosityBlocks/{n}", td[n].array(library="np"), ts[n].array(library="np"), atol,
                               rtol) for n in names]


# ---------------------------------------------------------------------- report
def write_report(out_dir: str, diffs: list[BranchDiff], runs: dict[str, Any], plots: list[str]) -> tuple[str, str]:
    ok = all(d.ok for d in diffs)
    data = {"agree": ok, "products": [asdict(d) for d in diffs], "runs": runs, "plots": [os.path.basename(p) for p in plots]}
    jpath = os.path.join(out_dir, "report.json")
    with open(jpath, "w") as f:
        json.dump(data, f, indent=2, default=float)
    lines = ["# Direct vs SONIC", "", f"**Result: {'AGREE' if ok else 'DISAGREE'}** (pass if |direct - sonic| <= atol + rtol*|direct|)", ""]
    lines += ["| product | values | max abs diff | max rel diff | atol | rtol | outside | ok |", "|---|---|---|---|---|---|---|---|"]
    for d in diffs:
        lines.append(f"| {d.branch} | {d.n_values} | {d.max_abs:.3g} | {d.max_rel:.3g} | {d.atol:g} | {d.rtol:g} | {d.n_bad} | {'yes' if d.ok else '**NO**'} |")
    if runs:
        lines += ["", "## Throughput", "", "| run | events | wall s | events/s |", "|---|---|---|---|"]
        for name, r in runs.items():
            t = r["timing"]
            lines.append(f"| {name} | {t['events']} | {t['wall_s']:.3f} | {t['events_per_s']:.1f} |")
        lines += ["", "## Per-module timing (ms, summed over streams)", "",
                  "| run | module | type | calls | acquire | produce | wait |", "|---|---|---|---|---|---|---|"]
        for name, r in runs.items():
            for label, m in r["timing"]["modules"].items():
                lines.append(f"| {name} | {label} | {m['type']} | {m['calls']} | {m['acquire_s'] * 1e3:.1f} | "
                             f"{m['produce_s'] * 1e3:.1f} | {m['wait_s'] * 1e3:.1f} |")
    if plots:
        lines += ["", "## Plots", ""] + [f"![{os.path.basename(p)}]({os.path.basename(p)})" for p in plots]
    mpath = os.path.join(out_dir, "report.md")
    with open(mpath, "w") as f:
        f.write("\n".join(lines) + "\n")
    return jpath, mpath


def run_both(config: str, args: list[str], out_dir: str, sonic_modifiers: list[str] | None = None) -> dict[str, Any]:
    """Run *config* direct and with SONIC switched on (by default ``allSonicTriton``; else the modifiers named in
    *sonic_modifiers*, as ``procModifiers=`` takes them), outputs in *out_dir*."""
    from .modifiers import allSonicTriton, by_name
    from .runner import run_config

    modifiers = by_name(sonic_modifiers, "compare --modifiers") if sonic_modifiers else [allSonicTriton]

    server_args = [a for a in args if a.split("=", 1)[0] in ("address", "port", "protocol")]
    common = [a for a in args if a not in server_args and not a.startswith("outputFile=")]

    runs: dict[str, Any] = {}
    for name, extra, chosen in (("direct", [], []), ("sonic", server_args, modifiers)):
        out = os.path.join(out_dir, f"{name}.root")
        report, _ = run_config(config, common + extra + [f"outputFile={out}"], progress=False, modifiers=chosen)
        runs[name] = {"output": out, "processed": report.processed, "timing": report.timing.to_dict()}
        log.info("%s: %d events, %.1f events/s", name, report.processed, runs[name]["timing"]["events_per_s"])
    return runs


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m framework compare", description=__doc__.split("\n\n")[0])
    parser.add_argument("config", nargs="?", help="config file (then key=value options)")
    parser.add_argument("--files", nargs=2, metavar=("DIRECT", "SONIC"), help="compare two existing outputs instead")
    parser.add_argument("--out", default="out/compare", help="report directory [out/compare]")
    parser.add_argument("--atol", type=float, default=1e-4, help="absolute tolerance [1e-4]")
    parser.add_argument("--rtol", type=float, default=1e-4, help="relative tolerance [1e-4]")
    parser.add_argument("--no-plots", action="store_true")
    parser.add_argument("--scores", default="pfParticleTransformerAK4JetTags", help="label of the tagger product")
    parser.add_argument("--met", default="deepMETProducer", help="label of the DeepMET product")
    parser.add_argument("--modifiers", default="", help="modifiers of the SONIC run, comma-separated, as procModifiers= "
                        "takes them (a name in framework.modifiers or module.name) [allSonicTriton]")
    ns, rest = parser.parse_known_args(argv)
    os.makedirs(ns.out, exist_ok=True)
    runs: dict[str, Any] = {}
    input_file = None
    if ns.files:
        direct, sonic = ns.files
    elif ns.config:
        runs = run_both(ns.config, rest, ns.out, [m for m in ns.modifiers.split(",") if m])
        direct, sonic = runs["direct"]["output"], runs["sonic"]["output"]
    else:
        parser.error("give a CONFIG or --files DIRECT SONIC")
    labels = [ns.scores, ns.met]
    keys = uproot.open(direct)["Events"].keys()
    branches = [k for k in product_branches(uproot.open(direct)["Events"]) if any(k.startswith(lab + "_") for lab in labels)]
    lumi_diffs = compare_lumis(direct, sonic, atol=ns.atol, rtol=ns.rtol)
    if not branches and not lumi_diffs:
        log.warning("no branches of %s in %s: comparing every floating-point branch", labels, direct)
    diffs = compare_files(direct, sonic, atol=ns.atol, rtol=ns.rtol, branches=branches or None, input_file=input_file)
    diffs += lumi_diffs
    del keys
    if not diffs:
        raise FrameworkError(f"no product branches to compare in {direct}")
    from .report.compare_page import draw, write_page

    drawn = [] if ns.no_plots else draw(direct, sonic, [d.branch for d in diffs], ns.out)
    plots = [p.path for p in drawn]
    jpath, mpath = write_report(ns.out, diffs, runs, plots)
    detail = f"{ns.config} {' '.join(rest)}".strip() if ns.config else f"{direct} vs {sonic}"
    page = write_page(ns.out, diffs, runs, drawn, detail)
    print(open(mpath).read().split("## Plots")[0])
    print(f"report: {page}, {mpath} and {jpath}")
    bad = [d.branch for d in diffs if not d.ok]
    if bad:
        log.error("direct and SONIC disagree beyond tolerance in: %s", ", ".join(bad))
        return 1
    return 0
