"""Test-time augmentation: each scan scored as it is and mirrored, the probabilities averaged.

A face mirrored left to right shows the same expression, so a model should call both alike;
averaging the two removes what a model learnt of one side (a lopsided smile, a scanner that
lights one cheek). The mirror is made from the rendered views, not the mesh: with
orthographic cameras, the mirrored face seen from yaw ``a`` (and roll ``r``) is the face
seen from yaw ``-a`` (roll ``-r``), flipped left to right, with the x component of its
camera-space normals negated. It costs one more pass of the encoder and no rendering, and
it needs every view's mirror view among the views (``front``, ``left``, ``right`` have them).
Selected with ``render.test_time: [mirror]``, recorded with a model, used wherever it scores
(evaluation, cross-validation, predict, the app, exported files).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from affectkit.interfaces import RenderedViews
from affectkit.render.cameras import View


def mirror_partners(views: Sequence[View]) -> list[int] | None:
    """For each view, the index of its mirror view (yaw and roll negated); ``None`` when
    one has none."""
    partners = []
    for view in views:
        match = [j for j, other in enumerate(views) if (other.yaw, other.pitch, other.roll) == (-view.yaw, view.pitch, -view.roll)]
        if not match:
            return None
        partners.append(match[0])
    return partners


class MirroredViews:
    """``[..., V, C, H, W]`` views of a face -> the views of its mirror image."""

    def __init__(self, views: Sequence[View], maps: Sequence[str]) -> None:
        partners = mirror_partners(views)
        if partners is None:
            names = ", ".join(v.name for v in views)
            raise ValueError(f"mirror test-time augmentation needs each view's mirror view (yaw and roll negated) among the views; {names} lack one")
        self.partners = torch.tensor(partners)
        signs = []
        for name in maps:
            signs += [-1.0 if name == "normal" and channel == 0 else 1.0 for channel in range(RenderedViews.MAPS[name])]
        self.signs = torch.tensor(signs)

    def __call__(self, views: Tensor) -> Tensor:
        mirrored = views.index_select(-4, self.partners.to(views.device)).flip(-1)
        return mirrored * self.signs.to(views.device, views.dtype)[:, None, None]
