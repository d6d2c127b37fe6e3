"""Small numpy helpers for per-event (jagged) bookkeeping on flat arrays, shared by the feature builders."""

from __future__ import annotations

import numpy as np


def rank_in_group(groups: np.ndarray) -> np.ndarray:
    """Position of each element inside its run of equal ``groups`` (groups already sorted):
    ``[3, 3, 5, 5, 5, 7] -> [0, 1, 0, 1, 2, 0]``."""
    n = len(groups)
    if n == 0:
        return np.zeros(0, np.int64)
    idx = np.arange(n)
    start = np.ones(n, bool)
    start[1:] = groups[1:] != groups[:-1]
    return idx - np.maximum.accumulate(np.where(start, idx, 0))
