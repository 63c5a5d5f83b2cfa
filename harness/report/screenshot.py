"""Render a report.html in headless Chromium and save a PNG: what a person opening the report actually sees.

    python -m harness.report.screenshot reports/<run>/report.html [out.png] [--width 1400] [--height 4000]

Chromium runs with no network, no GPU, no first-run UI and a throw-away profile, so it shows exactly what the
self-contained file holds (a figure that needed a server or the network would be missing from the picture).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from harness.errors import UsageError

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_browser() -> str | None:
    """The path of a Chromium-family browser on PATH, or None."""
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    return None


def screenshot(html: str | Path, png: str | Path, width: int = 1400, height: int = 4000,
               timeout_s: float = 120) -> Path:
    """Render `html` at width x height CSS pixels into `png`; a missing browser or file is a UsageError."""
    html, png = Path(html).resolve(), Path(png).resolve()
    if not html.is_file():
        raise UsageError(f"{html}: no such file")
    browser = find_browser()
    if browser is None:
        raise UsageError(f"no Chromium found (tried {', '.join(BROWSERS)}); apt-get install chromium")
    png.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="harness-chromium-") as profile:
        cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--no-first-run", "--hide-scrollbars", f"--user-data-dir={profile}", f"--screenshot={png}",
               f"--window-size={width},{height}", html.as_uri()]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, check=False)
    if not png.is_file():
        raise RuntimeError(f"{Path(browser).name} wrote no screenshot (exit {done.returncode}): "
                           f"{' '.join(done.stderr.strip().splitlines()[-1:])}")
    return png


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.report.screenshot", description=__doc__.splitlines()[0])
    parser.add_argument("html", help="the report.html to render")
    parser.add_argument("png", nargs="?", help="output PNG (default: screenshot.png beside the HTML)")
    parser.add_argument("--width", type=int, default=1400)
    parser.add_argument("--height", type=int, default=4000)
    args = parser.parse_args(argv)
    try:
        out = screenshot(args.html, args.png or Path(args.html).with_name("screenshot.png"), args.width, args.height)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
