"""One self-contained HTML page: inline CSS, images embedded as ``data:`` URLs, nothing loaded from the network,
readable offline. Text is escaped; the page is written atomically (a temporary file, then renamed).

    page = Page("Direct vs SONIC", "configs/miniaod_cfg.py, 200 events")
    s = page.section("Verdict")
    s.verdict(True, "every product agrees within tolerance")
    s.table(["product", "max abs diff"], [["probb", "1e-7"]])
    s.figure(fig, caption="b score", alt="b score, direct and SONIC")
    page.write(out_dir)            # out_dir/index.html
"""

from __future__ import annotations

import base64
import html
import os
import tempfile
from pathlib import Path
from typing import Any

CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2em auto; max-width: 1100px;
       color: #1d1d1f; line-height: 1.4; padding: 0 1em; }
h1 { margin-bottom: 0.1em; } .subtitle { color: #555; margin-top: 0; }
h2 { border-bottom: 1px solid #ddd; padding-bottom: 0.2em; margin-top: 1.6em; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 0.92em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; }
th { background: #f3f3f3; } tr.bad td { background: #fde8e8; } tr.flag td { background: #fff4d6; }
.verdict { display: inline-block; padding: 0.3em 0.8em; border-radius: 4px; font-weight: 600; color: white; }
.verdict.ok { background: #2e7d32; } .verdict.fail { background: #c62828; }
figure { display: inline-block; margin: 0.5em 1em 0.5em 0; vertical-align: top; }
figure img { max-width: 520px; border: 1px solid #eee; } figcaption { font-size: 0.88em; color: #444; max-width: 520px; }
details { margin: 0.6em 0; } summary { cursor: pointer; font-weight: 600; }
"""


def figure_png(fig: Any, dpi: int = 100) -> bytes:
    """The PNG bytes of a matplotlib figure (which is closed)."""
    import io

    from .. import extras

    plt = extras.pyplot()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


class Section:
    """A part of a page: text, verdicts, tables, figures and collapsible blocks, in the order added."""

    def __init__(self, title: str = "", anchor: str | None = None, level: int = 2) -> None:
        self.title, self.anchor, self.level = title, anchor, level
        self.parts: list[str | Section] = []

    def text(self, text: str) -> Section:
        self.parts.append(f"<p>{html.escape(text)}</p>")
        return self

    def verdict(self, ok: bool, text: str) -> Section:
        self.parts.append(f'<p><span class="verdict {"ok" if ok else "fail"}">{"PASS" if ok else "FAIL"}</span> '
                          f"{html.escape(text)}</p>")
        return self

    def table(self, headers: list[str], rows: list[list[Any]], row_classes: list[str] | None = None) -> Section:
        head = "".join(f"<th>{html.escape(str(h))}</th>" for h in headers)
        body = []
        for i, row in enumerate(rows):
            cls = row_classes[i] if row_classes and row_classes[i] else ""
            cells = "".join(f"<td>{html.escape(str(c))}</td>" for c in row)
            body.append(f'<tr class="{cls}">{cells}</tr>' if cls else f"<tr>{cells}</tr>")
        self.parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>")
        return self

    def figure(self, fig_or_png: Any, caption: str, alt: str) -> Section:
        png = fig_or_png if isinstance(fig_or_png, bytes) else figure_png(fig_or_png)
        if not png.startswith(b"\x89PNG"):
            raise ValueError(f"figure {caption!r}: not a PNG")
        data = base64.b64encode(png).decode("ascii")
        self.parts.append(f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(alt, quote=True)}">'
                          f"<figcaption>{html.escape(caption)}</figcaption></figure>")
        return self

    def details(self, summary: str) -> Section:
        inner = Section(summary, level=0)
        self.parts.append(inner)
        return inner

    def render(self) -> str:
        inner = "\n".join(p.render() if isinstance(p, Section) else p for p in self.parts)
        if self.level == 0:
            return f"<details><summary>{html.escape(self.title)}</summary>\n{inner}\n</details>"
        anchor = f' id="{html.escape(self.anchor, quote=True)}"' if self.anchor else ""
        head = f"<h{self.level}{anchor}>{html.escape(self.title)}</h{self.level}>" if self.title else ""
        return f"<section>{head}\n{inner}\n</section>"


class Page:
    """A self-contained HTML page of sections."""

    def __init__(self, title: str, subtitle: str = "") -> None:
        self.title, self.subtitle = title, subtitle
        self.sections: list[Section] = []

    def section(self, title: str, anchor: str | None = None) -> Section:
        s = Section(title, anchor)
        self.sections.append(s)
        return s

    def render(self) -> str:
        sub = f'<p class="subtitle">{html.escape(self.subtitle)}</p>' if self.subtitle else ""
        body = "\n".join(s.render() for s in self.sections)
        return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
                f'<meta name="viewport" content="width=device-width, initial-scale=1">'
                f"<title>{html.escape(self.title)}</title><style>{CSS}</style></head>\n"
                f"<body><h1>{html.escape(self.title)}</h1>{sub}\n{body}\n</body></html>\n")

    def write(self, folder: str | os.PathLike) -> Path:
        """Write ``folder/index.html`` atomically; its path."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / "index.html"
        fd, tmp = tempfile.mkstemp(prefix=".index.", suffix=".html.tmp", dir=folder)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(self.render())
            os.replace(tmp, target)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        return target
