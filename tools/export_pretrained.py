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

from affectkit.errors import AffectkitError
from affectkit_plugins.face_pretraining import WEIGHTS_DIR, export_run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", type=Path, help="the exported model folder of a pretraining run")
    parser.add_argument("--name", default="affectkit-faces")
    parser.add_argument("--recipe", default="recipes/pretrain-faces.yaml", help="the recipe the run used, for the card")
    parser.add_argument("--out", type=Path, default=WEIGHTS_DIR)
    args = parser.parse_args()
    try:
        path = export_run(args.checkpoint, args.name, args.recipe, args.out)
    except AffectkitError as exc:
        parser.error(str(exc))
    print(f"{path} ({path.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
