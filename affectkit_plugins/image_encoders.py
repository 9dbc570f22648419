"""Image encoders: ``timm`` (any timm backbone, the default) and ``clip`` (a CLIP image tower).

One instance embeds every rendered view. The input holds the stacked render maps
(``render.maps``: rgb, depth, normal, mask), so ``in_channels`` may differ from 3: the first
convolution is then adapted from 3-channel weights with :func:`timm.models.adapt_input_conv`
(one channel: the RGB filters are summed, i.e. the grey image replicated to RGB; ``C`` other
than 1 or 3: the RGB filters are repeated cyclically over the ``C`` channels and scaled by
``3 / C`` so activations keep their magnitude).

``timm`` takes ``pretrained: true`` (timm's hub weights) or the name of weights shipped
with affectkit: ``affectkit-faces``, a backbone pretrained on face geometry
(:mod:`affectkit_plugins.face_pretraining`), the recipes' default starting point.

With ``normalize`` (default) inputs are standardised with the mean and std the weights were
trained with (ImageNet for timm, OpenAI CLIP for ``clip``); for ``in_channels`` other than 3
every channel uses the average mean and std. Renders in [0, 1] then look like what a
pretrained network expects; for random initialisation it is a harmless fixed affine map.

``timm``'s ``style`` perturbs the channel statistics of the backbone's inner stages while
training (:mod:`affectkit_plugins.feature_styles`), for scans of other face models and scanners.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from pydantic import Field, field_validator
from torch import Tensor, nn

from affectkit import hookimpl
from affectkit.errors import PluginError
from affectkit.interfaces import ImageEncoder, Options
from affectkit.serve.hub import hub_out_of_reach, hub_unreachable
from affectkit_plugins.face_pretraining import WeightsFile, load_shipped
from affectkit_plugins.feature_styles import FeatureStyle, perturb_feature_styles
from affectkit_plugins.text_encoders import DEFAULT_CLIP, load_clip_tower

#: the default timm backbone: fast enough to train on two CPU cores at 96-128 px
DEFAULT_TIMM = "resnet10t"

#: OpenAI CLIP's pixel statistics (every CLIP checkpoint in transformers format uses them)
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


class _Normalize(nn.Module):
    """``(x - mean) / std`` per channel, with the statistics of 3-channel weights."""

    def __init__(self, in_channels: int, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        if in_channels != len(mean):
            mean, std = [sum(mean) / len(mean)] * in_channels, [sum(std) / len(std)] * in_channels
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)

    def forward(self, images: Tensor) -> Tensor:
        return (images - self.mean.to(images.dtype)) / self.std.to(images.dtype)


class TimmImageEncoder(ImageEncoder):
    """Any timm backbone, pooled features; randomly initialised or pretrained."""

    class Options(Options):
        model: str = Field(DEFAULT_TIMM, description="a timm model name (timm.list_models()), 'hf-hub:...' or 'local-dir:...'")
        pretrained: bool | WeightsFile | str = Field(
            False,
            union_mode="left_to_right",
            description="true: timm's pretrained weights (downloaded once from the Hugging Face hub); or the name of weights shipped with affectkit, e.g. affectkit-faces (pretrained on face geometry, offline), or the path of a .safetensors file written by tools/export_pretrained.py",
        )
        drop_rate: float = Field(0.0, ge=0.0, lt=1.0, description="dropout on the pooled features while training")
        normalize: bool = Field(True, description="standardise inputs with the weights' mean/std")
        style: FeatureStyle = Field(
            "off",
            description="while training, perturb the channel statistics after each inner stage of a convolutional backbone: 'mix' mixes every image's with another's of the batch (MixStyle), 'noise' draws them around their own (DSU); inference is untouched",
        )
        style_probability: float = Field(0.5, ge=0.0, le=1.0, description="how often a stage's statistics are perturbed, with style")

        @field_validator("model")
        @classmethod
        def _known(cls, name: str) -> str:
            """Unknown names are refused when the recipe is read, before anything renders."""
            import timm

            if ":" not in name and not timm.is_model(name):
                raise ValueError(f"unknown timm model {name!r}{_close_matches(name)}")
            return name

    @classmethod
    def without_starting_weights(cls, options: dict[str, Any]) -> dict[str, Any]:
        return {**options, "pretrained": False}

    def __init__(self, options: Options, in_channels: int) -> None:
        super().__init__(options, in_channels)
        import timm

        name = options.model
        unreachable = PluginError(
            f"the pretrained weights of timm model {name!r} could not be downloaded (no network, or "
            "HF_HUB_OFFLINE is set, and they are not in the local cache); set pretrained: false, or "
            "download them once while online (they are then cached under ~/.cache/huggingface)"
        )
        if options.pretrained is True and _weights_out_of_reach(name):
            raise unreachable
        try:
            self.model = timm.create_model(
                name, pretrained=options.pretrained is True, num_classes=0, in_chans=in_channels, drop_rate=options.drop_rate
            )
        except PluginError:
            raise
        except Exception as exc:
            if hub_unreachable(exc):
                raise unreachable from exc
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise PluginError(f"cannot create timm model {name!r} (pretrained={options.pretrained}): {first}") from exc
        if not isinstance(options.pretrained, bool):
            self._load_shipped(options.pretrained, in_channels)
        # models with a pre-logits head (MobileNetV3/V4, LCNet, GhostNet...) return more
        # features than ``num_features`` once the classifier is removed
        self.out_dim = int(getattr(self.model, "head_hidden_size", None) or self.model.num_features)
        cfg = getattr(self.model, "pretrained_cfg", None) or {}
        # ViT-style models with a fixed position grid get their input resized to it
        self.input_size = tuple(cfg["input_size"][-2:]) if cfg.get("fixed_input_size") and cfg.get("input_size") else None
        mean, std = cfg.get("mean", (0.485, 0.456, 0.406)), cfg.get("std", (0.229, 0.224, 0.225))
        self.normalize = _Normalize(in_channels, mean, std) if options.normalize else nn.Identity()
        if options.style != "off":
            perturb_feature_styles(self.model, options.style, options.style_probability, in_channels, self.input_size)

    def _load_shipped(self, weights: str | Path, in_channels: int) -> None:
        """Shipped weights (:mod:`affectkit_plugins.face_pretraining`), the first convolution
        adapted when the recipe's maps give other channels than they were trained on."""
        from timm.models import adapt_input_conv

        state, card = load_shipped(weights, self.options.model)
        if in_channels != card.in_channels:
            first = self.model.pretrained_cfg.get("first_conv", "conv1")
            first = first[0] if isinstance(first, (list, tuple)) else first
            key = f"{first}.weight"
            state[key] = adapt_input_conv(in_channels, state[key], base_chans=card.in_channels)
        self.model.load_state_dict(state)

    def forward(self, images: Tensor) -> Tensor:
        if self.input_size is not None and tuple(images.shape[-2:]) != self.input_size:
            images = F.interpolate(images, size=self.input_size, mode="bilinear", align_corners=False, antialias=True)
        return self.model(self.normalize(images))


