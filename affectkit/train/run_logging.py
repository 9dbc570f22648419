"""Live run logs, written by rank 0 after every epoch so a run can be watched while it trains:
``train.log`` (the environment, then one line per epoch) and the recipe's
``logging.loggers``, registered components (``tensorboard`` by default, ``mlflow``, or a
plugin's) that receive every epoch's ``train/``, ``val/``, ``model/`` and ``loss/``
scalars and the validation confusion counts."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from affectkit.interfaces import Logger, RunInfo
from affectkit.recipe import Recipe

#: history keys that describe the run, not its learning: kept out of the scalars
NOT_SCALARS = {"epoch", "steps", "world_size", "restarts", "peak_rss_mb", "epoch_seconds"}


def scalars(metrics: dict[str, Any], views: list[str]) -> dict[str, float]:
    """One epoch's metrics as namespaced scalars: ``train/loss``, ``loss/<term>``,
    ``val/accuracy``, ``model/view_weight/<view>``, ``model/temperature``, ``objective/<term>.<key>``."""
    out: dict[str, float] = {}
    for key, value in metrics.items():
        if key in NOT_SCALARS or not isinstance(value, int | float):
            continue
        if key == "train_loss":
            out["train/loss"] = value
        elif key.startswith("loss_"):
            out[f"loss/{key[len('loss_'):]}"] = value
        elif key.startswith("val_"):
            out[f"val/{key[len('val_'):]}"] = value
        elif key == "logit_scale":
            out["model/temperature"] = 1.0 / value
        elif key in ("lr", "train_samples_per_s"):
            out[f"train/{key}"] = value
        else:
            out[f"objective/{key}"] = value
    for view, weight in zip(views, metrics.get("view_weights", []), strict=False):
        out[f"model/view_weight/{view}"] = weight
    return out


def hparams(settings: Mapping[str, Any]) -> dict[str, Any]:
    """A recipe's settings (its JSON data) flattened to ``section.key`` scalars and strings,
    without where its outputs go (TensorBoard's and MLflow's hyperparameter tables take
    nothing else)."""
    flat: dict[str, Any] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for key, inner in value.items():
                walk(f"{prefix}.{key}" if prefix else str(key), inner)
        elif isinstance(value, bool | int | float | str):
            flat[prefix] = value
        else:
            flat[prefix] = json.dumps(value)

    walk("", {section: value for section, value in settings.items() if section != "output"})
    return flat


class RunLogger:
    """Rank 0's writer of every live log of one run: ``train.log`` and the recipe's loggers."""

    def __init__(self, recipe: Recipe, run_dir: Path, views: list[str], labels: list[str], environment: str) -> None:
        self.views = views
        run_dir.mkdir(parents=True, exist_ok=True)
        self.log = (run_dir / "train.log").open("a")
        self.log.write(environment.rstrip() + "\n")
        self.log.flush()
        self.loggers = build_loggers(recipe)
        run = RunInfo(recipe.name, run_dir, tuple(labels), recipe.model_dump(mode="json"))
        for logger in self.loggers:
            logger.start(run)

    def epoch(self, metrics: dict[str, Any], confusion: list[list[int]] | None, row: str) -> None:
        self.log.write(row + "\n")
        self.log.flush()
        values = scalars(metrics, self.views)
        for logger in self.loggers:
            logger.log_epoch(int(metrics["epoch"]) + 1, values, confusion)

    def close(self, final: dict[str, Any] | None) -> None:
        self.log.close()
        for logger in self.loggers:
            logger.finish(None if final is None else scalars(final, self.views))


def build_loggers(recipe: Recipe) -> list[Logger]:
    """The recipe's loggers, built: where a run starts, this refuses one whose package is
    missing before any work."""
    from affectkit.registry import registry

    return [registry().create("logger", ref.name, ref.options, where="logging.loggers") for ref in recipe.logging.loggers]
