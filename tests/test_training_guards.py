"""Training guards on real runs: a loss that turns NaN stops the run with one clear message
and keeps the last good checkpoint; the same seed gives the same metrics on CPU."""

from __future__ import annotations

import json
import math
import os
import subprocess
from pathlib import Path

import pytest
from cli_runs import ROOT, command, plugin_distribution
from safetensors.torch import load_file

from affectkit.model.checkpoint import MODEL_FILE, read_meta

SMALL = ["data.dataset.options.subjects=4", "render.size=32", "train.batch_size=16"]  # 36 training scans: 2 full batches an epoch

NAN_PLUGIN = '''
from affectkit import hookimpl
from affectkit_plugins.losses import AffectVLMLoss


class NaNAfter(AffectVLMLoss):
    """The affectvlm loss until it turns NaN after a number of steps: a fault to inject."""

    class Options(AffectVLMLoss.Options):
        after_steps: int = 4

    def __init__(self, options):
        super().__init__(options)
        self.steps = 0

    def forward(self, inputs):
        self.steps += 1
        value = super().forward(inputs)
        return value * float("nan") if self.steps > self.options.after_steps else value


@hookimpl
def register_losses(register):
    register("nan-after", NaNAfter)
'''


@pytest.mark.slow
def test_a_nan_loss_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path):
    plugin_distribution(tmp_path, "affectkit-nan", "nan_plugin", NAN_PLUGIN)
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "AFFECTKIT_PLUGINS": "nan"}
    overrides = [*SMALL, "train.epochs=5", "loss.terms=[nan-after]", f"output.dir={tmp_path / 'runs'}"]
    result = subprocess.run(command("run", "recipes/quick.yaml", "--set", *overrides), cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)

    assert result.returncode == 1, result.stderr[-2000:]
    message = result.stderr.strip().splitlines()[-1]
    assert message.startswith("error: epoch 3: the loss became nan (not finite); the last good checkpoint is kept: "), message
    kept = Path(message.split("is kept: ")[1].split(" (epoch")[0])
    assert message.endswith("(epoch 2); --resume continues from it")
    meta, _ = read_meta(kept)
    assert meta.epoch == 1 and math.isfinite(meta.metrics["train_loss"])
    assert all(t.isfinite().all() for t in load_file(str(kept / MODEL_FILE)).values())
    (run_dir,) = (tmp_path / "runs" / "quick").glob("2*")
    assert not (run_dir / "metrics.jsonl").exists() and not (tmp_path / "runs" / "quick" / "model").exists()


TIMINGS = {"epoch_seconds", "train_samples_per_s", "peak_rss_mb"}


def metrics_of(out: Path) -> list[dict]:
    (metrics,) = out.glob("quick/2*/metrics.jsonl")
    return [{k: v for k, v in json.loads(line).items() if k not in TIMINGS} for line in metrics.read_text().splitlines()]


@pytest.mark.slow
def test_the_same_seed_gives_identical_metrics_on_cpu(tmp_path):
    """Two runs at once (each its own Ray instance, sharing the CPUs): the same results."""
    runs = [
        subprocess.Popen(
            command("run", "recipes/quick.yaml", "--set", *SMALL, "train.epochs=2", "seed=3", f"output.dir={tmp_path / name}"),
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        for name in ("a", "b")
    ]
    for run in runs:
        _, err = run.communicate(timeout=900)
        assert run.returncode == 0, err[-3000:]
    first, second = metrics_of(tmp_path / "a"), metrics_of(tmp_path / "b")
    assert first == second and len(first) == 2 and first[-1]["train_loss"] > 0
