"""Built-in view augmentations: ``mixed`` (independent geometric transforms per view),
``viewmix`` (swap a view with the same view of another sample of the same emotion) and
``regionmask`` (hide the upper or the lower face in every view of a sample).

Both take ``views`` ``[B, V, C, H, W]`` with any number of stacked channels (rgb, depth,
normal, mask) and change geometry only, so every channel of an image moves alike. Random
parameters are drawn from the ``generator`` passed in (on the generator's device, then
moved to the views' device), so a seeded generator reproduces an augmentation exactly.

Note: flipping or rotating an image of camera-space normals moves the pixels but does not
change the stored normal vectors (a flipped normal map keeps its x components). The maps
stay internally consistent as textures, not as geometry; no channel layout is assumed.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field, model_validator
from torch import Tensor

from affectkit import hookimpl
from affectkit.interfaces import Options as BaseOptions
from affectkit.interfaces import ViewAugmentation
from affectkit.render.cameras import FACE_CENTRE_FROM_NOSE_TIP_MM, FACE_RADIUS_MM

__all__ = ["MixedViewAugmentation", "RegionMask", "ViewMix", "affine_grid", "random_affine_matrices"]

#: the image row of the nose tip as a fraction of the height from the top, in every view
#: of a face placed in the canonical frame (affectkit.render.cameras): the line between the upper
#: face (brows, eyes) and the lower face (cheeks, mouth, chin)
NOSE_TIP_ROW = 0.5 + FACE_CENTRE_FROM_NOSE_TIP_MM[1] / FACE_RADIUS_MM / 2


def _uniform(n: int, low: float, high: float, generator: torch.Generator) -> Tensor:
    return low + (high - low) * torch.rand(n, generator=generator, device=generator.device)


def random_affine_matrices(
    n: int,
    height: int,
    width: int,
    *,
    flip_p: float,
    degrees: float,
    scale: tuple[float, float],
    translate: float,
    generator: torch.Generator,
) -> Tensor:
    """``n`` independent random affine matrices ``[n, 2, 3]`` for ``F.affine_grid``.

    Each maps output to input coordinates (normalised to [-1, 1]): flip with probability
    ``flip_p``, rotation uniform in ``[-degrees, degrees]`` (about the image centre, in
    pixel space so non-square images are not sheared), zoom uniform in ``scale`` (>1 zooms
    in, i.e. a crop; <1 zooms out, padding with zeros), shift uniform in
    ``[-translate, translate]`` of the image size along each axis.
    """
    flip = torch.rand(n, generator=generator, device=generator.device) < flip_p
    angle = _uniform(n, -degrees, degrees, generator) * (math.pi / 180.0)
    zoom = _uniform(n, scale[0], scale[1], generator)
    shift = _uniform(2 * n, -translate, translate, generator).view(n, 2) * 2.0  # image size = 2 units
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    aspect = width / height
    sign = 1.0 - 2.0 * flip.to(cos.dtype)  # horizontal flip of the output: x -> -x
    theta = torch.stack(
        [
            torch.stack([cos * sign, -sin / aspect, shift[:, 0]], dim=1),
            torch.stack([sin * aspect * sign, cos, shift[:, 1]], dim=1),
        ],
        dim=1,
    )
    return theta


def affine_grid(theta: Tensor, height: int, width: int) -> Tensor:
    """``F.affine_grid(theta, [n, *, height, width], align_corners=False)`` as one
    broadcast multiply-add, written straight into the ``[n, H, W, 2]`` layout; on CPU this
    is several times faster than the batched matmul inside ``F.affine_grid``."""
    xs = (torch.arange(width, device=theta.device, dtype=theta.dtype) * 2 + 1) / width - 1
    ys = (torch.arange(height, device=theta.device, dtype=theta.dtype) * 2 + 1) / height - 1
    rows = theta[:, None, :, 1] * ys[None, :, None] + theta[:, None, :, 2]  # [n, H, 2]
    return torch.addcmul(rows[:, :, None, :], theta[:, None, None, :, 0], xs[None, None, :, None])


class MixedViewAugmentation(ViewAugmentation):
    """Mixed view augmentation: independent random flip, rotation, zoom and shift per view.

    Our reading of AffectVLM's "mixed view augmentation" (Behzad & Zhao, arXiv:2504.19739:
    common augmentations such as flipping, rotation, cropping and scaling, with different
    transformations across the views of the same emotion): each of the ``B*V`` images draws
    its own parameters, so the front, left and right views of one sample are transformed
    differently. All transforms are composed into one affine matrix per image and applied
    in a single batched ``affine_grid`` + ``grid_sample`` call (zeros outside the image).
    """

    class Options(BaseOptions):
        flip_p: float = Field(0.5, ge=0.0, le=1.0, description="probability of a horizontal flip")
        degrees: float = Field(10.0, ge=0.0, le=180.0, description="maximum rotation either way")
        scale: tuple[float, float] = Field((0.9, 1.1), description="zoom range; >1 crops, <1 pads")
        translate: float = Field(0.05, ge=0.0, le=0.5, description="maximum shift, fraction of the size")
        interpolation: Literal["bilinear", "nearest"] = "bilinear"

        @model_validator(mode="after")
        def _scale_range(self) -> MixedViewAugmentation.Options:
            low, high = self.scale
            if not 0.1 <= low <= high <= 10.0:
                raise ValueError(f"scale must be (low, high) with 0.1 <= low <= high <= 10 (got {self.scale})")
            return self

    options: Options

    def __call__(self, views: Tensor, labels: Tensor, generator: torch.Generator) -> Tensor:
        batch, n_views, channels, height, width = views.shape
        n = batch * n_views
        o = self.options
        theta = random_affine_matrices(
            n, height, width, flip_p=o.flip_p, degrees=o.degrees, scale=o.scale, translate=o.translate,
            generator=generator,
        )
        images = views.reshape(n, channels, height, width)
        # Half precision would put the sampling grid off by ~1/30 pixel; integers cannot be
        # interpolated: both are resampled in float32 and converted back.
        compute_dtype = images.dtype if images.dtype in (torch.float32, torch.float64) else torch.float32
        theta = theta.to(device=views.device, dtype=compute_dtype)
        grid = affine_grid(theta, height, width)
        out = F.grid_sample(
            images.to(compute_dtype), grid, mode=o.interpolation, padding_mode="zeros", align_corners=False
        )
        if not views.is_floating_point():
            out = out.round()
        return out.to(views.dtype).reshape(views.shape)


class ViewMix(ViewAugmentation):
    """ViewMix: swap a view with the same view of another sample of the same emotion.

    With probability ``p`` for every (sample ``i``, view ``v``), view ``v`` of sample ``i``
    is replaced by view ``v`` of a sample ``j != i`` of the batch with the same label,
    chosen uniformly; views of samples whose label no other sample shares stay as they
    are. Our reading of the mixing across samples in AffectVLM's mixed view augmentation
    (Behzad & Zhao, arXiv:2504.19739): a sample then combines views of several faces of
    one emotion, so the fused representation cannot lean on one subject's identity.
    """

    class Options(BaseOptions):
        p: float = Field(0.3, ge=0.0, le=1.0, description="probability of swapping each view")

    options: Options

    def sources(self, labels: Tensor, n_views: int, generator: torch.Generator) -> Tensor:
        """``[B, V]`` index of the sample each output view is taken from."""
        batch = labels.shape[0]
        labels = labels.to(generator.device)
        own = torch.arange(batch, device=generator.device)
        partner = (labels[:, None] == labels[None, :]) & (own[:, None] != own[None, :])
        # Uniform choice among partners: the argmax of uniform scores over allowed columns.
        scores = torch.rand(batch, n_views, batch, generator=generator, device=generator.device)
        choice = scores.masked_fill(~partner[:, None, :], -1.0).argmax(dim=2)
        swap = torch.rand(batch, n_views, generator=generator, device=generator.device) < self.options.p
        swap &= partner.any(dim=1)[:, None]
        return torch.where(swap, choice, own[:, None].expand(batch, n_views))

    def __call__(self, views: Tensor, labels: Tensor, generator: torch.Generator) -> Tensor:
        batch, n_views = views.shape[:2]
        if self.options.p == 0.0 or batch < 2:
            return views
        source = self.sources(labels, n_views, generator).to(views.device)
        # Flat index of (source sample, same view) into the B*V images; index_select is a
        # plain row copy, several times faster on CPU than advanced indexing.
        flat = (source * n_views + torch.arange(n_views, device=views.device)).reshape(-1)
        return views.reshape(batch * n_views, *views.shape[2:]).index_select(0, flat).reshape(views.shape)


class RegionMask(ViewAugmentation):
    """Hide the upper or the lower face in every view of a sample (set to 0, the background).

    With probability ``p`` a sample loses, in all its views alike, either everything above
    the ``split`` row (brows and eyes) or everything below it (mouth and chin), each half
    equally often. A model that keys on one strong cue (a stretched mouth read as
    happiness) then has to learn what the other half shows too: expressions that real
    people perform with other combinations of action units than our generators' prototypes
    still carry cues in both halves. The split defaults to the nose tip's row, where the
    canonical frame places it in every view.
    """

    class Options(BaseOptions):
        p: float = Field(0.3, ge=0.0, le=1.0, description="probability of hiding a half of each sample")
        split: float = Field(NOSE_TIP_ROW, gt=0.0, lt=1.0, description="the row between the halves, a fraction of the height from the top")

    options: Options

    def __call__(self, views: Tensor, labels: Tensor, generator: torch.Generator) -> Tensor:
        batch, height = views.shape[0], views.shape[-2]
        hide = torch.rand(batch, generator=generator, device=generator.device) < self.options.p
        upper = torch.rand(batch, generator=generator, device=generator.device) < 0.5
        above = torch.arange(height, device=generator.device) < round(self.options.split * height)  # [H]
        hidden = hide[:, None] & torch.where(upper[:, None], above[None, :], ~above[None, :])  # [B, H]
        keep = (~hidden).to(device=views.device, dtype=views.dtype)
        return views * keep[:, None, None, :, None]


@hookimpl
def register_view_augmentations(register) -> None:
    register("mixed", MixedViewAugmentation)
    register("viewmix", ViewMix)
    register("regionmask", RegionMask)
