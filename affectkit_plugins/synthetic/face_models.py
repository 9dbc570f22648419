"""Many procedural face models: each shapes the action units, and meshes the face, its own way.

Real face models differ less in who they can show than in *how* they show an action unit:
how far a lip corner travels and in which direction, how wide the cheek bulges, where the
brow lifts most, how far the jaw drops, how fine the mesh is. A model trained on one face
model learns that one way (docs/benchmarks.md, cross-face-model transfer). The
``synthetic`` dataset's ``face_models`` option spreads its people over several procedural
face models: face model 0 is the base one (:mod:`.action_units` as written), every other is
a :class:`FaceModelStyle` drawn from the population seed, so a test population of another
seed meets face models no training population had. Within one face model every person
shares the style, as every person of a real face model shares its rig.

A style changes, per action unit and within the bounds below: its gain (``GAIN``), the
extent of its field across the face (``EXTENT``, about the midline) and its height
(``SHIFT_MM``), and the direction of its displacement (``TURN``: more up than out, more
forward than up; left-right symmetric). For the whole face model: the jaw's and the lids'
travel (``GAIN``) and the mesh's vertex density (``DENSITY``, a factor of the dataset's
``vertices``).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from affectkit.data.performances import seeded_rng

GAIN = 0.35
EXTENT = 0.15
SHIFT_MM = 3.0
TURN = 0.2
DENSITY = (0.5, 2.0)
TAG_FACE_MODEL = 47


@dataclass(frozen=True)
class UnitStyle:
    """How one face model shapes one action unit."""

    gain: float
    extent: float  # the field is spread this factor wider (>1) or narrower across the face
    shift: float  # mm the field sits higher (+) or lower
    turn: tuple[tuple[float, float, float], ...]  # 3x3 map of the displacement, symmetric across the midline


@dataclass(frozen=True)
class FaceModelStyle:
    """One procedural face model: its action units' shapes, jaw and lid travel, mesh density."""

    index: int
    units: dict[int, UnitStyle]
    jaw: float
    lids: float
    density: float


def _unit_style(rng: np.random.Generator) -> UnitStyle:
    # x stays odd in x (no mixing with y or z), y and z mix: the field stays mirror-symmetric
    mask = np.array([[1, 0, 0], [0, 1, 1], [0, 1, 1]])
    turn = np.eye(3) + TURN * np.tanh(rng.standard_normal((3, 3))) * mask
    return UnitStyle(
        gain=float(1.0 + GAIN * rng.uniform(-1, 1)),
        extent=float(1.0 + EXTENT * rng.uniform(-1, 1)),
        shift=float(SHIFT_MM * rng.uniform(-1, 1)),
        turn=tuple(tuple(float(v) for v in row) for row in turn),
    )


@lru_cache(maxsize=256)
def face_model_style(seed: int, index: int, units: tuple[int, ...]) -> FaceModelStyle | None:
    """Face model ``index`` of population ``seed`` shaping the action units ``units``: None for
    face model 0, the base one."""
    if index == 0:
        return None
    rng = seeded_rng(seed, TAG_FACE_MODEL, index)
    low, high = np.log2(DENSITY)
    return FaceModelStyle(
        index=index,
        units={number: _unit_style(rng) for number in units},
        jaw=float(1.0 + GAIN * rng.uniform(-1, 1)),
        lids=float(1.0 + GAIN * rng.uniform(-1, 1)),
        density=float(2 ** rng.uniform(low, high)),
    )


__all__ = ["FaceModelStyle", "UnitStyle", "face_model_style"]
