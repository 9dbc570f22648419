"""From a recipe's sections to components: every builder in one place, as timm's
``_factory.py``. Each takes its own section (or plain arguments), never the whole recipe,
so inference builds from a checkpoint's inference config what training built from the
recipe."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from torch import Tensor, nn

from affectkit.data.action_units import au_prompts
from affectkit.errors import AffectkitError
from affectkit.interfaces import Dataset, TextEncoder, TrainingCallback, ViewAugmentation
from affectkit.model.affectvlm import AffectVLM, apply_freezing
from affectkit.model.inference_config import InputConfig
from affectkit.model.objective import Objective
from affectkit.model.prompting import PromptBank
from affectkit.recipe import ComponentRef, EncoderRef, LossConfig, ModelConfig, PromptsConfig
from affectkit.registry import registry
from affectkit.render.cameras import parse_views
from affectkit.render.render_cache import RenderCache, renderer_id


def build_dataset(ref: ComponentRef) -> Dataset:
    """A registered dataset with its options (``data.dataset``, or a ``--data`` spec)."""
    return registry().create("dataset", ref.name, ref.options)


def build_render_cache(inputs: InputConfig, cache_dir: str | Path | None = None, device: str = "cpu") -> RenderCache:
    """The renderer ``inputs`` names, behind a render cache in ``cache_dir`` (``None``: none)."""
    ref = inputs.renderer
    renderer = registry().create("renderer", ref.name, ref.options)
    root = Path(cache_dir) if cache_dir is not None else None
    return RenderCache(renderer, renderer_id(renderer, ref.name), parse_views(inputs.views), inputs.size, root, device=device, frame=inputs.frame)


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


def build_callbacks(refs: Sequence[ComponentRef]) -> list[TrainingCallback]:
    """The training callbacks of ``train.callbacks``, in order."""
    reg = registry()
    return [reg.create("callback", ref.name, ref.options, where=f"train.callbacks.{i}") for i, ref in enumerate(refs)]


class DeferredTextEncoder(TextEncoder):
    """A frozen text tower built on first use. A model loaded with its class prompts'
    features (stored in its checkpoint) runs no text encoder until a new prompt comes, so
    loading it skips importing and reading one (seconds on every start of a script)."""

    def __init__(self, ref: EncoderRef, out_dim: int) -> None:
        nn.Module.__init__(self)
        self.ref = ref
        self.out_dim = out_dim
        self._built: list[TextEncoder] = []  # a list: not a submodule, so no state and no parameters

    def forward(self, texts: Sequence[str]) -> Tensor:
        if not self._built:
            encoder = registry().create("text_encoder", self.ref.name, self.ref.options)
            if encoder.out_dim != self.out_dim:
                raise AffectkitError(
                    f"text encoder {self.ref.name!r} gives {encoder.out_dim}-d features, the checkpoint's stored ones are {self.out_dim}-d"
                )
            self._built.append(encoder.requires_grad_(False).eval())
        return self._built[0](texts)


def _weights_follow(kind: str, ref: EncoderRef) -> EncoderRef:
    """``ref`` with the encoder's starting weights switched off
    (:meth:`~affectkit.interfaces.Encoder.without_starting_weights`): a checkpoint's weights
    replace them anyway."""
    encoder = registry().get(kind, ref.name).cls
    return ref.model_copy(update={"options": encoder.without_starting_weights(dict(ref.options))})


def build_model(
    cfg: ModelConfig,
    num_views: int,
    in_channels: int,
    num_classes: int | None = None,
    text_dim: int | None = None,
    weights_follow: bool = False,
    action_units: int = 0,
) -> AffectVLM:
    """The model a recipe's ``model`` section (or a checkpoint's architecture) describes,
    with its towers frozen as it says (``num_classes``: how many labels a learned
    classifier scores; ``action_units``: how many AUs it learns, 0 for none).
    ``weights_follow``: a checkpoint's weights will be loaded, so no encoder fetches
    pretrained ones; ``text_dim``: the text tower is frozen and its features are at hand,
    so it is built only when a new prompt needs it."""
    reg = registry()
    image_ref, text_ref = (_weights_follow("image_encoder", cfg.image_encoder), _weights_follow("text_encoder", cfg.text_encoder)) if weights_follow else (cfg.image_encoder, cfg.text_encoder)
    image = reg.create("image_encoder", image_ref.name, image_ref.options, in_channels=in_channels)
    apply_freezing(image, cfg.image_encoder)
    if text_dim is not None:
        text: TextEncoder = DeferredTextEncoder(text_ref, text_dim)
    else:
        text = reg.create("text_encoder", text_ref.name, text_ref.options)
        apply_freezing(text, cfg.text_encoder)
    if cfg.classifier == "learned" and num_classes is None:
        raise AffectkitError("model.classifier: learned needs the number of classes to build its head")
    learned = num_classes if cfg.classifier == "learned" else None
    return AffectVLM(image, text, num_views, cfg.embed_dim, cfg.fusion, cfg.init_temperature, learned, action_units, cfg.action_units == "readout")


def build_au_prompts(prompts: PromptsConfig, codes: Sequence[int]) -> list[list[str]]:
    """The prompt ensemble of each action unit of ``codes``, as ``prompts.action_units`` words them."""
    words = prompts.action_units
    return au_prompts(codes, words.templates, words.descriptions)
