"""``affectkit run``: the driver around Ray Train (``affectkit cv`` is
:mod:`affectkit.cross_validation`, on the same :func:`fit`).

The driver renders the data once (through the render cache), puts it in Ray's object
store, runs a ``TorchTrainer`` with the recipe's scaling, then writes the run directory:

    runs/<name>/<timestamp>/
        recipe.yaml          the fully resolved recipe
        metrics.jsonl        one line per epoch
        tensorboard/         TensorBoard events
        model/               the exported checkpoint (also copied to runs/<name>/model/):
                             the final epoch, or the best validation epoch (eval.select)
        eval/                report.json, report.txt, confusion.png (held-out subjects)
        curves.png           training curves
        compute.json         wall time, throughput, peak memory
"""

from __future__ import annotations

import json
import logging
import os
import resource
import shutil
import socket
import statistics
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from affectkit.errors import AffectkitError
from affectkit.pipeline import TrainingData
from affectkit.recipe import Recipe, dump_recipe
from affectkit.splits import select_subjects, subject_split

EXPORT_NAME = "model"


@dataclass
class RunResult:
    run_dir: Path
    checkpoint: Path
    history: list[dict[str, Any]]
    report: Any
    compute: dict[str, Any]


def new_run_dir(recipe: Recipe) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    run_dir = (Path(recipe.output.dir) / recipe.name / stamp).resolve()
    suffix = 1
    while run_dir.exists():
        run_dir = run_dir.with_name(f"{stamp}-{suffix}")
        suffix += 1
    run_dir.mkdir(parents=True)
    return run_dir


def latest_run_dir(recipe: Recipe) -> Path:
    """The newest run of this recipe's name that training got to (a stored checkpoint), for
    ``--resume``; a finished run is refused, as there is nothing left to do."""
    root = Path(recipe.output.dir) / recipe.name
    runs = sorted(p for p in root.glob("*") if (p / "recipe.yaml").is_file()) if root.is_dir() else []
    local = not recipe.scaling.storage_path or "://" not in recipe.scaling.storage_path
    if local:  # a folder left by a failed start holds no checkpoint: nothing to resume there
        runs = [p for p in runs if (p / "compute.json").is_file() or any(Path(storage_for(recipe, p)).glob(f"*{p.name}/checkpoint_*"))]
    if not runs:
        raise AffectkitError(f"--resume: no earlier run of {recipe.name!r} with a checkpoint under {root}")
    newest = runs[-1].resolve()
    if (newest / "compute.json").is_file():
        epochs = json.loads((newest / "compute.json").read_text()).get("epochs")
        raise AffectkitError(
            f"--resume: the newest run of {recipe.name!r}, {newest}, finished ({epochs} epochs) and has nothing to resume; "
            "run without --resume to train a new one"
        )
    return newest


def connect_ray(recipe: Recipe) -> None:
    """Join ``scaling.address`` / ``RAY_ADDRESS``, or start a local Ray instance.

    Without an address, Ray itself would join whichever cluster the last ``ray start`` on
    this machine recorded (``/tmp/ray/ray_current_cluster``), even one stopped or left by
    someone else; ``address="local"`` keeps to what the recipe says.
    """
    import ray

    if ray.is_initialized():
        return
    os.environ.setdefault("RAY_DEDUP_LOGS", "1")
    address = recipe.scaling.address or os.environ.get("RAY_ADDRESS")
    if address:
        source = "scaling.address" if recipe.scaling.address else "RAY_ADDRESS"
        refuse_unreachable(address, source)
        try:
            ray.init(address=address, log_to_driver=True)
        except ConnectionError as error:  # "auto" with no cluster started on this machine
            raise AffectkitError(f"{source}={address!r}: {error}") from None
    else:
        needed = recipe.scaling.num_workers * recipe.scaling.cpus_per_worker
        quiet_local_instance_notices()
        ray.init(
            address="local",
            num_cpus=max(os.cpu_count() or 1, int(needed + 0.999)),
            include_dashboard=False,
            log_to_driver=True,
            runtime_env={"worker_process_setup_hook": quiet_local_instance_notices},
        )


