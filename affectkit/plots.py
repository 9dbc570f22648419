"""Figures written beside every run: confusion matrix and training curves."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def plot_confusion(confusion: Sequence[Sequence[int]], labels: Sequence[str], path: Path, title: str = "confusion matrix") -> Path:
    """Counts and row percentages (of each true class) in every cell, shaded by the percentage."""
    totals = [sum(row) or 1 for row in confusion]
    shares = [[value / total for value in row] for row, total in zip(confusion, totals, strict=True)]
    fig, ax = plt.subplots(figsize=(6, 5.4))
    ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"{title} (count, % of true class)")
    for i, row in enumerate(confusion):
        for j, value in enumerate(row):
            ax.text(j, i, f"{value}\n{shares[i][j]:.0%}", ha="center", va="center", fontsize=8, color="white" if shares[i][j] > 0.5 else "black")
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
