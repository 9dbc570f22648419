"""Rendered views as PNG files, for looking at what a renderer produced.

:func:`write_view_pngs` writes one image per view and map of one mesh;
:func:`save_grid` tiles RGB images into one picture (the README's six expressions).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw
from torch import Tensor

from affectkit.interfaces import RenderedViews
from affectkit.render.cameras import View


def display_map(rendered: RenderedViews, name: str, index: int = 0) -> Tensor:
    """Map ``name`` of mesh ``index`` as displayable RGB ``[V, 3, H, W]`` in [0, 1].

    rgb as is; depth with the nearest visible point white, the farthest dark grey and the
    background black (per view); normals as ``(n + 1) / 2`` on a black background; mask
    white on black.
    """
    if name not in RenderedViews.MAPS:
        raise ValueError(f"unknown map {name!r}; allowed: {', '.join(RenderedViews.MAPS)}")
    mask = rendered.mask[index].detach().float().cpu() > 0.5  # [V, 1, H, W]
    data = getattr(rendered, name)[index].detach().float().cpu()
    if name == "rgb":
        image = data
    elif name == "normal":
        image = (data + 1.0) / 2.0 * mask
    elif name == "mask":
        image = data.expand(-1, 3, -1, -1)
    else:
        big = torch.finfo(data.dtype).max
        near = torch.where(mask, data, big).amin(dim=(1, 2, 3), keepdim=True)
        far = torch.where(mask, data, -big).amax(dim=(1, 2, 3), keepdim=True)
        scaled = 1.0 - 0.8 * (data - near) / (far - near).clamp_min(1e-6)
        image = (scaled * mask).expand(-1, 3, -1, -1)
    return image.clamp(0.0, 1.0)


def write_view_pngs(
    rendered: RenderedViews,
    views: Sequence[View],
    out_dir: str | Path,
    index: int = 0,
    maps: Sequence[str] = ("rgb", "depth", "normal", "mask"),
) -> list[Path]:
    """Write ``{view.name}_{map}.png`` for every view and map of mesh ``index``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if len(views) != rendered.rgb.shape[1]:
        raise ValueError(f"{len(views)} views named but the images hold {rendered.rgb.shape[1]}")
    written = []
    for name in maps:
        images = display_map(rendered, name, index)
        for view, image in zip(views, images):
            path = out_dir / f"{view.name}_{name}.png"
            _to_pil(image).save(path)
            written.append(path)
    return written


def save_grid(
    images: Tensor,
    path: str | Path,
    columns: int | None = None,
    labels: Sequence[str] | None = None,
    padding: int = 4,
) -> Path:
    """Tile RGB ``images`` ``[N, 3, H, W]`` in [0, 1] row by row into one PNG.

    ``columns`` defaults to a near-square layout; ``labels`` (one per image) are written
    under each tile; tiles are separated by ``padding`` white pixels.
    """
    if images.ndim != 4 or images.shape[1] != 3 or images.shape[0] == 0:
        raise ValueError(f"images must be [N, 3, H, W] with N >= 1, got {tuple(images.shape)}")
    n, _, h, w = images.shape
    if labels is not None and len(labels) != n:
        raise ValueError(f"{n} images but {len(labels)} labels")
    columns = columns or math.ceil(math.sqrt(n))
    rows = math.ceil(n / columns)
    caption = 14 if labels else 0
    grid = Image.new("RGB", (columns * (w + padding) + padding, rows * (h + caption + padding) + padding), "white")
    draw = ImageDraw.Draw(grid)
    for i, image in enumerate(images.detach().float().cpu()):
        left = padding + (i % columns) * (w + padding)
        top = padding + (i // columns) * (h + caption + padding)
        grid.paste(_to_pil(image), (left, top))
        if labels:
            draw.text((left + 2, top + h + 1), str(labels[i]), fill="black")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    grid.save(path)
    return path


def _to_pil(image: Tensor) -> Image.Image:
    array = (image.clamp(0.0, 1.0) * 255.0).round().to(torch.uint8).permute(1, 2, 0).numpy()
    return Image.fromarray(np.ascontiguousarray(array))
