"""The plugin's own tests: affectkit's contract checks on each of its components, built
through the registry as a recipe builds them (``pip install .`` first)."""

from affectkit.registry import create
from affectkit.testing import check_image_encoder, check_prompt_augmenter


def test_tinycnn_keeps_the_image_encoder_contract():
    for channels in (1, 3):  # depth maps, normal maps
        check_image_encoder(create("image_encoder", "tinycnn", {"width": 8}, in_channels=channels), channels)


def test_scan_prompts_keep_the_prompt_augmenter_contract():
    augmenter = create("prompt_augmenter", "scan-prompts")
    check_prompt_augmenter(augmenter)  # the per-class prompts classification uses
    check_prompt_augmenter(augmenter, {"sex": "F"})  # a training scan's
