"""``affectkit run``: train a recipe (:mod:`affectkit.train.trainer`), evaluate it on held-out
subjects and write the run folder (``affectkit cv`` is :mod:`affectkit.train.cross_validation`).

The driver renders the data once (through the render cache), puts it in Ray's object
store, runs a ``TorchTrainer`` with the recipe's scaling, then writes the run directory:

    runs/<name>/<timestamp>/
        recipe.yaml          the fully resolved recipe
        metrics.jsonl        one line per epoch
        tensorboard/         TensorBoard events, written after every epoch (live)
        train.log            the environment (versions, devices), then one line per epoch
        model/               the exported model (also copied to runs/<name>/model/): the
                             final epoch, or the best validation epoch (eval.select), no
                             training state, and its card (README.md)
        eval/                report.json, report.txt, confusion.png (held-out subjects)
        curves.png           training curves
        compute.json         wall time, throughput, peak memory
"""

from __future__ import annotations

import json
import resource
import shutil
import statistics
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from affectkit.data.splits import select_subjects, subject_split
from affectkit.errors import AffectkitError
from affectkit.recipe import Recipe, dump_recipe
from affectkit.train.trainer import newest_checkpoint, preflight, score_export, storage_for, train_and_export

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
    try:
        run_dir.mkdir(parents=True)
    except OSError as exc:
        raise AffectkitError(f"output.dir: cannot create the run folder {run_dir} ({exc.strerror or exc}); choose a writable output.dir") from None
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


def record_recipe(run_dir: Path, recipe: Recipe) -> None:
    """``recipe.yaml`` of a new run; a resumed run keeps it as it was and records a recipe
    that differs (new overrides) beside it, as ``recipe-resumed-N.yaml``."""
    text = dump_recipe(recipe)
    original = run_dir / "recipe.yaml"
    if not original.is_file():
        original.write_text(text)
    elif original.read_text() != text:
        count = len(list(run_dir.glob("recipe-resumed-*.yaml"))) + 1
        (run_dir / f"recipe-resumed-{count}.yaml").write_text(text)


def run(recipe: Recipe, resume: bool = False, verbose: bool = True) -> RunResult:
    """Train, evaluate on held-out subjects, and write the run directory."""
    from affectkit.evaluate.plots import plot_curves
    from affectkit.evaluate.reports import format_report, save_report
    from affectkit.factory import build_dataset
    from affectkit.model.checkpoint import read_meta
    from affectkit.model.neutral_reference import CALIBRATION
    from affectkit.render.pipeline import training_data
    from affectkit.serve.model_card import CardResult, write_model_card

    started = time.perf_counter()
    previous = latest_run_dir(recipe) if resume else None
    dataset = build_dataset(recipe.data.dataset)
    preflight(recipe, dataset)
    run_dir = previous or new_run_dir(recipe)
    record_recipe(run_dir, recipe)
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
    found = newest_checkpoint(storage) if previous else None
    if previous and verbose:
        print(f"affectkit: resuming {run_dir} from {found[0]} (epoch {found[1] + 1})" if found else f"affectkit: resuming {run_dir}")
    model_dir = run_dir / EXPORT_NAME
    history = train_and_export(
        recipe, data, storage, f"{recipe.name}-{run_dir.name}", run_dir, model_dir, verbose=verbose, resume_from=found[0] if found else None
    )
    trained = time.perf_counter()

    with (run_dir / "metrics.jsonl").open("w") as handle:
        for metrics in history:
            handle.write(json.dumps(metrics) + "\n")
    plot_curves(history, run_dir / "curves.png", f"{recipe.name}, {run_dir.name}")
    report = score_export(model_dir, data.val, recipe.data.dataset)
    report.skipped = data.train.skipped + data.val.skipped  # the run's report lists every file left out
    save_report(report, run_dir / "eval", f"{recipe.name}: held-out subjects")
    exported_meta = read_meta(model_dir)[0]
    exported_epoch = exported_meta.epoch
    write_model_card(model_dir, [CardResult(f"held-out {recipe.data.dataset.name} subjects", recipe.data.dataset.name, report)])
    exported = (Path(recipe.output.dir) / recipe.name / EXPORT_NAME).resolve()
    shutil.rmtree(exported, ignore_errors=True)
    shutil.copytree(model_dir, exported)
    compute = {
        "wall_seconds": time.perf_counter() - started,
        "render_seconds": prepared - started,
        "train_seconds": trained - prepared,
        "epochs": len(history),
        "stopped_by": history[-1].get("stopped_by") if history else None,
        "train_samples_per_s": statistics.mean(m["train_samples_per_s"] for m in history) if history else 0.0,
        "peak_rss_mb_worker": max((m["peak_rss_mb"] for m in history), default=0.0),
        "peak_rss_mb_driver": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "num_workers": recipe.scaling.num_workers,
        "exported_epoch": exported_epoch,
        "selected_by": recipe.eval.select,
        "skipped_files": data.train.skipped + data.val.skipped,
        "render_cache": data.render_cache,
        # calibrated to read scans against a neutral scan on this many (affectkit.model.neutral_reference)
        "neutral_reference_scans": exported_meta.provenance.get(CALIBRATION, {}).get("scans", 0),
    }
    (run_dir / "compute.json").write_text(json.dumps(compute, indent=1))
    if verbose:
        print(format_report(report))
        print(
            f"{recipe.eval.select} epoch ({exported_epoch + 1}): held-out accuracy {report.accuracy:.4f}; "
            f"wall time {compute['wall_seconds']:.0f} s; exported to {exported}"
        )
    return RunResult(run_dir, model_dir, history, report, compute)
