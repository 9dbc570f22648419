"""The per-worker training loop that Ray Train runs (one process per worker).

Each epoch: train with sampled prompts and view augmentations, evaluate on the held-out
subjects (metrics reduced over all workers), then report metrics and a checkpoint through
``ray.train.report``. Every worker reports once per epoch, as Ray Train requires.
"""

from __future__ import annotations

import logging
import math
import random
import resource
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ray
import ray.train
import ray.train.torch
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor

from affectkit.data.action_units import PRESENT
from affectkit.errors import AffectkitError
from affectkit.evaluate.metrics import accuracy, confusion_matrix, macro_f1
from affectkit.factory import build_augmentations, build_callbacks, build_model, build_objective
from affectkit.interfaces import LossInputs, TrainingCallback, ViewAugmentation
from affectkit.model.affectvlm import AffectVLM
from affectkit.model.checkpoint import (
    CheckpointMeta,
    load_training_state,
    load_weights,
    read_meta,
    restore_training,
    save_checkpoint,
    training_state,
)
from affectkit.model.objective import Objective
from affectkit.model.prompting import draw
from affectkit.recipe import Recipe
from affectkit.render.cameras import parse_views
from affectkit.render.pipeline import TrainingData
from affectkit.train.run_logging import RunLogger, scalars
from affectkit.train.weight_averaging import TRAINED, WeightAverage
from affectkit.train.weight_averaging import restore as restore_trained


