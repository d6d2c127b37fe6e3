#!/usr/bin/env python
"""Train the project's own DeepMET-IO model and export it in Triton layout.

The exported ``model.onnx`` has exactly the I/O of the CMS DeepMET model (DESIGN.md section 8):
``input:0`` [N, 4500, 8] = dxy, dz, eta, mass, pt, puppiWeight, px, py (momenta / 50),
``input_cat0:0`` / ``input_cat1:0`` / ``input_cat2:0`` [N, 4500, 1] = charge, pdgId, fromPV category
indices, output ``output/BiasAdd:0`` [N, 2] = MET (px, py) / 50.

Architecture (as DeepMET): every candidate gets a weight w_i in [0, 1] from an MLP over its continuous
features and learned embeddings of its three categories; MET = -sum_i w_i (px_i, py_i). One addition to the
2018 model: the per-candidate MLP also sees an event context (the mean of the candidates' hidden features over
the real candidates, DeepSets-style), so the weights can adapt to the event's pile-up density. Zero-padded
candidates have px = py = 0 and are excluded from the context, so padding never changes the output.

    python scripts/train_deepmet.py --events 3000 --seed 202 --epochs 8 --out data/models
"""

from __future__ import annotations

import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import training_common as tc  # noqa: E402

MODEL_NAME = "deepmet"
N_CANDS = 4500
N_CONT = 8
CAT_SIZES = (3, 11, 4)  # charge, pdgId, fromPV (as in the CMS model)
INPUT_NAMES = ["input:0", "input_cat0:0", "input_cat1:0", "input_cat2:0"]
OUTPUT_NAME = "output/BiasAdd:0"
PX, PY = 6, 7  # columns of px/50, py/50 in ``input``


def build_model(mean, std, dim: int = 32, emb: int = 4):
    import torch
    from torch import nn

    class DeepMETLite(nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32))
            self.register_buffer("inv_std", torch.tensor(1.0 / std, dtype=torch.float32))
            self.emb = nn.ModuleList([nn.Embedding(n, emb) for n in CAT_SIZES])
            n_in = N_CONT + emb * len(CAT_SIZES)
            self.enc = nn.Sequential(nn.Linear(n_in, dim), nn.GELU(), nn.Linear(dim, dim), nn.GELU())
            self.ctx = nn.Sequential(nn.Linear(dim, dim), nn.GELU())
            self.weight = nn.Sequential(nn.Linear(2 * dim, dim), nn.GELU(), nn.Linear(dim, 1))

        def weights(self, x, c0, c1, c2):
            cont = torch.clamp((x - self.mean) * self.inv_std, -8.0, 8.0)
            embs = []
            for table, c, n in zip(self.emb, (c0, c1, c2), CAT_SIZES, strict=True):
                idx = torch.clamp(torch.round(c[..., 0]), 0, n - 1).to(torch.int64)
                embs.append(table(idx))
            h = self.enc(torch.cat([cont] + embs, dim=-1))  # [B, C, D]
            real = ((x[..., PX : PX + 1] != 0) | (x[..., PY : PY + 1] != 0)).to(torch.float32)  # [B, C, 1]
            count = torch.clamp(real.sum(dim=1, keepdim=True), min=1.0)
            ctx = self.ctx((h * real).sum(dim=1, keepdim=True) / count)  # [B, 1, D]
            w = torch.sigmoid(self.weight(torch.cat([h, ctx.expand_as(h)], dim=-1)))
            return w * real

        def forward(self, x, c0, c1, c2):
            w = self.weights(x, c0, c1, c2)
            return -(w * x[..., PX : PY + 1]).sum(dim=1)  # [B, 2] = MET (px, py) / 50

    return DeepMETLite()


# ---------------------------------------------------------------- data


