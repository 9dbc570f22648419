"""Run loggers: ``tensorboard`` (event files in the run folder) and ``mlflow`` (an MLflow
run: a local SQLite store under ``output.dir`` unless ``logging.mlflow_uri``).

Each receives every epoch's scalars on the worker that writes the logs; both record the
recipe's settings as hyperparameters.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from affectkit import hookimpl
from affectkit.errors import AffectkitError
from affectkit.interfaces import Logger, RunInfo
from affectkit.train.run_logging import hparams


class TensorBoardLogger(Logger):
    """TensorBoard event files in RUN/tensorboard/: every scalar, the validation confusion matrix, the hyperparameters."""

    def start(self, run: RunInfo) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.run = run
        self.writer = SummaryWriter(str(run.run_dir / "tensorboard"))

    def log_epoch(self, step: int, scalars: Mapping[str, float], confusion: Sequence[Sequence[int]] | None) -> None:
        for key, value in scalars.items():
            self.writer.add_scalar(key, value, step)
        if confusion is not None:
            from affectkit.evaluate.plots import confusion_figure

            self.writer.add_figure("val/confusion", confusion_figure([list(row) for row in confusion], list(self.run.labels), f"validation, epoch {step}"), step)
        self.writer.flush()

    def finish(self, scalars: Mapping[str, float] | None) -> None:
        if scalars is not None:
            final = {f"hparam/{k}": v for k, v in scalars.items() if k.startswith(("val/", "train/loss"))}
            self.writer.add_hparams(hparams(self.run.settings), final, run_name=".")
        self.writer.close()


class MLflowLogger(Logger):
    """An MLflow run: every scalar and the recipe's settings (logging.mlflow_uri, logging.mlflow_experiment)."""

    def __init__(self, options: Logger.Options) -> None:
        super().__init__(options)
        if importlib.util.find_spec("mlflow") is None:
            raise AffectkitError("logging.loggers: mlflow needs the MLflow client, which is not installed: pip install 'affectkit[mlflow]'")

    def start(self, run: RunInfo) -> None:
        import mlflow

        self.mlflow: Any = mlflow
        logging, output = run.settings["logging"], run.settings["output"]
        mlflow.set_tracking_uri(logging["mlflow_uri"] or f"sqlite:///{(Path(output['dir']) / 'mlflow.db').resolve()}")
        mlflow.set_experiment(logging["mlflow_experiment"] or run.name)
        mlflow.start_run(run_name=run.run_dir.name)
        mlflow.log_params({k: str(v)[:500] for k, v in hparams(run.settings).items()})

    def log_epoch(self, step: int, scalars: Mapping[str, float], confusion: Sequence[Sequence[int]] | None) -> None:
        self.mlflow.log_metrics({k.replace("/", "."): v for k, v in scalars.items()}, step=step)

    def finish(self, scalars: Mapping[str, float] | None) -> None:
        self.mlflow.end_run()


@hookimpl
def register_loggers(register) -> None:
    register("tensorboard", TensorBoardLogger)
    register("mlflow", MLflowLogger)
