"""Evaluation reports: accuracy, macro-F1, per-class scores, confusion matrix, and
accuracy broken down by every sample attribute (sex, age group, intensity, ...)."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from affectkit.metrics import accuracy, class_report, confusion_matrix, macro_f1
from affectkit.model import AffectVLM
from affectkit.viewset import ViewSet


@dataclass
class EvalReport:
    labels: list[str]
    samples: int
    accuracy: float
    macro_f1: float
    per_class: list[dict[str, Any]]
    confusion: list[list[int]]
    by_attribute: dict[str, dict[str, Any]]
    skipped: list[str]

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
def predict_viewset(model: AffectVLM, views: ViewSet, class_prompts: list[list[str]], batch_size: int = 64) -> torch.Tensor:
    """Class probabilities ``[N, K]`` for every sample of a view set."""
    model.eval()
    device = model.logit_scale.device
    classes = model.class_embeddings(class_prompts)
    out = []
    for start in range(0, len(views), batch_size):
        batch = views.views[start : start + batch_size].float().to(device)
        _, joint = model.encode_views(batch)
        out.append(model.logits(joint, classes).softmax(-1).cpu())
    return torch.cat(out)


def evaluate(model: AffectVLM, views: ViewSet, labels: list[str], class_prompts: list[list[str]]) -> EvalReport:
    probabilities = predict_viewset(model, views, class_prompts)
    predicted = probabilities.argmax(1)
    cm = confusion_matrix(predicted, views.labels, len(labels))
    correct = (predicted == views.labels).tolist()
    attributes = [dict(s.attributes) for s in views.samples]
    return EvalReport(
        labels=labels,
        samples=len(views),
        accuracy=accuracy(cm),
        macro_f1=macro_f1(cm),
        per_class=class_report(cm, labels),
        confusion=cm.tolist(),
        by_attribute=groups_report(correct, attributes),
        skipped=list(views.skipped),
    )


def format_report(report: EvalReport) -> str:
    """A readable console summary."""
    lines = [f"samples {report.samples}   accuracy {report.accuracy:.4f}   macro-F1 {report.macro_f1:.4f}", ""]
    lines.append(f"{'class':<12}{'precision':>10}{'recall':>10}{'f1':>10}{'support':>9}")
    for row in report.per_class:
        lines.append(f"{row['label']:<12}{row['precision']:>10.3f}{row['recall']:>10.3f}{row['f1']:>10.3f}{row['support']:>9}")
    for key, info in report.by_attribute.items():
        groups = ", ".join(f"{v}: {g['accuracy']:.3f} (n={g['samples']})" for v, g in info["groups"].items())
        lines.append(f"by {key}: {groups}; largest gap {info['largest_gap']:.3f}")
    if report.skipped:
        lines.append(f"skipped {len(report.skipped)} unreadable file(s):")
        lines.extend(f"  {entry}" for entry in report.skipped)
    return "\n".join(lines)


def save_report(report: EvalReport, directory: Path) -> None:
    """``report.json``, ``report.txt`` and ``confusion.png`` in ``directory``."""
    from affectkit.plots import plot_confusion

    directory.mkdir(parents=True, exist_ok=True)
    (directory / "report.json").write_text(report.to_json())
    (directory / "report.txt").write_text(format_report(report) + "\n")
    plot_confusion(report.confusion, report.labels, directory / "confusion.png")
