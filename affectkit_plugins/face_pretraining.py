"""Image-encoder weights pretrained on face geometry, shipped inside the package.

Real 3D FER datasets are small (BU-3DFE trains on about 54 people per fold), and an encoder
learnt from scratch on so few faces has seen too few identities to tell expression from
identity. ``affectkit-faces`` is a timm backbone pretrained on thousands of rendered scans
of hundreds of people from both embedded face generators (``facekit`` and ``synthetic``),
all intensities, scan realism on: fine-tuning from it is the sim-to-real lever
(docs/benchmarks.md, ablations). Select it with
``model.image_encoder.options.pretrained: affectkit-faces``.

Each weights file ``weights/<name>.safetensors`` (float16) has a card ``<name>.json``
beside it: the timm model it fits, the channels it was trained on, the recipe and seed
that reproduce it, and the file's SHA-256, checked on every load. They are written by
``tools/export_pretrained.py`` from a finished ``recipes/pretrain-faces.yaml`` run.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator
from safetensors.torch import load_file, save_file
from torch import Tensor

from affectkit.errors import PluginError
from affectkit.interfaces import ResolvedPath
from affectkit.model.digests import file_sha256

WEIGHTS_DIR = Path(__file__).parent / "weights"


def _safetensors(path: Path) -> Path:
    if path.suffix != ".safetensors":
        raise ValueError(f"{path.name} is not a .safetensors file")
    return path


#: an option naming a weights file of :func:`export` by its path (absolute once the recipe is read)
WeightsFile = Annotated[ResolvedPath, AfterValidator(_safetensors)]


@dataclass(frozen=True)
class WeightsCard:
    """What a shipped weights file is and how it was made."""

    name: str
    model: str
    in_channels: int
    maps: list[str]
    size: int
    recipe: str
    seed: int
    sha256: str
    notes: str = ""


def shipped_names() -> list[str]:
    return sorted(path.stem for path in WEIGHTS_DIR.glob("*.json"))


def load_shipped(weights: str | Path, model: str) -> tuple[dict[str, Tensor], WeightsCard]:
    """The float32 state dict of ``weights`` for timm model ``model``: shipped weights by
    name, or a ``.safetensors`` file of :func:`export` (its card beside it) by path, as a
    pretraining of your own or one that leaves a face model out (benchmarks/transfer.py)."""
    if isinstance(weights, Path):
        path, card_path = weights, weights.with_suffix(".json")
        if not path.is_file() or not card_path.is_file():
            raise PluginError(f"image encoder option pretrained: {path} needs the weights file and its card {card_path.name} beside it")
    else:
        card_path = WEIGHTS_DIR / f"{weights}.json"
        path = WEIGHTS_DIR / f"{weights}.safetensors"
        if weights not in shipped_names():
            shipped = ", ".join(shipped_names()) or "none"
            raise PluginError(
                f"image encoder option pretrained: {weights!r} names no shipped weights (shipped: {shipped}; "
                "or true/false, or the path of a .safetensors file written by tools/export_pretrained.py)"
            )
    card = WeightsCard(**json.loads(card_path.read_text()))
    if card.model != model:
        raise PluginError(
            f"image encoder option pretrained: {str(weights)!r} holds weights for timm model {card.model!r}, not {model!r}; "
            f"set model: {card.model}"
        )
    if not path.is_file() or file_sha256(path) != card.sha256:
        again = "export them again (tools/export_pretrained.py)" if isinstance(weights, Path) else "reinstall affectkit"
        raise PluginError(f"pretrained weights {path} are missing or damaged (SHA-256 differs from {card_path}); {again}")
    return {key: value.float() if value.is_floating_point() else value for key, value in load_file(path).items()}, card


def export(state: dict[str, Tensor], card: WeightsCard, directory: Path = WEIGHTS_DIR) -> Path:
    """Write ``state`` as ``<name>.safetensors`` (floating tensors in float16) and its card;
    returns the weights path."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{card.name}.safetensors"
    half = {key: (value.half() if value.is_floating_point() else value).detach().contiguous() for key, value in state.items()}
    save_file(half, str(path))
    card = WeightsCard(**{**asdict(card), "sha256": file_sha256(path)})
    (directory / f"{card.name}.json").write_text(json.dumps(asdict(card), indent=1) + "\n")
    return path


def export_run(model_dir: Path, name: str, recipe: str, directory: Path = WEIGHTS_DIR) -> Path:
    """Export the timm image encoder of a finished pretraining run's model folder as weights
    ``name`` (:func:`export`), its card filled from the run; returns the weights path."""
    from affectkit.model.checkpoint import load_checkpoint
    from affectkit_plugins.image_encoders import DEFAULT_TIMM

    model, meta = load_checkpoint(model_dir)
    encoder = meta.inference.architecture.image_encoder
    if encoder.name != "timm":
        raise PluginError(f"{model_dir}: shipped weights are for the timm image encoder, not {encoder.name!r}")
    if meta.recipe is None:
        raise PluginError(f"{model_dir}: its training recipe no longer validates, so the card could not say what made the weights")
    card = WeightsCard(
        name=name,
        model=encoder.options.get("model", DEFAULT_TIMM),
        in_channels=meta.in_channels,
        maps=list(meta.inference.input.maps),
        size=meta.inference.input.size,
        recipe=recipe,
        seed=meta.recipe.seed,
        sha256="",
        notes=f"{len(meta.history)} epochs; held-out accuracy of the pretraining run {meta.metrics['val_accuracy']:.4f}",
    )
    return export(model.image_encoder.model.state_dict(), card, directory)

