"""The model's input for a dataset split: rendered views as tensors, held in memory, ready
for training and evaluation (a :class:`ViewSet`), and the scan signatures of leak checks.

Rendering goes through the render cache once (the driver does it before training starts,
so every Ray worker reads the same tensors); 4D sequences contribute ``frames`` sampled
frames each, and the model pools over time. With a neutral reference
(:mod:`affectkit.model.neutral_reference`) each sample also carries the views of its
person's neutral scan.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from affectkit.data.action_units import ActionUnits, strongest, targets
from affectkit.data.face_frame import Units
from affectkit.data.mesh import Mesh, MeshSequence
from affectkit.errors import AffectkitError, DatasetError
from affectkit.interfaces import Dataset, RenderedViews, Sample
from affectkit.model.neutral_reference import pair_with_neutral
from affectkit.render.render_cache import NO_SPREAD, RenderCache

FrameSampler = Literal["uniform", "apex"]


def sample_frames(count: int, k: int, sampler: FrameSampler) -> list[int]:
    """Indices of ``k`` frames out of ``count``: evenly spread, or centred on the middle
    frame where posed sequences (onset-apex-offset) peak."""
    if sampler == "uniform":
        return np.linspace(0, count - 1, k).round().astype(int).tolist()
    middle = count // 2
    if k == 1:
        return [middle]
    half = max(1, count // 4)
    return np.linspace(max(0, middle - half), min(count - 1, middle + half), k).round().astype(int).tolist()


def frames_of(item: Mesh | MeshSequence, k: int, sampler: FrameSampler) -> list[Mesh]:
    """The meshes a sample contributes: itself, or ``k`` sampled frames of a sequence."""
    if isinstance(item, Mesh):
        return [item] * k
    return [item.frames[i] for i in sample_frames(len(item), k, sampler)]


def scan_signature(meshes: Sequence[Mesh]) -> list[float]:
    """Vertex and face counts, mean and spread of the coordinates of what a sample
    contributes (its mesh or its sampled frames): equal, to well under a micrometre, for
    the same scan written to any format (which rounds coordinates), so that a scan seen in
    training is recognised under another name or dataset (:func:`same_scans`)."""
    vertices = np.concatenate([np.asarray(m.vertices, dtype=np.float64) for m in meshes])
    faces = sum(len(m.faces) for m in meshes)
    return [float(len(vertices)), float(faces), *vertices.mean(0).round(5).tolist(), *vertices.std(0).round(5).tolist()]


def same_scans(signatures: Sequence[Sequence[float]], known: Sequence[Sequence[float]], tolerance: float = 1e-3) -> list[int]:
    """Indices of ``signatures`` that match one of ``known`` (same counts, moments within
    ``tolerance`` in the mesh's units)."""
    if not signatures or not known:
        return []
    a, b = np.asarray(signatures, dtype=np.float64), np.asarray(known, dtype=np.float64)
    counts = (a[:, None, :2] == b[None, :, :2]).all(-1)
    close = (np.abs(a[:, None, 2:] - b[None, :, 2:]) <= tolerance).all(-1)
    return np.flatnonzero((counts & close).any(1)).tolist()


@dataclass
class ViewSet(torch.utils.data.Dataset):
    """``views[i]`` is ``[T, V, C, H, W]`` (float16 in memory) for ``samples[i]``;
    ``signatures[i]`` is :func:`scan_signature` of its geometry; ``action_units[i]`` the AU
    label of what it shows (:func:`shown_action_units`). Where samples are read against a
    neutral reference, ``neutral`` holds the views ``[R, 1, V, C, H, W]`` of the references
    and ``neutral_index[i]`` the one of sample ``i`` (-1: none)."""

    samples: list[Sample]
    labels: Tensor
    views: Tensor
    skipped: list[str] = field(default_factory=list)
    signatures: list[list[float]] = field(default_factory=list)
    action_units: list[ActionUnits | None] = field(default_factory=list)
    neutral: Tensor | None = None
    neutral_index: Tensor | None = None

    def neutral_views(self, index: Tensor) -> Tensor | None:
        """The reference views ``[B, 1, V, C, H, W]`` of samples ``index`` (each must have
        one), ``None`` where the set has no references."""
        return None if self.neutral is None or self.neutral_index is None else self.neutral[self.neutral_index[index]]

    def au_targets(self, codes: Sequence[int]) -> Tensor:
        """``[N, A]`` AU strengths for the AUs ``codes``, NaN where not coded."""
        return targets(self.action_units or [None] * len(self.samples), codes)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor, int]:
        return self.views[index].float(), self.labels[index], index


def shown_action_units(sample: Sample, meshes: Sequence[Mesh]) -> ActionUnits | None:
    """The AU label of what a sample contributes: the strongest over its sampled frames
    where they carry their own (a sequence's per-frame coding), else the sample's."""
    frames = [mesh.metadata.get("action_units") for mesh in meshes]
    return strongest(frames) if any(label is not None for label in frames) else sample.action_units


