"""Image and text encoders: a contract test over every registered one, then each built-in.

Checkpoints are tiny ones written to a temporary folder (the suite runs offline); MiniLM is
the real bundled model.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F

from affectkit.errors import PluginError
from affectkit.interfaces import TextEncoder
from affectkit.registry import registry
from affectkit.testing import check_image_encoder, check_text_encoder
from affectkit_plugins import image_encoders, text_encoders

QUICK = Path(__file__).parents[1] / "recipes" / "quick.yaml"

IMAGE_ENCODERS = registry().names("image_encoder")
TEXT_ENCODERS = registry().names("text_encoder")

# ---------------------------------------------------------------------------------------
# Tiny checkpoints
# ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer BertModel checkpoint with MiniLM's (BERT uncased) tokenizer files."""
    from transformers import BertConfig, BertModel

    folder = tmp_path_factory.mktemp("tiny-bert")
    config = BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, max_position_embeddings=128)
    torch.manual_seed(0)
    BertModel(config).save_pretrained(folder)
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(text_encoders.minilm_path() / name, folder / name)
    return folder


#: options each registered encoder is built with in the contract tests (small and offline);
#: a registered encoder without an entry fails its contract test
IMAGE_TEST_OPTIONS: dict[str, Callable[[pytest.FixtureRequest], dict[str, Any]]] = {
    "timm": lambda request: {},
    "clip": lambda request: {"model": str(request.getfixturevalue("tiny_clip"))},
}
TEXT_TEST_OPTIONS: dict[str, Callable[[pytest.FixtureRequest], dict[str, Any]]] = {
    "minilm": lambda request: {},
    "hf": lambda request: {"model": str(request.getfixturevalue("tiny_bert"))},
    "clip": lambda request: {"model": str(request.getfixturevalue("tiny_clip"))},
}


def _test_options(table: dict[str, Callable], kind: str, name: str, request: pytest.FixtureRequest) -> dict[str, Any]:
    if name not in table:
        pytest.fail(f"{kind} {name!r} is registered but has no entry in this file's test-options table")
    return table[name](request)


@pytest.fixture(scope="module")
def text_encoder_cache() -> dict[str, TextEncoder]:
    return {}


def _text_encoder(name: str, request: pytest.FixtureRequest, cache: dict[str, TextEncoder]) -> TextEncoder:
    if name not in cache:
        cache[name] = registry().create("text_encoder", name, _test_options(TEXT_TEST_OPTIONS, "text_encoder", name, request))
    return cache[name]


@pytest.fixture(scope="module")
def minilm(request: pytest.FixtureRequest, text_encoder_cache: dict[str, TextEncoder]) -> TextEncoder:
    return _text_encoder("minilm", request, text_encoder_cache)


# ---------------------------------------------------------------------------------------
# Contracts
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("channels", [3, 1, 4])
@pytest.mark.parametrize("name", IMAGE_ENCODERS)
def test_every_image_encoder_embeds_and_backpropagates(name: str, channels: int, request: pytest.FixtureRequest) -> None:
    torch.manual_seed(0)
    encoder = registry().create("image_encoder", name, _test_options(IMAGE_TEST_OPTIONS, "image_encoder", name, request), in_channels=channels)
    check_image_encoder(encoder, channels)


@pytest.mark.parametrize("name", TEXT_ENCODERS)
def test_every_text_encoder_embeds_strings(name: str, request: pytest.FixtureRequest, text_encoder_cache: dict) -> None:
    check_text_encoder(_text_encoder(name, request, text_encoder_cache))


# ---------------------------------------------------------------------------------------
# timm
# ---------------------------------------------------------------------------------------


def test_timm_default_and_options() -> None:
    encoder = registry().create("image_encoder", "timm", {"drop_rate": 0.3}, in_channels=4)
    assert encoder.options.model == image_encoders.DEFAULT_TIMM and not encoder.options.pretrained
    assert encoder.out_dim == encoder.model.num_features
    assert encoder.model.drop_rate == 0.3
    first_conv = dict(encoder.model.named_modules())[encoder.model.pretrained_cfg["first_conv"]]
    assert first_conv.in_channels == 4


@pytest.mark.parametrize(
    "model",
    [
        "mobilenetv3_small_050",  # a pre-logits head: out_dim is head_hidden_size, not num_features
        "vit_tiny_patch16_224",  # a fixed input size: views are resized to 224 px
    ],
)
def test_timm_other_models(model: str) -> None:
    encoder = registry().create("image_encoder", "timm", {"model": model}, in_channels=3)
    assert encoder(torch.rand(2, 3, 64, 64)).shape == (2, encoder.out_dim)


def test_timm_unknown_model_names_close_matches() -> None:
    with pytest.raises(PluginError, match=r"unknown timm model 'resnet10'.*resnet10t"):
        registry().create("image_encoder", "timm", {"model": "resnet10"}, in_channels=3)


