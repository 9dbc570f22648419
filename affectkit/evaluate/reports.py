"""Evaluation reports: accuracy, macro-F1, UAR, per-class scores, confusion matrix (counts
and row-normalised), accuracy broken down by every sample attribute (sex, age group,
intensity, ...), per-AU F1 where the model scores action units and the data codes them,
and every sample's prediction, so that reports of several folds can be pooled
(:func:`pooled_report`) and compared sample by sample."""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from affectkit.data.action_units import BP4D_AUS, au_code, au_name, f1_scores, mean_f1
from affectkit.data.face_frame import Units
from affectkit.evaluate.metrics import (
    accuracy,
    class_report,
    confusion_matrix,
    macro_f1,
    row_normalised,
    uar,
)
from affectkit.model.affectvlm import AffectVLM
from affectkit.recipe import ComponentRef, TestTime
from affectkit.render.model_inputs import ViewSet, same_scans


@dataclass
class EvalReport:
    labels: list[str]
    samples: int
    accuracy: float
    macro_f1: float
    uar: float
    per_class: list[dict[str, Any]]
    confusion: list[list[int]]
    confusion_normalised: list[list[float]]
    by_attribute: dict[str, dict[str, Any]]
    skipped: list[str]
    #: one record per sample: key, subject, label, predicted, attributes
    predictions: list[dict[str, Any]]
    #: what was scored: ``model`` (its folder) and ``data`` (the dataset and its options)
    about: dict[str, str] = field(default_factory=dict)
    #: per-AU F1, precision and recall (``per_au``), their mean over the AUs the data shows
    #: (``mean_f1``) and over BP4D's 12 (``bp4d_mean_f1``); empty where the model scores no AU
    #: or the data codes none of its AUs
    action_units: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1)