def prepare_views(
    dataset: Dataset,
    samples: Sequence[Sample],
    cache: RenderCache,
    maps: Sequence[str],
    frames: int = 1,
    frame_sampler: FrameSampler = "apex",
    skip_bad_files: bool = False,
    batch_size: int = 16,
    progress: bool = True,
    labels: Sequence[str] | None = None,
    units: Units | None = None,
    spread: tuple[float, float, float] = NO_SPREAD,
    neutral_reference: bool = False,
) -> ViewSet:
    """Render (or read from the cache) every sample's views; bad files (a scan the face
    frame refuses too) raise, or are skipped and listed in ``ViewSet.skipped`` when
    ``skip_bad_files``. Label indices follow ``labels`` (a model's classes) or else the
    dataset's own order; ``units`` and ``spread`` go to :meth:`RenderCache.render`. With
    ``neutral_reference`` the neutral samples are the references of the others
    (:func:`~affectkit.model.neutral_reference.pair_with_neutral`), not samples."""
    references: dict[str, Sample | None] = {}
    if neutral_reference:
        samples, paired = pair_with_neutral(samples)
        references = dict(zip([s.key for s in samples], paired, strict=True))
    label_index = {name: i for i, name in enumerate(labels or dataset.labels)}
    kept: list[Sample] = []
    signatures: list[list[float]] = []
    action_units: list[ActionUnits | None] = []
    chunks: list[Tensor] = []
    skipped: list[str] = []
    bar = tqdm(total=len(samples), desc="rendering views", unit="scan", disable=not progress, leave=False)
    for start in range(0, len(samples), batch_size):
        loaded: list[tuple[Sample, list[Mesh]]] = []
        for sample in samples[start : start + batch_size]:
            try:
                loaded.append((sample, frames_of(dataset.load(sample), frames, frame_sampler)))
            except AffectkitError as exc:
                if not skip_bad_files:
                    raise
                skipped.append(f"{sample.key}: {exc}")
        bar.update(len(samples[start : start + batch_size]))
        loaded, rendered = render_batch(cache, loaded, skipped if skip_bad_files else None, units, spread)
        if rendered is None:
            continue
        stacked = rendered.stack(maps)  # [B*T, V, C, H, W]
        chunks.append(stacked.reshape(len(loaded), frames, *stacked.shape[1:]).to(torch.float16))
        kept.extend(sample for sample, _ in loaded)
        signatures.extend(scan_signature(chosen) for _, chosen in loaded)
        action_units.extend(shown_action_units(sample, chosen) for sample, chosen in loaded)
    bar.close()
    if not kept:
        raise DatasetError("no sample could be loaded" + (f"; skipped: {skipped[:3]}" if skipped else ""))
    unknown = sorted({s.label for s in kept} - set(label_index))
    if unknown:
        raise DatasetError(f"samples carry labels {unknown} outside the classes: {list(label_index)}")
    labels = torch.tensor([label_index[s.label] for s in kept], dtype=torch.long)
    views = ViewSet(kept, labels, torch.cat(chunks), skipped, signatures, action_units)
    if neutral_reference:
        views.neutral, views.neutral_index = reference_views(dataset, kept, [references[s.key] for s in kept], cache, maps, units)
    return views


def reference_views(
    dataset: Dataset, samples: Sequence[Sample], references: Sequence[Sample | None], cache: RenderCache, maps: Sequence[str], units: Units | None
) -> tuple[Tensor, Tensor]:
    """The views ``[R, 1, V, C, H, W]`` of the samples' neutral references, each rendered
    once, and the index of each sample's: its person's neutral scan, or (``None``) its own
    sequence's first frame."""
    order: dict[str, int] = {}
    rendered, index = [], []
    for sample, reference in zip(samples, references, strict=True):
        source = sample if reference is None else reference
        if source.key not in order:
            item = dataset.load(source)
            mesh = item.frames[0] if isinstance(item, MeshSequence) else item
            order[source.key] = len(rendered)
            rendered.append(cache.render([mesh], units).stack(maps)[0].to(torch.float16))
        index.append(order[source.key])
    return torch.stack(rendered)[:, None], torch.tensor(index, dtype=torch.long)


def render_batch(
    cache: RenderCache,
    loaded: list[tuple[Sample, list[Mesh]]],
    skipped: list[str] | None,
    units: Units | None,
    spread: tuple[float, float, float],
) -> tuple[list[tuple[Sample, list[Mesh]]], RenderedViews | None]:
    """The samples' meshes rendered together. A mesh the render refuses (the face frame
    refuses sizes no face has) raises, or, with a ``skipped`` list, the samples are rendered
    one by one and those that fail are listed there and left out."""
    if not loaded:
        return [], None
    try:
        return loaded, cache.render([mesh for _, chosen in loaded for mesh in chosen], units, spread)
    except AffectkitError:
        if skipped is None:
            raise
    kept, parts = [], []
    for sample, chosen in loaded:
        try:
            parts.append(cache.render(chosen, units, spread))
        except AffectkitError as exc:
            skipped.append(f"{sample.key}: {exc}")
            continue
        kept.append((sample, chosen))
    if not parts:
        return [], None
    return kept, RenderedViews.concat(parts)
