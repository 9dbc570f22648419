"""Test-wide setup: no third-party plugin loads unless a test asks for it; one trained run
of the quick recipe shared by the slow end-to-end tests."""

import os

import pytest

os.environ.setdefault("AFFECTKIT_PLUGINS", "")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("RAY_DEDUP_LOGS", "1")


@pytest.fixture(scope="session")
def quick_run(tmp_path_factory):
    """The quick recipe, as README users run it (with outputs kept in a temp folder):
    (temp folder, run directory, console output)."""
    from cli_runs import run_ok

    tmp = tmp_path_factory.mktemp("quick")
    out = run_ok("run", "recipes/quick.yaml", "--set", f"output.dir={tmp / 'runs'}", f"render.cache_dir={tmp / 'cache'}")
    (run_dir,) = (tmp / "runs" / "quick").glob("2*")
    return tmp, run_dir, out
