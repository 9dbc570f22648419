"""Figures written beside every run: the confusion matrix and the training curves."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402


def confusion_figure(confusion: Sequence[Sequence[int]], labels: Sequence[str], title: str = "confusion matrix") -> Figure:
    """Counts and row percentages (of each true class) in every cell, shaded by the percentage."""
    totals = [sum(row) or 1 for row in confusion]
    shares = [[value / total for value in row] for row, total in zip(confusion, totals, strict=True)]
    fig, ax = plt.subplots(figsize=(6, 5.4))
    ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"{title}\n(count, % of the true class)", fontsize=10)
    for i, row in enumerate(confusion):
        for j, value in enumerate(row):
            ax.text(j, i, f"{value}\n{shares[i][j]:.0%}", ha="center", va="center", fontsize=8, color="white" if shares[i][j] > 0.5 else "black")
    fig.tight_layout()
    return fig


def plot_confusion(confusion: Sequence[Sequence[int]], labels: Sequence[str], path: Path, title: str = "confusion matrix") -> Path:
    fig = confusion_figure(confusion, labels, title)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_curves(history: Sequence[dict[str, Any]], path: Path, title: str = "training") -> Path:
    """Three panels over integer epochs: the training loss and its terms, the validation
    cross-entropy, and validation accuracy and macro-F1 (the last two when validated)."""
    epochs = [m["epoch"] + 1 for m in history]
    validated = all("val_accuracy" in m for m in history)
    fig, axes = plt.subplots(1, 3 if validated else 1, figsize=(13 if validated else 5, 3.8), squeeze=False)
    losses = axes[0][0]
    losses.plot(epochs, [m["train_loss"] for m in history], marker="o", label="total (weighted)")
    for key in sorted({k for m in history for k in m if k.startswith("loss_")}):
        losses.plot(epochs, [m.get(key, float("nan")) for m in history], marker=".", linestyle="--", label=key[len("loss_") :])
    losses.set(title="training loss", xlabel="epoch", ylabel="loss")
    losses.legend(fontsize=8)
    if validated:
        cross_entropy, scores = axes[0][1], axes[0][2]
        cross_entropy.plot(epochs, [m["val_loss"] for m in history], marker="o", color="tab:red")
        cross_entropy.set(title="validation cross-entropy", xlabel="epoch", ylabel="cross-entropy")
        scores.plot(epochs, [m["val_accuracy"] for m in history], marker="o", label="accuracy")
        scores.plot(epochs, [m["val_macro_f1"] for m in history], marker=".", linestyle="--", label="macro-F1")
        scores.set(title="validation accuracy", xlabel="epoch", ylabel="score", ylim=(0, 1.02))
        scores.legend(loc="best", fontsize=8)
    for ax in axes[0]:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
