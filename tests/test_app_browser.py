"""``affectkit app`` in a real browser: headless Chromium uploads a scan and reads the answer.

Needs Debian's ``chromium`` (``make test`` installs it where it can); skipped with the reason
elsewhere, unless ``AFFECTKIT_REQUIRE_BROWSER=1`` (CI) turns the skip into a failure.
The app serves the shipped model, as it does for every user, action units included;
``AFFECTKIT_APP_SCREENSHOT=docs/app.png`` keeps the screenshot (``make docs-screenshot``),
the README's picture.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
from cli_runs import ROOT, command, free_port, run_ok

from affectkit.serve.hub import DEFAULT_MODEL

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        if os.environ.get("AFFECTKIT_REQUIRE_BROWSER") == "1":
            pytest.fail(f"AFFECTKIT_REQUIRE_BROWSER=1 but there is no Chromium at {CHROMIUM}")
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    flags = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"]
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=flags)
        yield chromium
        chromium.close()


SCREENSHOT = os.environ.get("AFFECTKIT_APP_SCREENSHOT")


@pytest.fixture
def served_app(tmp_path):
    """``affectkit app`` on a loopback port, serving the shipped model."""
    port = free_port()
    log = tmp_path / "app.log"
    shipped = ["--checkpoint", str(DEFAULT_MODEL)]  # not the newest model under runs/, which the app would serve first
    process = subprocess.Popen(command("app", *shipped, "--port", str(port)), cwd=ROOT, stdout=log.open("w"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.read() == b"ok":
                    break
        except OSError:
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "the app did not answer its health check within 60 s"
            time.sleep(0.5)
    yield url
    process.terminate()
    process.wait(timeout=30)


def test_upload_a_mesh_in_chromium_and_see_the_label_aus_and_views(browser, served_app, tmp_path):
    url = served_app
    manifest = Path(run_ok("synth", "--out", str(tmp_path / "faces"), "--subjects", "1", "--intensities", "4", "--no-neutral", "--seed", "7").strip())
    scan = manifest.parent / next(row.split(",")[0] for row in manifest.read_text().splitlines()[1:] if ",surprise," in row)  # not the default face (happiness)
    expected = json.loads(next(line for line in run_ok("predict", str(scan), "--json").splitlines() if line.startswith("{")))

    page = browser.new_page(viewport={"width": 1500, "height": 1500})
    page.goto(url)
    page.get_by_text("Predicted:").wait_for(timeout=60_000)  # the generated face, on first load
    page.get_by_text("Upload a mesh").click()
    page.locator("input[type=file]").set_input_files(str(scan))
    page.get_by_text(f"Input: {scan.name}").wait_for(timeout=60_000)
    assert page.get_by_role("heading", name="Predicted:").inner_text().startswith(f"Predicted: {expected['label']} (")  # as the CLI says
    # the page streams in element by element: wait for 3 views x (rgb, normal), all decoded
    page.wait_for_function(
        "() => { const imgs = [...document.querySelectorAll('[data-testid=stImage] img')];"
        " return imgs.length === 6 && imgs.every(img => img.complete && img.naturalWidth > 0); }",
        timeout=60_000,
    )
    assert page.locator("[data-testid=stAlertContentError]").count() == 0
    assert expected["action_units"]  # the shipped model scores action units: their chart is on the page
    page.get_by_role("heading", name="Action units").wait_for(timeout=30_000)
    page.wait_for_timeout(1500)  # let plotly finish drawing before the picture
    page.screenshot(path=SCREENSHOT or str(tmp_path / "app.png"), full_page=True)
    page.close()
