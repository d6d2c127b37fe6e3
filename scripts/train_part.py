#!/usr/bin/env python
"""Train the project's own ParticleTransformer-AK4-IO b-tagger and export it in Triton layout.

The exported ``model.onnx`` has exactly the I/O of the CMS Run-3 ParT AK4 model (DESIGN.md section 8):
``input_1`` [N, n_input_1, 16] charged features, ``input_2`` [N, n_input_2, 8] neutral features,
``input_3`` [N, n_input_3, 14] SV features, ``input_4/5/6`` the (px, py, pz, E) of those slots, and
``softmax`` [N, 6] = probb, probbb, problepb, probc, probuds, probg.

Architecture ("ParT-lite"): per-type embedding MLPs (charged / neutral / SV, each with its own input
standardisation baked into the graph) -> one token sequence -> particle self-attention blocks with a key
padding mask -> ParT's class-attention pooling (a learned class token attends to the real tokens) -> linear
-> softmax. A slot is real when its 4-vector is non-zero, as in the CMS model, so zero padding to any length
does not change the output. ParT's pairwise interaction features are left out: they are the O(n^2) part
that dominates the real model's cost, and the per-particle b-tagging features (impact parameters, SVs) carry
the separating power in the generated samples.

    python scripts/train_part.py --events 4000 --seed 101 --epochs 10 --out data/models
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

MODEL_NAME = "particletransformer_AK4"
LABELS = ["b", "bb", "lepb", "c", "uds", "g"]
N_FEATURES = (16, 8, 14)
MAX_SLOTS = (25, 25, 5)
MASK_VALUE = -1e9  # finite: a jet with no real slot gets uniform attention instead of NaN


def build_model(mean_std, dim: int = 64, heads: int = 4, n_blocks: int = 2, n_cls_blocks: int = 1):
    """ParT-lite. ``mean_std`` = [(mean, std) per input type], numpy arrays of shape [F]."""
    import torch
    from torch import nn

    class Attention(nn.Module):
        def __init__(self):
            super().__init__()
            self.q = nn.Linear(dim, dim)
            self.kv = nn.Linear(dim, 2 * dim)
            self.proj = nn.Linear(dim, dim)
            self.scale = 1.0 / math.sqrt(dim // heads)

        def forward(self, xq, xkv, bias):
            # xq [B, Q, D], xkv [B, K, D], bias [B, 1, 1, K] (0 for real keys, MASK_VALUE for padding)
            b, nq, _ = xq.shape
            nk = xkv.shape[1]
            hd = dim // heads
            q = self.q(xq).reshape(b, nq, heads, hd).transpose(1, 2)
            k, v = self.kv(xkv).reshape(b, nk, 2, heads, hd).permute(2, 0, 3, 1, 4).unbind(0)
            att = torch.matmul(q, k.transpose(-1, -2)) * self.scale + bias
            att = torch.softmax(att, dim=-1)
            out = torch.matmul(att, v).transpose(1, 2).reshape(b, nq, dim)
            return self.proj(out)

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln1 = nn.LayerNorm(dim)
            self.att = Attention()
            self.ln2 = nn.LayerNorm(dim)
            self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))

        def forward(self, x, bias, mask):  # self-attention; padded tokens are kept at exactly zero
            h = self.ln1(x)
            x = x + self.att(h, h, bias)
            x = x + self.mlp(self.ln2(x))
            return x * mask

    class ClassBlock(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln1 = nn.LayerNorm(dim)
            self.att = Attention()
            self.ln2 = nn.LayerNorm(dim)
            self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))

        def forward(self, cls, x, bias):
            h = self.ln1(torch.cat([cls, x], dim=1))
            cls = cls + self.att(h[:, :1], h, bias)
            return cls + self.mlp(self.ln2(cls))

    class Embed(nn.Module):
        def __init__(self, n_in, mean, std):
            super().__init__()
            self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32))
            self.register_buffer("inv_std", torch.tensor(1.0 / std, dtype=torch.float32))
            # plus 2 kinematic features from the 4-vector: log(1 + pt), log(1 + E)
            self.net = nn.Sequential(nn.Linear(n_in + 2, dim), nn.GELU(), nn.Linear(dim, dim))

        def forward(self, feat, p4):
            x = torch.clamp((feat - self.mean) * self.inv_std, -8.0, 8.0)
            pt = torch.sqrt(p4[..., 0:1] ** 2 + p4[..., 1:2] ** 2)
            kin = torch.cat([torch.log1p(pt), torch.log1p(torch.abs(p4[..., 3:4]))], dim=-1)
            return self.net(torch.cat([x, kin], dim=-1))

    class ParTLite(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.ModuleList(
                [Embed(n, m, s) for n, (m, s) in zip(N_FEATURES, mean_std, strict=True)]
            )
            self.blocks = nn.ModuleList([Block() for _ in range(n_blocks)])
            self.cls_blocks = nn.ModuleList([ClassBlock() for _ in range(n_cls_blocks)])
            self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
            nn.init.trunc_normal_(self.cls_token, std=0.02)
            self.norm = nn.LayerNorm(dim)
            self.head = nn.Linear(dim, len(LABELS))

        def logits(self, input_1, input_2, input_3, input_4, input_5, input_6):
            feats = (input_1, input_2, input_3)
            p4s = (input_4, input_5, input_6)
            # a slot is real when its 4-vector is non-zero (as the CMS model decides it)
            masks = [(torch.abs(p4).sum(dim=-1, keepdim=True) > 0).to(torch.float32) for p4 in p4s]
            x = torch.cat([emb(f, p) * m for emb, f, p, m in zip(self.embed, feats, p4s, masks, strict=True)], 1)
            mask = torch.cat(masks, dim=1)  # [B, T, 1]
            bias = ((1.0 - mask) * MASK_VALUE).transpose(1, 2).unsqueeze(1)  # [B, 1, 1, T]
            for blk in self.blocks:
                x = blk(x, bias, mask)
            cls = self.cls_token.expand(x.shape[0], 1, x.shape[2])
            cls_bias = torch.cat([torch.zeros_like(bias[..., :1]), bias], dim=-1)  # the class token is real
            for blk in self.cls_blocks:
                cls = blk(cls, x, cls_bias)
            return self.head(self.norm(cls[:, 0]))

        def forward(self, input_1, input_2, input_3, input_4, input_5, input_6):
            return torch.softmax(self.logits(input_1, input_2, input_3, input_4, input_5, input_6), dim=-1)

    return ParTLite()


# ---------------------------------------------------------------- data


def jet_labels(ev: dict, n_jets: int) -> np.ndarray:
    """Class index per jet (LABELS order); -1 for jets without a usable label."""
    hf = np.asarray(ev["Jet_hadronFlavour"][:n_jets])
    pf = np.asarray(ev["Jet_partonFlavour"][:n_jets]) if "Jet_partonFlavour" in ev else np.zeros(n_jets)
    nb = np.asarray(ev["Jet_nBHadrons"][:n_jets]) if "Jet_nBHadrons" in ev else np.ones(n_jets)
    lep = np.zeros(n_jets, dtype=bool)
    if "JetPFCands_jetIdx" in ev and "PFCands_pdgId" in ev:
        jidx = np.asarray(ev["JetPFCands_jetIdx"])
        cidx = np.asarray(ev["JetPFCands_pFCandsIdx"])
        pdg = np.abs(np.asarray(ev["PFCands_pdgId"]))
        ok = (jidx >= 0) & (jidx < n_jets) & (cidx >= 0) & (cidx < len(pdg))
        islep = np.isin(pdg[cidx[ok]], (11, 13))
        lep[np.unique(jidx[ok][islep])] = True
    y = np.full(n_jets, -1, dtype=np.int64)
    isb = hf == 5
    y[isb & (nb >= 2)] = 1
    y[isb & (nb < 2) & lep] = 2
    y[isb & (nb < 2) & ~lep] = 0
    y[hf == 4] = 3
    y[(hf == 0) & (np.abs(pf) != 21)] = 4
    y[(hf == 0) & (np.abs(pf) == 21)] = 5
    return y


def build_dataset(root_file: Path):
    """Inputs padded to the maximum slot counts, labels and hadron flavour, for every jet with candidates."""
    from producers.particle_transformer_ak4.features import build_part_inputs

    arrays = {f"input_{i}": [] for i in range(1, 7)}
    labels, flavour = [], []
    for ev in tc.iter_events(root_file):
        inputs, has_cands = build_part_inputs(tc.event_columns(ev)).event(0)
        n_jets = len(has_cands)
        if n_jets == 0:
            continue
        y = jet_labels(ev, n_jets)
        keep = np.asarray(has_cands, dtype=bool) & (y >= 0)
        for name, maxn in zip(arrays, MAX_SLOTS + MAX_SLOTS, strict=True):
            a = np.asarray(inputs[name], dtype=np.float32)[keep]
            pad = np.zeros((a.shape[0], maxn, a.shape[2]), dtype=np.float32)
            n = min(maxn, a.shape[1])
            pad[:, :n] = a[:, :n]
            arrays[name].append(pad)
        labels.append(y[keep])
        flavour.append(np.asarray(ev["Jet_hadronFlavour"][:n_jets])[keep])
    data = {k: np.concatenate(v) for k, v in arrays.items()}
    return data, np.concatenate(labels), np.concatenate(flavour)


def feature_mean_std(data: dict) -> list[tuple[np.ndarray, np.ndarray]]:
    out = []
    for i in range(3):
        feat = data[f"input_{i + 1}"]
        real = np.abs(data[f"input_{i + 4}"]).sum(-1) > 0
        x = feat[real].astype(np.float64)
        if len(x) == 0:
            out.append((np.zeros(feat.shape[-1], np.float32), np.ones(feat.shape[-1], np.float32)))
            continue
        mean = x.mean(0)
        std = x.std(0)
        std[std < 1e-6] = 1.0
        out.append((mean.astype(np.float32), std.astype(np.float32)))
    return out


# ---------------------------------------------------------------- training


def train(data, labels, mean_std, epochs: int, seed: int, log=print):
    import torch

    torch.manual_seed(seed)
    model = build_model(mean_std)
    counts = np.bincount(labels, minlength=len(LABELS)).astype(np.float64)
    # balance the classes that are present (sqrt-damped), ignore absent ones
    w = np.where(counts > 0, (counts.sum() / np.maximum(counts, 1)) ** 0.5, 0.0)
    w = w / (w * counts).sum() * counts.sum()
    loss_fn = torch.nn.CrossEntropyLoss(weight=torch.tensor(w, dtype=torch.float32))
    tensors = [torch.from_numpy(data[f"input_{i}"]) for i in range(1, 7)]
    y = torch.from_numpy(labels)
    n = len(y)
    batch = 256
    steps = epochs * math.ceil(n / batch)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=steps, pct_start=0.1)
    gen = torch.Generator().manual_seed(seed)
    for epoch in range(epochs):
        model.train()
        perm = torch.randperm(n, generator=gen)
        total = 0.0
        for start in range(0, n, batch):
            idx = perm[start : start + batch]
            inputs = [t[idx] for t in tensors]
            inputs = _trim(inputs)
            loss = loss_fn(model.logits(*inputs), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
        log(f"  epoch {epoch + 1:3d}/{epochs}  loss {total / n:.4f}")
    model.eval()
    return model


def _trim(inputs):
    """Cut a batch to its largest real slot count per type (padding does not change the outputs)."""
    out = list(inputs)
    for i in range(3):
        real = inputs[i + 3].abs().sum(-1) > 0
        n = int(real.any(0).nonzero().max().item()) + 1 if bool(real.any()) else 1
        out[i] = inputs[i][:, :n]
        out[i + 3] = inputs[i + 3][:, :n]
    return out


def predict_torch(model, data, batch: int = 1024) -> np.ndarray:
    import torch

    outs = []
    with torch.no_grad():
        for start in range(0, len(data["input_1"]), batch):
            inputs = [torch.from_numpy(data[f"input_{i}"][start : start + batch]) for i in range(1, 7)]
            outs.append(model(*inputs).numpy())
    return np.concatenate(outs)


# ---------------------------------------------------------------- export

LABELS_FILE = "particletransformer_labels.txt"


def edit_config(config) -> None:
    """What the bundled config.pbtxt has beyond the exporter's options: the class labels and ONNXRuntime's
    basic graph optimisation level (as the CMS config)."""
    config.output[0].label_filename = LABELS_FILE
    config.optimization.graph.level = -1


TRITON_CONFIG = dict(max_batch_size=500, dynamic_batching=[200], checksum=True, edit_config=edit_config)
"""The Triton settings of the bundled model (``framework.ml.export.build_model_config`` keywords)."""


def export(model, data: dict, out: Path, n_examples: int = 16) -> Path:
    """Export ``model`` as ``<out>/particletransformer_AK4`` (checked against torch on the first jets of
    ``data``) with its labels file; returns the model directory."""
    import torch

    from framework.ml.export import export_to_triton

    names = [f"input_{i}" for i in range(1, 7)]
    example = {n: torch.from_numpy(np.ascontiguousarray(data[n][:n_examples])) for n in names}
    model_dir = export_to_triton(model, example, out, MODEL_NAME, output_names=["softmax"],
                                 dynamic_axes={n: [1] for n in names}, **TRITON_CONFIG)
    (model_dir / LABELS_FILE).write_text("\n".join(LABELS) + "\n")
    return model_dir


def main(argv=None) -> int:
    from framework.server.repository import file_digest

    args = tc.parse_training_args(__doc__.split("\n\n")[0], argv, events=4000, seed=101, epochs=10)

    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        root_file = Path(tmp) / "train.root"
        tc.generate_events(root_file, args.events, args.seed)
        t_gen = time.perf_counter()
        data, labels, flavour = build_dataset(root_file)
    t_feat = time.perf_counter()
    counts = np.bincount(labels, minlength=len(LABELS))
    print(f"generated {args.events} events in {t_gen - t0:.1f}s; {len(labels)} jets "
          f"({', '.join(f'{n} {c}' for n, c in zip(LABELS, counts, strict=True))}) in {t_feat - t_gen:.1f}s")

    # hold out 15% of the jets to report the b-vs-light AUC
    rng = np.random.default_rng(args.seed)
    perm = rng.permutation(len(labels))
    n_val = len(labels) // 7
    val, trn = perm[:n_val], perm[n_val:]
    subset = lambda d, idx: {k: v[idx] for k, v in d.items()}  # noqa: E731
    mean_std = feature_mean_std(subset(data, trn))
    model = train(subset(data, trn), labels[trn], mean_std, args.epochs, args.seed)
    t_train = time.perf_counter()

    val_data = subset(data, val)
    model_dir = export(model, val_data, args.out)
    onnx_path = model_dir / "1" / "model.onnx"
    p_torch = predict_torch(model, val_data)
    p_onnx = tc.run_onnx(onnx_path, val_data)["softmax"]
    diff = float(np.abs(p_torch - p_onnx).max())
    if not diff < 1e-4:
        raise SystemExit(f"onnxruntime differs from torch by {diff:.2e} (> 1e-4)")
    md5 = file_digest(onnx_path)

    fl = flavour[val]
    sel = (fl == 5) | (fl == 0)
    score = p_onnx[:, 0] + p_onnx[:, 1] + p_onnx[:, 2]
    val_auc = tc.auc(score[sel], fl[sel] == 5)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"trained {n_params} parameters, {args.epochs} epochs in {t_train - t_feat:.1f}s")
    print(f"validation AUC b vs light: {val_auc:.4f}; max |onnxruntime - torch| = {diff:.2e}")
    print(f"wrote {onnx_path} ({onnx_path.stat().st_size / 1024:.0f} kB, MD5 {md5}) and config.pbtxt; "
          f"total {time.perf_counter() - t0:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