def _weights_out_of_reach(name: str) -> bool:
    """Whether timm would have to download ``name``'s weights from the hub and cannot."""
    from timm.models import get_pretrained_cfg

    if name.startswith("hf-hub:"):
        return hub_out_of_reach(name.removeprefix("hf-hub:").split("@")[0])
    cfg = None if ":" in name else get_pretrained_cfg(name)
    return bool(cfg and cfg.hf_hub_id) and hub_out_of_reach(cfg.hf_hub_id, cfg.hf_hub_filename or "model.safetensors")


def _close_matches(name: str) -> str:
    """``"; close matches: a, b, c"`` from timm's model list, or a hint where none is close."""
    import timm

    names = timm.list_models()
    matches = difflib.get_close_matches(name, names, n=5, cutoff=0.6)
    stem = name.split(".")[0].rstrip("0123456789_")
    if len(matches) < 5 and len(stem) >= 3:
        matches += [n for n in timm.list_models(f"*{stem}*") if n not in matches][: 5 - len(matches)]
    if not matches:
        return "; see timm.list_models('*pattern*') for the names timm knows"
    return "; close matches: " + ", ".join(matches)


class CLIPImageEncoder(ImageEncoder):
    """Image tower of a transformers CLIP checkpoint (projected ``image_embeds``)."""

    class Options(Options):
        model: str = Field(DEFAULT_CLIP, description="hub name or a folder written by save_pretrained")
        normalize: bool = Field(True, description="standardise inputs with CLIP's pixel mean/std")

    def __init__(self, options: Options, in_channels: int) -> None:
        super().__init__(options, in_channels)
        from timm.models import adapt_input_conv

        self.model = load_clip_tower("vision", options.model)
        config = self.model.config
        if in_channels != config.num_channels:
            embeddings = self.model.vision_model.embeddings
            old = embeddings.patch_embedding
            new = nn.Conv2d(
                in_channels, old.out_channels, kernel_size=old.kernel_size, stride=old.stride, bias=old.bias is not None
            )
            with torch.no_grad():
                new.weight.copy_(adapt_input_conv(in_channels, old.weight, base_chans=old.in_channels))
                if old.bias is not None:
                    new.bias.copy_(old.bias)
            embeddings.patch_embedding = new
            config.num_channels = in_channels
        self.image_size = int(config.image_size)
        self.out_dim = int(config.projection_dim)
        self.normalize = _Normalize(in_channels, CLIP_MEAN, CLIP_STD) if options.normalize else nn.Identity()

    def forward(self, images: Tensor) -> Tensor:
        if images.shape[-2:] != (self.image_size, self.image_size):
            images = F.interpolate(images, size=(self.image_size, self.image_size), mode="bilinear", align_corners=False, antialias=True)
        return self.model(pixel_values=self.normalize(images)).image_embeds


@hookimpl
def register_image_encoders(register):
    register("timm", TimmImageEncoder)
    register("clip", CLIPImageEncoder)
