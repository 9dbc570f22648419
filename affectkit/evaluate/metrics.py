"""Classification metrics from a confusion matrix (rows: true class, columns: predicted)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor


def confusion_matrix(predicted: Tensor, target: Tensor, num_classes: int) -> Tensor:
    index = target.long() * num_classes + predicted.long()
    return torch.bincount(index, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def accuracy(cm: Tensor) -> float:
    total = cm.sum().item()
    return cm.diag().sum().item() / total if total else 0.0


def per_class(cm: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Precision, recall and F1 per class (0 where undefined)."""
    cm = cm.double()
    tp = cm.diag()
    precision = tp / cm.sum(0).clamp_min(1)
    recall = tp / cm.sum(1).clamp_min(1)
    f1 = 2 * precision * recall / (precision + recall).clamp_min(1e-12)
    return precision, recall, f1


def macro_f1(cm: Tensor) -> float:
    """F1 averaged over the classes present in the targets."""
    present = cm.sum(1) > 0
    _, _, f1 = per_class(cm)
    return f1[present].mean().item() if present.any() else 0.0


def uar(cm: Tensor) -> float:
    """Unweighted average recall (balanced accuracy) over the classes present in the targets:
    the figure of affective computing, where classes are rarely balanced."""
    present = cm.sum(1) > 0
    _, recall, _ = per_class(cm)
    return recall[present].mean().item() if present.any() else 0.0


def row_normalised(cm: Tensor) -> Tensor:
    """Each true class's row as fractions of its samples (0 for an absent class)."""
    return cm.double() / cm.sum(1, keepdim=True).clamp_min(1)


def class_report(cm: Tensor, labels: Sequence[str]) -> list[dict[str, float | int | str]]:
    precision, recall, f1 = per_class(cm)
    return [
        {"label": label, "precision": p, "recall": r, "f1": f, "support": int(n)}
        for label, p, r, f, n in zip(labels, precision.tolist(), recall.tolist(), f1.tolist(), cm.sum(1).tolist(), strict=True)
    ]
