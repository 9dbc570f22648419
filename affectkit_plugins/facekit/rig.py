"""Expression rigs beyond the face model's one: each person's action units shaped their own way.

ICT-FaceKit gives every identity the same blendshapes, so every facekit person raises a lip
corner along the same displacement field, and a model trained on them learns that one shape
of each action unit. Another face model shapes the unit otherwise (how far the corner goes
up against out, how much the cheek bulges, where a fold deepens), and the model misreads it.
:func:`varied_rig` draws, per person, three departures from the model's rig
(:data:`~.model.AU_BLENDSHAPES`), each scaled by a strength (1: the sizes below):

* each AU drives its own blendshapes with a gain of its own, within ``±GAIN``;
* each AU mixes in up to ``MIXED`` other blendshapes of its region of the face, each at a
  weight up to ``MIX`` (a smile with some dimpling, a nose wrinkle with some upper-lip raise);
* the displacement of the whole expression is modulated over the face by a smooth gain
  field (standard deviation ``MODULATION``, wavelengths of a feature to a face) and
  turned by a linear map within ``ANISOTROPY`` of the identity (more up than out, or more
  out than up); both are left-right symmetric.

The person still performs the same action units (their labels do not change): the rig is
how their face shows them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from affectkit.data.performances import Activations
from affectkit_plugins.facekit.model import AU_BLENDSHAPES, AuRig, FaceModel
from affectkit_plugins.facekit.warp import smooth_warp

GAIN = 0.3
MIXED = 2
MIX = 0.3
MODULATION = 0.4
MODULATION_WAVELENGTH_MM = (40.0, 120.0)
ANISOTROPY = 0.2
#: AUs -> the blendshapes of their region that a varied rig may mix into them
REGIONS: dict[tuple[int, ...], tuple[str, ...]] = {
    (1, 2, 4): ("browDown", "browInnerUp", "browOuterUp"),
    (5, 6, 7): ("eyeSquint", "eyeWide", "cheekSquint"),
    (9, 10): ("noseSneer", "mouthUpperUp", "mouthShrugUpper", "cheekSquint"),
    (12, 15, 20, 23): ("mouthSmile", "mouthDimple", "mouthStretch", "mouthFrown", "mouthPress"),
    (16, 17, 25, 26): ("mouthLowerDown", "mouthShrugLower", "mouthRollLower", "jawOpen"),
}
REGION_OF = {au: shapes for aus, shapes in REGIONS.items() for au in aus}


@dataclass(frozen=True, eq=False)
class VariedRig:
    """One person's rig: how their AUs drive blendshapes, and how the result is reshaped."""

    aus: AuRig
    gain: np.ndarray  # [N] per vertex
    transform: np.ndarray  # [3, 3], acting on displacements

    def expression(self, model: FaceModel, neutral: np.ndarray, acts: Activations) -> np.ndarray:
        """``neutral`` showing ``acts`` through this rig, ``[N, 3]``."""
        moved = model.expression(neutral, acts, self.aus) - neutral
        return neutral + ((self.gain[:, None] * moved) @ self.transform.T).astype(neutral.dtype)


def varied_rig(neutral: np.ndarray, rng: np.random.Generator, strength: float) -> VariedRig:
    """A rig drawn from ``rng`` for the person whose neutral face is ``neutral`` (mm)."""
    aus: AuRig = {}
    for au, own in AU_BLENDSHAPES.items():
        shapes = [(shape, weight * (1.0 + strength * GAIN * rng.uniform(-1.0, 1.0))) for shape, weight in own]
        owned = {shape for shape, _ in own}
        others = [shape for shape in REGION_OF[au] if shape not in owned]
        for i in rng.permutation(len(others))[: rng.integers(0, MIXED + 1)]:
            shapes.append((others[i], strength * MIX * rng.uniform()))
        aus[au] = tuple(shapes)
    field = smooth_warp(neutral, rng, 1.0, MODULATION_WAVELENGTH_MM)[:, 1]  # the y component: even across the midline
    gain = np.clip(1.0 + strength * MODULATION * field, 0.2, None)
    turn = rng.standard_normal((3, 3)) * np.array([[1, 0, 0], [0, 1, 1], [0, 1, 1]])  # no x <-> y, z: symmetric
    return VariedRig(aus=aus, gain=gain.astype(np.float32), transform=np.eye(3) + strength * ANISOTROPY * np.tanh(turn))