def test_timm_pretrained_offline_is_one_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # read once at import
    with pytest.raises(PluginError, match=r"weights of timm model 'resnet10t' could not be downloaded.*pretrained: false") as info:
        registry().create("image_encoder", "timm", {"model": "resnet10t", "pretrained": True}, in_channels=3)
    assert "Traceback" not in str(info.value)


def test_timm_normalizes_with_pretrained_statistics() -> None:
    encoder = registry().create("image_encoder", "timm", in_channels=3)
    torch.testing.assert_close(encoder.normalize.mean.flatten(), torch.tensor(encoder.model.pretrained_cfg["mean"]))
    gray = registry().create("image_encoder", "timm", in_channels=1)
    assert gray.normalize.mean.shape == (1, 1, 1, 1)
    assert isinstance(registry().create("image_encoder", "timm", {"normalize": False}, in_channels=3).normalize, torch.nn.Identity)


@pytest.mark.parametrize("style", ["mix", "noise"])
def test_timm_feature_styles_change_training_only(style: str) -> None:
    """Perturbed feature statistics reshape a training batch and leave inference alone."""
    torch.manual_seed(0)
    styled = registry().create("image_encoder", "timm", {"style": style, "style_probability": 1.0}, in_channels=3)
    plain = registry().create("image_encoder", "timm", in_channels=3)
    plain.load_state_dict(styled.state_dict())
    images = torch.rand(4, 3, 64, 64)
    torch.testing.assert_close(styled.eval()(images), plain.eval()(images))
    trained = styled.train()(images)
    assert not torch.allclose(trained, plain.train()(images))
    trained.sum().backward()
    assert all(p.grad is not None for p in styled.parameters() if p.requires_grad)
    never = registry().create("image_encoder", "timm", {"style": style, "style_probability": 0.0}, in_channels=3)
    never.load_state_dict(plain.state_dict())
    torch.testing.assert_close(never.train()(images), plain.train()(images))


def test_timm_feature_styles_refuse_a_token_backbone() -> None:
    with pytest.raises(PluginError, match=r"style 'mix' needs a convolutional timm backbone; 'vit_tiny_patch16_224' has token sequences.*style: off"):
        registry().create("image_encoder", "timm", {"model": "vit_tiny_patch16_224", "style": "mix"}, in_channels=3)


# ---------------------------------------------------------------------------------------
# CLIP (both towers)
# ---------------------------------------------------------------------------------------


