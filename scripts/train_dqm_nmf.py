#!/usr/bin/env python
"""Train the DQM NMF anomaly model and package it for MLServer, DIALS style (the dism-examples ``sklearn_nmf``
recipe).

Rows are one monitoring element per good luminosity section: ``--me METSig`` (default,
``JetMET/MET/pfMETT1/Cleaned/METSig`` with its flow bins, 53, model ``dqmNMF``) or ``--me JetOcc`` (the jet eta-phi
occupancy map ``JetMET/Jet/Cleanedak4PFJetsCHS/PhiVSEta``, 50x24 flattened to 1200 bins, model ``dqmNMFJetOcc``) or
``--me METPuppi`` (``JetMET/MET/pfMETT1/Cleaned/PFMETMinusPuppiMET``, |vec MET - vec PuppiMET| with its flow bins,
52, model ``dqmNMFMETPuppi``).
Each is fed to the NMF in Poisson-aware cells (``MONITORING_ELEMENTS`` below; ``--features minmax``: the
dism-examples per-bin min-max of the raw bins instead), factorised by scikit-learn's NMF in float64
(``producers/dqm_nmf/model.py``). The flag threshold is the ``--quantile`` of the MSE of the held-out good sections
of ``--validate`` (of the training sections without it) times ``--margin``; the rule is written in
``threshold.json`` with the threshold.

Written to ``--out`` (default ``data/models/<model name of --me>``): ``model.joblib``, ``threshold.json`` and
MLServer's ``model-settings.json`` (name, the one handler ``producers.dqm_nmf.mlserver_handler.NMFHandler``,
parameters uri/version, inputs and outputs) and ``settings.json``.

    python scripts/train_dqm_nmf.py --root dqm.root --runs 1,2       # sections of runs 1 and 2 of a DQM output
    python scripts/train_dqm_nmf.py --root dqm.root --truth events.root   # the sections events.root calls good
    python scripts/train_dqm_nmf.py --npz hists.npz --features minmax  # an array 'hists' [n, bins] (+ 'good' mask)

The bundled models (``make train-dqm``) are trained on 300 good sections of 100 generated events (seed 11, runs
101-103) and thresholded on 600 held-out good sections (seed 12, runs 201-206), sharing nothing with the bundled
sample ``data/samples/dqm.root`` (seed 10) or the detection benchmark's seeds::

    python -m framework generate --events 30000 --seed 11 --run 101 --events-per-lumi 100 --lumis-per-run 100 \
        --branches 'MET_*,PuppiMET_*,Jet_eta,Jet_phi,Jet_pt' train_events.root
    python -m framework generate --events 60000 --seed 12 --run 201 --events-per-lumi 100 --lumis-per-run 100 \
        --branches 'MET_*,PuppiMET_*,Jet_eta,Jet_phi,Jet_pt' held_out.root
    python -m framework run configs/dqm_cfg.py nmfModel= nmfJetOccModel= inputFiles=train_events.root outputFile=train_dqm.root
    python -m framework run configs/dqm_cfg.py nmfModel= nmfJetOccModel= inputFiles=held_out.root outputFile=held_out_dqm.root
    python scripts/train_dqm_nmf.py --root train_dqm.root --validate held_out_dqm.root
    python scripts/train_dqm_nmf.py --root train_dqm.root --validate held_out_dqm.root --me JetOcc
    python scripts/train_dqm_nmf.py --root train_dqm.root --validate held_out_dqm.root --me METPuppi
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from producers.dqm_nmf import model as nmf_model  # noqa: E402

MODEL_NAME = "dqmNMF"
ELEMENT = "JetMET/MET/pfMETT1/Cleaned/METSig"
# --me: the monitoring elements of producers/dqm/cff.py, the model trained on each, how it is fed and its threshold
# rule. All are fed Poisson-aware (``transform="sqrt"``, producers/dqm_nmf/model.py: counts scaled to the mean
# entries, 2 sqrt(count), so a good cell's residual has a spread of ~1 and sparse bins do not dominate the MSE) in
# cells that hold enough entries to see a change:
# - METSig with its overflow (a noisy MET tail pushes ~7% of a section's events above 51), 3 bins per cell (17
#   cells + the overflow cell);
# - the occupancy map cropped to |eta| < 2.4 (the generated jets lie within |eta| < 2.5; outer bins are empty) and
#   merged into 0.8 x 0.8 cells (4 eta x 3 phi bins: 6 x 8 cells of ~8 jets each), where a dead region of 40 fine
#   bins (~35 jets expected) empties whole cells;
# - PF MET vs Puppi MET (|vec MET - vec PuppiMET|, 5 GeV bins) with its overflow, 2 bins per cell (25 cells + the
#   overflow cell): a noisy MET tail moves only the PF MET, so its sections fill the cells above ~50 GeV that good
#   sections leave nearly empty (tuning seeds 201-205, 301-305: every met-tail section >= 4 x the quantile, the
#   held-out good sections' maximum 1.35 x; hence margin 2).
# Threshold: the QUANTILE of the MSE of held-out good sections (--validate) times MARGIN.
MONITORING_ELEMENTS = {
    "METSig": dict(element=ELEMENT, name=MODEL_NAME, components=1, quantile=0.99, margin=1.0,
                   features=dict(transform="sqrt", flow=True, edges=tuple(range(1, 53, 3)) + (53,))),
    "JetOcc": dict(element="JetMET/Jet/Cleanedak4PFJetsCHS/PhiVSEta", name="dqmNMFJetOcc", components=2,
                   quantile=0.99, margin=1.2,
                   features=dict(transform="sqrt", shape=(50, 24), crop=(13, 37), merge=(4, 3))),
    "METPuppi": dict(element="JetMET/MET/pfMETT1/Cleaned/PFMETMinusPuppiMET", name="dqmNMFMETPuppi", components=1,
                     quantile=0.99, margin=2.0,
                     features=dict(transform="sqrt", flow=True, edges=tuple(range(1, 51, 2)) + (51, 52))),
}
IMPLEMENTATION = "producers.dqm_nmf.mlserver_handler.NMFHandler"  # one handler for every model (importable)


def model_settings(name: str, bins: int, features: int | None = None, version: str = "1") -> dict:
    """MLServer's ``model-settings.json``: inputs and outputs declared, so that the model metadata lists them."""
    return {
        "name": name,
        "implementation": IMPLEMENTATION,
        "parameters": {"uri": f"./{nmf_model.MODEL_FILE}", "version": version},
        "inputs": [{"name": nmf_model.INPUT_NAME, "datatype": "FP32", "shape": [-1, bins]}],
        "outputs": [{"name": nmf_model.OUTPUT_RECONSTRUCTION, "datatype": "FP64", "shape": [-1, features or bins]},
                    {"name": nmf_model.OUTPUT_MSE, "datatype": "FP64", "shape": [-1]}],
    }


