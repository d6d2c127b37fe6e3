"""``compare`` on the NuGraph3 config: every product drawn by its declared spec (hits and events counted as such,
the vertex in cm over the range of the data, linear), no empty log plot; with the truth kept, the filter score by
truth label, the semantic efficiency and purity, the vertex residuals; the page loads in Chromium."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import warnings

import pytest

from tests.browser import CHROMIUM, REASON, render
from tests.main_fixtures import REPO_ROOT, SERVER_MARKS

pytestmark = [*SERVER_MARKS, pytest.mark.slow]


def test_compare_nugraph3_draws_each_product_by_what_it_is(tmp_path):
    events = tmp_path / "events.h5"
    done = subprocess.run([sys.executable, "-m", "framework", "generate-nugraph", "--events", "6", "--seed", "11",
                           str(events)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    out = tmp_path / "report"
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # e.g. matplotlib's "Data has no positive values"
        done = subprocess.run([sys.executable, "-W", "error::UserWarning:matplotlib", "-m", "framework", "compare",
                               str(REPO_ROOT / "configs" / "nugraph3_cfg.py"), f"inputFiles={events}", "keepTruth=1", "--out",
                               str(out)], capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Data has no positive values" not in done.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["agree"] is True
    plots = set(report["plots"])
    for name in ("nuGraph3_vertex_x.png", "nuGraph3_filter_u.png", "nuGraph3_event_nc.png",
                 "nuGraph3_semantic_y_muon.png"):
        assert name in plots, sorted(plots)
    page = (out / "index.html").read_text()
    assert "NuGraph3 vertex x [cm]" in page and "NuGraph3 filter score, plane u" in page
    for physics in ("filter score by truth label", "per-class efficiency", "vertex residuals"):
        assert physics in page, f"no {physics} plot"
    assert "jets" not in re.sub(r"<[^>]+>", " ", page).split("Plots", 1)[1]  # hits and events, never "jets"
    if CHROMIUM is None:
        pytest.skip(REASON)
    seen = render(out / "index.html")
    assert seen["images_total"] == seen["images_loaded"] == len(plots)
