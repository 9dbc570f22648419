"""The package as users install it: a wheel built from the repository, installed in a fresh
virtual environment outside the checkout, runs a shipped recipe by name from an empty folder.

The fresh environment reaches the dependencies already installed for the tests through a
``.pth`` file (not the checkout: the editable install's finder is not loaded from there), so
the test needs no network and minutes, not a full install."""

from __future__ import annotations

import json
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
from cli_runs import ROOT


def test_the_wheel_carries_models_recipes_and_metadata(tmp_path):
    wheel = build_wheel(tmp_path)
    names = set(zipfile.ZipFile(wheel).namelist())
    for needed in (
        "affectkit/py.typed",
        "affectkit/data/reference_face.npz",
        "affectkit/serve/pretrained/affectvlm-facekit/model.safetensors",
        "affectkit_recipes/quick.yaml",
        "affectkit_plugins/facekit/ict_face_model.npz",
        "affectkit_plugins/weights/affectkit-faces.safetensors",
    ):
        assert needed in names, needed
    metadata = next(n for n in names if n.endswith(".dist-info/METADATA"))
    text = zipfile.ZipFile(wheel).read(metadata).decode()
    assert "Version: 0.1.0" in text and "Requires-Dist: torch>=2.4" in text and "torch<=" not in text
    assert "filelock" not in text and "Requires-Dist: torchvision" not in text


@pytest.mark.slow
def test_a_wheel_in_a_fresh_venv_runs_a_shipped_recipe_from_an_empty_folder(tmp_path):
    wheel = build_wheel(tmp_path)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = Path(subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], capture_output=True, text=True, check=True).stdout.strip())
    (site / "test-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([python, "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)], check=True)
    empty = tmp_path / "empty"
    empty.mkdir()
    where = subprocess.run([python, "-c", "import affectkit, affectkit_recipes; print(affectkit.__file__)"], capture_output=True, text=True, cwd=empty, check=True)
    assert str(ROOT) not in where.stdout and str(venv) in where.stdout  # the wheel's copy, not the checkout
    cut = ["train.epochs=1", "render.size=32", "data.dataset.options.subjects=4", "data.dataset.options.intensities=[4]"]
    result = subprocess.run(
        [venv / "bin" / "affectkit", "run", "quick", "--set", *cut], capture_output=True, text=True, cwd=empty, timeout=900,
        env={"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": str(tmp_path / "home"), "HF_HUB_OFFLINE": "1", "AFFECTKIT_PLUGINS": ""},
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (report,) = (empty / "runs" / "quick").glob("2*/eval/report.json")
    assert json.loads(report.read_text())["samples"] > 0
    assert list((tmp_path / "home" / ".cache" / "affectkit" / "renders").iterdir())  # the user cache, not the empty folder
    predicted = subprocess.run([venv / "bin" / "affectkit", "predict", "--help"], capture_output=True, text=True, cwd=empty)
    assert predicted.returncode == 0


def build_wheel(tmp_path: Path) -> Path:
    out = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(out), str(ROOT)],
        check=True, capture_output=True, cwd=tmp_path,
    )  # fmt: skip
    (wheel,) = out.glob("affectkit-*.whl")
    return wheel
