"""Writing an adapted model folder: a model adapted without labels to the scans of a new
scanner or face model (mesh files, or a dataset), with its record and card
(:mod:`affectkit.model.adaptation` says what adapting is and why)."""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from affectkit.data.face_frame import Units
from affectkit.data.mesh_formats import load_input
from affectkit.errors import AffectkitError
from affectkit.evaluate.reports import data_description
from affectkit.model.adaptation import ADAPTATION, adapt_normalisation
from affectkit.model.inference_config import InputConfig
from affectkit.recipe import ComponentRef
from affectkit.render.model_inputs import frames_of, scan_signature
from affectkit.render.render_cache import RenderCache
from affectkit.serve.model_card import CARD_FILE


@dataclass
class Adaptation:
    """What :func:`adapt_model` did: the model written, the layers re-estimated, on what."""

    model: Path
    layers: int
    scans: int
    source: str


def views_of_files(paths: Sequence[Path], inputs: InputConfig, cache: RenderCache, units: Units | None) -> tuple[Tensor, list[list[float]]]:
    """The model's input ``[N, T, V, C, H, W]`` for mesh files or folders of frames, and
    their scan signatures; a file that cannot be read or placed is an error naming it."""
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
        tensor, signatures, described = views.views, views.signatures, data_description(data)
    else:
        tensor, signatures = views_of_files(files, meta.inference.input, cache, units)
        described = f"{len(files)} files, e.g. {files[0]}"
    layers = adapt_normalisation(model, tensor, described)
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