def refuse_unreachable(address: str, source: str) -> None:
    """Refuse a ``host:port`` (or ``ray://host:port``) no server answers at: Ray would retry
    it for minutes, printing a warning every few seconds."""
    host, colon, port = address.removeprefix("ray://").rpartition(":")
    if not colon or not port.isdigit():
        return  # "auto" or "local": Ray looks on this machine itself
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=10).close()
    except OSError as error:
        raise AffectkitError(
            f"{source}={address!r}: no Ray cluster answers there ({error.strerror or error}); start one with "
            f"`ray start --head`, give the address of a running head node, or unset {source} to train in a local Ray instance"
        ) from None


def quiet_local_instance_notices() -> None:
    """Silence what Ray prints on every run of a local instance with nothing for the user to
    do; called in the driver and, as the setup hook, in each worker.

    - Ray Train's placement-group cleaner (workers) asks Ray's State API, every few seconds,
      whether the train controller is alive; without the dashboard, which the local instance
      leaves out, every check fails and warns.
    - The driver announces that Ray enabled token authentication, its default for a new
      instance (``RAY_AUTH_MODE=disabled`` still opts out).
    """
    for name in (
        "ray.train.v2._internal.execution.controller.placement_group_cleaner",
        "ray._private.authentication.authentication_token_setup",
    ):
        logging.getLogger(name).setLevel(logging.ERROR)


def check_cluster(recipe: Recipe) -> None:
    """Join the cluster, and refuse a multi-node one without shared checkpoint storage:
    each node would keep its own checkpoints and a restored worker could not find them."""
    import ray

    connect_ray(recipe)
    nodes = [node for node in ray.nodes() if node.get("Alive")]
    if len(nodes) > 1 and not recipe.scaling.storage_path:
        raise AffectkitError(
            f"scaling.storage_path: this Ray cluster has {len(nodes)} nodes, so checkpoints need storage every node "
            "can reach; set scaling.storage_path to a shared folder (NFS) or a URI such as s3://bucket/affectkit"
        )


def check_model(recipe: Recipe, labels: int) -> None:
    """Build the recipe's model once in the driver, so that an encoder that cannot load (a
    hub name offline, damaged shipped weights) stops the run at once with its message,
    not in a Ray worker after minutes of rendering."""
    from affectkit.factory import build_model
    from affectkit.interfaces import RenderedViews
    from affectkit.views import parse_views

    build_model(recipe.model, len(parse_views(recipe.render.views)), RenderedViews.channels(recipe.render.maps), labels)


def storage_for(recipe: Recipe, run_dir: Path) -> str:
    """Where Ray Train keeps checkpoints: ``scaling.storage_path`` (a URI as given), else the run folder."""
    path = recipe.scaling.storage_path
    if not path:
        return str(run_dir / "ray")
    return path if "://" in path else str(Path(path).resolve())


def fit(recipe: Recipe, data: TrainingData, storage: str, name: str, verbose: bool = True) -> tuple[Any, list[dict[str, Any]]]:
    """Run Ray Train; returns the Ray result and the epoch history."""
    import ray
    from ray.train import CheckpointConfig, FailureConfig, LoggingConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    from affectkit.training import train_loop_per_worker

    connect_ray(recipe)  # run() and cross_validate() checked the cluster before rendering
    scaling = recipe.scaling
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config={"recipe": recipe.model_dump(mode="json"), "data": ray.put(data), "verbose": verbose},
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
        from affectkit.checkpoint import read_meta

        history = read_meta(Path(directory))[0].history
    return result, history


def _where_kept(storage: str) -> str:
    """Where a failed run's newest stored checkpoint is, for its error message."""
    from affectkit.checkpoint import read_meta

    if "://" in storage:
        return f" (checkpoints are under {storage}; --resume continues from the newest)"
    stored = sorted(Path(storage).glob("*/checkpoint_*/checkpoint.json"))
    if not stored:
        return ""
    newest = max(stored, key=lambda path: read_meta(path.parent)[0].epoch)
    epoch = read_meta(newest.parent)[0].epoch
    return f": {newest.parent} (epoch {epoch + 1}); --resume continues from it"


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


