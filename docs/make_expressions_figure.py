"""Render docs/expressions.png: the six expressions of one ``facekit`` subject (intensity 4,
front view) as the clean model mesh and as the default scan realism delivers it, through
the built-in torch renderer, using only the public API."""

from __future__ import annotations

from pathlib import Path

import torch

from affectkit.registry import create
from affectkit.render.cameras import parse_views
from affectkit.render.view_pngs import save_grid

OUT = Path(__file__).parent / "expressions.png"


def main() -> Path:
    renderer = create("renderer", "torch", {"supersample": 2})
    rows, labels = [], []
    for realism, caption in ((False, "model"), (True, "scan")):
        dataset = create("dataset", "facekit", {"subjects": 1, "intensities": [4], "realism": realism})
        samples = dataset.samples()
        rendered = renderer.render([dataset.load(s) for s in samples], parse_views("front"), 256)
        rows.append(rendered.rgb[:, 0])
        labels += [f"{s.label} ({caption})" for s in samples]
    return save_grid(torch.cat(rows), OUT, columns=len(labels) // 2, labels=labels)


if __name__ == "__main__":
    print(main())
