"""Render docs/expressions.png: the six expressions of one synthetic subject (intensity 4,
front view) through the built-in torch renderer, using only the public API."""

from __future__ import annotations

from pathlib import Path

import torch

from affectkit.registry import create
from affectkit.view_images import save_grid
from affectkit.views import parse_views

OUT = Path(__file__).parent / "expressions.png"


def main() -> Path:
    dataset = create("dataset", "synthetic", {"subjects": 1, "intensities": [4], "vertices": 20000})
    samples = dataset.samples()
    meshes = [dataset.load(s) for s in samples]
    rendered = create("renderer", "torch", {"supersample": 2}).render(meshes, parse_views("front,left"), 256)
    images = torch.cat([rendered.rgb[:, 0], rendered.rgb[:, 1]])
    labels = [s.label for s in samples] + [f"{s.label} (left)" for s in samples]
    return save_grid(images, OUT, columns=len(samples), labels=labels)


if __name__ == "__main__":
    print(main())
