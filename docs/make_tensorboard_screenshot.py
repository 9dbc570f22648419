"""The TensorBoard screenshot of docs/concepts.md ("Watching a run"): a short run of the quick
recipe, TensorBoard on its folder, and Chromium (Playwright) photographing the scalars::

    .venv/bin/python docs/make_tensorboard_screenshot.py   # writes docs/tensorboard.png
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        runs = Path(tmp) / "runs"
        subprocess.run(
            [sys.executable, "-m", "affectkit", "run", "quick", "--set", "train.epochs=6", "render.size=32", "data.dataset.options.subjects=8",
             f"output.dir={runs}"],
            check=True, cwd=tmp,
        )  # fmt: skip
        server = subprocess.Popen(
            [str(Path(sys.executable).parent / "tensorboard"), "--logdir", str(runs), "--port", "6123", "--host", "127.0.0.1"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            for _ in range(120):
                try:
                    urllib.request.urlopen("http://127.0.0.1:6123", timeout=1)
                    break
                except OSError:
                    time.sleep(0.5)
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=shutil.which("chromium") or "/usr/bin/chromium", headless=True, args=["--no-sandbox"])
                page = browser.new_page(viewport={"width": 1400, "height": 900})
                page.goto("http://127.0.0.1:6123/#timeseries", wait_until="networkidle")
                page.wait_for_timeout(3000)
                page.locator('input[placeholder="Filter tags (regex)"]').first.fill("^(train/loss|val/accuracy|val/loss|model/)")
                page.keyboard.press("Escape")  # the tag suggestions
                page.get_by_role("button", name="Settings").first.click()  # its panel opens on a first visit
                page.wait_for_timeout(4000)
                page.screenshot(path=str(ROOT / "docs" / "tensorboard.png"))
                browser.close()
        finally:
            server.terminate()


if __name__ == "__main__":
    main()
