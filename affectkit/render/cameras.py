"""Cameras: where each view's camera stands, and how a face is placed in front of it.

Conventions, shared by every renderer so their images agree:

* a face looks along +z with +y up; the subject's left cheek is at +x;
* a view is a camera on the unit sphere looking at the origin with an orthographic
  projection of the square [-1, 1]^2; ``yaw`` turns the camera about +y toward the
  subject's left (+x), ``pitch`` raises it, ``roll`` turns the image;
* :func:`normalise` places a face in front of the camera. A head-sized mesh (millimetres,
  or metres, which are turned into millimetres) is centred on its nose tip and shown at
  its real size, ``FACE_RADIUS_MM`` from the centre to the frame's edge: the same face
  then fills the same pixels whether the scanner kept the neck, the ears and the hair or
  cropped them (their bounding box, and any box-based scale, would change with the crop).
  Landmarks are not used for this: datasets mark different points (28, 68, 83), and one
  placement for every dataset keeps a model, and pretrained weights, valid across them.
  Any other mesh is centred on its bounding box (or its landmarks' centroid) and scaled
  into the unit sphere.

The default views are the paper's three: ``front`` (yaw 0), ``left`` (yaw +45) and
``right`` (yaw -45). 45 degrees keeps both eyes and the mouth visible while showing the
cheek and jaw profile, where expressions differ in depth.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from affectkit.errors import AffectkitError


@dataclass(frozen=True)
class View:
    """A camera direction in degrees."""

    name: str
    yaw: float = 0.0
    pitch: float = 0.0
    roll: float = 0.0

    def rotation(self, dtype: torch.dtype = torch.float32) -> Tensor:
        """World-to-camera rotation ``[3, 3]``: the camera then looks along -z."""
        yaw, pitch, roll = (math.radians(a) for a in (self.yaw, self.pitch, self.roll))
        cy, sy = math.cos(yaw), math.sin(yaw)
        cp, sp = math.cos(pitch), math.sin(pitch)
        cr, sr = math.cos(roll), math.sin(roll)
        turn = torch.tensor([[cy, 0.0, -sy], [0.0, 1.0, 0.0], [sy, 0.0, cy]], dtype=dtype)
        tilt = torch.tensor([[1.0, 0.0, 0.0], [0.0, cp, -sp], [0.0, sp, cp]], dtype=dtype)
        spin = torch.tensor([[cr, -sr, 0.0], [sr, cr, 0.0], [0.0, 0.0, 1.0]], dtype=dtype)
        return spin @ tilt @ turn


NAMED_VIEWS: dict[str, View] = {
    "front": View("front", 0.0),
    "left": View("left", 45.0),
    "right": View("right", -45.0),
    "up": View("up", 0.0, 30.0),
    "down": View("down", 0.0, -30.0),
}
DEFAULT_VIEWS: tuple[View, ...] = (NAMED_VIEWS["front"], NAMED_VIEWS["left"], NAMED_VIEWS["right"])


def parse_view(spec: str | float | int | View) -> View:
    """A view from a name (``left``), a yaw (``30``) or ``yaw:pitch[:roll]`` (``30:10``)."""
    if isinstance(spec, View):
        return spec
    text = str(spec).strip()
    if text in NAMED_VIEWS:
        return NAMED_VIEWS[text]
    try:
        angles = [float(part) for part in text.split(":")]
    except ValueError:
        angles = []
    if not 1 <= len(angles) <= 3 or not all(math.isfinite(a) and abs(a) <= 360 for a in angles):
        raise AffectkitError(
            f"unknown view {text!r}: use a name ({', '.join(NAMED_VIEWS)}), "
            "a yaw in degrees, or yaw:pitch[:roll], each a finite angle within ±360"
        )
    return View(text, *angles)


def parse_views(specs: str | Sequence[str | float | int | View]) -> tuple[View, ...]:
    """Views from a comma-separated string or a list of view specs."""
    items = specs.split(",") if isinstance(specs, str) else list(specs)
    views = tuple(parse_view(item) for item in items if str(item).strip())
    if not views:
        raise AffectkitError("no views given: name at least one (e.g. front,left,right)")
    return views


#: Bump when :func:`normalise` changes, so that render caches do not serve old images.
PLACEMENT = "face-v1"
#: half the frame's side, in millimetres, for head-sized meshes: forehead to chin fits
FACE_RADIUS_MM = 100.0
#: the frame's centre relative to the nose tip (mm): a little above it, and inside the
#: head so that side views turn the face about a point behind the nose
FACE_CENTRE_FROM_NOSE_TIP_MM = (0.0, 5.0, -40.0)
#: bounding-box half-diagonals (mm) that a scanned head or face can have
HEAD_HALF_DIAGONAL_MM = (40.0, 600.0)


def millimetres_per_unit(half_diagonal: float) -> float | None:
    """1 for a head in millimetres, 1000 for one in metres, None when the size is no head's."""
    low, high = HEAD_HALF_DIAGONAL_MM
    return next((factor for factor in (1.0, 1000.0) if low <= half_diagonal * factor <= high), None)


def nose_tip(vertices: Tensor) -> Tensor:
    """The front-most point of a face looking along +z: the median of its front-most
    0.2% of vertices, so that a noise spike or a stray vertex does not move it."""
    count = max(1, len(vertices) // 500)
    front = vertices[:, 2].topk(count).indices
    return vertices.index_select(0, front).median(dim=0).values


def normalise(vertices: Tensor, landmarks: Tensor | None = None) -> Tensor:
    """Place ``[N, 3]`` vertices in front of the camera (see module docstring)."""
    columns = torch.stack(vertices.unbind(1))  # [3, N]: reducing contiguous rows is ~10x faster
    lo, hi = columns.amin(dim=1), columns.amax(dim=1)
    factor = millimetres_per_unit(float((hi - lo).norm()) / 2)
    if factor is not None:
        millimetres = vertices * factor
        centre = nose_tip(millimetres) + torch.tensor(FACE_CENTRE_FROM_NOSE_TIP_MM, dtype=vertices.dtype, device=vertices.device)
        return (millimetres - centre) / FACE_RADIUS_MM
    if landmarks is not None and len(landmarks):
        centre = landmarks.mean(dim=0)
        radius = (vertices - centre).norm(dim=1).amax()
    else:
        centre, radius = (lo + hi) / 2, (hi - lo).norm() / 2
    return (vertices - centre) / radius.clamp_min(1e-12)
