"""Export a finished pretraining run's image encoder as shipped weights.

    affectkit run recipes/pretrain-faces.yaml
    python tools/export_pretrained.py runs/pretrain-faces/model [--name affectkit-faces]

writes ``affectkit_plugins/weights/<name>.safetensors`` (float16, the timm backbone only) and its
card ``<name>.json`` (model, channels, recipe, seed, SHA-256), which
``model.image_encoder.options.pretrained: <name>`` then loads
(:mod:`affectkit_plugins.face_pretraining`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from affectkit.checkpoint import load_checkpoint
from affectkit_plugins.face_pretraining import WEIGHTS_DIR, WeightsCard, export
from affectkit_plugins.image_encoders import DEFAULT_TIMM


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", type=Path, help="the exported model folder of a pretraining run")
    parser.add_argument("--name", default="affectkit-faces")
    parser.add_argument("--recipe", default="recipes/pretrain-faces.yaml", help="the recipe the run used, for the card")
    parser.add_argument("--out", type=Path, default=WEIGHTS_DIR)
    args = parser.parse_args()
    model, meta = load_checkpoint(args.checkpoint)
    encoder = meta.inference.architecture.image_encoder
    if encoder.name != "timm":
        parser.error(f"{args.checkpoint}: shipped weights are for the timm image encoder, not {encoder.name!r}")
    card = WeightsCard(
        name=args.name,
        model=encoder.options.get("model", DEFAULT_TIMM),
        in_channels=meta.in_channels,
        maps=list(meta.recipe.render.maps),
        size=meta.recipe.render.size,
        recipe=args.recipe,
        seed=meta.recipe.seed,
        sha256="",
        notes=f"{len(meta.history)} epochs; held-out accuracy of the pretraining run {meta.metrics['val_accuracy']:.4f}",
    )
    path = export(model.image_encoder.model.state_dict(), card, args.out)
    print(f"{path} ({path.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
