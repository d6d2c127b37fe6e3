"""Render a report page in headless Chromium (Debian's ``chromium``) and tell what the browser saw: how many of
its images loaded (decoded, with a width), its text, and a screenshot on request. The page is rendered from a
copy with a small probe script appended (the report itself has no script); the network is off."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
REASON = "Debian's chromium is not installed (make browser, or apt-get install chromium)"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-features=NetworkService", "--proxy-server=127.0.0.1:9", "--virtual-time-budget=10000"]
PROBE = """<script>
window.addEventListener("load", function () {
  var imgs = Array.prototype.slice.call(document.images);
  var ok = imgs.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length;
  var probe = document.createElement("div");
  probe.id = "browser-probe";
  probe.setAttribute("data-images", imgs.length);
  probe.setAttribute("data-loaded", ok);
  document.body.appendChild(probe);
});
</script>"""


def render(index_html: Path, screenshot: Path | None = None, width: int = 1200, height: int = 2400) -> dict:
    """``{"images_total", "images_loaded", "dom", "errors"}`` of *index_html* as Chromium rendered it."""
    if CHROMIUM is None:
        raise RuntimeError(REASON)
    with tempfile.TemporaryDirectory() as tmp:
        page = Path(tmp) / "page.html"
        page.write_text(index_html.read_text().replace("</body>", PROBE + "</body>"))
        profile = Path(tmp) / "profile"
        done = subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "--dump-dom", page.as_uri()],
                              capture_output=True, text=True, timeout=120)
        if screenshot is not None:
            subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}",
                            f"--screenshot={screenshot}", index_html.as_uri()], capture_output=True, timeout=120)
    m = re.search(r'id="browser-probe" data-images="(\d+)" data-loaded="(\d+)"', done.stdout)
    errors = [line for line in done.stderr.splitlines() if "ERROR" in line and "dbus" not in line.lower()]
    return {"images_total": int(m.group(1)) if m else -1, "images_loaded": int(m.group(2)) if m else -1,
            "dom": done.stdout, "errors": errors, "returncode": done.returncode}
