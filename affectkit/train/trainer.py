"""Training a recipe on prepared data through Ray Train (``TorchTrainer``), and the steps
``affectkit run`` and every ``affectkit cv`` fold share around it: :func:`preflight` (every
check that needs no scan, before minutes of rendering), :func:`train_and_export` and
:func:`score_export`. The workers run :func:`affectkit.train.worker.train_loop_per_worker`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from affectkit.errors import AffectkitError
from affectkit.evaluate.reports import EvalReport
from affectkit.interfaces import Dataset
from affectkit.recipe import ComponentRef, Recipe
from affectkit.render.model_inputs import ViewSet
from affectkit.render.pipeline import TrainingData
from affectkit.train.ray_cluster import check_cluster, connect_ray
from affectkit.train.run_logging import build_loggers


def preflight(recipe: Recipe, dataset: Dataset) -> None:
    """Every check that needs no scan: the model builds for the recipe's ``dataset``, the
    loggers' packages are there, the cluster answers. They come first, so that none of them
    fails after minutes of rendering."""
    check_model(recipe, len(dataset.labels))
    build_loggers(recipe)
    check_cluster(recipe)


def train_and_export(
    recipe: Recipe, data: TrainingData, storage: str, name: str, log_dir: Path, model_dir: Path, verbose: bool = True, resume_from: Path | None = None
) -> list[dict[str, Any]]:
    """:func:`fit`, then export the checkpoint ``eval.select`` chooses (weights only) to
    ``model_dir``, calibrated to read scans against a neutral scan where the training people
    have neutral scans (:func:`~affectkit.serve.adapted_model.calibrate_on_training_people`);
    the epoch history. A failed run's error says where its newest checkpoint is."""
    from affectkit.model.checkpoint import export_model
    from affectkit.serve.adapted_model import calibrate_on_training_people

    try:
        result, history = fit(recipe, data, storage, name=name, log_dir=log_dir, verbose=verbose, resume_from=resume_from)
    except AffectkitError as exc:
        raise AffectkitError(f"{exc}{where_kept(storage)}") from None
    with chosen_checkpoint(result, recipe.eval.select).as_directory() as directory:
        export_model(Path(directory), model_dir)
    calibrate_on_training_people(model_dir, recipe.data.units)
    return history


def score_export(model_dir: Path, views: ViewSet, data: ComponentRef) -> EvalReport:
    """The exported model in ``model_dir`` scored on ``views`` of the dataset ``data``."""
    from affectkit.evaluate.reports import describe, evaluate
    from affectkit.model.checkpoint import load_checkpoint

    model, meta = load_checkpoint(model_dir)
    return evaluate(model, views, meta.labels, meta.class_prompts, describe(model_dir, data), meta.inference.action_units, meta.inference.au_prompts)


def check_model(recipe: Recipe, labels: int) -> None:
    """Build the recipe's model once in the driver, so that an encoder that cannot load (a
    hub name offline, damaged shipped weights) stops the run at once with its message,
    not in a Ray worker after minutes of rendering."""
    from affectkit.factory import build_model
    from affectkit.interfaces import RenderedViews
    from affectkit.render.cameras import parse_views

    build_model(recipe.model, len(parse_views(recipe.render.views)), RenderedViews.channels(recipe.render.maps), labels)


def storage_for(recipe: Recipe, run_dir: Path) -> str:
    """Where Ray Train keeps checkpoints: ``scaling.storage_path`` (a URI as given), else the run folder."""
    path = recipe.scaling.storage_path
    if not path:
        return str(run_dir / "ray")
    return path if "://" in path else str(Path(path).resolve())


