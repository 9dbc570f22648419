"""The example third-party package in docs/examples/, pip-installed and used by name.

It goes into a folder of its own (``pip install --target``) put on ``PYTHONPATH`` of the
subprocesses only, so the rest of the suite never sees it; ``AFFECTKIT_PLUGINS`` names it
there, as the allow-list would in any hermetic environment.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
import yaml
from cli_runs import ROOT, command, run_ok

from affectkit.model.checkpoint import read_meta

PACKAGE = ROOT / "docs" / "examples" / "affectkit-tinycnn"


@pytest.fixture(scope="module")
def plugin_env(tmp_path_factory) -> dict[str, str]:
    site, source = tmp_path_factory.mktemp("site"), tmp_path_factory.mktemp("src") / PACKAGE.name
    shutil.copytree(PACKAGE, source)  # setuptools writes build/ and *.egg-info beside the sources
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--target", str(site), str(source)],
        check=True, capture_output=True, text=True, timeout=300,
    )
    return {**os.environ, "PYTHONPATH": str(site), "AFFECTKIT_PLUGINS": "tinycnn"}


def test_the_packages_own_tests_pass_with_affectkit_testing(plugin_env, tmp_path):
    """The example's tests run the contract checks of affectkit.testing on its components."""
    tests = shutil.copy(PACKAGE / "test_affectkit_tinycnn.py", tmp_path)
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", tests], cwd=tmp_path, env=plugin_env,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0 and "2 passed" in done.stdout, done.stdout[-3000:] + done.stderr[-2000:]


def test_plugins_lists_the_package_as_origin(plugin_env):
    listing = run_ok("plugins", env=plugin_env)
    assert "tinycnn        [affectkit-tinycnn]  A small CNN view encoder" in listing
    assert "scan-prompts   [affectkit-tinycnn]  Prompts that say the image is a 3D scan" in listing
    hidden = run_ok("plugins", env={**plugin_env, "AFFECTKIT_PLUGINS": ""})
    assert "tinycnn" not in hidden and "scan-prompts" not in hidden


@pytest.mark.slow
def test_quick_recipe_trains_with_the_plugin_selected_by_name(plugin_env, tmp_path):
    overrides = [
        "model.image_encoder={name: tinycnn, options: {width: 16}}",
        "prompts.augmenters=[templates, scan-prompts]",
        "data.dataset.options.subjects=4", "render.size=32", "train.epochs=2", f"output.dir={tmp_path / 'runs'}",
    ]
    run_ok("run", str(ROOT / "recipes" / "quick.yaml"), "--set", *overrides, env=plugin_env)
    (run_dir,) = (tmp_path / "runs" / "quick").glob("2*")
    recipe = yaml.safe_load((run_dir / "recipe.yaml").read_text())
    assert recipe["model"]["image_encoder"] == {"name": "tinycnn", "options": {"width": 16}, "freeze": False, "trainable": []}
    history = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [m["epoch"] for m in history] == [0, 1] and all(m["train_loss"] > 0 for m in history)
    model = tmp_path / "runs" / "quick" / "model"
    meta, _ = read_meta(model)
    assert any("a 3D scan of a" in prompt for prompts in meta.class_prompts for prompt in prompts)
    assert meta.inference.plugins == {"affectkit-tinycnn": "0.1.0"}  # its encoder; the prompts are stored
    # loaded where the package is not installed: the error says what to install
    face = ROOT / "tests" / "fixtures" / "happy-face.ply"
    without = subprocess.run(command("predict", str(face), "--model", str(model)), capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert without.returncode == 1 and "Traceback" not in without.stderr
    assert "unknown image_encoder 'tinycnn'" in without.stderr and "pip install affectkit-tinycnn==0.1.0" in without.stderr, without.stderr
