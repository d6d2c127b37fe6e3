"""``index.html`` of ``dqm-report``: one self-contained page (:mod:`framework.report.html`: inline CSS, the plots
embedded as PNG data, nothing from the network) with the verdict, the scorers and their thresholds, the confusion
per anomaly type when the truth is known, the score plots and the flagged-vs-reference elements, and the sections
table (collapsed)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

__all__ = ["write_page"]


def write_page(data: dict[str, Any], figures: list[tuple[str, Any, str]], out_dir: str, *,
               verdict: tuple[bool, str], tables: list[dict[str, Any]]) -> Path:
    """Write ``out_dir/index.html`` from the report's content, its *verdict* (ok, sentence), its confusion *tables*
    (title, headers, rows) and its figures ``(file name, Figure, caption)`` (already saved as PNG in *out_dir*: the
    page embeds those files)."""
    from framework.report.html import Page

    s = data["summary"]
    page = Page("DQM anomaly report", f"{s['source']}: {s['sections']} luminosity sections")
    ok, text = verdict
    top = page.section("Verdict", anchor="verdict")
    top.verdict(ok, text)
    top.text("A section is flagged bad when any scorer flags it (its NMF reconstruction MSE above the threshold "
             "of its model). 'Flagged' and 'not flagged' are the scorers' verdicts; 'good' and the anomaly types "
             "are the truth of the generated events file (--truth).")
    sc = page.section("Scorers", anchor="scorers")
    sc.table(["scorer", "monitoring element", "model", "threshold", "threshold rule", "flagged"],
             [[label, v["element"], v["model"], f"{v['threshold']:.4g}", v["rule"], v["flagged"]]
              for label, v in s["scorers"].items()])
    for table in tables:
        sec = page.section("Truth: " + table["title"], anchor="confusion")
        sec.table(table["headers"], table["rows"])
    for name, _, caption in figures:
        sec = page.section(caption, anchor=os.path.splitext(name)[0])
        sec.figure(Path(out_dir, name).read_bytes(), caption=caption, alt=caption)
    labels = list(s["scorers"])
    head = ["run", "lumi", *[f"{x} MSE" for x in labels], "flag"] + (["truth"] if "confusion" in s else [])
    rows, classes = [], []
    for r in data["sections"]:
        cells = [r["run"], r["luminosityBlock"], *[f"{r[f'{x}_mse']:.4g}" + (" (flagged)" if r[f"{x}_flag"] else "")
                                                    for x in labels], "FLAGGED" if r["flag"] else "not flagged"]
        if "truth" in r:
            cells.append(r["truth"])
        rows.append(cells)
        classes.append("fail" if r["flag"] else "")
    page.section("Sections", anchor="sections").details(f"all {len(rows)} sections").table(head, rows, classes)
    return page.write(Path(out_dir))
