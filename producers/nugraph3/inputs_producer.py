"""``NuGraph3InputsProducer``: each event's NuGraph3 inputs as a product (the TagInfo split).

The product is the event's 10 raw tables, named as the server's inputs (``hit_table_{hit_id, local_plane,
local_wire, local_time, integral, rms}``, ``spacepoint_table_{spacepoint_id, hit_id_u, hit_id_v, hit_id_y}``),
1-D numpy arrays in the server's dtypes and the file's row order, checked as the graph builder checks them
(same table lengths, planes 0-2, finite values). Both twins read it: the direct one builds the graph in the
job, the SONIC one sends the tables and the server builds it. The graph is per event, so there is nothing to
vectorise over the batch: the base class only reads the chunk's columns once and each event takes its slices.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from framework.core.registry import register
from framework.ml.inputs import BatchInputsProducer

# the checks build_graph applies to its inputs (names, lengths, dtypes, planes, finite values)
from .preprocess import INPUT_DTYPES
from .preprocess import read_inputs as check_inputs

#: the branches the inputs producer reads (the server's input names)
INPUT_BRANCHES: tuple[str, ...] = tuple(INPUT_DTYPES)


class NuGraph3Batch:
    """The tables of a batch of events (an input chunk); :meth:`event` is one event's product."""

    def __init__(self, columns: Mapping[str, Any]):
        self._columns = {name: columns[name] for name in INPUT_BRANCHES}

    def event(self, i: int) -> dict[str, np.ndarray]:
        """Event *i*'s 10 tables (checked, in the server's dtypes; read-only)."""
        tables = {}
        for name, column in self._columns.items():
            if column.offsets is None:
                raise ValueError(f"NuGraph3 input branch '{name}' must hold one value per hit or space point "
                                 "(a jagged branch); it has one value per event")
            tables[name] = column.content[column.offsets[i]: column.offsets[i + 1]]
        tables = check_inputs(tables)
        for array in tables.values():
            array.flags.writeable = False
        return tables


@register("NuGraph3InputsProducer")
class NuGraph3InputsProducer(BatchInputsProducer):
    """Puts the event's 10 NuGraph3 input tables (a dict of 1-D arrays, instance ``""``)."""

    parameters: dict[str, Any] = {}
    branches = INPUT_BRANCHES

    def build(self, columns: Mapping[str, Any]) -> NuGraph3Batch:
        return NuGraph3Batch(columns)