def groups_report(correct: Sequence[bool], attributes: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Accuracy per value of every attribute, with counts and the largest gap between groups."""
    report: dict[str, dict[str, Any]] = {}
    keys = sorted({k for a in attributes for k in a})
    for key in keys:
        hits: dict[str, list[bool]] = defaultdict(list)
        for ok, attrs in zip(correct, attributes, strict=True):
            if key in attrs:
                hits[str(attrs[key])].append(ok)
        groups = {value: {"accuracy": sum(v) / len(v), "samples": len(v)} for value, v in sorted(hits.items())}
        scores = [g["accuracy"] for g in groups.values()]
        report[key] = {"groups": groups, "largest_gap": max(scores) - min(scores) if scores else 0.0}
    return report


@torch.no_grad()
def predict_viewset(
    model: AffectVLM, views: ViewSet, class_prompts: list[list[str]], au_prompts: list[list[str]] | None = None, batch_size: int = 64
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Class probabilities ``[N, K]`` for every sample of a view set (each read against its
    neutral reference where the set carries one), and the probabilities ``[N, A]`` of the
    AUs of ``au_prompts`` (``None`` without them)."""
    model.eval()
    device = model.logit_scale.device
    classes = model.class_embeddings(class_prompts)
    aus = model.au_embeddings(au_prompts) if au_prompts else None
    out, au_out = [], []
    for start in range(0, len(views), batch_size):
        neutral = views.neutral_views(torch.arange(start, min(start + batch_size, len(views))))
        neutral = None if neutral is None else neutral.float().to(device)
        joint, logits = model.classify(views.views[start : start + batch_size].float().to(device), classes, neutral)
        out.append(logits.softmax(-1).cpu())
        if aus is not None:
            au_out.append(model.au_logits(joint, aus).sigmoid().cpu())
    return torch.cat(out), (torch.cat(au_out) if au_out else None)


def data_description(data: ComponentRef) -> str:
    """A dataset reference for people: ``synthetic (subjects=2, seed=7)``."""
    options = ", ".join(f"{k}={v}" for k, v in data.options.items())
    return f"{data.name} ({options})" if options else data.name


def describe(model: str | Path, data: ComponentRef) -> dict[str, str]:
    """The ``about`` of a report: which model, which data."""
    return {"model": str(model), "data": data_description(data)}


def evaluate(
    model: AffectVLM,
    views: ViewSet,
    labels: list[str],
    class_prompts: list[list[str]],
    about: dict[str, str] | None = None,
    action_units: Sequence[int] = (),
    au_prompts: list[list[str]] | None = None,
) -> EvalReport:
    """The report of ``model`` on ``views``; with ``action_units`` (and their prompts) each
    record also holds the AU probabilities and, where the data codes them, the AU strengths."""
    probabilities, au_scores = predict_viewset(model, views, class_prompts, au_prompts if action_units else None)
    predicted = probabilities.argmax(1).tolist()
    records = [
        {"key": s.key, "subject": s.subject, "label": labels[int(t)], "predicted": labels[p], "attributes": dict(s.attributes)}
        for s, t, p in zip(views.samples, views.labels.tolist(), predicted, strict=True)
    ]
    if au_scores is not None:
        truth = views.au_targets(action_units)
        for record, scores, target in zip(records, au_scores.tolist(), truth.tolist(), strict=True):
            record["action_units"] = {au_name(code): round(score, 4) for code, score in zip(action_units, scores, strict=True)}
            record["action_units_true"] = {au_name(code): value for code, value in zip(action_units, target, strict=True) if not math.isnan(value)}
    return report_from_predictions(labels, records, list(views.skipped), about)


def au_report(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Per-AU F1 and their means over the records that hold AU scores and coded AUs. Records
    of several models (pooled folds) may score different AUs: each AU is scored over the
    records that have a score and a label for it."""
    scored = [r for r in records if r.get("action_units")]
    if not scored or not any(r.get("action_units_true") for r in scored):
        return {}
    codes = sorted({au_code(name) for r in scored for name in r["action_units"]})
    names = [au_name(code) for code in codes]
    nan = float("nan")
    scores = torch.tensor([[r["action_units"].get(n, 0.0) for n in names] for r in scored])
    truth = torch.tensor([[r.get("action_units_true", {}).get(n, nan) if n in r["action_units"] else nan for n in names] for r in scored])
    rows = f1_scores(scores, truth, codes)
    return {"per_au": rows, "mean_f1": mean_f1(rows), "bp4d_mean_f1": mean_f1(rows, BP4D_AUS), "scans": len(scored)}


def report_from_predictions(
    labels: list[str], records: Sequence[dict[str, Any]], skipped: Sequence[str] = (), about: dict[str, str] | None = None
) -> EvalReport:
    """The report of a list of prediction records (see :attr:`EvalReport.predictions`)."""
    index = {label: i for i, label in enumerate(labels)}
    predicted = torch.tensor([index[r["predicted"]] for r in records], dtype=torch.long)
    target = torch.tensor([index[r["label"]] for r in records], dtype=torch.long)
    cm = confusion_matrix(predicted, target, len(labels))
    return EvalReport(
        labels=list(labels),
        samples=len(records),
        accuracy=accuracy(cm),
        macro_f1=macro_f1(cm),
        uar=uar(cm),
        per_class=class_report(cm, labels),
        confusion=cm.tolist(),
        confusion_normalised=[[round(v, 4) for v in row] for row in row_normalised(cm).tolist()],
        by_attribute=groups_report([r["label"] == r["predicted"] for r in records], [r["attributes"] for r in records]),
        skipped=list(skipped),
        predictions=list(records),
        about=dict(about or {}),
        action_units=au_report(records),
    )


def pooled_report(reports: Sequence[EvalReport]) -> EvalReport:
    """One report over every sample of several (e.g. every fold's test subjects)."""
    about = {"model": f"{len(reports)} models (one per fold)", **({"data": reports[0].about["data"]} if "data" in reports[0].about else {})}
    return report_from_predictions(
        reports[0].labels, [r for report in reports for r in report.predictions], [s for report in reports for s in report.skipped], about
    )


@dataclass
class CheckpointEvaluation:
    """A checkpoint scored on a dataset: the report, the leak ``warnings`` (evaluation data
    seen in training: then not a held-out figure) and ``notes`` on what was scored."""

    report: EvalReport
    warnings: list[str]
    notes: list[str]


def evaluate_checkpoint(
    checkpoint: str | Path,
    data: ComponentRef | None = None,
    device: str = "cpu",
    trust_unverified: bool = False,
    units: Units | None = None,
    test_time: list[TestTime] | None = None,
    adapt: bool = False,
    neutral_reference: bool = False,
) -> CheckpointEvaluation:
    """Score a checkpoint on ``data`` (a dataset reference), or by default on the subjects it
    never trained on (its run's held-out subjects, or its cross-validation fold's test
    subjects), with the leak check of :func:`leak_warnings`; ``units``: the data's length
    unit, where its size would mislead; ``test_time``: test-time augmentations instead of
    the model's own; ``adapt``: first adapt the model's normalisation statistics to the
    scored scans, without their labels (:mod:`affectkit.model.adaptation`; a transductive figure);
    ``neutral_reference``: read each scan against its person's neutral scan in ``data`` (or a
    sequence against its first frame; :mod:`affectkit.model.neutral_reference`)."""
    from affectkit.data.facs import NEUTRAL
    from affectkit.data.splits import subject_split
    from affectkit.errors import AffectkitError
    from affectkit.factory import build_dataset, build_render_cache
    from affectkit.model.adaptation import ADAPTATION, adapt_normalisation
    from affectkit.model.checkpoint import load_checkpoint
    from affectkit.render.pipeline import dataset_identity, render_samples

    model, meta = load_checkpoint(checkpoint, device, trust_unverified, test_time)
    if neutral_reference:
        try:
            model.calibrated_neutral()
        except AffectkitError as exc:
            raise AffectkitError(f"{checkpoint}: {exc}") from None
    provenance, notes = meta.provenance, []
    if data is not None:
        dataset = build_dataset(data)
        samples = dataset.samples()
    elif provenance:
        data = ComponentRef.model_validate(provenance["dataset"])
        dataset = build_dataset(data)
        test = set(provenance["test_subjects"])
        samples = [s for s in dataset.samples() if s.subject in test]
        notes.append(f"scoring the {len(test)} subjects this checkpoint held out of {data.name}")
    elif meta.recipe is not None:
        recipe = meta.recipe
        data = recipe.data.dataset
        dataset = build_dataset(data)
        _, samples = subject_split(dataset.samples(), recipe.data.val_fraction, recipe.seed)
        notes.append("this checkpoint does not record its training subjects (an older affectkit wrote it); scoring its recipe's held-out split")
    else:
        raise AffectkitError(f"{checkpoint}: the checkpoint records neither its held-out subjects nor a recipe; name the data to score with --data")
    unknown = sorted({s.label for s in samples} - set(meta.labels) - ({NEUTRAL} if neutral_reference else set()))
    if unknown:
        samples = [s for s in samples if s.label in meta.labels]
        notes.append(f"left out the scans labelled {', '.join(unknown)}: the checkpoint's classes are {', '.join(meta.labels)}")
    if not samples:
        raise AffectkitError(f"{data.name}: no sample to score")
    cache = build_render_cache(meta.inference.input, device=device)
    views = render_samples(meta.inference.input, dataset, samples, cache, labels=meta.labels, units=units, neutral_reference=neutral_reference)
    warnings = leak_warnings(provenance, dataset_identity(data, dataset), views)
    about, adapted = describe(checkpoint, data), provenance.get(ADAPTATION)
    if neutral_reference:
        about["neutral reference"] = "each scan read against its person's neutral scan (a sequence against its first frame)"
    transductive = "a transductive figure (say so where you report it)"
    if adapt:
        adapt_normalisation(model, views.views, f"the scans to score ({data_description(data)})")
        about["adaptation"] = f"normalisation statistics of these {len(views)} scans, labels unread (transductive)"
        notes.append(f"adapted without labels on these {len(views)} scans first: {transductive}")
    elif adapted:
        about["adaptation"] = f"normalisation statistics of {adapted['scans']} scans of {adapted['on']}, labels unread"
        shared = len(same_scans(views.signatures, adapted["signatures"]))
        notes.append(f"this model was adapted without labels on {adapted['scans']} scans of {adapted['on']}" + (f", {shared} of them among these: {transductive}" if shared else ""))
    inference = meta.inference
    report = evaluate(model, views, meta.labels, meta.class_prompts, about, inference.action_units, inference.au_prompts)
    return CheckpointEvaluation(report, warnings, notes)


def leak_warnings(provenance: dict[str, Any], identity: dict[str, Any], views: ViewSet) -> list[str]:
    """Why scoring ``views`` would not be a held-out figure for a checkpoint with this
    ``provenance``: its training subjects (same dataset) or identical training scans
    (any dataset or file format, by :func:`affectkit.render.model_inputs.scan_signature`). Empty when nothing was seen in training."""
    warnings = []
    if provenance.get("dataset_identity") == identity:
        seen = sorted({s.subject for s in views.samples} & set(provenance.get("train_subjects", [])))
        if seen:
            warnings.append(f"{len(seen)} of the evaluation subjects were training subjects of this checkpoint: {', '.join(seen[:12])}" + (", ..." if len(seen) > 12 else ""))
    same = [views.samples[i].key for i in same_scans(views.signatures, provenance.get("train_scans", []))]
    if same:
        warnings.append(
            f"{len(same)} of the {len(views)} evaluation scans are identical to training scans (same geometry), e.g. {', '.join(same[:5])}"
        )
    return warnings


def format_report(report: EvalReport) -> str:
    """A readable console summary: what was scored, then the scores."""
    subjects = sorted({r["subject"] for r in report.predictions})
    lines = [f"{key}: {value}" for key, value in report.about.items()]
    if subjects:
        lines.append(f"subjects ({len(subjects)}): {', '.join(subjects[:20])}" + (", ..." if len(subjects) > 20 else ""))
    lines += [f"samples {report.samples}   accuracy {report.accuracy:.4f}   macro-F1 {report.macro_f1:.4f}   UAR {report.uar:.4f}", ""]
    lines.append(f"{'class':<12}{'precision':>10}{'recall':>10}{'f1':>10}{'support':>9}")
    for row in report.per_class:
        lines.append(f"{row['label']:<12}{row['precision']:>10.3f}{row['recall']:>10.3f}{row['f1']:>10.3f}{row['support']:>9}")
    width = max(8, *(len(label) + 1 for label in report.labels))
    lines += ["", "confusion (rows: true, columns: predicted; count / % of the true class)", " " * width + "".join(f"{label[:9]:>10}" for label in report.labels)]
    for label, counts, shares in zip(report.labels, report.confusion, report.confusion_normalised, strict=True):
        lines.append(f"{label:<{width}}" + "".join(f"{f'{c}/{s:.0%}':>10}" for c, s in zip(counts, shares, strict=True)))
    lines.append("")
    aus = report.action_units
    if aus:
        mean, bp4d = aus["mean_f1"], aus["bp4d_mean_f1"]
        lines.append(
            f"action units ({aus['scans']} scans): mean F1 {'-' if mean is None else f'{mean:.3f}'}"
            + ("" if bp4d is None else f"   over BP4D's 12 where shown {bp4d:.3f}")
        )
        lines.append(f"{'AU':<6}{'name':<22}{'f1':>7}{'precision':>10}{'recall':>8}{'present':>9}{'coded':>7}")
        for row in aus["per_au"]:
            lines.append(f"{row['au']:<6}{row['name'][:21]:<22}{row['f1']:>7.3f}{row['precision']:>10.3f}{row['recall']:>8.3f}{row['support']:>9}{row['labelled']:>7}")
        lines.append("")
    for key, info in report.by_attribute.items():
        groups = ", ".join(f"{v}: {g['accuracy']:.3f} (n={g['samples']})" for v, g in info["groups"].items())
        lines.append(f"by {key}: {groups}; largest gap {info['largest_gap']:.3f}")
    if report.skipped:
        lines.append(f"skipped {len(report.skipped)} unreadable file(s):")
        lines.extend(f"  {entry}" for entry in report.skipped)
    return "\n".join(lines)


def save_report(report: EvalReport, directory: Path, title: str = "confusion matrix") -> None:
    """``report.json``, ``report.txt`` and ``confusion.png`` in ``directory``."""
    from affectkit.evaluate.plots import plot_confusion

    directory.mkdir(parents=True, exist_ok=True)
    (directory / "report.json").write_text(report.to_json())
    (directory / "report.txt").write_text(format_report(report) + "\n")
    plot_confusion(report.confusion, report.labels, directory / "confusion.png", title)
