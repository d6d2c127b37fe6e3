"""The output tree's layout is fixed at its first flush: jagged products of one label that differ in length there
keep their own counters in later blocks, even where a block has them all of equal length (NuGraph3's per-plane
outputs: a last block of one event with equal plane sizes)."""

from __future__ import annotations

import numpy as np
import uproot

import framework.config as cms
from framework.core.module import EDProducer
from framework.core.processor import EventProcessor
from framework.core.registry import register


@register("LayoutTestPlanes")
class LayoutTestPlanes(EDProducer):
    """Two per-hit products ``u`` and ``v``: of different lengths, except in the last event (equal)."""

    parameters = {"last": 5}

    def produce(self, event):
        n = int(event.id.event)
        nu, nv = (2, 2) if n == self.params.last else (n % 3 + 1, n % 2 + 3)
        event.put(np.arange(nu, dtype=np.float32), "u")
        event.put(np.arange(nv, dtype=np.float32) + 10, "v")


def test_a_last_block_with_equal_lengths_keeps_the_first_blocks_layout(tmp_path):
    process = cms.Process("LAYOUT")
    process.source = cms.Source("EmptySource")
    process.maxEvents.input = 5
    process.planes = cms.EDProducer("LayoutTestPlanes", last=5)
    process.p = cms.Path(process.planes)
    out = tmp_path / "out.root"
    process.out = cms.OutputModule("RootOutputModule", fileName=str(out), flushEvents=4)
    process.e = cms.EndPath(process.out)
    EventProcessor(process).run()
    with uproot.open(out) as f:
        tree = f["Events"]
        assert "nplanes_u" in tree and "nplanes_v" in tree, tree.keys()
        u = tree["planes_u"].array(library="ak").tolist()
        v = tree["planes_v"].array(library="ak").tolist()
    assert [len(x) for x in u] == [n % 3 + 1 for n in range(1, 5)] + [2]
    assert [len(x) for x in v] == [n % 2 + 3 for n in range(1, 5)] + [2]
    assert v[-1] == [10.0, 11.0]
