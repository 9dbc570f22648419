"""Writing an adapted model folder, every learnt weight unchanged, with its record and card:
a model adapted without labels to the scans of a new scanner or face model
(:mod:`affectkit.model.adaptation` says what adapting is and why), or calibrated on neutral
scans of its training face model to read scans against their person's neutral scan
(:mod:`affectkit.model.neutral_reference`). Both read mesh files or a dataset."""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from affectkit.data.face_frame import Units
from affectkit.data.facs import NEUTRAL
from affectkit.data.mesh_formats import load_input
from affectkit.errors import AffectkitError
from affectkit.evaluate.reports import data_description
from affectkit.interfaces import Dataset, Sample
from affectkit.model.adaptation import ADAPTATION, adapt_normalisation
from affectkit.model.affectvlm import AffectVLM
from affectkit.model.checkpoint import CheckpointMeta
from affectkit.model.inference_config import InputConfig
from affectkit.model.neutral_reference import CALIBRATION, calibrate, neutral_scans, neutral_scans_of
from affectkit.recipe import ComponentRef
from affectkit.render.model_inputs import frames_of, reference_views, scan_signature
from affectkit.render.render_cache import RenderCache
from affectkit.serve.model_card import CARD_FILE


@dataclass
class Adaptation:
    """What :func:`adapt_model` did: the model written, the normalisation layers
    re-estimated (none when calibrating a neutral reference), on how many scans of what."""

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


def _scans(
    source: str | Path, out: str | Path, data: ComponentRef | None, files: Sequence[Path], device: str, trust_unverified: bool, units: Units | None, neutral: bool
) -> tuple[AffectVLM, CheckpointMeta, Tensor, list[list[float]], str]:
    """The model of folder ``source`` and the views of the scans to adapt it on (``data``
    or ``files``; with ``neutral``, those of ``data`` labelled neutral), their signatures and
    a description; ``out`` must be new (or empty)."""
    from affectkit.factory import build_dataset, build_render_cache
    from affectkit.model.checkpoint import load_checkpoint
    from affectkit.render.pipeline import render_samples

    out, what = Path(out), "neutral" if neutral else "adapt"
    if (data is None) == (not files):
        raise AffectkitError(f"{what}: give the scans, either as mesh files and folders or as --data, not both")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise AffectkitError(f"{out}: already exists and is not an empty folder; {what} writes a new model folder and overwrites nothing")
    model, meta = load_checkpoint(source, device, trust_unverified)
    cache = build_render_cache(meta.inference.input, device=device)
    if data is None:
        tensor, signatures = views_of_files(files, meta.inference.input, cache, units)
        return model, meta, tensor, signatures, f"{len(files)} files, e.g. {files[0]}"
    dataset = build_dataset(data)
    if neutral:
        tensor = neutral_views_of(dataset, dataset.samples(), meta.inference.input, cache, units)
        if not len(tensor):
            raise AffectkitError(
                f"{data_description(data)}: no scan labelled {NEUTRAL!r} and no 4D sequence (a generated or BU-3DFE-layout set: include_neutral=true)"
            )
        return model, meta, tensor, [], data_description(data)
    views = render_samples(meta.inference.input, dataset, dataset.samples(), cache, units=units)
    return model, meta, views.views, views.signatures, data_description(data)


def neutral_views_of(dataset: Dataset, samples: Sequence[Sample], inputs: InputConfig, cache: RenderCache, units: Units | None) -> Tensor:
    """The views ``[N, 1, V, C, H, W]`` of the people of ``samples`` at rest: their neutral
    scans, or, in a 4D dataset without them, the first frame of one sequence of each person
    (sequences start at rest); empty where there is neither. A file that cannot be read is
    left out; an error where none can."""
    from affectkit.render.pipeline import render_samples

    neutral = list(neutral_scans(samples).values())
    if neutral:
        return render_samples(inputs, dataset, neutral, cache, skip_bad_files=True, units=units).views[:, :1]
    first: dict[str, Sample] = {}
    for sample in samples:
        if sample.is_sequence:
            first.setdefault(sample.subject, sample)
    if not first:
        return torch.empty(0)
    return reference_views(dataset, list(first.values()), [None] * len(first), cache, inputs.maps, units)[0]


