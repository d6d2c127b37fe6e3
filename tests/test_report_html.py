"""The HTML page of the reports: self-contained (images as data URLs, nothing from the network), text escaped,
written atomically, and rendered by a real Chromium with every image loaded."""

from __future__ import annotations

import base64
import re

import numpy as np
import pytest

from framework.report.html import Page, figure_png
from tests.browser import CHROMIUM, REASON, render


def _figure():
    from framework.report.plots import pyplot

    plt = pyplot()
    fig, ax = plt.subplots()
    ax.plot(np.arange(5), np.arange(5) ** 2)
    return fig


def test_page_is_self_contained_and_escaped(tmp_path):
    page = Page("A <b>report</b>", "sub & title")
    s = page.section("Verdict", "verdict")
    s.verdict(False, "1 product <disagrees>")
    s.table(["product", "value"], [["<script>alert(1)</script>", 1.5]], ["bad"])
    s.figure(_figure(), caption="x & y", alt='a "plot"')
    s.details("more").text("hidden <i>")
    path = page.write(tmp_path)
    assert path == tmp_path / "index.html" and not list(tmp_path.glob(".index.*"))
    text = path.read_text()
    assert "<script>" not in text and "&lt;script&gt;" in text and "A &lt;b&gt;report&lt;/b&gt;" in text
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", text)
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', text)
    assert len(images) == 1 and base64.b64decode(images[0]).startswith(b"\x89PNG")
    assert 'class="verdict fail"' in text and '<tr class="bad">' in text and "<details>" in text


def test_a_figure_must_be_a_png():
    with pytest.raises(ValueError, match="not a PNG"):
        Page("t").section("s").figure(b"GIF89a", caption="c", alt="a")
    assert figure_png(_figure()).startswith(b"\x89PNG")


@pytest.mark.skipif(CHROMIUM is None, reason=REASON)
def test_chromium_renders_the_page_with_its_images(tmp_path):
    page = Page("Rendered")
    for i in range(3):
        page.section(f"plot {i}").figure(_figure(), caption=f"plot {i}", alt=f"plot {i}")
    page.write(tmp_path)
    seen = render(tmp_path / "index.html", tmp_path / "shot.png")
    assert (seen["images_total"], seen["images_loaded"]) == (3, 3), seen
    assert "plot 2" in seen["dom"]
    assert (tmp_path / "shot.png").read_bytes().startswith(b"\x89PNG")
