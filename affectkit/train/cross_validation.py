"""``affectkit cv``: subject-independent cross-validation, repeated, on drawn or published folds.

Each fold trains through :func:`affectkit.train.trainer.fit` on its training subjects only (and,
with ``eval.cv_validation``, validates on some of them), then its test subjects are scored
once. The run folder holds the folds used, a report per fold and pooled, and ``cv.json``
(docs/protocols.md).
"""

from __future__ import annotations

import json
import resource
import shutil
import statistics
import time
from pathlib import Path
from typing import Any

from affectkit.data.splits import (
    read_folds,
    select_subjects,
    split_by_subjects,
    subject_folds,
    subject_split,
    write_folds,
)
from affectkit.errors import AffectkitError
from affectkit.evaluate.reports import EvalReport
from affectkit.interfaces import Dataset, Sample
from affectkit.model.inference_config import InputConfig
from affectkit.recipe import Recipe, dump_recipe
from affectkit.render.render_cache import RenderCache
from affectkit.train.runner import EXPORT_NAME, new_run_dir
from affectkit.train.trainer import preflight, score_export, storage_for, train_and_export


def cv_plan(recipe: Recipe, samples: list[Sample], folds: int, repeats: int, fold_file: Path | None) -> list[dict[str, Any]]:
    """Each repeat's seed and folds (test subjects): drawn from the recipe (repeat r uses
    ``seed + r`` for its subject draw and its folds), or read from a fold file."""
    if fold_file is not None:
        plan = read_folds(fold_file)
        known = {s.subject for s in samples}
        for r, repeat in enumerate(plan):
            missing = sorted({subject for fold in repeat["folds"] for subject in fold} - known)
            if missing:
                raise AffectkitError(
                    f"{fold_file}: repeat {r + 1} names subject(s) {', '.join(missing[:10])} that the recipe's dataset does not have"
                )
            repeat["seed"] = recipe.seed + r if repeat["seed"] is None else repeat["seed"]
        return plan
    plan = []
    for r in range(repeats):
        seed = recipe.seed + r
        chosen = select_subjects(samples, recipe.data.subjects, seed)
        plan.append({"seed": seed, "folds": subject_folds(chosen, folds, seed)})
    return plan


def cross_validate(
    recipe: Recipe, folds: int | None = None, repeats: int | None = None, fold_file: Path | None = None, verbose: bool = True
) -> dict[str, Any]:
    """Subject-independent K-fold cross-validation, repeated with new subject draws and folds
    (or on the folds of a file). Writes per fold and pooled reports, ``folds.json`` and
    ``cv.json`` (docs/protocols.md) and returns the latter's contents."""
    from affectkit.evaluate.reports import pooled_report, save_report
    from affectkit.factory import build_dataset, build_render_cache
    from affectkit.render.pipeline import dataset_identity

    started = time.perf_counter()
    if recipe.eval.select == "best" and not recipe.eval.cv_validation:
        raise AffectkitError(
            "eval.select: best picks each fold's epoch by validation accuracy, and cv never validates on test subjects; "
            "set eval.cv_validation: true (a validation split inside each fold's training subjects) or eval.select: last"
        )
    dataset = build_dataset(recipe.data.dataset)
    everything = dataset.samples()
    plan = cv_plan(recipe, everything, folds or recipe.eval.folds, repeats or recipe.eval.repeats, fold_file)  # a bad fold file stops before Ray starts
    preflight(recipe, dataset)
    k_folds = {len(repeat["folds"]) for repeat in plan}
    label = f"{max(k_folds)}" if len(k_folds) == 1 else "var"
    run_dir = new_run_dir(recipe.model_copy(update={"name": f"{recipe.name}-cv{label}"}))
    (run_dir / "recipe.yaml").write_text(dump_recipe(recipe))
    identity = dataset_identity(recipe.data.dataset, dataset)
    write_folds(run_dir / "folds.json", plan, identity)  # the identity says which people the ids name
    if verbose:
        subjects = {s for repeat in plan for fold in repeat["folds"] for s in fold}
        print(f"affectkit cv: {len(plan)} repeat(s) of {label} folds over {len(subjects)} subjects; run directory {run_dir}")
    cache = build_render_cache(InputConfig.from_recipe(recipe), recipe.render.cache_dir)
    storage = storage_for(recipe, run_dir)
    results, reports = [], []
    for r, repeat in enumerate(plan):
        in_plan = {s for fold in repeat["folds"] for s in fold}
        samples = [s for s in everything if s.subject in in_plan]
        for k, test in enumerate(repeat["folds"]):
            fold_dir = run_dir / (f"repeat-{r + 1}" if len(plan) > 1 else "") / f"fold-{k + 1}"
            name = f"{recipe.name}-cv-{run_dir.name}-r{r + 1}-f{k + 1}"  # Ray's folder under storage
            entry, report = train_fold(recipe, dataset, samples, test, repeat["seed"] + k, fold_dir, cache, storage, name, verbose)
            entry = {"repeat": r + 1, "fold": k + 1, "seed": repeat["seed"], **entry, "report": str(fold_dir.relative_to(run_dir) / "report.json")}
            results.append(entry)
            reports.append(report)
            save_report(report, fold_dir, f"{recipe.name}: repeat {r + 1}, fold {k + 1}")
            if verbose:
                print(f"repeat {r + 1} fold {k + 1}/{len(repeat['folds'])}: accuracy {report.accuracy:.4f} macro-F1 {report.macro_f1:.4f} UAR {report.uar:.4f}")
    pooled = pooled_report(reports)
    save_report(pooled, run_dir / "pooled", f"{recipe.name}: all test folds pooled")
    summary = cv_summary(results, pooled, len(plan))
    summary.update(
        run_dir=str(run_dir),
        dataset=identity,
        folds_file=str(run_dir / "folds.json"),
        compute={
            "wall_seconds": time.perf_counter() - started,
            "fold_seconds_mean": statistics.mean(r["wall_seconds"] for r in results),
            "peak_rss_mb_worker": max(r["peak_rss_mb_worker"] for r in results),
            "peak_rss_mb_driver": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "num_workers": recipe.scaling.num_workers,
        },
    )
    (run_dir / "cv.json").write_text(json.dumps(summary, indent=1))
    if verbose:
        print(format_cv(summary))
    return summary


