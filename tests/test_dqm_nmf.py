"""The DQM NMF anomaly model both ways (issue 10, items 3, 4 and 6): the model and its packaging, the direct job on
the bundled DQM sample (scores per lumi section, the anomaly AUC), the same model on a real MLServer (direct equals
served over gRPC and HTTP, the local fallback MLServer started and stopped with no process left), the report, and
the failures (MLServer missing, killed mid-job, the job stopped or killed, a handler that does not cast to float64).

The bundled model was trained on generated good sections that share nothing with the bundled sample (other seed,
runs 101-103: ``make train-dqm``), so every section of data/samples/dqm.root is held out.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
import uproot

from framework.runner import run_config
from producers.dqm.cff import JET_OCCUPANCY, MET_SIG
from producers.dqm.read import me_matrix, read_lumi_histograms
from producers.dqm_nmf.model import NMFAnomalyModel, Threshold, as_model_input, load, score
from tests.conftest import REPO_ROOT
from tests.onnx_models import pid_alive

MODEL_DIR = REPO_ROOT / "data" / "models" / "dqmNMF"
JET_OCC_DIR = REPO_ROOT / "data" / "models" / "dqmNMFJetOcc"  # the jet eta-phi occupancy map, 50x24 -> 1200 bins
MET_PUPPI_DIR = REPO_ROOT / "data" / "models" / "dqmNMFMETPuppi"  # |vec MET - vec PuppiMET|, 50 bins + flow
SCORERS = ("dqmNMF", "dqmNMFJetOcc", "dqmNMFMETPuppi")  # the labels configs/dqm_cfg.py books, in its order
SAMPLE = REPO_ROOT / "data" / "samples" / "dqm.root"
CONFIG = "configs/dqm_cfg.py"
MET_TAIL, DEAD_REGION = 1, 2  # anomaly bits of the generator's truth


# ----------------------------------------------------------------------------- helpers
def lumi_tree(path: Path) -> dict[str, np.ndarray]:
    with uproot.open(path) as f:
        return f["LuminosityBlocks"].arrays(library="np")


def truth() -> dict[tuple[int, int], int]:
    t = lumi_tree(SAMPLE)
    return {(int(r), int(lumi)): int(a) for r, lumi, a in zip(t["run"], t["luminosityBlock"], t["anomalies"])}


def mlserver_pids() -> set[int]:
    """Live ``mlserver start`` processes started by a framework launcher (their root is a cmsfw temp dir)."""
    pids = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(b"cmsfw-mlserver-" in c for c in cmd) and b"start" in cmd and pid_alive(int(entry.name)):
            pids.add(int(entry.name))
    return pids


def mlserver_dirs() -> set[str]:
    return {p.name for p in Path(tempfile.gettempdir()).glob("cmsfw-mlserver-*")}


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "framework", *args], cwd=REPO_ROOT, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})


def wait_gone(pids: set[int], seconds: float = 15.0) -> set[int]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and any(pid_alive(p) for p in pids):
        time.sleep(0.1)
    return {p for p in pids if pid_alive(p)}


@pytest.fixture(scope="module")
def direct_output(tmp_path_factory) -> Path:
    """The DQM job on the bundled sample with the in-process scorer."""
    out = tmp_path_factory.mktemp("dqm_direct") / "direct.root"
    report, _ = run_config(CONFIG, [f"outputFile={out}"], progress=False)
    assert report.processed == 8000 and report.lumis == 80
    return out


@pytest.fixture(scope="module")
def sections(direct_output) -> tuple[list[tuple[int, int]], np.ndarray]:
    """(run, lumi) and METSig contents with its flow bins [80, 53] (the model's input: its threshold.json says
    flow) of every section, read back from the direct job's output."""
    assert Threshold.read(MODEL_DIR).flow
    return me_matrix(read_lumi_histograms(direct_output), MET_SIG, flow=True)


