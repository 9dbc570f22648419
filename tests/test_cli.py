"""The command line, run as a real process where it matters."""

from __future__ import annotations

import csv
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
from cli_runs import command, free_port
from click.testing import CliRunner
from PIL import Image

from affectkit.cli import main

ROOT = Path(__file__).parent.parent


def affectkit(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command(*args), capture_output=True, text=True, cwd=cwd, env=env, timeout=600)


def test_plugins_lists_every_kind_with_origin():
    result = affectkit("plugins")
    assert result.returncode == 0, result.stderr
    for line in ("renderer:", "  torch", "dataset:", "  synthetic", "loss:", "  affectvlm", "[built-in]"):
        assert line in result.stdout


def test_recipe_validate_and_show_with_overrides():
    runner = CliRunner()
    result = runner.invoke(main, ["recipe", "show", str(ROOT / "recipes/quick.yaml"), "--set", "train.epochs=2", "render.size=32"])
    assert result.exit_code == 0, result.output
    assert "epochs: 2" in result.output and "size: 32" in result.output
    result = runner.invoke(main, ["recipe", "validate", str(ROOT / "recipes/affectvlm.yaml")])
    assert result.exit_code == 0 and "valid recipe 'affectvlm'" in result.output


def test_bad_recipe_gives_one_clear_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nmodel:\n  image_encoder: {name: resnet}\n")
    result = affectkit("recipe", "validate", str(bad))
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"error: {bad}: model.image_encoder: unknown image_encoder 'resnet'; registered: clip, timm"
    ]


def test_synth_then_render_writes_meshes_manifest_and_pngs(tmp_path):
    result = affectkit("synth", "--out", str(tmp_path / "data"), "--subjects", "2", "--intensities", "4", "--no-neutral")
    assert result.returncode == 0, result.stderr
    manifest = Path(result.stdout.strip())
    rows = list(csv.DictReader(manifest.open()))
    assert len(rows) == 2 * 6
    assert {r["label"] for r in rows} == {"anger", "disgust", "fear", "happiness", "sadness", "surprise"}
    mesh = manifest.parent / rows[0]["path"]
    assert mesh.is_file()

    result = affectkit("render", str(mesh), "--views", "front,left,right", "--size", "64", "--out", str(tmp_path / "views"))
    assert result.returncode == 0, result.stderr
    names = sorted(Path(p).name for p in result.stdout.split())
    assert names == sorted(f"{v}_{m}.png" for v in ("front", "left", "right") for m in ("rgb", "depth", "normal", "mask"))
    front = np.asarray(Image.open(tmp_path / "views/front_mask.png"))
    assert 0.1 < (front > 0).mean() < 0.9


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["render", "missing.ply", "--out", "x"], "missing.ply: no such file"),
        (["render", "face.ply", "--renderer", "povray", "--out", "x"], "unknown renderer 'povray'; registered: auto, torch"),
        (["render", "face.ply", "--views", "sideways", "--out", "x"], "unknown view 'sideways'"),
        (["render", "face.ply", "--views", "inf", "--out", "x"], "each a finite angle within ±360"),
    ],
)
def test_render_errors_are_one_line(tmp_path, args, message):
    (tmp_path / "face.ply").write_text("ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\nproperty float y\nproperty float z\nelement face 1\nproperty list uchar int vertex_indices\nend_header\n0 0 0\n1 0 0\n0 1 0\n3 0 1 2\n")
    result = affectkit(*args, cwd=tmp_path)
    assert result.returncode == 1
    assert message in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("source", ["scaling.address", "RAY_ADDRESS"])
@pytest.mark.parametrize("scheme", ["", "ray://"])
def test_a_cluster_address_nobody_answers_at_is_one_line_not_minutes_of_retries(tmp_path, source, scheme):
    address = f"{scheme}127.0.0.1:{free_port()}"  # bound, released: refused
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    sets = [f"output.dir={tmp_path / 'runs'}"]
    if source == "RAY_ADDRESS":
        env["RAY_ADDRESS"] = address
    else:
        sets.append(f"scaling.address={address}")
    result = affectkit("run", str(ROOT / "recipes/quick.yaml"), "--set", *sets, env=env)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith(f"error: {source}={address!r}: no Ray cluster answers there (Connection refused)")
    assert "Traceback" not in result.stderr and not (tmp_path / "runs").exists()


