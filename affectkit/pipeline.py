"""From a recipe to rendered, labelled views and prompts: the steps that training,
cross-validation, evaluation and prediction share."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from affectkit.errors import AffectkitError
from affectkit.interfaces import Dataset, Sample
from affectkit.prompting import build_prompt_bank
from affectkit.recipe import ComponentRef, Recipe
from affectkit.registry import registry
from affectkit.render_cache import RenderCache, renderer_id
from affectkit.views import parse_views
from affectkit.viewset import ViewSet, prepare_views


@dataclass
class TrainingData:
    """What the driver prepares once and hands every worker through the object store."""

    train: ViewSet
    val: ViewSet
    labels: list[str]
    train_prompts: list[list[str]]
    class_prompts: list[list[str]]


def build_dataset(ref: ComponentRef) -> Dataset:
    return registry().create("dataset", ref.name, ref.options)


def parse_dataset_spec(spec: str) -> ComponentRef:
    """``NAME``, ``NAME:key=value,key=value`` or ``NAME:/path/to/root`` (sets ``root``)."""
    name, _, argument = spec.partition(":")
    if not argument:
        return ComponentRef(name=name)
    if "=" not in argument:
        return ComponentRef(name=name, options={"root": argument})
    options = {}
    for pair in argument.split(","):
        key, sep, value = pair.partition("=")
        if not sep:
            raise AffectkitError(f"dataset spec {spec!r}: {pair!r} is not key=value")
        options[key.strip()] = yaml.safe_load(value)
    return ComponentRef(name=name, options=options)


def build_render_cache(recipe: Recipe, device: str = "cpu") -> RenderCache:
    ref = recipe.render.renderer
    reg = registry()
    renderer = reg.create("renderer", ref.name, ref.options)
    root = Path(recipe.render.cache_dir) if recipe.render.cache_dir is not None else None
    return RenderCache(renderer, renderer_id(renderer, ref.name), parse_views(recipe.render.views), recipe.render.size, root, device=device)


def render_samples(
    recipe: Recipe,
    dataset: Dataset,
    samples: Sequence[Sample],
    cache: RenderCache | None = None,
    labels: Sequence[str] | None = None,
) -> ViewSet:
    return prepare_views(
        dataset,
        samples,
        cache or build_render_cache(recipe),
        recipe.render.maps,
        frames=recipe.data.frames,
        frame_sampler=recipe.data.frame_sampler,
        skip_bad_files=recipe.data.skip_bad_files,
        labels=labels,
    )


def training_data(recipe: Recipe, dataset: Dataset, train: Sequence[Sample], val: Sequence[Sample]) -> TrainingData:
    """Render both splits (through the cache) and write the prompts for them."""
    cache = build_render_cache(recipe)
    bank = build_prompt_bank(recipe)
    train_views = render_samples(recipe, dataset, train, cache)
    val_views = render_samples(recipe, dataset, val, cache)
    labels = list(dataset.labels)
    return TrainingData(
        train=train_views,
        val=val_views,
        labels=labels,
        train_prompts=bank.sample_candidates(train_views.samples),
        class_prompts=bank.class_prompts(labels),
    )
