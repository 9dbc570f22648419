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
from pathlib import Path
from typing import Any

import ray
import ray.train
import ray.train.torch
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor

from affectkit.action_units import PRESENT
from affectkit.cameras import parse_views
from affectkit.checkpoint import (
    CheckpointMeta,
    load_training_state,
    load_weights,
    read_meta,
    restore_training,
    save_checkpoint,
    training_state,
)
from affectkit.errors import AffectkitError
from affectkit.factory import build_augmentations, build_model, build_objective
from affectkit.interfaces import LossInputs
from affectkit.metrics import accuracy, confusion_matrix, macro_f1
from affectkit.model import AffectVLM
from affectkit.pipeline import TrainingData
from affectkit.prompting import draw
from affectkit.recipe import Recipe
from affectkit.run_logging import RunLogger


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


def train_loop_per_worker(config: dict[str, Any]) -> None:
    _quiet_report_log()
    recipe = Recipe.model_validate(config["recipe"])
    data: TrainingData = ray.get(config["data"])
    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()
    device = ray.train.torch.get_device()
    torch.manual_seed(recipe.seed)
    rng = random.Random(recipe.seed * 1000 + rank)
    generator = torch.Generator().manual_seed(recipe.seed * 1000 + rank)

    num_views, in_channels = data.train.views.shape[2], data.train.views.shape[3]
    model = build_model(recipe.model, num_views, in_channels, len(data.labels), action_units=len(data.action_units))
    # the AU strengths of every training and validation scan, by index (NaN: not coded)
    train_aus = data.train.au_targets(data.action_units) if data.action_units else None
    val_aus = data.val.au_targets(data.action_units) if data.action_units and data.val is not None else None
    objective = build_objective(recipe.loss).to(device)
    augmentations = build_augmentations(recipe.train.augmentations)
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
    steps_per_epoch = max(1, len(loader))
    scheduler = warmup_cosine(optimizer, round(recipe.train.warmup_epochs * steps_per_epoch), recipe.train.epochs * steps_per_epoch)

    start_epoch, history, restarts = 0, [], 0
    # Ray's record of this run (after a worker restart) and, on --resume, the newest complete
    # checkpoint on disk, which is newer when the run was killed before Ray recorded it
    candidates = [c for c in (ray.train.get_checkpoint(), config.get("resume_from") and ray.train.Checkpoint.from_directory(config["resume_from"])) if c]
    newest: tuple[int, Any] | None = None
    for candidate in candidates:
        with candidate.as_directory() as directory:
            epoch = read_meta(Path(directory))[0].epoch
        if newest is None or epoch > newest[0]:
            newest = (epoch, candidate)
    if newest is not None:
        with newest[1].as_directory() as directory:
            meta, document = read_meta(Path(directory))
            load_weights(model, Path(directory), document)
            state = load_training_state(Path(directory), document)
            if state is not None:
                restore_training(optimizer, scheduler, objective, state)
            start_epoch, history = meta.epoch + 1, meta.history
            restarts = int(history[-1].get("restarts", 0)) + 1 if history else 1
    model = ray.train.torch.prepare_model(model)  # DDP: every trainable parameter is used in forward, none needs finding
    core: AffectVLM = model.module if hasattr(model, "module") else model
    use_amp = recipe.train.amp and device.type == "cuda"
    logger = None
    if rank == 0 and config.get("log_dir"):
        views = [view.name for view in parse_views(recipe.render.views)]
        logger = RunLogger(recipe, Path(config["log_dir"]), views, data.labels, config.get("environment", ""))

    for epoch in range(start_epoch, recipe.train.epochs):
        if world > 1 and hasattr(loader, "sampler") and hasattr(loader.sampler, "set_epoch"):
            loader.sampler.set_epoch(epoch)
        model.train()
        started = time.perf_counter()
        totals: dict[str, float] = {}
        seen = 0
        for views, labels, indices in loader:
            views, labels = views.to(device), labels.to(device)
            for augment in augmentations:
                views = _augment(augment, views, labels, generator)
            prompts = draw(data.train_prompts, indices.tolist(), rng)
            # each AU in one of its prompts, drawn anew every step, as the scans' prompts are
            au_prompts = [[rng.choice(candidates)] for candidates in data.au_prompts] if train_aus is not None else None
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
                out = model(views, prompts, data.class_prompts, au_prompts)
                loss, parts = objective(
                    LossInputs(
                        out.view_embeddings.float(), out.joint.float(), out.text.float(), labels, out.scale, out.classes.float(),
                        au_logits=None if out.au_logits is None else out.au_logits.float(),
                        au_targets=None if train_aus is None else train_aus[indices].to(device),
                    )
                )
            if not torch.isfinite(loss):
                raise AffectkitError(f"epoch {epoch + 1}: the loss became {loss.item()} (not finite); the last good checkpoint is kept")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if recipe.train.grad_clip:
                torch.nn.utils.clip_grad_norm_(params, recipe.train.grad_clip)
            optimizer.step()
            scheduler.step()
            seen += len(labels)
            for key, value in {"train_loss": loss.item(), **parts}.items():
                totals[key] = totals.get(key, 0.0) + value * len(labels)
        train_time = time.perf_counter() - started
        keys = sorted(totals)
        summed = _all_reduce(torch.tensor([float(seen), *(totals[k] for k in keys)], device=device, dtype=torch.float64)).tolist()
        seen_all = summed[0]
        metrics: dict[str, Any] = {
            "epoch": epoch,
            "steps": (epoch + 1) * steps_per_epoch,
            **{k: v / max(1.0, seen_all) for k, v in zip(keys, summed[1:], strict=True)},
            "lr": scheduler.get_last_lr()[0],
            "epoch_seconds": time.perf_counter() - started,
            "train_samples_per_s": seen_all / max(train_time, 1e-9),
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "view_weights": core.view_weights().tolist(),
            "logit_scale": core.scale().item(),
            "world_size": world,
            "restarts": restarts,
        }
        confusion = None
        if val_loader is not None:
            val_loss, count, cm, au_f1 = evaluate_views(core, val_loader, data.class_prompts, device, data.au_prompts, val_aus)
            confusion = cm.cpu().tolist()
            metrics.update(val_loss=(val_loss / count.clamp_min(1)).item(), val_accuracy=accuracy(cm.cpu()), val_macro_f1=macro_f1(cm.cpu()))
            if au_f1 is not None:
                metrics["val_au_f1"] = au_f1
        metrics.update(objective.diagnostics())
        history = [*history, metrics]
        row = epoch_row(metrics, header=epoch == start_epoch)
        if logger is not None:
            logger.epoch(metrics, confusion, row)
        if rank == 0 and config.get("verbose", True):
            # sys.stdout directly: Ray Train patches print() to log through a tee, twice
            sys.stdout.write(row + "\n")
            sys.stdout.flush()
        with tempfile.TemporaryDirectory() as tmp:
            report_checkpoint = None
            if rank == 0:
                meta = CheckpointMeta.for_recipe(
                    recipe, data.labels, data.class_prompts, num_views, in_channels, epoch, metrics, history, data.provenance, data.action_units, data.au_prompts
                )
                path = save_checkpoint(Path(tmp) / "checkpoint", core, meta, training_state(optimizer, scheduler, objective))
                report_checkpoint = ray.train.Checkpoint.from_directory(str(path))
            ray.train.report(metrics, checkpoint=report_checkpoint)
    if logger is not None:
        logger.close(history[-1] if history else None)
