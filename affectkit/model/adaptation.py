"""Adapting a trained model to another scanner or face model without labels.

A model's image encoder normalises its features with statistics (batch normalisation's
running means and variances) gathered on its training scans. Scans of another face model
or scanner differ in low-level ways (mesh density, smoothness, the shape of a resting
face) that shift those statistics, and the shift alone costs a facekit-trained model much
of its accuracy on faces of another generator (docs/benchmarks.md, *Adapting to a new
face model*). Re-estimating them on unlabelled scans of the new source (AdaBN, Li et al.
2016) changes no learnt weight, needs no label and no training run, and is undone by
keeping the original model. It needs a population: a single scan's own statistics are
noise, so :func:`adapt_model` asks for :data:`MIN_SCANS` at least.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from affectkit.data.face_frame import Units
from affectkit.errors import AffectkitError
from affectkit.model.affectvlm import AffectVLM
from affectkit.recipe import ComponentRef

#: fewer scans than this give statistics too noisy to replace the training ones
MIN_SCANS = 20
#: the provenance key of an adapted model: what it was adapted on
ADAPTATION = "adaptation"


@dataclass
class Adaptation:
    """What :func:`adapt_model` did: the model written, the layers re-estimated, on what."""

    model: Path
    layers: int
    scans: int
    source: str


def normalisation_layers(model: AffectVLM) -> list[torch.nn.modules.batchnorm._BatchNorm]:
    """The image encoder's batch normalisation layers (those that keep running statistics)."""
    return [
        m for m in model.image_encoder.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and m.track_running_stats
    ]


@torch.no_grad()
def adapt_normalisation(model: AffectVLM, views: Tensor, batch_size: int = 32) -> int:
    """Replace the image encoder's normalisation statistics by those of ``views``
    (``[N, T, V, C, H, W]``, every view of every scan counted alike); returns how many
    layers changed. Every learnt weight stays as it was; the model is left in eval mode."""
    layers = normalisation_layers(model)
    if not layers:
        raise AffectkitError(
            f"this model's image encoder ({type(model.image_encoder).__name__}) has no batch normalisation layers: "
            "nothing to adapt without labels"
        )
    momenta = [layer.momentum for layer in layers]
    for layer in layers:
        layer.reset_running_stats()
        layer.momentum = None  # a cumulative average over every batch, not a moving one
    model.eval()
    for layer in layers:
        layer.train()
    device = model.logit_scale.device
    try:
        for start in range(0, len(views), batch_size):
            model.encode_views(views[start : start + batch_size].float().to(device))
    finally:
        for layer, momentum in zip(layers, momenta, strict=True):
            layer.momentum = momentum
        model.eval()
    return len(layers)


def views_of_files(paths: Sequence[Path], inputs: Any, cache: Any, units: Units | None) -> tuple[Tensor, list[list[float]]]:
    """The model's input ``[N, T, V, C, H, W]`` for mesh files or folders of frames, and
    their scan signatures; a file that cannot be read or placed is an error naming it."""
    from affectkit.render.model_inputs import frames_of, scan_signature
    from affectkit.serve.inference import load_input

    stacks, signatures = [], []
    for path in paths:
        try:
            frames = frames_of(load_input(path), inputs.frames, inputs.frame_sampler)
            stacks.append(cache.render(frames, units).stack(inputs.maps).to(torch.float16))
        except AffectkitError as exc:
            message = str(exc)
            raise AffectkitError(message if str(path) in message else f"{path}: {message}") from None
        signatures.append(scan_signature(frames))
    return torch.stack(stacks), signatures


def adapt_model(
    source: str | Path,
    out: str | Path,
    data: ComponentRef | None = None,
    files: Sequence[Path] = (),
    device: str = "cpu",
    trust_unverified: bool = False,
    units: Units | None = None,
) -> Adaptation:
    """Write to ``out`` the model of folder ``source`` with its normalisation statistics
    re-estimated on unlabelled scans: the samples of dataset ``data`` (their labels are not
    read) or mesh ``files``. ``out`` must not exist yet (or be an empty folder); the model
    card gets an *Adaptation* section and the record of the model says what it was adapted on."""
    from affectkit.factory import build_dataset, build_render_cache
    from affectkit.model.checkpoint import load_checkpoint, save_checkpoint
    from affectkit.render.pipeline import render_samples
    from affectkit.serve.model_card import CARD_FILE

    source, out = Path(source), Path(out)
    if (data is None) == (not files):
        raise AffectkitError("adapt: give the scans to adapt on, either as mesh files and folders or as --data, not both")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise AffectkitError(f"{out}: already exists and is not an empty folder; adapt writes a new model folder and overwrites nothing")
    model, meta = load_checkpoint(source, device, trust_unverified)
    cache = build_render_cache(meta.inference.input, device=device)
    if data is not None:
        dataset = build_dataset(data)
        views = render_samples(meta.inference.input, dataset, dataset.samples(), cache, units=units)
        tensor, signatures = views.views, views.signatures
        options = ", ".join(f"{k}={v}" for k, v in data.options.items())
        described = f"{data.name} ({options})" if options else data.name
    else:
        tensor, signatures = views_of_files(files, meta.inference.input, cache, units)
        described = f"{len(files)} files, e.g. {files[0]}"
    if len(tensor) < MIN_SCANS:
        raise AffectkitError(
            f"adapt: {described} gives {len(tensor)} scans; statistics of fewer than {MIN_SCANS} are noise, not the new "
            "source's: give more scans of it (any expressions, neutral ones too; no labels needed)"
        )
    layers = adapt_normalisation(model, tensor)
    when = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d")
    meta.provenance = {
        **meta.provenance,
        ADAPTATION: {"on": described, "scans": len(tensor), "layers": layers, "date": when, "signatures": signatures},
    }
    save_checkpoint(out, model, meta)
    card = source / CARD_FILE
    section = (
        f"\n\n## Adaptation\n\nThe image encoder's {layers} normalisation layers were re-estimated on {len(tensor)} unlabelled "
        f"scans of {described} on {when} (`affectkit adapt`); no learnt weight changed. Figures above are those of the model "
        f"it was adapted from ({source.name}), measured before the adaptation.\n"
    )
    (out / CARD_FILE).write_text((card.read_text() if card.is_file() else f"# {source.name}, adapted\n") + section)
    return Adaptation(out, layers, len(tensor), described)
