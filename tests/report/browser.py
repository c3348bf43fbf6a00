"""Open an HTML page in headless Chromium as a person would, and report what rendered.

No DevTools client is needed: a copy of the page gets a small script that, once the page has
loaded, counts images that did not decode (``naturalWidth == 0``) and tables without body rows
and writes the counts into an element; ``--dump-dom`` prints the DOM after load. A second
Chromium call saves a screenshot.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]

PROBE = """<script>
window.addEventListener('load', function () {
  var imgs = Array.prototype.slice.call(document.images);
  var tables = Array.prototype.slice.call(document.querySelectorAll('table'));
  var result = {
    images: imgs.length,
    broken_images: imgs.filter(function (i) { return !(i.complete && i.naturalWidth > 0); }).length,
    tables: tables.length,
    empty_tables: tables.filter(function (t) { return t.querySelectorAll('tbody tr').length === 0; }).length,
    sections: document.querySelectorAll('section').length
  };
  var pre = document.createElement('pre');
  pre.id = 'nfsynth-probe';
  pre.textContent = JSON.stringify(result);
  document.body.appendChild(pre);
});
</script>"""


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def inspect_page(page: Path, screenshot: Path) -> dict:
    """Load ``page`` in headless Chromium; returns the probe's counts and saves a screenshot."""
    exe = chromium()
    if exe is None:
        raise RuntimeError("chromium is not installed")
    with tempfile.TemporaryDirectory() as tmp:
        probed = Path(tmp) / "probed.html"
        probed.write_text(
            page.read_text(encoding="utf-8").replace("</body>", PROBE + "</body>"), encoding="utf-8"
        )
        dom = subprocess.run(
            [
                exe,
                *FLAGS,
                f"--user-data-dir={tmp}/profile",
                "--virtual-time-budget=10000",
                "--dump-dom",
                probed.as_uri(),
            ],
            capture_output=True,
            text=True,
            timeout=180,
        )
        match = re.search(r'<pre id="nfsynth-probe">(.*?)</pre>', dom.stdout, re.S)
        if not match:
            raise RuntimeError(f"the probe did not run; chromium said: {dom.stderr[-2000:]}")
        result = json.loads(match.group(1).replace("&quot;", '"'))
        subprocess.run(
            [
                exe,
                *FLAGS,
                f"--user-data-dir={tmp}/profile2",
                "--window-size=1280,2400",
                f"--screenshot={screenshot}",
                page.as_uri(),
            ],
            capture_output=True,
            timeout=180,
        )
    return result
