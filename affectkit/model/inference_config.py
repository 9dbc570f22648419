"""What a trained model needs at inference, saved in every checkpoint beside the recipe.

A checkpoint's ``checkpoint.json`` holds the training recipe (what was done, for the
record and for resuming) and, apart from it, an :class:`InferenceConfig`: the architecture
(encoders and their options, joint space, fusion, classifier), how a scan becomes the
model's input (renderer, views, size, maps, frames), the labels and class prompts, and the
library versions that wrote it. Loading reads only the inference config, so a change to
the recipe schema never breaks a checkpoint: keys a later affectkit adds are dropped with a
warning, and checkpoints written before the config existed (format 1) get one derived
from their recipe.
"""

from __future__ import annotations

import warnings
from typing import Any

from pydantic import BaseModel, Field, model_validator

from affectkit.recipe import FrameConfig, FrameSampling, ModelConfig, Recipe, Section, ViewRendering
from affectkit.train.environment import installed_versions

#: Bump when a saved inference config changes meaning (not when keys are added).
CONFIG_VERSION = 1
RECORDED_VERSIONS = ("affectkit", "torch", "timm", "transformers")


class InputConfig(ViewRendering, FrameSampling):
    """How a scan or sequence becomes the model's input: the recipe's rendering settings
    (``render``, less where renders are cached) and frame sampling (``data``), with their
    defaults. Saved in every checkpoint."""

    #: models saved before the canonical frame existed saw scans as they came
    frame: FrameConfig = FrameConfig(align=False)

    @classmethod
    def from_recipe(cls, recipe: Recipe) -> InputConfig:
        fields = [*ViewRendering.model_fields, *FrameSampling.model_fields]
        settings = {**recipe.render.model_dump(), **recipe.data.model_dump()}
        return cls.model_validate({name: settings[name] for name in fields})


class InferenceConfig(Section):
    """Everything inference needs, and nothing of training."""

    version: int = CONFIG_VERSION
    architecture: ModelConfig
    input: InputConfig
    labels: list[str]
    class_prompts: list[list[str]]
    num_views: int
    in_channels: int
    versions: dict[str, str] = Field(default_factory=dict)
    #: the third-party distributions (name: version) whose components the model runs through:
    #: what loading it needs installed (none for a model of built-in components)
    plugins: dict[str, str] = Field(default_factory=dict)
    #: the action units the model scores and their prompts (none for a model trained without AUs)
    action_units: list[int] = Field(default_factory=list)
    au_prompts: list[list[str]] = Field(default_factory=list)

    @model_validator(mode="after")
    def _consistent(self) -> InferenceConfig:
        """The parts must agree, or the model would load and then answer nonsense."""
        from affectkit.interfaces import RenderedViews
        from affectkit.render.cameras import parse_views
        from affectkit.serve.test_time import mirror_partners

        problems = []
        if len(self.labels) != len(self.class_prompts) or not self.labels:
            problems.append(f"{len(self.labels)} labels but {len(self.class_prompts)} class prompt lists")
        if len(self.action_units) != len(self.au_prompts) or not all(self.au_prompts):
            problems.append(f"{len(self.action_units)} action units but {len(self.au_prompts)} AU prompt lists (or an empty one)")
        if self.num_views != len(self.input.views):
            problems.append(f"num_views {self.num_views} but {len(self.input.views)} input views")
        if self.in_channels != RenderedViews.channels(self.input.maps):
            problems.append(f"in_channels {self.in_channels} but the maps {', '.join(self.input.maps)} make {RenderedViews.channels(self.input.maps)}")
        if "mirror" in self.input.test_time and mirror_partners(parse_views(self.input.views)) is None:
            problems.append(f"test_time mirror but the views {self.input.views} lack a mirror view")
        if problems:
            raise ValueError("the inference config contradicts itself: " + "; ".join(problems))
        return self

    @classmethod
    def from_recipe(
        cls,
        recipe: Recipe,
        labels: list[str],
        class_prompts: list[list[str]],
        num_views: int,
        in_channels: int,
        action_units: list[int] | None = None,
        au_prompts: list[list[str]] | None = None,
    ) -> InferenceConfig:
        inputs = InputConfig.from_recipe(recipe)
        return cls(
            architecture=recipe.model,
            input=inputs,
            labels=labels,
            class_prompts=class_prompts,
            num_views=num_views,
            in_channels=in_channels,
            versions=library_versions(),
            plugins=component_packages(recipe.model, inputs),
            action_units=action_units or [],
            au_prompts=au_prompts or [],
        )

    @classmethod
    def from_document(cls, document: dict[str, Any], source: str) -> InferenceConfig:
        """The config of a ``checkpoint.json`` document, tolerating keys this affectkit does
        not know (a warning names them); derived from the recipe in format-1 documents."""
        if "inference" in document:
            data = document["inference"]
        else:  # format 1: no inference config; the recipe, labels and prompts hold it all
            recipe = document["recipe"]
            render, data_section = recipe.get("render", {}), recipe.get("data", {})
            data = {
                "architecture": recipe.get("model", {}),
                "input": {
                    **{k: render[k] for k in ("renderer", "views", "size", "maps", "frame") if k in render},
                    **{k: data_section[k] for k in ("frames", "frame_sampler") if k in data_section},
                },
                **{k: document[k] for k in ("labels", "class_prompts", "num_views", "in_channels")},
            }
        if not isinstance(data, dict):
            raise ValueError("the inference config is not a mapping")
        kept, unknown = known_keys(cls, data)
        if unknown:
            warnings.warn(f"{source}: ignoring settings this affectkit does not know: {', '.join(unknown)} (written by a newer affectkit?)", stacklevel=2)
        return cls.model_validate(kept)


def known_keys(model: type[BaseModel], data: dict[str, Any], prefix: str = "") -> tuple[dict[str, Any], list[str]]:
    """(``data`` less the keys ``model`` and its nested sections lack, the dotted paths of
    those keys)."""
    kept: dict[str, Any] = {}
    unknown: list[str] = []
    for key, value in data.items():
        field = model.model_fields.get(key)
        if field is None:
            unknown.append(prefix + key)
            continue
        nested = field.annotation
        if isinstance(value, dict) and isinstance(nested, type) and issubclass(nested, Section):
            value, inner = known_keys(nested, value, f"{prefix}{key}.")
            unknown += inner
        kept[key] = value
    return kept, unknown


def component_packages(architecture: ModelConfig, inputs: InputConfig) -> dict[str, str]:
    """{distribution: version} of the plugins providing a model's encoders and renderer."""
    from affectkit.registry import registry

    used = [("image_encoder", architecture.image_encoder.name), ("text_encoder", architecture.text_encoder.name), ("renderer", inputs.renderer.name)]
    return registry().packages(used)


def library_versions() -> dict[str, str]:
    """The installed versions of the libraries whose code a saved model runs through."""
    return {name: version for name, version in installed_versions(RECORDED_VERSIONS).items() if version}
