"""The two real NuGraph3 events of ../shared as the server's 10 input arrays (test helpers).

The small event (``NeutrinoML_rishi.h5``) comes from the reference npz, which holds its inputs as the
reference code received them; the large one is read from ``nugraph3_raw_event.h5`` (pandas HDFStore, fixed
format) with h5py directly, as the public client sends it (columns cast to the server's dtypes).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from producers.nugraph3.preprocess import INPUT_DTYPES

SHARED_DIR = Path(__file__).resolve().parents[1].parent / "shared"
NUGRAPH_DIR = SHARED_DIR / "data" / "nugraph"
REFERENCE_NPZ = NUGRAPH_DIR / "reference_NeutrinoML_rishi.npz"
RAW_EVENT = NUGRAPH_DIR / "nugraph3_raw_event.h5"
CHECKPOINT = SHARED_DIR / "models" / "nugraph3" / "1" / "hierarchical.ckpt"


def need(path: Path) -> Path:
    """*path*, or skip the test with the reason when ../shared lacks it."""
    if not path.is_file():
        pytest.skip(f"{path} is absent (reference material of ../shared)")
    return path


def reference() -> dict[str, np.ndarray]:
    """Everything in the reference npz (inputs, intermediates and outputs of the public NuGraph3 code)."""
    with np.load(need(REFERENCE_NPZ)) as z:
        return {k: z[k] for k in z.files}


def small_event() -> dict[str, np.ndarray]:
    ref = reference()
    return {name: ref[name] for name in INPUT_DTYPES}


def _read_frame(group) -> dict[str, np.ndarray]:
    cols = {}
    for b in range(int(group.attrs["nblocks"])):
        items = [s.decode() for s in group[f"block{b}_items"][()]]
        values = group[f"block{b}_values"][()]
        for j, name in enumerate(items):
            cols[name] = values[:, j]
    return cols


def raw_event() -> dict[str, np.ndarray]:
    h5py = pytest.importorskip("h5py", reason="h5py reads the real raw NuGraph3 event")
    with h5py.File(need(RAW_EVENT), "r") as f:
        hits = _read_frame(f["hit_table"])
        sps = _read_frame(f["spacepoint_table"])
    inputs = {f"hit_table_{k}": v for k, v in hits.items()} | {
        f"spacepoint_table_{k}": v for k, v in sps.items()
    }
    return {name: np.asarray(inputs[name]).astype(dtype) for name, dtype in INPUT_DTYPES.items()}


def synthetic_event(
    plane_hits: dict[int, np.ndarray], spacepoints: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """An event from per-plane positions {plane: [n, 2] (wire, time)}, integral 100 and rms 4 for every hit,
    hit ids 0.. in plane order; *spacepoints*: [n_sp, 3] hit ids per plane (-1: none), default none."""
    planes, wires, times = [], [], []
    for plane, pos in plane_hits.items():
        pos = np.asarray(pos, dtype=np.float64).reshape(-1, 2)
        planes += [plane] * len(pos)
        wires.append(pos[:, 0])
        times.append(pos[:, 1])
    n = len(planes)
    sp = np.zeros((0, 3), dtype=np.int32) if spacepoints is None else np.asarray(spacepoints, dtype=np.int32)
    return {
        "hit_table_hit_id": np.arange(n, dtype=np.int32),
        "hit_table_local_plane": np.array(planes, dtype=np.int32),
        "hit_table_local_wire": np.concatenate(wires + [np.zeros(0)]).astype(np.int32),
        "hit_table_local_time": np.concatenate(times + [np.zeros(0)]).astype(np.float32),
        "hit_table_integral": np.full(n, 100.0, dtype=np.float32),
        "hit_table_rms": np.full(n, 4.0, dtype=np.float32),
        "spacepoint_table_spacepoint_id": np.arange(len(sp), dtype=np.int32),
        "spacepoint_table_hit_id_u": sp[:, 0].copy(),
        "spacepoint_table_hit_id_v": sp[:, 1].copy(),
        "spacepoint_table_hit_id_y": sp[:, 2].copy(),
    }
