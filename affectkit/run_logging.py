"""Live run logs, written by rank 0 after every epoch so a run can be watched while it trains:
TensorBoard events (``train/``, ``val/``, ``model/`` and ``loss/`` scalars, the validation
confusion matrix as an image, the hyperparameters at the end), ``train.log`` (the
environment, then one line per epoch) and, with ``logging.loggers: [tensorboard, mlflow]``,
an MLflow run (a local SQLite store under ``output.dir`` unless ``logging.mlflow_uri``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from affectkit.errors import AffectkitError
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


def hparams(recipe: Recipe) -> dict[str, Any]:
    """The recipe's settings flattened to ``section.key`` scalars and strings (TensorBoard's
    and MLflow's hyperparameter tables take nothing else)."""
    flat: dict[str, Any] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for key, inner in value.items():
                walk(f"{prefix}.{key}" if prefix else str(key), inner)
        elif isinstance(value, bool | int | float | str):
            flat[prefix] = value
        else:
            flat[prefix] = json.dumps(value)

    walk("", recipe.model_dump(mode="json", exclude={"output"}))
    return flat


class RunLogger:
    """Rank 0's writer of every live log of one run (TensorBoard, ``train.log``, MLflow)."""

    def __init__(self, recipe: Recipe, run_dir: Path, views: list[str], labels: list[str], environment: str) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.recipe, self.views, self.labels = recipe, views, labels
        run_dir.mkdir(parents=True, exist_ok=True)
        self.tensorboard = SummaryWriter(str(run_dir / "tensorboard"))
        self.log = (run_dir / "train.log").open("a")
        self.log.write(environment.rstrip() + "\n")
        self.log.flush()
        self.mlflow: Any = None
        if "mlflow" in recipe.logging.loggers:
            self.mlflow = _start_mlflow(recipe, run_dir)

    def epoch(self, metrics: dict[str, Any], confusion: list[list[int]] | None, row: str) -> None:
        step = int(metrics["epoch"]) + 1
        values = scalars(metrics, self.views)
        for key, value in values.items():
            self.tensorboard.add_scalar(key, value, step)
        if confusion is not None:
            from affectkit.plots import confusion_figure

            self.tensorboard.add_figure("val/confusion", confusion_figure(confusion, self.labels, f"validation, epoch {step}"), step)
        self.tensorboard.flush()
        self.log.write(row + "\n")
        self.log.flush()
        if self.mlflow is not None:
            self.mlflow.log_metrics({k.replace("/", "."): v for k, v in values.items()}, step=step)

    def close(self, final: dict[str, Any] | None) -> None:
        if final is not None:
            metrics = {f"hparam/{k}": v for k, v in scalars(final, self.views).items() if k.startswith(("val/", "train/loss"))}
            self.tensorboard.add_hparams(hparams(self.recipe), metrics, run_name=".")
        self.tensorboard.close()
        self.log.close()
        if self.mlflow is not None:
            self.mlflow.end_run()


def check_loggers(recipe: Recipe) -> None:
    """Refuse, before any work, a logger whose package is missing."""
    import importlib.util

    if "mlflow" in recipe.logging.loggers and importlib.util.find_spec("mlflow") is None:
        raise AffectkitError("logging.loggers: mlflow needs the MLflow client, which is not installed: pip install 'affectkit[mlflow]'")


def _start_mlflow(recipe: Recipe, run_dir: Path) -> Any:
    import mlflow
    uri = recipe.logging.mlflow_uri or f"sqlite:///{(Path(recipe.output.dir) / 'mlflow.db').resolve()}"
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment(recipe.logging.mlflow_experiment or recipe.name)
    mlflow.start_run(run_name=run_dir.name)
    params = hparams(recipe)
    mlflow.log_params({k: str(v)[:500] for k, v in params.items()})
    return mlflow