def warmup_cosine(optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


COLUMNS = (
    ("epoch", "epoch", "{:>5d}"),
    ("train_loss", "train loss", "{:>10.4f}"),
    ("val_loss", "val CE", "{:>8.4f}"),
    ("val_accuracy", "val acc", "{:>8.4f}"),
    ("val_macro_f1", "val F1", "{:>8.4f}"),
    ("val_au_f1", "AU F1", "{:>7.4f}"),
    ("lr", "lr", "{:>9.2e}"),
    ("epoch_seconds", "sec", "{:>6.1f}"),
    ("train_samples_per_s", "samples/s", "{:>9.1f}"),
)


def epoch_row(metrics: dict[str, Any], header: bool = False) -> str:
    """One line of the console table (with the header line above it when asked)."""
    widths = [len(fmt.format(1 if key == "epoch" else 0.0)) for key, _, fmt in COLUMNS]
    row = "  ".join(
        fmt.format(metrics[key] + (1 if key == "epoch" else 0)) if key in metrics else "-".rjust(width)  # no validation split
        for (key, _, fmt), width in zip(COLUMNS, widths, strict=True)
    )
    if not header:
        return row
    return "  ".join(title.rjust(w) for (_, title, _), w in zip(COLUMNS, widths, strict=True)) + "\n" + row


def _augment(augment: Any, views: Tensor, labels: Tensor, generator: torch.Generator) -> Tensor:
    """Apply a view augmentation to ``[B, T, V, C, H, W]`` (frames as extra samples)."""
    b, t = views.shape[:2]
    return augment(views.flatten(0, 1), labels.repeat_interleave(t), generator).unflatten(0, (b, t))


def _neutral_reference(worker: Worker, indices: Tensor) -> tuple[Tensor | None, Tensor | None]:
    """The scans of a batch read against their person's neutral scan (``train.neutral_reference``
    of them, among those with one): their neutral views and the batch's mask."""
    share, train = worker.recipe.train.neutral_reference, worker.data.train
    if not share or train.neutral_index is None:
        return None, None
    drawn = torch.rand(len(indices), generator=worker.generator, device=worker.generator.device).cpu() < share
    referenced = drawn & (train.neutral_index[indices] >= 0)
    if not referenced.any():
        return None, None
    return train.neutral_views(indices[referenced]).float().to(worker.device), referenced.to(worker.device)


def _all_reduce(tensor: Tensor) -> Tensor:
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(tensor)
    return tensor


@torch.no_grad()
def evaluate_views(
    model: AffectVLM,
    loader: torch.utils.data.DataLoader,
    class_prompts: list[list[str]],
    device: torch.device,
    au_prompts: list[list[str]] | None = None,
    au_targets: Tensor | None = None,
) -> tuple[Tensor, Tensor, Tensor, float | None]:
    """(summed cross-entropy, sample count, confusion matrix), summed over all workers, and
    the mean AU F1 where the model learns AUs (``au_targets`` ``[N, A]`` of the loader's set)."""
    model.eval()
    classes = model.class_embeddings(class_prompts)
    aus = model.au_embeddings(au_prompts) if au_prompts else None
    cm = torch.zeros(len(class_prompts), len(class_prompts), dtype=torch.long, device=device)
    loss_sum = torch.zeros((), device=device)
    count = torch.zeros((), device=device)
    counts = torch.zeros(3, len(au_prompts or []), device=device)  # true positives, false positives, false negatives
    for views, labels, indices in loader:
        views, labels = views.to(device), labels.to(device)
        joint, logits = model.classify(views, classes)
        loss_sum += F.cross_entropy(logits, labels, reduction="sum")
        count += len(labels)
        cm += confusion_matrix(logits.argmax(1), labels, len(class_prompts)).to(device)
        if aus is not None and au_targets is not None:
            target = au_targets[indices].to(device)
            coded, truth, said = ~torch.isnan(target), target >= PRESENT, model.au_logits(joint, aus) > 0
            counts += torch.stack([(coded & truth & said).sum(0), (coded & ~truth & said).sum(0), (coded & truth & ~said).sum(0)])
    tp, fp, fn = _all_reduce(counts)
    shown = (tp + fn) > 0
    f1 = 2 * tp / (2 * tp + fp + fn).clamp_min(1)
    return _all_reduce(loss_sum), _all_reduce(count), _all_reduce(cm), (f1[shown].mean().item() if bool(shown.any()) else None)


def _quiet_report_log() -> None:
    """Ray Train logs every ``report`` call at INFO, metrics dict and all, under a logger
    named after its source file; our console table says the same once, readably."""
    try:
        from ray.train.v2._internal.execution import context
    except ImportError:
        return
    logging.getLogger(context.__file__).setLevel(logging.WARNING)


@dataclass
class Worker:
    """One worker's training run: what it trains, with what, on which of the scans."""

    recipe: Recipe
    data: TrainingData
    rank: int
    world: int
    device: torch.device
    model: torch.nn.Module  # what training calls: the model, DDP-wrapped across workers once prepared
    core: AffectVLM  # the model itself
    objective: Objective
    augmentations: list[ViewAugmentation]
    callbacks: list[TrainingCallback]
    params: list[torch.nn.Parameter]
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    loader: torch.utils.data.DataLoader
    val_loader: torch.utils.data.DataLoader | None
    #: the AU strengths of every training and validation scan, by index (NaN: not coded)
    train_aus: Tensor | None
    val_aus: Tensor | None
    rng: random.Random
    generator: torch.Generator
    #: the running mean of the weights over the end of training (``train.weight_averaging``)
    average: WeightAverage | None = None

    @property
    def steps_per_epoch(self) -> int:
        return max(1, len(self.loader))

    @property
    def epochs(self) -> int:
        """The epochs this run trains (more than the recipe's on a set too small for its ``min_steps``)."""
        return self.recipe.train.epochs_for(self.steps_per_epoch)

    @property
    def view_names(self) -> list[str]:
        """The recipe's views by name, as logs and callbacks key view weights."""
        return [view.name for view in parse_views(self.recipe.render.views)]


@dataclass
class Progress:
    """Where training stands: the next epoch, the epochs done and the worker-group restarts."""

    epoch: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    restarts: int = 0


def build_worker(recipe: Recipe, data: TrainingData) -> Worker:
    """The model, objective, optimizer, schedule and data loaders of this worker, seeded."""
    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()
    torch.manual_seed(recipe.seed)
    num_views, in_channels = data.train.views.shape[2], data.train.views.shape[3]
    model = build_model(recipe.model, num_views, in_channels, len(data.labels), action_units=len(data.action_units))
    device = ray.train.torch.get_device()
    objective = build_objective(recipe.loss).to(device)
    params = [p for p in (*model.parameters(), *objective.parameters()) if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=recipe.train.lr, weight_decay=recipe.train.weight_decay)
    batch = min(recipe.train.batch_size, max(2, len(data.train) // world))
    loader = ray.train.torch.prepare_data_loader(
        torch.utils.data.DataLoader(data.train, batch_size=batch, shuffle=True, drop_last=True, generator=torch.Generator().manual_seed(recipe.seed))
    )
    # every worker scores its own slice of the held-out scans, none twice (a DistributedSampler pads)
    val_loader = (
        torch.utils.data.DataLoader(torch.utils.data.Subset(data.val, range(rank, len(data.val), world)), batch_size=2 * batch)
        if data.val is not None
        else None
    )
    steps = max(1, len(loader))
    total = recipe.train.epochs_for(steps) * steps
    scheduler = warmup_cosine(optimizer, round(recipe.train.warmup_epochs * steps), total)
    share = recipe.train.weight_averaging
    return Worker(
        recipe, data, rank, world, device, model, model, objective,
        build_augmentations(recipe.train.augmentations), build_callbacks(recipe.train.callbacks),
        params, optimizer, scheduler, loader, val_loader,
        data.train.au_targets(data.action_units) if data.action_units else None,
        data.val.au_targets(data.action_units) if data.action_units and data.val is not None else None,
        random.Random(recipe.seed * 1000 + rank), torch.Generator().manual_seed(recipe.seed * 1000 + rank),
        WeightAverage(start=total - round(share * total) + 1) if share else None,
    )  # fmt: skip


def restore(worker: Worker, resume_from: str | None) -> Progress:
    """Load the newest of Ray's record of this run (after a worker restart) and, on
    ``--resume``, the newest complete checkpoint on disk, which is newer when the run was
    killed before Ray recorded it; a fresh :class:`Progress` if there is neither."""
    candidates = [c for c in (ray.train.get_checkpoint(), resume_from and ray.train.Checkpoint.from_directory(resume_from)) if c]
    newest: tuple[int, Any] | None = None
    for candidate in candidates:
        with candidate.as_directory() as directory:
            epoch = read_meta(Path(directory))[0].epoch
        if newest is None or epoch > newest[0]:
            newest = (epoch, candidate)
    if newest is None:
        return Progress()
    with newest[1].as_directory() as directory:
        meta, document = read_meta(Path(directory))
        load_weights(worker.core, Path(directory), document)
        state = load_training_state(Path(directory), document)
        if state is not None:
            restore_training(worker.optimizer, worker.scheduler, worker.objective, state)
            if worker.average is not None:
                worker.average.load(state[0], worker.device)
                trained = {k[len(TRAINED) :]: v for k, v in state[0].items() if k.startswith(TRAINED)}
                restore_trained(worker.core, trained)  # the checkpoint's weights are their average
    history = meta.history
    return Progress(meta.epoch + 1, history, int(history[-1].get("restarts", 0)) + 1 if history else 1)


def train_epoch(worker: Worker, epoch: int) -> dict[str, Any]:
    """One pass over this worker's training scans; the epoch's losses (mean over every
    worker's scans), learning rate, throughput and model state as metrics."""
    model, device, data = worker.model, worker.device, worker.data
    if worker.world > 1 and hasattr(worker.loader, "sampler") and hasattr(worker.loader.sampler, "set_epoch"):
        worker.loader.sampler.set_epoch(epoch)
    model.train()
    use_amp = worker.recipe.train.amp and device.type == "cuda"
    started = time.perf_counter()
    totals: dict[str, float] = {}
    seen = 0
    for views, labels, indices in worker.loader:
        views, labels = views.to(device), labels.to(device)
        for augment in worker.augmentations:
            views = _augment(augment, views, labels, worker.generator)
        prompts = draw(data.train_prompts, indices.tolist(), worker.rng)
        # each AU in one of its prompts, drawn anew every step, as the scans' prompts are
        au_prompts = [[worker.rng.choice(candidates)] for candidates in data.au_prompts] if worker.train_aus is not None else None
        neutral, referenced = _neutral_reference(worker, indices)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
            out = model(views, prompts, data.class_prompts, au_prompts, neutral, referenced)
            loss, parts = worker.objective(
                LossInputs(
                    out.view_embeddings.float(), out.joint.float(), out.text.float(), labels, out.scale, out.classes.float(),
                    au_logits=None if out.au_logits is None else out.au_logits.float(),
                    au_targets=None if worker.train_aus is None else worker.train_aus[indices].to(device),
                )
            )
        if not torch.isfinite(loss):
            raise AffectkitError(f"epoch {epoch + 1}: the loss became {loss.item()} (not finite); the last good checkpoint is kept")
        worker.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if worker.recipe.train.grad_clip:
            torch.nn.utils.clip_grad_norm_(worker.params, worker.recipe.train.grad_clip)
        worker.optimizer.step()
        worker.scheduler.step()
        if worker.average is not None:
            worker.average.update(worker.core, worker.scheduler.last_epoch)
        seen += len(labels)
        for key, value in {"train_loss": loss.item(), **parts}.items():
            totals[key] = totals.get(key, 0.0) + value * len(labels)
    train_time = time.perf_counter() - started
    keys = sorted(totals)
    summed = _all_reduce(torch.tensor([float(seen), *(totals[k] for k in keys)], device=device, dtype=torch.float64)).tolist()
    return {
        "epoch": epoch,
        "steps": (epoch + 1) * worker.steps_per_epoch,
        **{k: v / max(1.0, summed[0]) for k, v in zip(keys, summed[1:], strict=True)},
        "lr": worker.scheduler.get_last_lr()[0],
        "train_samples_per_s": summed[0] / max(train_time, 1e-9),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "view_weights": worker.core.view_weights().tolist(),
        "logit_scale": worker.core.scale().item(),
        "world_size": worker.world,
    }


def swap_in_average(worker: Worker) -> dict[str, Tensor] | None:
    """Once weight averaging has begun, put the mean of the weights into the model, its
    batch-norm statistics estimated on this worker's share of the training scans; the
    trained weights it replaced (training goes on from them), else ``None``."""
    if worker.average is None or not worker.average.steps:
        return None
    data, core = worker.data, worker.core
    share = torch.utils.data.Subset(data.train, range(worker.rank, len(data.train), worker.world))
    loader = torch.utils.data.DataLoader(share, batch_size=worker.loader.batch_size or worker.recipe.train.batch_size)
    classes = core.class_embeddings(data.class_prompts)
    return worker.average.swap_in(core, (views for views, _, _ in loader), lambda views: core.classify(views.to(worker.device), classes))


def validate(worker: Worker) -> tuple[dict[str, float], list[list[int]] | None]:
    """The held-out scans' metrics (reduced over every worker) and confusion counts; nothing
    without a validation split."""
    if worker.val_loader is None:
        return {}, None
    data = worker.data
    val_loss, count, cm, au_f1 = evaluate_views(worker.core, worker.val_loader, data.class_prompts, worker.device, data.au_prompts, worker.val_aus)
    metrics = {"val_loss": (val_loss / count.clamp_min(1)).item(), "val_accuracy": accuracy(cm.cpu()), "val_macro_f1": macro_f1(cm.cpu())}
    if au_f1 is not None:
        metrics["val_au_f1"] = au_f1
    return metrics, cm.cpu().tolist()


def callbacks_stop(worker: Worker, history: list[dict[str, Any]]) -> str | None:
    """The first callback that asks to stop after this epoch, by its ``train.callbacks``
    entry, agreed by every worker (all stop if any one asks); ``None`` to go on."""
    if not worker.callbacks:
        return None
    views = worker.view_names
    told = [scalars(metrics, views) for metrics in history]
    asking = next((i for i, callback in enumerate(worker.callbacks) if callback.epoch_end(told)), -1)
    agreed = int(_all_reduce(torch.tensor([asking + 1 if asking >= 0 else 0], device=worker.device)).item())
    if agreed == 0:
        return None
    index = asking if asking >= 0 else 0  # another worker asked: name the recipe's first callback
    return f"train.callbacks.{index} ({worker.recipe.train.callbacks[index].name})"


def report(worker: Worker, metrics: dict[str, Any], history: list[dict[str, Any]], trained: dict[str, Tensor] | None = None) -> None:
    """Hand the epoch's metrics, and on rank 0 its checkpoint, to Ray Train (every worker
    reports once per epoch, as Ray requires). ``trained``: the weights training goes on
    from where the model holds their average, kept with the average for resuming."""
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = None
        if worker.rank == 0:
            data, views = worker.data, worker.data.train.views
            meta = CheckpointMeta.for_recipe(
                worker.recipe, data.labels, data.class_prompts, views.shape[2], views.shape[3], metrics["epoch"], metrics, history,
                data.provenance, data.action_units, data.au_prompts,
            )  # fmt: skip
            tensors, plain = training_state(worker.optimizer, worker.scheduler, worker.objective)
            if worker.average is not None:
                tensors.update(worker.average.state(), **{TRAINED + name: value.cpu() for name, value in (trained or {}).items()})
            path = save_checkpoint(Path(tmp) / "checkpoint", worker.core, meta, (tensors, plain))
            checkpoint = ray.train.Checkpoint.from_directory(str(path))
        ray.train.report(metrics, checkpoint=checkpoint)


def train_loop_per_worker(config: dict[str, Any]) -> None:
    """Train ``config["recipe"]`` on ``config["data"]`` (a Ray object) from the newest
    checkpoint there is, an epoch at a time, until the last epoch or a callback's stop."""
    _quiet_report_log()
    recipe = Recipe.model_validate(config["recipe"])
    worker = build_worker(recipe, ray.get(config["data"]))
    progress = restore(worker, config.get("resume_from"))
    worker.model = ray.train.torch.prepare_model(worker.core)  # DDP: every trainable parameter is used in forward, none needs finding
    logger = None
    if worker.rank == 0 and config.get("log_dir"):
        logger = RunLogger(recipe, Path(config["log_dir"]), worker.view_names, worker.data.labels, config.get("environment", ""))
    stopped = progress.history and progress.history[-1].get("stopped_by")  # a resumed run a callback had ended
    for epoch in range(progress.epoch, 0 if stopped else worker.epochs):
        started = time.perf_counter()
        metrics = train_epoch(worker, epoch)
        trained = swap_in_average(worker)
        if trained is not None:
            metrics["averaged_steps"] = worker.average.steps
        val_metrics, confusion = validate(worker)
        metrics.update(val_metrics, epoch_seconds=time.perf_counter() - started, restarts=progress.restarts, **worker.objective.diagnostics())
        stop = callbacks_stop(worker, [*progress.history, metrics])
        if stop is not None:
            metrics["stopped_by"] = stop
        progress.history = [*progress.history, metrics]
        row = epoch_row(metrics, header=epoch == progress.epoch)
        if logger is not None:
            logger.epoch(metrics, confusion, row)
        if worker.rank == 0 and config.get("verbose", True):
            # sys.stdout directly: Ray Train patches print() to log through a tee, twice
            sys.stdout.write(row + (f"\nstopped by {stop}" if stop else "") + "\n")
            sys.stdout.flush()
        report(worker, metrics, progress.history, trained)
        if trained is not None:
            restore_trained(worker.core, trained)
        if stop is not None:
            break
    if logger is not None:
        logger.close(progress.history[-1] if progress.history else None)