@pytest.fixture(scope="module")
def mlserver():
    from framework.server.mlserver import LocalMLServer

    with LocalMLServer([MODEL_DIR, JET_OCC_DIR, MET_PUPPI_DIR]) as server:
        yield server


# ----------------------------------------------------------------------------- the model
def test_predict_is_the_nmf_reconstruction_and_its_mse_and_refuses_fp32():
    model = load(MODEL_DIR / "model.joblib")
    rows = np.random.default_rng(3).poisson(np.linspace(40, 0.1, 53), size=(7, 53)).astype(np.float32)
    reconstruction, mse = score(model, rows)
    assert model.n_bins == 53 and model.n_features == 18  # 51 bins + flow in cells of 3 bins, + the overflow
    assert reconstruction.shape == (7, 18) and mse.shape == (7,) and mse.dtype == np.float64
    # by hand: cells of 3 bins (underflow dropped, overflow its own cell), scaled to the training's mean entries,
    # 2 sqrt(count), W from the fitted H, W @ H, row MSE
    x = rows.astype(np.float64)
    cells = np.stack([x[:, i:i + 3].sum(axis=1) for i in range(1, 52, 3)] + [x[:, 52]], axis=1)
    scaled = 2 * np.sqrt(cells * model.reference_entries / cells.sum(axis=1, keepdims=True))
    w = model.nmf.transform(np.clip(scaled, 0, None))
    np.testing.assert_allclose(reconstruction, w @ model.nmf.components_, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(mse, ((scaled - reconstruction) ** 2).mean(axis=1), rtol=1e-12)
    with pytest.raises(TypeError, match=r"input dtype is float32.*fitted in float64.*cast"):
        model.predict(rows)
    info = Threshold.read(MODEL_DIR)
    assert info.threshold == pytest.approx(model.threshold) and info.element == MET_SIG and info.n_train == 300


def test_the_package_declares_what_mlserver_serves():
    settings = json.loads((MODEL_DIR / "model-settings.json").read_text())
    handler = "producers.dqm_nmf.mlserver_handler.NMFHandler"  # one implementation, imported by path (issue 16)
    assert settings["name"] == "dqmNMF" and settings["implementation"] == handler
    for folder in (JET_OCC_DIR, MET_PUPPI_DIR):
        assert json.loads((folder / "model-settings.json").read_text())["implementation"] == handler
    assert not any(list(d.glob("*.py")) for d in (MODEL_DIR, JET_OCC_DIR, MET_PUPPI_DIR))
    puppi = json.loads((MET_PUPPI_DIR / "model-settings.json").read_text())
    assert puppi["name"] == "dqmNMFMETPuppi" and puppi["inputs"][0]["shape"] == [-1, 52]  # 50 bins + flow
    assert Threshold.read(MET_PUPPI_DIR).element == "JetMET/MET/pfMETT1/Cleaned/PFMETMinusPuppiMET"
    assert settings["parameters"]["uri"] == "./model.joblib"
    assert settings["inputs"] == [{"name": "input_0", "datatype": "FP32", "shape": [-1, 53]}]
    assert [(o["name"], o["shape"]) for o in settings["outputs"]] == [("output_0", [-1, 18]), ("output_1", [-1])]
    server = json.loads((MODEL_DIR / "settings.json").read_text())
    assert server["host"] == "127.0.0.1" and server["parallel_workers"] == 0


def test_training_script_packages_a_model_that_scores_like_its_threshold_says(sections, tmp_path):
    keys, rows = sections
    rows = rows[:, 1:-1]  # the 51 bins without flow: the dism-examples min-max recipe (--features minmax)
    good = np.array([run in (1, 2) for run, _ in keys])
    np.savez(tmp_path / "hists.npz", hists=rows, good=good)
    out = tmp_path / "myNMF"
    done = subprocess.run([sys.executable, "scripts/train_dqm_nmf.py", "--npz", str(tmp_path / "hists.npz"),
                           "--components", "2", "--quantile", "0.9", "--margin", "1.0", "--features", "minmax",
                           "--out", str(out)],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "trained on 40 sections x 51 bins" in done.stdout
    assert sorted(p.name for p in out.iterdir()) == ["model-settings.json", "model.joblib", "settings.json",
                                                     "threshold.json"]
    assert json.loads((out / "model-settings.json").read_text())["name"] == "myNMF"
    model = load(out / "model.joblib")
    _, train_mse = score(model, rows[good])
    assert model.nmf.n_components == 2
    assert Threshold.read(out).threshold == pytest.approx(np.quantile(train_mse, 0.9)) == model.threshold


# ----------------------------------------------------------------------------- the direct job
def test_direct_job_scores_every_section_from_its_histograms(direct_output, sections):
    lumis = lumi_tree(direct_output)
    assert {"run", "luminosityBlock", "dqmNMF_mse", "dqmNMF_flag"} <= set(lumis)
    keys, rows = sections
    assert list(zip(lumis["run"].tolist(), lumis["luminosityBlock"].tolist())) == keys
    model = load(MODEL_DIR / "model.joblib")
    # one section per call, as the job scores them (NMF.transform iterates over the whole batch: scored together,
    # the sections' MSEs differ by ~1e-9)
    mse = np.array([score(model, as_model_input(r))[1][0] for r in rows])
    np.testing.assert_array_equal(lumis["dqmNMF_mse"], mse)  # the lumi product is the model's score, exactly
    np.testing.assert_array_equal(lumis["dqmNMF_flag"], mse > model.threshold)


def test_anomaly_auc_and_false_alarms_on_held_out_runs(direct_output):
    """METSig sees the noisy MET tail; the dead jet region (jet occupancy map) leaves it unchanged, so sections bad
    only by a dead region are left out of the AUC (they are neither good nor visible)."""
    from sklearn.metrics import roc_auc_score

    lumis = lumi_tree(direct_output)
    anomalies = np.array([truth()[(int(r), int(lumi))] for r, lumi in zip(lumis["run"], lumis["luminosityBlock"])])
    tail = (anomalies & MET_TAIL) > 0
    good = anomalies == 0
    assert tail.sum() == 5 and good.sum() == 72
    seen = tail | good
    auc = roc_auc_score(tail[seen], lumis["dqmNMF_mse"][seen])
    assert auc >= 0.95, auc
    good_runs = np.isin(lumis["run"], [1, 2, 3])  # good runs the model never saw
    assert good[good_runs].all()
    false_alarms = lumis["dqmNMF_flag"][good_runs].mean()
    assert false_alarms <= 0.05, false_alarms
    assert lumis["dqmNMF_flag"][tail].all()


def test_all_bad_sections_flagged_by_either_model(direct_output):
    """The models over every bad section of run 4: the METSig and the PF vs Puppi MET models rank the met-tail
    sections, the occupancy model the dead-region ones (AUC >= 0.95 each against the good sections), the PF vs
    Puppi MET model flags every met-tail section, a section is bad when any flag is set, and the good runs the
    models never saw raise at most 5% false alarms."""
    from sklearn.metrics import roc_auc_score

    lumis = lumi_tree(direct_output)
    anomalies = np.array([truth()[(int(r), int(lumi))] for r, lumi in zip(lumis["run"], lumis["luminosityBlock"])])
    good, tail, dead = anomalies == 0, (anomalies & MET_TAIL) > 0, (anomalies & DEAD_REGION) > 0
    assert dead.sum() == 4 and (tail | dead).sum() == 8
    for label, bad in (("dqmNMF", tail), ("dqmNMFJetOcc", dead), ("dqmNMFMETPuppi", tail)):
        seen = bad | good
        auc = roc_auc_score(bad[seen], lumis[f"{label}_mse"][seen])
        assert auc >= 0.95, (label, auc)
    assert lumis["dqmNMFMETPuppi_flag"][tail].all() and not lumis["dqmNMFMETPuppi_flag"][good].any()
    either = np.logical_or.reduce([lumis[f"{label}_flag"] for label in SCORERS])
    assert either[~good].all(), lumis["luminosityBlock"][~good & ~either]
    assert roc_auc_score(~good, either) >= 0.95
    good_runs = np.isin(lumis["run"], [1, 2, 3])
    assert either[good_runs].mean() <= 0.05, either[good_runs].mean()
    assert lumis["dqmNMFJetOcc_flag"][good_runs].mean() <= 0.05


def test_report_covers_every_scorer_with_its_own_threshold_and_the_truth(direct_output, tmp_path):
    """dqm-report: the three scorers of the file, each against its own model's threshold; the combined flag; the
    confusion per anomaly type from the truth; the plots and index.html."""
    from producers.dqm_nmf.report import main

    assert main([str(direct_output), "--out", str(tmp_path), "--truth", str(SAMPLE)]) == 0
    data = json.loads((tmp_path / "report.json").read_text())
    lumis = lumi_tree(direct_output)
    s = data["summary"]
    assert list(s["scorers"]) == list(SCORERS) and s["sections"] == 80
    for label, folder in zip(SCORERS, (MODEL_DIR, JET_OCC_DIR, MET_PUPPI_DIR)):
        assert s["scorers"][label]["threshold"] == Threshold.read(folder).threshold
        assert s["scorers"][label]["flagged"] == int(lumis[f"{label}_flag"].sum())
        assert [r[f"{label}_mse"] for r in data["sections"]] == lumis[f"{label}_mse"].tolist()
    either = np.logical_or.reduce([lumis[f"{label}_flag"] for label in SCORERS])
    assert s["flagged"] == int(either.sum()) and [r["flag"] for r in data["sections"]] == either.tolist()
    # the bundled sample (run 4): met-tail 3, 8, 13, 17; dead-region 5, 11, 19; both 15
    table = s["confusion"]
    assert {k: v["n"] for k, v in table["combined"].items()} == {"good": 72, "met-tail": 4, "dead-region": 3,
                                                                 "both": 1}
    assert table["dqmNMF"]["met-tail"]["caught"] == int(lumis["dqmNMF_flag"][(lumis["run"] == 4) & np.isin(
        lumis["luminosityBlock"], [3, 8, 13, 17])].sum())
    assert s["bad_in_truth"] == 8 and s["bad_flagged"] == int(either[lumis["run"] == 4].sum())
    assert s["good_flagged"] == int(either[lumis["run"] < 4].sum())
    md = (tmp_path / "report.md").read_text()
    assert "| 4 | 3 |" in md and "dead-region: caught (AUC)" in md and "not flagged" in md
    for name in ("score.png", *(f"elements_{label}.png" for label in SCORERS)):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name


def test_report_page_is_one_self_contained_file_that_renders(direct_output, tmp_path):
    """index.html: the verdict, the scorers, the confusion table and the 4 plots embedded as PNG data, no URL;
    rendered by headless Chromium (tests/browser.py) with every image loaded."""
    from producers.dqm_nmf.report import main
    from tests import browser

    assert main([str(direct_output), "--out", str(tmp_path), "--truth", str(SAMPLE)]) == 0
    page = (tmp_path / "index.html").read_text()
    assert "DQM anomaly report" in page and page.count("data:image/png;base64,") == 4
    assert "http://" not in page and "https://" not in page
    assert "dead-region: caught (AUC)" in page and "dqmNMFJetOcc" in page
    if browser.CHROMIUM is None:
        pytest.skip(browser.REASON)
    shown = browser.render(tmp_path / "index.html", tmp_path / "page.png")
    assert shown["errors"] == [] and shown["images_total"] == 4 and shown["images_loaded"] == 4, shown
    assert "DQM anomaly report" in shown["dom"]


def test_report_of_one_label_uses_that_scorers_model(direct_output, tmp_path):
    from producers.dqm_nmf.report import main

    assert main([str(direct_output), "--out", str(tmp_path), "--label", "dqmNMFJetOcc", "--no-plot"]) == 0
    s = json.loads((tmp_path / "report.json").read_text())["summary"]
    assert list(s["scorers"]) == ["dqmNMFJetOcc"]
    assert s["scorers"]["dqmNMFJetOcc"]["threshold"] == Threshold.read(JET_OCC_DIR).threshold
    assert s["scorers"]["dqmNMFJetOcc"]["model"] == "data/models/dqmNMFJetOcc"


@pytest.mark.parametrize("args,message", [
    (["--label", "dqmNMFJetOc"], r"no scorer 'dqmNMFJetOc'.*Did you mean 'dqmNMFJetOcc'"),
    (["--model", "dqmNMF=/nonexistent"], r"scorer 'dqmNMF': no threshold in its model folder /nonexistent.*--model"),
    (["--threshold", "dqmNMF"], r"write LABEL=VALUE"),
])
def test_report_bad_options_are_clear_errors(direct_output, tmp_path, args, message):
    from framework.exceptions import InputError
    from producers.dqm_nmf.report import main

    with pytest.raises(InputError, match=message):
        main([str(direct_output), "--out", str(tmp_path), "--no-plot", *args])


def test_report_of_an_output_without_scores_says_how_to_make_them(tmp_path):
    from framework.exceptions import InputError
    from producers.dqm_nmf.report import main

    with pytest.raises(InputError, match=r"no scorer \(no <label>_mse with <label>_flag\).*configs/dqm_cfg.py"):
        main([str(SAMPLE), "--out", str(tmp_path)])


# ----------------------------------------------------------------------------- MLServer
@pytest.mark.slow
@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_direct_equals_mlserver(mlserver, sections, protocol):
    from framework.sonic.client import TritonClient

    _, rows = sections
    x = rows.astype(np.float32)
    reconstruction, mse = score(load(MODEL_DIR / "model.joblib"), x)
    address = mlserver.grpc_address if protocol == "grpc" else mlserver.http_address
    with TritonClient({"modelName": "dqmNMF", "mode": "Sync"}, server=address, protocol=protocol) as client:
        assert client.v2only and client.batched
        assert client.inputInfo["input_0"].datatype == "FP32" and client.inputInfo["input_0"].dims == (53,)
        client.transport.json = protocol == "http"  # MLServer cannot read Triton's binary tensors
        client.input["input_0"].toServer(x)
        client.evaluate()
        served_reconstruction = client.output["output_0"].fromServer()
        served_mse = client.output["output_1"].fromServer()
    assert served_reconstruction.shape == (80, 18) and served_mse.shape == (80,)
    np.testing.assert_allclose(served_reconstruction, reconstruction, rtol=0, atol=1e-6)
    np.testing.assert_allclose(served_mse, mse, rtol=0, atol=1e-6)


@pytest.mark.slow
def test_jet_occupancy_model_direct_equals_mlserver(mlserver, direct_output):
    from framework.sonic.client import TritonClient

    _, rows = me_matrix(read_lumi_histograms(direct_output), JET_OCCUPANCY)
    x = rows.astype(np.float32)
    assert x.shape == (80, 1200)
    reconstruction, mse = score(load(JET_OCC_DIR / "model.joblib"), x)
    with TritonClient({"modelName": "dqmNMFJetOcc", "mode": "Sync"}, server=mlserver.grpc_address,
                      protocol="grpc") as client:
        assert client.inputInfo["input_0"].datatype == "FP32" and client.inputInfo["input_0"].dims == (1200,)
        client.input["input_0"].toServer(x)
        client.evaluate()
        np.testing.assert_allclose(client.output["output_0"].fromServer(), reconstruction, rtol=0, atol=1e-6)
        np.testing.assert_allclose(client.output["output_1"].fromServer(), mse, rtol=0, atol=1e-6)
    info = Threshold.read(JET_OCC_DIR)
    assert info.element == JET_OCCUPANCY and info.n_train == 300


@pytest.mark.slow
def test_job_on_the_fallback_mlserver_equals_direct_and_leaves_no_process(direct_output, tmp_path):
    before_pids, before_dirs = mlserver_pids(), mlserver_dirs()
    out = tmp_path / "sonic.root"
    done = run_cli("run", CONFIG, "sonic=1", f"outputFile={out}")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "starting a local MLServer for dqmNMF" in done.stderr and "local MLServer stopped" in done.stderr
    assert "server 'fallback-mlserver'" in done.stdout + done.stderr
    direct, sonic = lumi_tree(direct_output), lumi_tree(out)
    for label in SCORERS:  # the modifier swaps every scorer
        np.testing.assert_allclose(sonic[f"{label}_mse"], direct[f"{label}_mse"], rtol=0, atol=1e-6)
        np.testing.assert_array_equal(sonic[f"{label}_flag"], direct[f"{label}_flag"])
    assert mlserver_pids() - before_pids == set() and mlserver_dirs() - before_dirs == set()
    from framework.compare import main as compare  # compare reports the agreement of the lumi products

    assert compare(["--files", str(direct_output), str(out), "--out", str(tmp_path / "cmp"), "--no-plots"]) == 0
    report = json.loads((tmp_path / "cmp" / "report.json").read_text())
    assert [(p["branch"], p["n_values"], p["ok"]) for p in report["products"]] == [
        (f"LuminosityBlocks/{label}_mse", 80, True) for label in SCORERS]


@pytest.mark.slow
def test_job_on_a_given_mlserver_over_grpc(mlserver, direct_output, tmp_path):
    host, port = mlserver.grpc_address.rsplit(":", 1)
    out = tmp_path / "given.root"
    done = run_cli("run", CONFIG, "sonic=1", f"address={host}", f"port={port}", "protocol=grpc",
                   f"outputFile={out}")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "starting a local MLServer" not in done.stderr
    assert f"server 'default' ({mlserver.grpc_address}): 240 requests, 0 failed" in done.stdout + done.stderr
    for label in SCORERS:  # three scorers, one request per section each
        np.testing.assert_allclose(lumi_tree(out)[f"{label}_mse"], lumi_tree(direct_output)[f"{label}_mse"], rtol=0,
                                   atol=1e-6)


@pytest.mark.slow
def test_serve_mlserver_prints_its_addresses_and_stops_on_sigterm():
    import re
    import signal
    import urllib.request

    before = mlserver_pids()
    proc = subprocess.Popen([sys.executable, "-m", "framework", "serve", "--server", "mlserver"], cwd=REPO_ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("Press Ctrl-C"):
                break
        text = "".join(lines)
        assert "Local MLServer ready" in text and "models: dqmNMF" in text, text + proc.stderr.read()
        grpc_address = re.search(r"gRPC:\s+(127\.0\.0\.1:\d+)", text).group(1)
        http_address = re.search(r"HTTP:\s+(127\.0\.0\.1:\d+)", text).group(1)
        with urllib.request.urlopen(f"http://{http_address}/v2/models/dqmNMF/ready", timeout=5) as response:
            assert response.status == 200
        assert f"address=127.0.0.1 port={grpc_address.rsplit(':', 1)[1]}" in text
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert wait_gone(mlserver_pids() - before, 5) == set()


# ----------------------------------------------------------------------------- failures
@pytest.mark.slow
def test_mlserver_missing_is_one_clear_error(tmp_path):
    out = tmp_path / "missing.root"
    done = run_cli("run", CONFIG, "sonic=1", f"outputFile={out}", env={"CMSFW_MLSERVER": str(tmp_path / "mlserver")})
    assert done.returncode == 4
    assert done.stderr.count("Begin Fatal Exception") == 1
    assert "MLServer is missing" in done.stderr and "pip install 'mlserver==" in done.stderr
    assert "Traceback" not in done.stderr and not out.exists()


@pytest.mark.slow
def test_a_handler_that_does_not_cast_is_a_clear_dtype_error(tmp_path):
    model = tmp_path / "dqmNMF"
    shutil.copytree(MODEL_DIR, model)
    (model / "nocast_handler.py").write_text(
        "from mlserver import MLModel\nfrom mlserver.codecs import NumpyCodec\nfrom mlserver.types import "
        "InferenceResponse\nfrom mlserver.utils import get_model_uri\n\nfrom producers.dqm_nmf.model import load\n\n\n"
        "class NoCastHandler(MLModel):\n    async def load(self):\n        self._model = load(await get_model_uri("
        "self._settings))\n        return True\n\n    async def predict(self, payload):\n        rows = NumpyCodec."
        "decode_input(payload.inputs[0])  # FP32, given to the float64 NMF as it is\n        reconstruction, mse = "
        "self._model.predict(rows)\n        return InferenceResponse(model_name=self.name, outputs=[NumpyCodec."
        "encode_output('output_0', reconstruction), NumpyCodec.encode_output('output_1', mse)])\n")
    settings = json.loads((model / "model-settings.json").read_text())
    settings["implementation"] = "nocast_handler.NoCastHandler"
    (model / "model-settings.json").write_text(json.dumps(settings))
    before = mlserver_pids()
    out = tmp_path / "dtype.root"
    done = run_cli("run", CONFIG, "sonic=1", f"nmfModel={model}", f"outputFile={out}")  # HTTP: a bare 500
    assert done.returncode == 4
    assert done.stderr.count("Begin Fatal Exception") == 1 and "Traceback" not in done.stderr
    assert "run 1, lumi 1" in done.stderr and "input dtype is float32" in done.stderr
    assert "handler must cast the FP32 rows to float64" in done.stderr
    assert not out.exists() and mlserver_pids() - before == set()


@pytest.mark.slow
@pytest.mark.parametrize("what,code,message", [
    ("server", 4, "failed on run 1, lumi 3 after 2 tries"),
    ("term", 143, "terminated by SIGTERM"),
    ("kill", -9, ""),
], ids=["mlserver killed", "job SIGTERM", "job SIGKILL"])
def test_mlserver_killed_or_the_job_stopped_leaves_no_process(tmp_path, what, code, message):
    before_pids, before_dirs = mlserver_pids(), mlserver_dirs()
    out = tmp_path / "killed.root"
    done = run_cli("run", CONFIG, "sonic=1", "customise=tests.dqm_nmf_plugins.killAtLumi3", f"outputFile={out}",
                   env={"CMSFW_TEST_DQM_KILL": what})
    assert done.returncode == code, done.stderr[-3000:]
    assert message in done.stderr
    if what == "server":
        assert done.stderr.count("Begin Fatal Exception") == 1 and "model 'dqmNMF'" in done.stderr
        assert "The local MLServer (pid" in done.stderr and "exited with code -9" in done.stderr
        assert "Traceback" not in done.stderr
    assert not out.exists()
    assert wait_gone(mlserver_pids() - before_pids) == set()  # after SIGKILL of the job: its reaper's work
    deadline = time.monotonic() + 10
    while mlserver_dirs() - before_dirs and time.monotonic() < deadline:
        time.sleep(0.1)
    assert mlserver_dirs() - before_dirs == set()


def test_fit_needs_rows():
    with pytest.raises(ValueError, match="at least 2 rows"):
        NMFAnomalyModel().fit(np.ones((1, 51)))
