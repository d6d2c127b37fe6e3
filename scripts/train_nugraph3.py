#!/usr/bin/env python
"""Train the project's own NuGraph3 on generated LArTPC events and write its checkpoint.

The checkpoint ``<out>/nugraph3/1/hierarchical.ckpt`` has the format of the NuGraph team's
``hierarchical.ckpt`` (``state_dict`` under the reference names, ``hyper_parameters``), so
``producers.nugraph3.network.load_network`` reads either. Same architecture, smaller (:data:`CONFIG`):
all four heads, trained on the generator's truth (filter, semantic class of signal hits, event class,
vertex; see ``producers/nugraph3/training.py``). Events come from ``generate-nugraph``; a seventh of them,
never trained on, gives the held-out metrics printed at the end. Deterministic for a given seed and thread
count. ``config.pbtxt`` beside it (the Triton model) is not written here.

    python scripts/train_nugraph3.py --events 700 --seed 303 --epochs 12 --threads 2 --out data/models
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import training_common as tc  # noqa: E402

MODEL_NAME = "nugraph3"
#: NuGraph3Config arguments of the bundled model (the reference: 128 / 32 / 32 features, 5 iterations)
CONFIG = {"planar_features": 32, "nexus_features": 16, "interaction_features": 16, "num_iters": 3}
BATCH_SIZE = 16
LR = 5e-3


def metrics(pred: dict[str, np.ndarray]) -> dict[str, float]:
    """Held-out metrics of :func:`producers.nugraph3.training.predict`'s output."""
    sem, lab = pred["semantic_pred"], pred["semantic_label"]
    return {
        "filter_auc": tc.auc(pred["filter_score"], pred["filter_label"]),
        "filter_accuracy": float(np.mean((pred["filter_score"] > 0.5) == pred["filter_label"])),
        "semantic_accuracy": float(np.mean(sem == lab)),
        "semantic_majority": float(np.bincount(lab).max() / len(lab)),
        "event_accuracy": float(np.mean(pred["event_pred"] == pred["event_label"])),
        "event_majority": float(np.bincount(pred["event_label"]).max() / len(pred["event_label"])),
        "vertex_rms_cm": float(np.sqrt(np.mean((pred["vertex_pred"] - pred["vertex_true"]) ** 2))),
    }


def main(argv=None) -> int:
    import torch

    from framework.samples import generate_nugraph
    from producers.nugraph3.network import load_network
    from producers.nugraph3.torch_model import NuGraph3, NuGraph3Config
    from producers.nugraph3.training import (
        init_weights,
        predict,
        read_labelled_events,
        save_checkpoint,
        train,
    )

    args = tc.parse_training_args(__doc__.split("\n\n")[0], argv, events=700, seed=303, epochs=12)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        path = generate_nugraph(Path(tmp) / "train.h5", args.events, args.seed)
        events = read_labelled_events(path)
    t_read = time.perf_counter()
    n_val = max(len(events) // 7, 1)
    perm = np.random.default_rng(args.seed).permutation(len(events))
    val = [events[i] for i in np.sort(perm[:n_val])]
    trn = [events[i] for i in np.sort(perm[n_val:])]
    n_hits = sum(int(sum(e.graph.n_hits[p].sum() for p in e.graph.planes)) for e in events)
    print(f"generated and read {len(events)} events ({n_hits / len(events):.0f} hits per event) "
          f"in {t_read - t0:.1f}s; {len(trn)} for training, {len(val)} held out")

    torch.manual_seed(args.seed)
    net = init_weights(NuGraph3(NuGraph3Config(**CONFIG)))

    def progress(epoch: int, loss: dict[str, float]) -> None:
        terms = ", ".join(f"{k} {v:.4f}" for k, v in loss.items())
        print(f"epoch {epoch + 1}/{args.epochs} ({time.perf_counter() - t_read:.0f}s): {terms}")

    train(net, trn, epochs=args.epochs, batch_size=BATCH_SIZE, lr=LR, seed=args.seed, progress=progress)
    t_train = time.perf_counter()

    out = args.out / MODEL_NAME / "1" / "hierarchical.ckpt"
    training = {"generator": "framework.samples.nugraph", "events": args.events, "seed": args.seed,
                "epochs": args.epochs, "batch_size": BATCH_SIZE, "lr": LR}
    save_checkpoint(net, out, training)
    m = metrics(predict(load_network(out), val))  # the file as it will be used
    n_params = sum(p.numel() for p in net.parameters())
    print(f"trained {n_params} parameters ({CONFIG}), {args.epochs} epochs in {t_train - t_read:.0f}s")
    print(f"held-out ({len(val)} events): filter AUC {m['filter_auc']:.4f} (accuracy {m['filter_accuracy']:.3f}); "
          f"semantic accuracy {m['semantic_accuracy']:.3f} (majority class {m['semantic_majority']:.3f}); "
          f"event accuracy {m['event_accuracy']:.3f} (majority {m['event_majority']:.3f}); "
          f"vertex RMS {m['vertex_rms_cm']:.1f} cm")
    print(f"wrote {out} ({out.stat().st_size / 1024:.0f} kB); total {time.perf_counter() - t0:.0f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