def train_fold(
    recipe: Recipe,
    dataset: Dataset,
    samples: list[Sample],
    test: list[str],
    seed: int,
    fold_dir: Path,
    cache: RenderCache,
    storage: str,
    name: str,
    verbose: bool,
) -> tuple[dict[str, Any], EvalReport]:
    """Train on ``samples`` less the ``test`` subjects (Ray run ``name`` under ``storage``),
    export the model (weights only) to ``fold_dir/model`` and score the test subjects:
    (the fold's cv.json entry, its report). ``seed`` draws the validation subjects."""
    from affectkit.model.checkpoint import read_meta
    from affectkit.render.pipeline import render_samples, training_data

    started = time.perf_counter()
    train, test_samples = split_by_subjects(samples, test)
    val: list[Sample] = []
    if recipe.eval.cv_validation:
        train, val = subject_split(train, recipe.data.val_fraction, seed)
    data = training_data(recipe, dataset, train, val, test_subjects=test)
    history = train_and_export(recipe, data, storage, name, fold_dir, fold_dir / EXPORT_NAME, verbose=verbose)
    if "://" not in storage:
        shutil.rmtree(Path(storage) / name, ignore_errors=True)  # the exported copy is kept
    views = render_samples(
        InputConfig.from_recipe(recipe), dataset, test_samples, cache, labels=data.labels, skip_bad_files=recipe.data.skip_bad_files, units=recipe.data.units
    )
    report = score_export(fold_dir / EXPORT_NAME, views, recipe.data.dataset)
    entry = {
        "test_subjects": sorted(test),
        "validation_subjects": sorted({s.subject for s in val}),
        "train_subjects": len({s.subject for s in train}),
        "test_samples": report.samples,
        "accuracy": report.accuracy,
        "macro_f1": report.macro_f1,
        "uar": report.uar,
        "exported_epoch": read_meta(fold_dir / EXPORT_NAME)[0].epoch + 1,
        "wall_seconds": time.perf_counter() - started,
        "peak_rss_mb_worker": max((m["peak_rss_mb"] for m in history), default=0.0),
    }
    if report.action_units.get("mean_f1") is not None:
        entry["au_mean_f1"] = report.action_units["mean_f1"]
    if recipe.eval.cv_validation:
        entry["val_accuracy_by_epoch"] = [round(h["val_accuracy"], 4) for h in history]
    return entry, report


def cv_summary(results: list[dict[str, Any]], pooled: EvalReport, repeats: int) -> dict[str, Any]:
    """Mean and spread over folds and over repeats (each repeat's mean), and the pooled figures."""
    metrics: dict[str, Any] = {}
    scored_aus = all("au_mean_f1" in r for r in results)
    for key in ("accuracy", "macro_f1", "uar", *(("au_mean_f1",) if scored_aus else ())):
        values = [r[key] for r in results]
        means = [statistics.mean(r[key] for r in results if r["repeat"] == i + 1) for i in range(repeats)]
        metrics[key] = {
            "mean": statistics.mean(values),
            "std_over_folds": statistics.pstdev(values),
            "std_over_repeats": statistics.pstdev(means) if repeats > 1 else None,
            "repeat_means": means,
            "pooled": pooled.action_units.get("mean_f1") if key == "au_mean_f1" else getattr(pooled, key),
        }
    return {
        "folds": results,
        "repeats": repeats,
        "metrics": metrics,
        "accuracy_mean": metrics["accuracy"]["mean"],
        "accuracy_std": metrics["accuracy"]["std_over_folds"],
        "macro_f1_mean": metrics["macro_f1"]["mean"],
        "macro_f1_std": metrics["macro_f1"]["std_over_folds"],
        "pooled_report": "pooled/report.json",
    }


def format_cv(summary: dict[str, Any]) -> str:
    """The console lines of a finished cross-validation."""
    folds = len(summary["folds"])
    lines = [f"{folds} folds ({summary['repeats']} repeat(s)), subject-independent:"]
    for key, name in (("accuracy", "accuracy"), ("macro_f1", "macro-F1"), ("uar", "UAR"), ("au_mean_f1", "AU F1")):
        if key not in summary["metrics"]:
            continue
        m = summary["metrics"][key]
        over = f", ± {m['std_over_repeats']:.4f} over repeats" if m["std_over_repeats"] is not None else ""
        lines.append(f"  {name:<9} {m['mean']:.4f} ± {m['std_over_folds']:.4f} over folds{over}; pooled {m['pooled']:.4f}")
    lines.append(f"reports: {summary['run_dir']} (cv.json, folds.json, pooled/, fold-*/)")
    return "\n".join(lines)