def fit(
    recipe: Recipe, data: TrainingData, storage: str, name: str, log_dir: Path, verbose: bool = True, resume_from: Path | None = None
) -> tuple[Any, list[dict[str, Any]]]:
    """Run Ray Train; returns the Ray result and the epoch history. Rank 0 writes the live
    logs (:mod:`affectkit.train.run_logging`) into ``log_dir``, which must be reachable from it
    (local runs; shared storage on a cluster). ``resume_from``: a checkpoint to continue
    from when Ray's own record of the run does not say (a run killed mid-write)."""
    import ray
    from ray.train import (
        CheckpointConfig,
        FailureConfig,
        LoggingConfig,
        RunConfig,
        ScalingConfig,
    )
    from ray.train.torch import TorchTrainer

    from affectkit.train.environment import environment_report
    from affectkit.train.worker import train_loop_per_worker

    connect_ray(recipe)  # run() and cross_validate() checked the cluster before rendering
    scaling = recipe.scaling
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config={
            "recipe": recipe.model_dump(mode="json"),
            "data": ray.put(data),
            "verbose": verbose,
            "log_dir": str(log_dir),
            "environment": environment_report(),
            "resume_from": None if resume_from is None else str(resume_from),
        },
        scaling_config=ScalingConfig(
            num_workers=scaling.num_workers,
            use_gpu=scaling.use_gpu,
            resources_per_worker={"CPU": scaling.cpus_per_worker, **({"GPU": 1} if scaling.use_gpu else {})},
        ),
        run_config=RunConfig(
            name=name,
            storage_path=storage,
            failure_config=FailureConfig(max_failures=scaling.max_failures),
            checkpoint_config=(
                CheckpointConfig(num_to_keep=2, checkpoint_score_attribute="val_accuracy", checkpoint_score_order="max")
                if data.val is not None
                else CheckpointConfig(num_to_keep=1)
            ),
            logging_config=LoggingConfig(log_level="WARNING"),
        ),
    )
    try:
        result = trainer.fit()
    except Exception as exc:  # Ray wraps worker errors; surface affectkit's own message
        cause = _root_cause(exc)
        if isinstance(cause, AffectkitError):
            raise cause from None
        raise
    latest = result.checkpoint
    if latest is None:
        raise AffectkitError("training reported no checkpoint")
    with latest.as_directory() as directory:
        from affectkit.model.checkpoint import read_meta

        history = read_meta(Path(directory))[0].history
    return result, history


def newest_checkpoint(storage: str) -> tuple[Path, int] | None:
    """The newest complete checkpoint under local ``storage`` (verified digests, training
    state present) and its epoch; ``None`` if there is none. A run stopped by Ctrl-C or
    killed may leave a half-written one: it is passed over, not resumed from."""
    from affectkit.errors import CheckpointError
    from affectkit.model.checkpoint import TRAINING_FILE, read_meta

    if "://" in storage:
        return None
    complete = []
    for meta_file in Path(storage).glob("*/checkpoint_*/checkpoint.json"):
        try:
            meta, _ = read_meta(meta_file.parent)
        except CheckpointError:
            continue
        if (meta_file.parent / TRAINING_FILE).is_file():
            complete.append((meta.epoch, meta_file.parent))
    if not complete:
        return None
    epoch, path = max(complete)
    return path, epoch


def where_kept(storage: str) -> str:
    """Where a failed run's newest stored checkpoint is, for its error message."""
    if "://" in storage:
        return f" (checkpoints are under {storage}; --resume continues from the newest)"
    found = newest_checkpoint(storage)
    return "" if found is None else f": {found[0]} (epoch {found[1] + 1}); --resume continues from it"


def _root_cause(exc: BaseException) -> BaseException:
    seen = exc
    while True:
        nxt = getattr(seen, "cause", None) or seen.__cause__ or getattr(seen, "worker_failures", None)
        if isinstance(nxt, dict):
            nxt = next(iter(nxt.values()), None)
        if not isinstance(nxt, BaseException) or nxt is seen:
            return seen
        seen = nxt


def chosen_checkpoint(result: Any, select: str) -> Any:
    """The final epoch's checkpoint, or the one with the best validation accuracy."""
    if select == "last":
        return result.checkpoint
    scored = [(m.get("val_accuracy", -1.0), m.get("epoch", 0), c) for c, m in (result.checkpoints or [])]
    return max(scored, key=lambda t: (t[0], t[1]))[2] if scored else result.checkpoint
