"""An example third-party affectkit plugin, in one file.

It registers an image encoder, ``tinycnn``, and a prompt augmenter, ``scan-prompts``,
through affectkit's hooks; ``pyproject.toml`` makes this module an ``affectkit`` entry
point, so ``pip install .`` is all it takes for recipes to name them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import Field
from torch import Tensor, nn

from affectkit import hookimpl
from affectkit.interfaces import ImageEncoder, Options, PromptAugmenter


class TinyCNN(ImageEncoder):
    """A small CNN view encoder: stride-2 conv, batch-norm, ReLU blocks, then average pooling."""

    class Options(Options):
        width: int = Field(32, ge=4, le=512, description="channels of the first block; each next block doubles them")
        blocks: int = Field(3, ge=1, le=6, description="number of conv blocks (each halves the resolution)")

    options: Options

    def __init__(self, options: Options, in_channels: int) -> None:
        super().__init__(options, in_channels)
        layers: list[nn.Module] = []
        channels = in_channels
        for block in range(options.blocks):
            width = options.width * 2**block
            layers += [nn.Conv2d(channels, width, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True)]
            channels = width
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.out_dim = channels

    def forward(self, images: Tensor) -> Tensor:
        return self.features(images)


class ScanPrompts(PromptAugmenter):
    """Prompts that say the image is a 3D scan, with the subject's sex when it is known."""

    class Options(Options):
        templates: list[str] = Field(
            default_factory=lambda: ["a 3D scan of a {who} showing {label}", "a {label} expression on a scanned {who}"],
            min_length=1,
            description="templates with {label} and {who} (a person, a woman, a man)",
        )

    options: Options

    def prompts(self, label: str, attributes: Mapping[str, Any]) -> list[str]:
        who = {"F": "woman", "M": "man"}.get(str(attributes.get("sex", "")), "person")
        return [template.format(label=label, who=who) for template in self.options.templates]


@hookimpl
def register_image_encoders(register) -> None:
    register("tinycnn", TinyCNN)


@hookimpl
def register_prompt_augmenters(register) -> None:
    register("scan-prompts", ScanPrompts)