def run(recipe: Recipe, resume: bool = False, verbose: bool = True) -> RunResult:
    """Train, evaluate on held-out subjects, and write the run directory."""
    from affectkit.checkpoint import load_checkpoint
    from affectkit.evaluation import evaluate, format_report, save_report
    from affectkit.factory import build_dataset
    from affectkit.pipeline import training_data
    from affectkit.plots import plot_curves

    started = time.perf_counter()
    previous = latest_run_dir(recipe) if resume else None
    dataset = build_dataset(recipe.data.dataset)
    check_model(recipe, len(dataset.labels))  # before minutes of rendering
    check_cluster(recipe)
    run_dir = previous or new_run_dir(recipe)
    (run_dir / "recipe.yaml").write_text(dump_recipe(recipe))
    samples = select_subjects(dataset.samples(), recipe.data.subjects, recipe.seed)
    train, val = subject_split(samples, recipe.data.val_fraction, recipe.seed)
    data = training_data(recipe, dataset, train, val)
    prepared = time.perf_counter()
    if verbose:
        print(
            f"affectkit: {len(data.train)} training and {len(data.val)} held-out scans "
            f"({len({s.subject for s in train})}/{len({s.subject for s in val})} subjects), "
            f"views rendered in {prepared - started:.1f} s; run directory {run_dir}"
        )
    storage = storage_for(recipe, run_dir)
    try:
        result, history = fit(recipe, data, storage, name=f"{recipe.name}-{run_dir.name}", verbose=verbose)
    except AffectkitError as exc:
        raise AffectkitError(f"{exc}{_where_kept(storage)}") from None
    trained = time.perf_counter()

    model_dir = run_dir / EXPORT_NAME
    with chosen_checkpoint(result, recipe.eval.select).as_directory() as directory:
        shutil.rmtree(model_dir, ignore_errors=True)
        shutil.copytree(directory, model_dir)
    exported = (Path(recipe.output.dir) / recipe.name / EXPORT_NAME).resolve()
    shutil.rmtree(exported, ignore_errors=True)
    shutil.copytree(model_dir, exported)

    with (run_dir / "metrics.jsonl").open("w") as handle:
        for metrics in history:
            handle.write(json.dumps(metrics) + "\n")
    _write_tensorboard(history, run_dir / "tensorboard")
    plot_curves(history, run_dir / "curves.png")
    model, meta = load_checkpoint(model_dir)
    report = evaluate(model, data.val, meta.labels, meta.class_prompts)
    report.skipped = data.train.skipped + data.val.skipped  # the run's report lists every file left out
    save_report(report, run_dir / "eval", f"{recipe.name}: held-out subjects")
    compute = {
        "wall_seconds": time.perf_counter() - started,
        "render_seconds": prepared - started,
        "train_seconds": trained - prepared,
        "epochs": len(history),
        "train_samples_per_s": statistics.mean(m["train_samples_per_s"] for m in history) if history else 0.0,
        "peak_rss_mb_worker": max((m["peak_rss_mb"] for m in history), default=0.0),
        "peak_rss_mb_driver": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "num_workers": recipe.scaling.num_workers,
        "exported_epoch": meta.epoch,
        "selected_by": recipe.eval.select,
        "skipped_files": data.train.skipped + data.val.skipped,
    }
    (run_dir / "compute.json").write_text(json.dumps(compute, indent=1))
    if verbose:
        print(format_report(report))
        print(
            f"{recipe.eval.select} epoch ({meta.epoch + 1}): held-out accuracy {report.accuracy:.4f}; "
            f"wall time {compute['wall_seconds']:.0f} s; exported to {exported}"
        )
    return RunResult(run_dir, model_dir, history, report, compute)


def _write_tensorboard(history: list[dict[str, Any]], directory: Path) -> None:
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(directory))
    for metrics in history:
        for key, value in metrics.items():
            if isinstance(value, int | float) and key != "epoch":
                writer.add_scalar(key, value, metrics["epoch"])
    writer.close()
