"""The quick recipe as README users run it, trained once through Ray Train on CPU for the
whole module (the session's ``quick_run``): what its run folder and model then do."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from cli_runs import ROOT, command, run_ok

from affectkit.errors import CheckpointError
from affectkit.model.checkpoint import load_checkpoint
from affectkit.recipe import load_recipe
from affectkit.registry import create

pytestmark = pytest.mark.slow


def test_quick_recipe_learns_expressions_of_held_out_subjects(quick_run):
    """The pipeline learns: far above chance (1/6) on people it never saw. How well it does
    is measured by benchmarks/transfer.py, not here."""
    tmp, run_dir, out = quick_run
    report = json.loads((run_dir / "eval" / "report.json").read_text())
    assert report["accuracy"] >= 0.5, out[-2000:]
    assert "held-out accuracy" in out
    history = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    epochs = load_recipe(ROOT / "recipes/quick.yaml").train.epochs
    assert [m["epoch"] for m in history] == list(range(epochs))
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    for name in ("recipe.yaml", "curves.png", "compute.json", "eval/confusion.png", "eval/report.txt", "model/model.safetensors"):
        assert (run_dir / name).is_file(), name
    assert list((run_dir / "tensorboard").glob("events.*"))
    assert (tmp / "runs" / "quick" / "model" / "checkpoint.json").is_file()
    exported = {p.name for p in (run_dir / "model").iterdir()}
    assert exported == {"checkpoint.json", "model.safetensors", "text_features.safetensors", "README.md"}  # no training state
    card = (run_dir / "model" / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: affectkit") and f"{report['accuracy']:.3f}" in card
    compute = json.loads((run_dir / "compute.json").read_text())
    assert compute["train_samples_per_s"] > 0 and compute["peak_rss_mb_worker"] > 0
    assert compute["neutral_reference_scans"] == 18  # calibrated on its 18 training people's neutral scans
    assert set(report["by_attribute"]) == {"intensity"}  # facekit's people have no sex or age labels


def test_the_console_carries_no_warning_the_local_ray_instance_makes_inevitable(quick_run):
    *_, out = quick_run
    assert "Failed to query Ray Train Controller actor state" not in out  # no dashboard, no State API
    assert "Token authentication is" not in out  # Ray's default for a new instance, announced


def test_eval_and_predict_use_the_checkpoint(quick_run, tmp_path):
    tmp, run_dir, _ = quick_run
    out = run_ok("eval", str(run_dir / "model"), "--out", str(tmp_path / "eval"))
    assert "accuracy" in out and (tmp_path / "eval" / "confusion.png").is_file()

    manifest = Path(run_ok("synth", "--out", str(tmp_path / "faces"), "--subjects", "2", "--intensities", "4", "--no-neutral", "--seed", "99").strip())
    rows = [line.split(",") for line in manifest.read_text().splitlines()[1:]]
    paths = [str(manifest.parent / row[0]) for row in rows]
    out = run_ok("predict", str(run_dir / "model"), *paths, "--json")
    predictions = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert len(predictions) == 12
    for p in predictions:
        assert abs(sum(p["probabilities"].values()) - 1) < 1e-4
        assert set(p["view_weights"]) == {"front", "left", "right"}
    correct = sum(p["label"] == row[1] for p, row in zip(predictions, rows, strict=True))
    assert correct >= 6, predictions  # far above chance (2 of 12)


def test_eval_warns_when_scans_were_seen_in_training_and_not_when_they_were_not(quick_run, tmp_path):
    """The README tour's old cross-dataset step: a BU-3DFE copy written with the training
    seed holds the training faces, under other names and in another format."""
    _, run_dir, _ = quick_run
    for seed, seen in (("0", True), ("7", False)):
        copy = tmp_path / f"BU-3DFE-{seed}"
        run_ok("synth", "--out", str(copy), "--subjects", "2", "--intensities", "4", "--no-neutral", "--layout", "bu3dfe", "--seed", seed)
        out = run_ok("eval", str(run_dir / "model"), "--data", f"bu3dfe:{copy}")
        assert ("evaluation scans are identical to training scans (same geometry)" in out) is seen, out[-1500:]


def test_sequences_are_predicted_at_their_apex_on_both_generators(quick_run, tmp_path):
    """One frame per sequence (the recipe's default) is the middle one, not the neutral onset."""
    _, run_dir, _ = quick_run
    for generator in ("facekit", "synthetic"):
        run_ok("synth", "--out", str(tmp_path / generator), "--dataset", generator, "--subjects", "1", "--sequences", "--frames", "9", "--seed", "99")
        (happy,) = (tmp_path / generator / "meshes").glob("*/*_HA")
        (line,) = [line for line in run_ok("predict", str(run_dir / "model"), str(happy), "--json", "--frames").splitlines() if line.startswith("{")]
        record = json.loads(line)
        assert record["label"] == "happiness", record["probabilities"]
        assert len(record["frames"]) == 9  # the timeline still covers every frame


def test_resume_of_a_finished_run_says_so_and_changes_nothing(quick_run):
    tmp, run_dir, _ = quick_run
    before = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
    result = subprocess.run(command("run", "recipes/quick.yaml", "--resume", "--set", f"output.dir={tmp / 'runs'}"),
                            capture_output=True, text=True, cwd=ROOT, timeout=300)  # fmt: skip
    epochs = load_recipe(ROOT / "recipes/quick.yaml").train.epochs
    assert result.returncode == 1 and f"{run_dir}, finished ({epochs} epochs) and has nothing to resume" in result.stderr
    assert {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()} == before


def test_a_run_folder_pushes_to_the_hub_with_a_card_of_its_held_out_report(quick_run, tmp_path):
    import shutil

    from hub_server import FakeHub

    _, run_dir, _ = quick_run
    copy = tmp_path / "run"
    for part in ("model", "eval"):
        shutil.copytree(run_dir / part, copy / part)
    (copy / "model" / "README.md").unlink()  # a folder without a card gets one from eval/report.json
    hub = FakeHub()
    try:
        run_ok("push", str(copy), "--repo", "lab/quick", env=hub.client_env(tmp_path / "hf"))
        card = hub.repos["lab/quick"].revisions["main"]["README.md"].decode()
    finally:
        hub.close()
    accuracy = json.loads((run_dir / "eval" / "report.json").read_text())["accuracy"]
    assert "| held-out subjects | " in card and f"{accuracy:.3f}" in card and "## Recipe" in card


def test_damaged_checkpoint_is_a_clear_error(quick_run, tmp_path):
    import shutil

    _, run_dir, _ = quick_run
    copy = tmp_path / "ckpt"
    shutil.copytree(run_dir / "model", copy)
    weights = copy / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match=r"model.safetensors: contents do not match"):
        load_checkpoint(copy)
    result = subprocess.run(command("predict", str(copy), "x.ply"), capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 1 and "truncated or altered" in result.stderr


def test_a_finished_run_exports_the_weights_an_encoder_then_starts_from(quick_run, tmp_path):
    """tools/export_pretrained.py on a run's model folder: a card that says what made it,
    and weights that load by path as the run's image encoder (to float16)."""
    _, run_dir, _ = quick_run
    tool = [sys.executable, "tools/export_pretrained.py", str(run_dir / "model"), "--name", "my-faces", "--recipe", "recipes/quick.yaml", "--out", str(tmp_path)]
    result = subprocess.run(tool, cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    written = json.loads((tmp_path / "my-faces.json").read_text())
    assert {k: written[k] for k in ("name", "recipe", "maps", "size", "in_channels")} == {
        "name": "my-faces", "recipe": "recipes/quick.yaml", "maps": ["normal"], "size": load_recipe(ROOT / "recipes/quick.yaml").render.size, "in_channels": 3,
    }  # fmt: skip
    model, _ = load_checkpoint(run_dir / "model")
    start = create("image_encoder", "timm", {"model": written["model"], "pretrained": str(tmp_path / "my-faces.safetensors")}, in_channels=3)
    for key, value in model.image_encoder.model.state_dict().items():
        assert torch.equal(start.model.state_dict()[key], value.half().to(value.dtype)), key
    missing = subprocess.run([*tool[:2], str(tmp_path / "nothing")], cwd=ROOT, capture_output=True, text=True)
    assert missing.returncode == 2 and "Traceback" not in missing.stderr and "nothing" in missing.stderr
