"""From a recipe to rendered, labelled views and prompts: the steps that training,
cross-validation, evaluation and prediction share."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import yaml

from affectkit.data.action_units import PRESENT, au_name, known_codes
from affectkit.data.face_frame import Units
from affectkit.errors import AffectkitError, DatasetError
from affectkit.factory import build_au_prompts, build_prompt_bank, build_render_cache
from affectkit.interfaces import Dataset, Sample
from affectkit.model.inference_config import InputConfig
from affectkit.model.neutral_reference import neutral_scans_of
from affectkit.recipe import ComponentRef, Recipe
from affectkit.registry import registry
from affectkit.render.model_inputs import ViewSet, prepare_views
from affectkit.render.render_cache import NO_SPREAD, RenderCache


@dataclass
class TrainingData:
    """What the driver prepares once and hands every worker through the object store.

    ``val`` is scored after every epoch (``None``: no validation); ``provenance`` goes
    into every checkpoint (:func:`provenance`)."""

    train: ViewSet
    val: ViewSet | None
    labels: list[str]
    train_prompts: list[list[str]]
    class_prompts: list[list[str]]
    provenance: dict[str, Any]
    #: the action units the model learns (none unless a loss term learns them) and their prompts
    action_units: list[int] = field(default_factory=list)
    au_prompts: list[list[str]] = field(default_factory=list)
    #: render-cache hits, misses and rejected (altered or damaged) entries while preparing
    render_cache: dict[str, int] = field(default_factory=dict)


SPEC_FORMS = "NAME, NAME:/path (a dataset with a path option), NAME:key=value,key=[a, b] or NAME:{key: value, key: [a, b]}"


def parse_dataset_spec(spec: str) -> ComponentRef:
    """A dataset on the command line: ``NAME``, ``NAME:/path`` (sets the dataset's
    :attr:`~affectkit.interfaces.Dataset.path_option`),
    ``NAME:key=value,...`` (values in YAML; commas inside brackets belong to the value) or
    ``NAME:{key: value, ...}`` (a YAML mapping)."""
    name, _, argument = spec.partition(":")
    name, argument = name.strip(), argument.strip()
    if not name:
        raise AffectkitError(f"dataset spec {spec!r}: no dataset name; write {SPEC_FORMS}")
    if not argument:
        return ComponentRef(name=name)
    if argument.startswith("{"):
        try:
            options = yaml.safe_load(argument)
        except yaml.YAMLError as exc:
            raise AffectkitError(f"dataset spec {spec!r}: not a YAML mapping ({str(exc).splitlines()[0]}); write {SPEC_FORMS}") from None
        if not isinstance(options, dict):
            raise AffectkitError(f"dataset spec {spec!r}: not a YAML mapping; write {SPEC_FORMS}")
        return ComponentRef(name=name, options={str(k): v for k, v in options.items()})
    if "=" not in argument:
        path_option = registry().get("dataset", name).cls.path_option
        if path_option is None:
            raise AffectkitError(f"dataset spec {spec!r}: dataset {name!r} takes no path (it declares no path option); write {SPEC_FORMS}")
        return ComponentRef(name=name, options={path_option: argument})
    options = {}
    for pair in _top_level_split(argument, spec):
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise AffectkitError(f"dataset spec {spec!r}: {pair!r} is not key=value; write {SPEC_FORMS}")
        try:
            options[key.strip()] = yaml.safe_load(value) if value.strip() else None
        except yaml.YAMLError as exc:
            raise AffectkitError(f"dataset spec {spec!r}: the value of {key.strip()} is not valid YAML ({str(exc).splitlines()[0]})") from None
    return ComponentRef(name=name, options=options)


def _top_level_split(text: str, spec: str) -> list[str]:
    """``a=1,b=[x, y]`` -> ``["a=1", "b=[x, y]"]``: commas inside brackets or quotes stay."""
    parts, depth, quote, current = [], 0, "", []
    for char in text:
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char in "[{":
            depth += 1
        elif char in "]}":
            depth -= 1
            if depth < 0:
                raise AffectkitError(f"dataset spec {spec!r}: a closing {char!r} without its opening bracket")
        elif char == "," and depth == 0:
            parts.append("".join(current))
            current = []
            continue
        current.append(char)
    if depth or quote:
        raise AffectkitError(f"dataset spec {spec!r}: an unclosed {'quote' if quote else 'bracket'}; write {SPEC_FORMS}")
    parts.append("".join(current))
    return [p for p in parts if p.strip()]


def render_samples(
    inputs: InputConfig,
    dataset: Dataset,
    samples: Sequence[Sample],
    cache: RenderCache,
    labels: Sequence[str] | None = None,
    skip_bad_files: bool = False,
    units: Units | None = None,
    spread: tuple[float, float, float] = NO_SPREAD,
    neutral_reference: bool = False,
) -> ViewSet:
    """The model's input for ``samples``: their views rendered (through ``cache``) and
    stacked as ``inputs`` says; label indices follow ``labels`` (a model's classes);
    ``units`` (the dataset's) and ``spread`` (training's) as :meth:`RenderCache.render` takes
    them; ``neutral_reference``: each read against its person's neutral scan
    (:mod:`affectkit.model.neutral_reference`)."""
    return prepare_views(
        dataset,
        samples,
        cache,
        inputs.maps,
        frames=inputs.frames,
        frame_sampler=inputs.frame_sampler,
        skip_bad_files=skip_bad_files,
        labels=labels,
        units=units,
        spread=spread,
        neutral_reference=neutral_reference,
    )


def attach_training_neutral(views: ViewSet, ref: ComponentRef, dataset: Dataset, inputs: InputConfig, cache: RenderCache, units: Units | None) -> None:
    """Give the training set the neutral scans of its people (``train.neutral_reference``):
    ``views.neutral`` and ``views.neutral_index``, -1 for a person without one."""
    listing, neutral = neutral_scans_of(ref, dataset, {s.subject for s in views.samples})
    if not neutral:
        raise DatasetError(f"train.neutral_reference: {ref.name} holds no neutral scan of the training people; set it to 0, or train on data with neutral scans")
    rendered = render_samples(inputs, listing, neutral, cache, skip_bad_files=True, units=units)
    row = {s.subject: i for i, s in enumerate(rendered.samples)}
    views.neutral = rendered.views[:, :1]
    views.neutral_index = torch.tensor([row.get(s.subject, -1) for s in views.samples], dtype=torch.long)


def dataset_identity(ref: ComponentRef, dataset: Dataset) -> dict[str, Any]:
    """The dataset's name and :meth:`~affectkit.interfaces.Dataset.identity`: subject ids
    name the same people when these are equal."""
    return {"name": ref.name, **dataset.identity()}


def provenance(ref: ComponentRef, dataset: Dataset, train: ViewSet, val: Sequence[Sample], test: Sequence[str]) -> dict[str, Any]:
    """What a checkpoint records of its data, so that evaluation can refuse to call training
    data held out: the dataset (as built, and its identity), the training, validation and
    test subjects, and the signature of every training scan (:func:`affectkit.render.model_inputs.scan_signature`)."""
    return {
        "dataset": {"name": ref.name, "options": dataset.options.model_dump(mode="json")},
        "dataset_identity": dataset_identity(ref, dataset),
        "train_subjects": sorted({s.subject for s in train.samples}),
        "validation_subjects": sorted({s.subject for s in val}),
        "test_subjects": sorted(test),
        "train_scans": sorted({tuple(signature) for signature in train.signatures}),
    }


def training_data(
    recipe: Recipe, dataset: Dataset, train: Sequence[Sample], val: Sequence[Sample], test_subjects: Sequence[str] | None = None
) -> TrainingData:
    """Render the training and validation splits (through the cache) and write the prompts
    for them. ``test_subjects`` (default: the validation subjects) are recorded as the
    checkpoint's held-out subjects; an empty ``val`` means no per-epoch validation."""
    inputs = InputConfig.from_recipe(recipe)
    cache = build_render_cache(inputs, recipe.render.cache_dir)
    bank = build_prompt_bank(recipe.prompts)
    skip, units = recipe.data.skip_bad_files, recipe.data.units
    train_views = render_samples(inputs, dataset, train, cache, skip_bad_files=skip, units=units, spread=recipe.data.pose_spread)
    val_views = render_samples(inputs, dataset, val, cache, skip_bad_files=skip, units=units) if val else None
    if recipe.train.neutral_reference:
        attach_training_neutral(train_views, recipe.data.dataset, dataset, inputs, cache, units)
    labels = list(dataset.labels)
    test = sorted({s.subject for s in val}) if test_subjects is None else list(test_subjects)
    codes = learned_action_units(recipe, train_views)
    return TrainingData(
        train=train_views,
        val=val_views,
        labels=labels,
        train_prompts=bank.sample_candidates(train_views.samples),
        class_prompts=bank.class_prompts(labels),
        provenance=provenance(recipe.data.dataset, dataset, train_views, val, test),
        render_cache={"hits": cache.hits, "misses": cache.misses, "rejected": cache.rejected},
        action_units=codes,
        au_prompts=build_au_prompts(recipe.prompts, codes),
    )


def learns_action_units(recipe: Recipe) -> bool:
    """Whether a loss term of the recipe learns action units."""
    return any(registry().get("loss", term.name).cls.uses_action_units for term in recipe.loss.terms)


def learned_action_units(recipe: Recipe, train: ViewSet) -> list[int]:
    """The AUs a model of ``recipe`` learns from ``train``: ``data.action_units``, or every
    AU present in its AU labels; none where no loss term learns AUs. Data without AU labels
    is fine: the model then learns none (the AU term adds nothing) and a warning says so;
    AUs asked for by ``data.action_units`` that no training scan shows are refused."""
    if not learns_action_units(recipe):
        return []
    dataset = recipe.data.dataset.name
    if recipe.data.action_units is None:
        codes = known_codes(train.action_units)
        if not codes:
            warnings.warn(
                f"{dataset}: its training scans carry no action-unit labels, so the action_units loss term has nothing to learn and "
                "the model will score no AUs (docs/action_units.md: where AU labels come from)",
                stacklevel=2,
            )
        return codes
    codes = recipe.data.action_units
    shown = train.au_targets(codes) >= PRESENT
    unseen = [au_name(code) for j, code in enumerate(codes) if not shown[:, j].any()]
    if unseen:
        raise AffectkitError(
            f"data.action_units: no training scan of {dataset} shows {', '.join(unseen)} (by its AU labels), so the model cannot learn "
            f"{'it' if len(unseen) == 1 else 'them'}; AUs it shows: {', '.join(au_name(c) for c in known_codes(train.action_units)) or 'none'}"
        )
    return codes