def _write(source: str | Path, out: str | Path, model: AffectVLM, meta: CheckpointMeta, section: str) -> None:
    """Save ``model`` to ``out``, its card the source's followed by ``section``."""
    from affectkit.model.checkpoint import save_checkpoint

    source, out = Path(source), Path(out)
    save_checkpoint(out, model, meta)
    card = source / CARD_FILE
    (out / CARD_FILE).write_text((card.read_text() if card.is_file() else f"# {source.name}, adapted\n") + section)


def adapt_model(
    source: str | Path,
    out: str | Path,
    data: ComponentRef | None = None,
    files: Sequence[Path] = (),
    device: str = "cpu",
    trust_unverified: bool = False,
    units: Units | None = None,
    neutral: bool = False,
) -> Adaptation:
    """Write to ``out`` the model of folder ``source`` with its normalisation statistics
    re-estimated on unlabelled scans: the samples of dataset ``data`` (their labels are not
    read) or mesh ``files``. With ``neutral`` instead calibrated to read scans against their
    person's neutral scan: the mean neutral of its training face model, from the scans of
    ``data`` labelled neutral or neutral mesh ``files`` of people of that face model. ``out``
    must not exist yet (or be an empty folder); the model card gets a section and the record
    of the model says what it was adapted on."""
    model, meta, tensor, signatures, described = _scans(source, out, data, files, device, trust_unverified, units, neutral)
    when = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d")
    if neutral:
        calibrate(model, tensor)
        layers, record = 0, {CALIBRATION: {"on": described, "scans": len(tensor), "date": when}}
        section = (
            f"\n\n## Neutral reference\n\nCalibrated on {len(tensor)} neutral scans of {described} on {when} (`affectkit neutral`): "
            "give it each person's neutral scan (`predict --neutral`, `eval --neutral-reference`) and it reads their scans against it; "
            "no learnt weight changed.\n"
        )
    else:
        layers = adapt_normalisation(model, tensor, described)
        record = {ADAPTATION: {"on": described, "scans": len(tensor), "layers": layers, "date": when, "signatures": signatures}}
        section = (
            f"\n\n## Adaptation\n\nThe image encoder's {layers} normalisation layers were re-estimated on {len(tensor)} unlabelled "
            f"scans of {described} on {when} (`affectkit adapt`); no learnt weight changed. Figures above are those of the model "
            f"it was adapted from ({Path(source).name}), measured before the adaptation.\n"
        )
    meta.provenance = {**meta.provenance, **record}
    _write(source, out, model, meta, section)
    return Adaptation(Path(out), layers, len(tensor), described)


def calibrate_on_training_people(model_dir: Path, units: Units | None = None, dtype: torch.dtype | None = None) -> int:
    """Calibrate a model folder, in place, on the people it was trained on at rest (as its
    record names them): their neutral scans (:func:`~affectkit.model.neutral_reference.neutral_scans_of`)
    or the first frames of their sequences (:func:`neutral_views_of`), so that it can read
    scans against a neutral scan: what a run does with the model it exports. Returns the number of scans, 0 where its dataset has none (the model is then
    left as it is); ``dtype`` as :func:`~affectkit.model.checkpoint.save_checkpoint`."""
    from affectkit.factory import build_dataset, build_render_cache
    from affectkit.model.checkpoint import load_checkpoint, save_checkpoint

    model, meta = load_checkpoint(model_dir)
    ref = ComponentRef.model_validate(meta.provenance["dataset"])
    subjects = set(meta.provenance["train_subjects"])
    listing, neutral = neutral_scans_of(ref, build_dataset(ref), subjects)
    at_rest = neutral or [s for s in listing.samples() if s.subject in subjects]  # no neutral scans: their sequences' first frames
    inputs = meta.inference.input
    cache = build_render_cache(inputs, meta.recipe.render.cache_dir if meta.recipe else None)
    try:
        views = neutral_views_of(listing, at_rest, inputs, cache, units)
    except AffectkitError:  # not one of them could be read: the model stays as it is
        return 0
    if not len(views):
        return 0
    calibrate(model, views)
    meta.provenance = {**meta.provenance, CALIBRATION: {"on": f"its training people at rest ({ref.name})", "scans": len(views)}}
    save_checkpoint(model_dir, model, meta, dtype=dtype)
    return len(views)