def test_clip_towers_match_the_reference_model(tiny_clip: Path) -> None:
    from transformers import AutoTokenizer, CLIPModel

    reference = CLIPModel.from_pretrained(tiny_clip).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_clip)
    texts = ["a happy face", "a surprised young woman"]
    text = registry().create("text_encoder", "clip", {"model": str(tiny_clip)}).eval()
    assert text.out_dim == 24
    batch = tokenizer(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        expected = reference.text_projection(reference.text_model(**batch).pooler_output)
        torch.testing.assert_close(text(texts), expected)

    image = registry().create("image_encoder", "clip", {"model": str(tiny_clip)}, in_channels=3).eval()
    assert image.out_dim == 24 and image.image_size == 32
    pixels = torch.rand(2, 3, 64, 64)
    resized = F.interpolate(pixels, size=(32, 32), mode="bilinear", align_corners=False, antialias=True)
    mean = torch.tensor(image_encoders.CLIP_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(image_encoders.CLIP_STD).view(1, 3, 1, 1)
    with torch.no_grad():
        expected = reference.visual_projection(reference.vision_model(pixel_values=(resized - mean) / std).pooler_output)
        torch.testing.assert_close(image(pixels), expected)


def test_clip_image_tower_adapts_the_patch_embedding(tiny_clip: Path) -> None:
    rgb = registry().create("image_encoder", "clip", {"model": str(tiny_clip), "normalize": False}, in_channels=3).eval()
    gray = registry().create("image_encoder", "clip", {"model": str(tiny_clip), "normalize": False}, in_channels=1).eval()
    weight = rgb.model.vision_model.embeddings.patch_embedding.weight
    torch.testing.assert_close(gray.model.vision_model.embeddings.patch_embedding.weight, weight.sum(1, keepdim=True))
    image = torch.rand(2, 1, 32, 32)
    with torch.no_grad():  # one channel == the grey image replicated to RGB
        torch.testing.assert_close(gray(image), rgb(image.expand(-1, 3, -1, -1)))
    five = registry().create("image_encoder", "clip", {"model": str(tiny_clip)}, in_channels=5)
    adapted = five.model.vision_model.embeddings.patch_embedding.weight
    torch.testing.assert_close(adapted[:, 3:5], weight[:, 0:2] * 3 / 5)


def test_clip_rejects_a_non_clip_checkpoint(tiny_bert: Path) -> None:
    with pytest.raises(PluginError, match="BertConfig checkpoint, not a CLIP one"):
        registry().create("text_encoder", "clip", {"model": str(tiny_bert)})


# ---------------------------------------------------------------------------------------
# MiniLM and hf
# ---------------------------------------------------------------------------------------


def test_minilm_embeddings_are_meaningful(minilm: TextEncoder) -> None:
    assert minilm.out_dim == 384
    happy, smiling, angry = minilm.eval()(["a happy face", "a smiling person", "an angry face"])
    torch.testing.assert_close(happy.norm(), torch.tensor(1.0))
    assert happy @ smiling > happy @ angry + 0.05
    assert minilm([]).shape == (0, 384)


def test_minilm_has_no_model_option() -> None:
    with pytest.raises(PluginError, match="invalid options for text_encoder 'minilm'.*model"):
        registry().create("text_encoder", "minilm", {"model": "bert-base-uncased"})


def test_hf_pooling(tiny_bert: Path) -> None:
    from transformers import AutoModel, AutoTokenizer

    model, tokenizer = AutoModel.from_pretrained(tiny_bert).eval(), AutoTokenizer.from_pretrained(tiny_bert)
    texts = ["a sad face", "a strongly surprised older man"]
    batch = tokenizer(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state
        cls = registry().create("text_encoder", "hf", {"model": str(tiny_bert), "pooling": "cls"}).eval()
        torch.testing.assert_close(cls(texts), hidden[:, 0])
        mean = registry().create("text_encoder", "hf", {"model": str(tiny_bert), "normalize": True}).eval()
        short = int(batch["attention_mask"][0].sum())
        torch.testing.assert_close(mean(texts)[0], F.normalize(hidden[0, :short].mean(0), dim=0))
    assert mean.out_dim == 32


def test_hf_truncates_to_max_length(tiny_bert: Path) -> None:
    encoder = registry().create("text_encoder", "hf", {"model": str(tiny_bert), "max_length": 500})
    assert encoder.max_length == 128  # the checkpoint's position embeddings
    assert encoder(["word " * 400]).shape == (1, 32)


def test_hf_hub_name_offline_is_one_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(PluginError, match=r"cannot load 'affectkit-test/no-such-model': not a local folder and the Hugging Face hub is unreachable"):
        registry().create("text_encoder", "hf", {"model": "affectkit-test/no-such-model"})


@pytest.fixture
def hub_down(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Online mode, an empty cache, and the hub's address a closed local port: a machine
    whose network is down, as users without HF_HUB_OFFLINE meet it."""
    import socket

    import huggingface_hub.constants

    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", f"http://127.0.0.1:{port}")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    for name in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize(
    ("kind", "name", "options", "message"),
    [
        ("text_encoder", "hf", {"model": "affectkit-test/no-such-model"}, "the Hugging Face hub is unreachable"),
        ("image_encoder", "timm", {"model": "resnet10t", "pretrained": True}, "could not be downloaded"),
    ],
)
def test_hub_names_fail_at_once_when_the_network_is_down(
    hub_down: None, kind: str, name: str, options: dict, message: str, capfd: pytest.CaptureFixture[str]
) -> None:
    """Uncached hub names are checked before the download: the client's minute of retries
    (``Retrying in 8s [Retry 5/5]``) never starts."""
    kwargs = {"in_channels": 3} if kind == "image_encoder" else {}
    with pytest.raises(PluginError, match=message):
        registry().create(kind, name, options, **kwargs)
    assert "Retrying" not in "".join(capfd.readouterr())


def test_recipe_validate_checks_timm_names(tmp_path: Path) -> None:
    """An unknown backbone is refused by ``recipe validate``, before any run starts."""
    result = subprocess.run(
        [sys.executable, "-m", "affectkit", "recipe", "validate", str(QUICK), "--set", "model.image_encoder.options.model=resnet10x"],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 1, result.stderr
    assert "model.image_encoder: invalid options for image_encoder 'timm': model: unknown timm model 'resnet10x'; close matches: resnet10t" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("source", ["./no/such/folder", "/no/such/folder"])
def test_hf_missing_folder(source: str) -> None:
    with pytest.raises(PluginError, match=f"cannot load '{source}': no such folder"):
        registry().create("text_encoder", "hf", {"model": source})


def test_hf_incomplete_folder(tmp_path: Path, tiny_bert: Path) -> None:
    for name in ("config.json", "vocab.txt", "tokenizer.json", "tokenizer_config.json"):
        shutil.copy(tiny_bert / name, tmp_path / name)
    with pytest.raises(PluginError, match="not a complete transformers checkpoint"):
        registry().create("text_encoder", "hf", {"model": str(tmp_path)})