def build_dataset(root_file: Path):
    """Per-event inputs cut to the real candidates (ragged, with offsets), targets and raw PF MET (/50)."""
    from producers.deepmet.features import build_deepmet_inputs

    xs, cats, counts, target, pfmet = [], [], [], [], []
    for ev in tc.iter_events(root_file):
        inp = build_deepmet_inputs(tc.event_columns(ev)).event(0).inputs
        x = np.asarray(inp["input"], dtype=np.float32).reshape(-1, N_CONT)
        c = np.concatenate(
            [np.asarray(inp[f"input_cat{i}"], dtype=np.float32).reshape(-1, 1) for i in range(3)], axis=1
        )
        real = (x[:, PX] != 0) | (x[:, PY] != 0)
        n = int(np.nonzero(real)[0].max()) + 1 if real.any() else 0
        xs.append(x[:n])
        cats.append(c[:n])
        counts.append(n)
        target.append(gen_met(ev) / 50.0)
        pfmet.append(pf_met(ev) / 50.0)
    offsets = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    return {
        "x": np.concatenate(xs),
        "cat": np.concatenate(cats),
        "offsets": offsets,
        "target": np.asarray(target, dtype=np.float32),
        "pfmet": np.asarray(pfmet, dtype=np.float32),
    }


def gen_met(ev) -> np.ndarray:
    pt, phi = float(ev["GenMET_pt"]), float(ev["GenMET_phi"])
    return np.array([pt * math.cos(phi), pt * math.sin(phi)])


def pf_met(ev) -> np.ndarray:
    """Raw PF MET: minus the vector sum of the transverse momenta of all PF candidates."""
    pt, phi = np.asarray(ev["PFCands_pt"], dtype=np.float64), np.asarray(ev["PFCands_phi"], dtype=np.float64)
    return -np.array([np.sum(pt * np.cos(phi)), np.sum(pt * np.sin(phi))])


def padded_batch(ds, events: np.ndarray, n_slots: int | None = None):
    """Zero-padded model inputs for ``events`` (to their largest count, or to ``n_slots``)."""
    offsets = ds["offsets"]
    counts = offsets[events + 1] - offsets[events]
    n = max(int(counts.max()), 1) if n_slots is None else n_slots
    x = np.zeros((len(events), n, N_CONT), dtype=np.float32)
    c = np.zeros((len(events), n, 3), dtype=np.float32)
    for j, e in enumerate(events):
        k = min(n, counts[j])
        x[j, :k] = ds["x"][offsets[e] : offsets[e] + k]
        c[j, :k] = ds["cat"][offsets[e] : offsets[e] + k]
    return x, c[..., 0:1].copy(), c[..., 1:2].copy(), c[..., 2:3].copy()


def feature_mean_std(ds, events):
    offsets = ds["offsets"]
    rows = np.concatenate([np.arange(offsets[e], offsets[e + 1]) for e in events])
    x = ds["x"][rows].astype(np.float64)
    mean, std = x.mean(0), x.std(0)
    std[std < 1e-6] = 1.0
    return mean.astype(np.float32), std.astype(np.float32)


# ---------------------------------------------------------------- training


def train(ds, events, epochs: int, seed: int, log=print):
    import torch

    torch.manual_seed(seed)
    mean, std = feature_mean_std(ds, events)
    model = build_model(mean, std)
    # start near PF MET: every weight ~ sigmoid(2) = 0.88
    with torch.no_grad():
        model.weight[-1].bias.fill_(2.0)
    batch = 32
    steps = epochs * math.ceil(len(events) / batch)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=steps, pct_start=0.1)
    rng = np.random.default_rng(seed)
    target = torch.from_numpy(ds["target"])
    for epoch in range(epochs):
        model.train()
        perm = rng.permutation(events)
        total = 0.0
        for start in range(0, len(perm), batch):
            idx = perm[start : start + batch]
            inputs = [torch.from_numpy(a) for a in padded_batch(ds, idx)]
            loss = ((model(*inputs) - target[idx]) ** 2).sum(-1).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
        log(f"  epoch {epoch + 1:3d}/{epochs}  loss {total / len(perm):.4f}  (RMS per component "
            f"{50 * math.sqrt(total / len(perm) / 2):.2f} GeV)")
    model.eval()
    return model


