"""Rendered views of a dataset split, held in memory, ready for training and evaluation.

Rendering goes through the render cache once (the driver does it before training starts,
so every Ray worker reads the same tensors); 4D sequences contribute ``frames`` sampled
frames each, and the model pools over time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from affectkit.errors import AffectkitError, DatasetError
from affectkit.interfaces import Dataset, RenderedViews, Sample
from affectkit.mesh import Mesh, MeshSequence
from affectkit.render_cache import RenderCache

FrameSampler = Literal["uniform", "apex"]


def sample_frames(count: int, k: int, sampler: FrameSampler) -> list[int]:
    """Indices of ``k`` frames out of ``count``: evenly spread, or centred on the middle
    frame where posed sequences (onset-apex-offset) peak."""
    if sampler == "uniform":
        return np.linspace(0, count - 1, k).round().astype(int).tolist()
    half = max(1, count // 4)
    middle = count // 2
    return np.linspace(max(0, middle - half), min(count - 1, middle + half), k).round().astype(int).tolist()


def frames_of(item: Mesh | MeshSequence, k: int, sampler: FrameSampler) -> list[Mesh]:
    """The meshes a sample contributes: itself, or ``k`` sampled frames of a sequence."""
    if isinstance(item, Mesh):
        return [item] * k
    return [item.frames[i] for i in sample_frames(len(item), k, sampler)]


@dataclass
class ViewSet(torch.utils.data.Dataset):
    """``views[i]`` is ``[T, V, C, H, W]`` (float16 in memory) for ``samples[i]``."""

    samples: list[Sample]
    labels: Tensor
    views: Tensor
    skipped: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor, int]:
        return self.views[index].float(), self.labels[index], index


def prepare_views(
    dataset: Dataset,
    samples: Sequence[Sample],
    cache: RenderCache,
    maps: Sequence[str],
    frames: int = 1,
    frame_sampler: FrameSampler = "uniform",
    skip_bad_files: bool = False,
    batch_size: int = 16,
    progress: bool = True,
    labels: Sequence[str] | None = None,
) -> ViewSet:
    """Render (or read from the cache) every sample's views; bad files raise, or are
    skipped and listed in ``ViewSet.skipped`` when ``skip_bad_files``. Label indices
    follow ``labels`` (a model's classes) or else the dataset's own order."""
    label_index = {name: i for i, name in enumerate(labels or dataset.labels)}
    kept: list[Sample] = []
    chunks: list[Tensor] = []
    skipped: list[str] = []
    bar = tqdm(total=len(samples), desc="rendering views", unit="scan", disable=not progress, leave=False)
    for start in range(0, len(samples), batch_size):
        batch: list[Sample] = []
        meshes: list[Mesh] = []
        for sample in samples[start : start + batch_size]:
            try:
                meshes.extend(frames_of(dataset.load(sample), frames, frame_sampler))
            except AffectkitError as exc:
                if not skip_bad_files:
                    raise
                skipped.append(f"{sample.key}: {exc}")
                continue
            batch.append(sample)
        bar.update(len(samples[start : start + batch_size]))
        if not batch:
            continue
        rendered: RenderedViews = cache.render(meshes)
        stacked = rendered.stack(maps)  # [B*T, V, C, H, W]
        chunks.append(stacked.reshape(len(batch), frames, *stacked.shape[1:]).to(torch.float16))
        kept.extend(batch)
    bar.close()
    if not kept:
        raise DatasetError("no sample could be loaded" + (f"; skipped: {skipped[:3]}" if skipped else ""))
    unknown = sorted({s.label for s in kept} - set(label_index))
    if unknown:
        raise DatasetError(f"samples carry labels {unknown} outside the classes: {list(label_index)}")
    labels = torch.tensor([label_index[s.label] for s in kept], dtype=torch.long)
    return ViewSet(kept, labels, torch.cat(chunks), skipped)
