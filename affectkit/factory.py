"""From a recipe's sections to components: every builder in one place, as timm's
``_factory.py``. Each takes its own section (or plain arguments), never the whole recipe,
so inference builds from a checkpoint's inference config what training built from the
recipe."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from affectkit.cameras import parse_views
from affectkit.errors import AffectkitError
from affectkit.inference_config import InputConfig
from affectkit.interfaces import Dataset, ViewAugmentation
from affectkit.model import AffectVLM, apply_freezing
from affectkit.objective import Objective
from affectkit.prompting import PromptBank
from affectkit.recipe import ComponentRef, LossConfig, ModelConfig, PromptsConfig
from affectkit.registry import registry
from affectkit.render_cache import RenderCache, renderer_id


def build_dataset(ref: ComponentRef) -> Dataset:
    """A registered dataset with its options (``data.dataset``, or a ``--data`` spec)."""
    return registry().create("dataset", ref.name, ref.options)


def build_render_cache(inputs: InputConfig, cache_dir: str | Path | None = None, device: str = "cpu") -> RenderCache:
    """The renderer ``inputs`` names, behind a render cache in ``cache_dir`` (``None``: none)."""
    ref = inputs.renderer
    renderer = registry().create("renderer", ref.name, ref.options)
    root = Path(cache_dir) if cache_dir is not None else None
    return RenderCache(renderer, renderer_id(renderer, ref.name), parse_views(inputs.views), inputs.size, root, device=device)


def build_prompt_bank(prompts: PromptsConfig) -> PromptBank:
    """The prompt augmenters of a recipe's ``prompts`` section."""
    reg = registry()
    return PromptBank([reg.create("prompt_augmenter", ref.name, ref.options) for ref in prompts.augmenters])


def build_objective(loss: LossConfig) -> Objective:
    """The weighted loss terms of a recipe's ``loss`` section."""
    return Objective(loss.terms)


def build_augmentations(refs: Sequence[ComponentRef]) -> list[ViewAugmentation]:
    """The view augmentations of ``train.augmentations``, in order."""
    reg = registry()
    return [reg.create("view_augmentation", ref.name, ref.options, where=f"train.augmentations.{i}") for i, ref in enumerate(refs)]


def build_model(cfg: ModelConfig, num_views: int, in_channels: int, num_classes: int | None = None) -> AffectVLM:
    """The model a recipe's ``model`` section (or a checkpoint's architecture) describes,
    with its towers frozen as it says (``num_classes``: how many labels a learned
    classifier scores)."""
    reg = registry()
    image = reg.create("image_encoder", cfg.image_encoder.name, cfg.image_encoder.options, in_channels=in_channels)
    text = reg.create("text_encoder", cfg.text_encoder.name, cfg.text_encoder.options)
    apply_freezing(image, cfg.image_encoder)
    apply_freezing(text, cfg.text_encoder)
    if cfg.classifier == "learned" and num_classes is None:
        raise AffectkitError("model.classifier: learned needs the number of classes to build its head")
    learned = num_classes if cfg.classifier == "learned" else None
    return AffectVLM(image, text, num_views, cfg.embed_dim, cfg.fusion, cfg.init_temperature, learned)