def predict_torch(model, ds, events, batch: int = 64) -> np.ndarray:
    import torch

    outs = []
    with torch.no_grad():
        for start in range(0, len(events), batch):
            inputs = [torch.from_numpy(a) for a in padded_batch(ds, events[start : start + batch])]
            outs.append(model(*inputs).numpy())
    return np.concatenate(outs)


def predict_onnx(path: Path, ds, events, batch: int = 16) -> np.ndarray:
    sess = tc.ort_session(path, threads=2)
    outs = []
    for start in range(0, len(events), batch):
        arrays = padded_batch(ds, events[start : start + batch], n_slots=N_CANDS)
        outs.append(sess.run([OUTPUT_NAME], dict(zip(INPUT_NAMES, arrays, strict=True)))[0])
    return np.concatenate(outs)


# ---------------------------------------------------------------- export

TRITON_CONFIG = dict(max_batch_size=100, dynamic_batching=[8, 16], checksum=True)
"""The Triton settings of the bundled model (``framework.ml.export.build_model_config`` keywords)."""


def export(model, example: tuple, out: Path) -> Path:
    """Export ``model`` as ``<out>/deepmet``, checked against torch on the events of ``example`` (the four
    inputs, padded to N_CANDS); returns the model directory."""
    from framework.ml.export import export_to_triton

    return export_to_triton(model, example, out, MODEL_NAME, input_names=INPUT_NAMES, output_names=[OUTPUT_NAME],
                            **TRITON_CONFIG)


def rms(a: np.ndarray) -> np.ndarray:
    return np.sqrt(np.mean(np.asarray(a, dtype=np.float64) ** 2, axis=0))


def main(argv=None) -> int:
    from framework.server.repository import file_digest

    args = tc.parse_training_args(__doc__.split("\n\n")[0], argv, events=3000, seed=202, epochs=8)

    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        root_file = Path(tmp) / "train.root"
        tc.generate_events(root_file, args.events, args.seed)
        t_gen = time.perf_counter()
        ds = build_dataset(root_file)
    t_feat = time.perf_counter()
    n_ev = len(ds["target"])
    mean_cands = float(np.diff(ds["offsets"]).mean())
    print(f"generated {args.events} events in {t_gen - t0:.1f}s; inputs built in {t_feat - t_gen:.1f}s "
          f"({mean_cands:.0f} candidates per event on average)")

    rng = np.random.default_rng(args.seed)
    perm = rng.permutation(n_ev)
    n_val = max(n_ev // 7, 1)
    val, trn = np.sort(perm[:n_val]), perm[n_val:]
    model = train(ds, trn, args.epochs, args.seed)
    t_train = time.perf_counter()

    model_dir = export(model, padded_batch(ds, val[:8], n_slots=N_CANDS), args.out)
    onnx_path = model_dir / "1" / "model.onnx"
    p_torch = predict_torch(model, ds, val)
    p_onnx = predict_onnx(onnx_path, ds, val)
    diff = float(np.abs(p_torch - p_onnx).max())
    if not diff < 1e-4:
        raise SystemExit(f"onnxruntime differs from torch by {diff:.2e} (> 1e-4)")
    md5 = file_digest(onnx_path)

    res_model = 50 * rms(p_onnx - ds["target"][val])
    res_pf = 50 * rms(ds["pfmet"][val] - ds["target"][val])
    n_params = sum(p.numel() for p in model.parameters())
    print(f"trained {n_params} parameters, {args.epochs} epochs in {t_train - t_feat:.1f}s")
    print(f"validation RMS(MET - GenMET) px, py [GeV]: model {res_model[0]:.2f}, {res_model[1]:.2f}; "
          f"raw PF MET {res_pf[0]:.2f}, {res_pf[1]:.2f}; max |onnxruntime - torch| = {diff:.2e}")
    print(f"wrote {onnx_path} ({onnx_path.stat().st_size / 1024:.0f} kB, MD5 {md5}) and config.pbtxt; "
          f"total {time.perf_counter() - t0:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
