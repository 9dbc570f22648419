"""Figures written beside every run: confusion matrix and training curves."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def plot_confusion(confusion: Sequence[Sequence[int]], labels: Sequence[str], path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(5.5, 5))
    ax.imshow(confusion, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    peak = max(max(row) for row in confusion) or 1
    for i, row in enumerate(confusion):
        for j, value in enumerate(row):
            ax.text(j, i, str(value), ha="center", va="center", color="white" if value > peak / 2 else "black")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_curves(history: Sequence[dict[str, Any]], path: Path) -> Path:
    epochs = [m["epoch"] + 1 for m in history]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
    left.plot(epochs, [m["train_loss"] for m in history], label="train loss")
    left.plot(epochs, [m["val_loss"] for m in history], label="val cross-entropy")
    left.set_xlabel("epoch")
    left.legend()
    right.plot(epochs, [m["val_accuracy"] for m in history], label="val accuracy")
    right.plot(epochs, [m["val_macro_f1"] for m in history], label="val macro-F1")
    right.set_ylim(0, 1)
    right.set_xlabel("epoch")
    right.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