SERVER_SETTINGS = {
    # for `mlserver start data/models/dqmNMF` by hand; the framework's launcher writes its own (free ports)
    "debug": False,
    "host": "127.0.0.1",
    "http_port": 8080,
    "grpc_port": 8081,
    "parallel_workers": 0,
    "metrics_endpoint": None,
}


def bad_sections(path: str) -> set[tuple[int, int]]:
    """(run, lumi) of the sections an events file's ``LuminosityBlocks`` tree calls bad (``isBad``)."""
    import uproot

    with uproot.open(path) as f:
        if "LuminosityBlocks" not in f or "isBad" not in f["LuminosityBlocks"]:
            raise SystemExit(f"error: {path} has no LuminosityBlocks tree with isBad (written by framework generate "
                             "--lumis-per-run)")
        t = f["LuminosityBlocks"].arrays(["run", "luminosityBlock", "isBad"], library="np")
    return {(int(r), int(lumi)) for r, lumi, bad in zip(t["run"], t["luminosityBlock"], t["isBad"]) if bad}


def read_rows(root: str, element: str, *, flow: bool, runs: str = "", truth: str = "") -> tuple[np.ndarray, str]:
    """The rows of *element* in the DQM output *root* (one per section; runs *runs* only, without the sections
    the events file *truth* calls bad), and a description."""
    from producers.dqm.read import me_matrix, read_lumi_histograms

    try:
        keys, rows = me_matrix(read_lumi_histograms(root), element, flow=flow)
    except KeyError as exc:
        raise SystemExit(f"error: {root}: {exc.args[0]}") from None
    keep = np.ones(len(keys), dtype=bool)
    if runs:
        keep &= np.isin([k[0] for k in keys], [int(r) for r in runs.split(",")])
    if truth:
        bad = bad_sections(truth)
        keep &= np.array([k not in bad for k in keys])
    return rows[keep], f"{root} ({element}, runs {runs or 'all'}{', good per ' + truth if truth else ''})"


def load_rows(args: argparse.Namespace, flow: bool) -> tuple[np.ndarray, str]:
    if args.root:
        return read_rows(args.root, args.element, flow=flow, runs=args.runs, truth=args.truth)
    data = np.load(args.npz)
    rows = np.asarray(data["hists"], dtype=np.float64)
    if "good" in data:
        rows = rows[np.asarray(data["good"], dtype=bool)]
    return rows, str(args.npz)


