"""Helpers shared by ``train_part.py``, ``train_deepmet.py`` and the bundled-model tests.

Nothing here imports torch: the tests use the event reader, the ONNX runner and the AUC.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))


def generate_events(path: Path, n_events: int, seed: int) -> Path:
    """Write ``n_events`` generated events (NanoAOD/PFNano naming) to ``path`` with the project's generator."""
    from framework.samples import generate

    generate(str(path), n_events, seed)
    return Path(path)


def iter_events(path: Path, tree: str = "Events", step_size: int = 1000) -> Iterator[dict[str, np.ndarray]]:
    """Yield one dict per event, mapping every branch name to that event's numpy array (or scalar)."""
    import awkward as ak
    import uproot

    with uproot.open(path) as f:
        t = f[tree]
        for chunk in t.iterate(step_size=step_size, library="ak"):
            n = len(chunk)
            columns = {}
            for name in chunk.fields:
                col = chunk[name]
                if col.ndim == 1:
                    columns[name] = (None, ak.to_numpy(col))
                else:
                    counts = ak.to_numpy(ak.num(col, axis=1))
                    offsets = np.zeros(n + 1, dtype=np.int64)
                    np.cumsum(counts, out=offsets[1:])
                    columns[name] = (offsets, ak.to_numpy(ak.flatten(col, axis=1)))
            for i in range(n):
                yield {
                    name: (content[i] if offsets is None else content[offsets[i] : offsets[i + 1]])
                    for name, (offsets, content) in columns.items()
                }


def event_columns(ev: dict[str, np.ndarray]) -> dict[str, tuple[np.ndarray, np.ndarray | None]]:
    """One event of :func:`iter_events` as a one-event batch of ``(content, offsets)`` columns, the input of
    the producers' batch feature builders (``build_part_inputs``, ``build_deepmet_inputs``)."""
    columns = {}
    for name, value in ev.items():
        a = np.asarray(value)
        columns[name] = (a.reshape(1), None) if a.ndim == 0 else (a, np.array([0, len(a)], dtype=np.int64))
    return columns


def ort_session(path: Path, threads: int = 1):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def run_onnx(path_or_session, feeds: dict[str, np.ndarray], batch: int = 256) -> dict[str, np.ndarray]:
    """Run a model over ``feeds`` (all with the same leading dimension) in batches; outputs by name."""
    sess = ort_session(path_or_session) if isinstance(path_or_session, str | Path) else path_or_session
    names = [o.name for o in sess.get_outputs()]
    n = len(next(iter(feeds.values())))
    outs: dict[str, list] = {k: [] for k in names}
    for start in range(0, n, batch):
        res = sess.run(names, {k: np.ascontiguousarray(v[start : start + batch]) for k, v in feeds.items()})
        for k, r in zip(names, res, strict=True):
            outs[k].append(r)
    return {k: np.concatenate(v) for k, v in outs.items()}


def auc(score: np.ndarray, is_signal: np.ndarray) -> float:
    """Area under the ROC curve from ranks (Mann-Whitney U), ties counted half."""
    score = np.asarray(score, dtype=np.float64)
    is_signal = np.asarray(is_signal, dtype=bool)
    n_sig, n_bkg = int(is_signal.sum()), int((~is_signal).sum())
    if n_sig == 0 or n_bkg == 0:
        return float("nan")
    order = np.argsort(score, kind="mergesort")
    ranks = np.empty(len(score), dtype=np.float64)
    sorted_scores = score[order]
    # average ranks over ties
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    avg = first + (counts + 1) / 2.0
    ranks[order] = np.repeat(avg, counts)
    return float((ranks[is_signal].sum() - n_sig * (n_sig + 1) / 2.0) / (n_sig * n_bkg))


def parse_model_config(path: Path):
    """Parse a Triton ``config.pbtxt`` into a ``ModelConfig`` message."""
    from framework.server.repository import read_model_config

    return read_model_config(path)


def parse_training_args(description: str, argv, *, events: int, seed: int, epochs: int):
    """The command line shared by the training scripts; also sets up torch's threads."""
    import argparse

    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--events", type=int, default=events, help="training events to generate")
    ap.add_argument("--seed", type=int, default=seed, help="generator / torch seed (keep distinct from test seeds)")
    ap.add_argument("--epochs", type=int, default=epochs)
    ap.add_argument("--out", type=Path, default=Path("data/models"), help="Triton model repository")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch default)")
    args = ap.parse_args(argv)
    sys.stdout.reconfigure(line_buffering=True)  # progress shows up when piped to a log
    import logging

    logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(message)s")  # the exporter's check
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    return args
