"""The documentation site builds with mkdocs, and without a single warning."""

from __future__ import annotations

import subprocess
import sys

from cli_runs import ROOT


def test_site_builds_strict_without_warnings(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    log = result.stdout + result.stderr
    assert result.returncode == 0 and "WARNING" not in log, log
    site = tmp_path / "site"
    assert (site / "index.html").exists()
    for page in ("concepts", "recipes", "plugins", "hooks", "datasets", "cluster", "app", "benchmarks", "affectvlm"):
        assert (site / page / "index.html").exists(), page
    assert "register_image_encoders(register: Register) -&gt; None" in (tmp_path / "site" / "hooks" / "index.html").read_text()