def package(model: nmf_model.NMFAnomalyModel, out: Path, info: dict) -> None:
    """Write the DIALS/MLServer package of *model* to *out*."""
    import joblib

    out.mkdir(parents=True, exist_ok=True)
    joblib.dump(model, out / nmf_model.MODEL_FILE)
    (out / nmf_model.THRESHOLD_FILE).write_text(json.dumps(info, indent=2) + "\n")
    (out / "model-settings.json").write_text(json.dumps(model_settings(out.name, model.n_bins, model.n_features),
                                                        indent=2) + "\n")
    (out / "settings.json").write_text(json.dumps(SERVER_SETTINGS, indent=2) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--root", help="a DQM output (histograms under DQMData/Run N/<label>/Lumi N/<element>)")
    source.add_argument("--npz", help="an .npz with 'hists' [n, bins] and optionally a boolean 'good' [n]")
    parser.add_argument("--me", choices=sorted(MONITORING_ELEMENTS), default="METSig",
                        help="which monitoring element, and the model name of --out [%(default)s]")
    parser.add_argument("--element", default="", help="monitoring element path (overrides --me's)")
    parser.add_argument("--runs", default="", help="--root: train on these runs only (comma-separated)")
    parser.add_argument("--truth", default="", help="--root: drop the sections this events file calls bad (isBad)")
    parser.add_argument("--validate", default="",
                        help="--root: a DQM output of held-out good sections; the threshold is their MSE's --quantile "
                             "x --margin (default: the training sections')")
    parser.add_argument("--validate-truth", default="", help="drop the sections this events file calls bad from "
                        "--validate")
    parser.add_argument("--components", type=int, default=None, help="NMF components [per --me: 2]")
    parser.add_argument("--quantile", type=float, default=None, help="threshold quantile [per --me: 0.99]")
    parser.add_argument("--margin", type=float, default=None, help="threshold margin [per --me: 1.1]")
    parser.add_argument("--features", choices=("me", "minmax"), default="me",
                        help="me: the Poisson-aware cells of --me (see MONITORING_ELEMENTS); minmax: the "
                             "dism-examples per-bin min-max of the raw bins")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=None, help="model folder [data/models/<model name of --me>]")
    args = parser.parse_args(argv)
    spec = MONITORING_ELEMENTS[args.me]
    custom_element = bool(args.element)
    args.element = args.element or spec["element"]
    features = dict(spec["features"]) if args.features == "me" and not custom_element else {}
    components = spec["components"] if args.components is None else args.components
    quantile = spec["quantile"] if args.quantile is None else args.quantile
    margin = spec["margin"] if args.margin is None else args.margin
    args.out = args.out or ROOT / "data" / "models" / spec["name"]
    flow = bool(features.get("flow", False))

    rows, what = load_rows(args, flow)
    t0 = time.perf_counter()
    model = nmf_model.NMFAnomalyModel(components, seed=args.seed, max_iter=3000, element=args.element,
                                      **features).fit(rows)
    _, train_mse = nmf_model.score(model, rows)
    if args.validate:
        held, held_what = read_rows(args.validate, args.element, flow=flow, truth=args.validate_truth)
        _, held_mse = nmf_model.score(model, held)
        rule = (f"the {quantile} quantile of the MSE of {held.shape[0]} held-out good sections ({held_what}) "
                f"x margin {margin}")
    else:
        held_mse = train_mse
        rule = f"the {quantile} quantile of the training sections' MSE x margin {margin}"
    model.threshold = nmf_model.threshold_from(held_mse, quantile, margin)
    info = {"threshold": model.threshold, "quantile": quantile, "margin": margin, "rule": rule,
            "element": args.element, "n_train": int(rows.shape[0]), "components": model.nmf.n_components,
            "flow": model.flow, "features": {k: list(v) if isinstance(v, tuple) else v for k, v in features.items()},
            "train_mse_median": float(np.median(train_mse)), "train_mse_max": float(train_mse.max()),
            "held_out_mse_median": float(np.median(held_mse)), "held_out_mse_max": float(held_mse.max()),
            "trained_on": what}
    package(model, args.out, info)
    print(f"trained on {rows.shape[0]} sections x {rows.shape[1]} bins ({model.n_features} features) from {what} in "
          f"{time.perf_counter() - t0:.2f} s ({model.nmf.n_iter_} NMF iterations); threshold {model.threshold:.4g} "
          f"= {rule} (training MSE median {info['train_mse_median']:.3g}, held-out max {info['held_out_mse_max']:.3g}); "
          f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