def test_short_help_and_exit_status_2_for_usage_1_for_runtime_errors(tmp_path):
    assert affectkit("-h").returncode == 0 and "Usage: affectkit" in affectkit("-h").stdout
    assert "--model" in affectkit("predict", "-h").stdout
    usage = affectkit("cv", "recipes/quick.yaml", "--folds", "1", cwd=ROOT)
    assert usage.returncode == 2 and "Invalid value for '--folds'" in usage.stderr
    runtime = affectkit("recipe", "validate", str(tmp_path / "missing.yaml"))
    assert runtime.returncode == 1 and "missing.yaml" in runtime.stderr and "Traceback" not in runtime.stderr


def test_device_must_be_one_this_machine_has():
    import torch

    bad = affectkit("predict", "--device", "gpu0", "face.ply")
    assert bad.returncode == 2 and "'gpu0' is not a torch device" in bad.stderr
    if not torch.cuda.is_available():
        missing = affectkit("eval", "model", "--device", "cuda")
        assert missing.returncode == 2 and "'cuda' is not available on this machine" in missing.stderr


def test_batch_predict_reports_bad_inputs_goes_on_and_exits_1(tmp_path):
    import json

    broken = tmp_path / "broken.ply"
    broken.write_bytes(b"ply\nformat ascii 1.0\nelement vertex 3\n")
    face = ROOT / "tests" / "fixtures" / "happy-face.ply"
    result = affectkit("predict", str(broken), str(face), str(tmp_path / "missing.obj"), "--json")
    assert result.returncode == 1 and "2 of 3 inputs could not be predicted" in result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [("error" in r, r["input"]) for r in records] == [(True, str(broken)), (False, str(face)), (True, str(tmp_path / "missing.obj"))]
    assert "missing.obj: no such file" in records[2]["error"]
    plain = affectkit("predict", str(broken), str(face))
    assert plain.returncode == 1 and f"{face}: " in plain.stdout and f"error: {broken}" in plain.stderr and "Traceback" not in plain.stderr


def test_plugins_options_json_and_the_generated_component_reference():
    import json

    timm = affectkit("plugins", "--options", "image_encoder:timm")
    assert timm.returncode == 0 and "pretrained" in timm.stdout and "default resnet10t" in timm.stdout
    records = json.loads(affectkit("plugins", "--json").stdout)
    torch_renderer = next(r for r in records if r["kind"] == "renderer" and r["name"] == "torch")
    assert torch_renderer["origin"] == "built-in" and isinstance(torch_renderer["options"], list)
    assert "``" not in affectkit("plugins").stdout  # no raw reStructuredText in the console
    unknown = affectkit("plugins", "--options", "resnet")
    assert unknown.returncode == 1 and "no component called 'resnet'" in unknown.stderr
    page = affectkit("plugins", "--reference").stdout
    assert page == (ROOT / "docs" / "components.md").read_text(), "docs/components.md is stale: affectkit plugins --reference > docs/components.md"


def test_env_prints_what_a_bug_report_needs():
    out = affectkit("env").stdout
    for needed in ("python: 3.", "affectkit: ", "torch: ", "cuda: ", "cpu_cores: ", "plugins from: built-in"):
        assert needed in out, needed


def test_eval_json_is_one_object_with_report_warnings_and_notes(tmp_path):
    import json

    result = affectkit("eval", str(ROOT / "tests" / "fixtures" / "checkpoint-v1"), "--data", "synthetic:subjects=1,intensities=[4],include_neutral=false", "--json")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["report"]["samples"] == 6 and set(document) == {"report", "warnings", "notes"}


def test_one_version_everywhere():
    from importlib import metadata

    import yaml

    from affectkit import __version__

    citation = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert metadata.version("affectkit") == __version__ == str(citation["version"])
    assert affectkit("--version").stdout.strip().endswith(__version__)
    assert (ROOT / "LICENSE").read_text().lstrip().startswith("Apache License") and (ROOT / "affectkit" / "py.typed").exists()


def test_a_run_folder_that_cannot_be_made_is_one_line(tmp_path):
    (tmp_path / "file").write_text("not a folder")
    result = affectkit("run", "quick", "--set", f"output.dir={tmp_path / 'file' / 'runs'}", "render.cache_dir=null")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "output.dir: cannot create the run folder" in result.stderr and "Not a directory" in result.stderr
