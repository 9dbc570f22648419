"""Identities beyond the face model's span: smooth random warps of a whole face.

ICT-FaceKit's 100 identity modes span the faces of the light-stage scans it was learnt
from; a face model none of us has seen differs from all of them in ways no combination of
those modes reaches (the proportions of its mean face, the depth of its eye sockets, the
shape of its chin). :func:`smooth_warp` displaces every point of a face by a smooth random
field, a sum of long-wavelength sinusoids made left-right symmetric, so a population can
vary beyond the PCA span while its faces stay faces. The field is drawn per person and
evaluated at the neutral face, then added to every expression of that person, so the
action units move the warped face exactly as they move the model's.
"""

from __future__ import annotations

import numpy as np

COMPONENTS = 12
WAVELENGTH_MM = (60.0, 160.0)  # about half a face to a whole head: shape, not texture


def smooth_warp(
    points: np.ndarray, rng: np.random.Generator, std_mm: float, wavelength_mm: tuple[float, float] = WAVELENGTH_MM
) -> np.ndarray:
    """Displacements ``[N, 3]`` (mm) of ``points`` ``[N, 3]`` (mm, the face's midline at
    x = 0): each component has a standard deviation of about ``std_mm`` over space and
    wavelengths in ``wavelength_mm``. The x component is odd across the midline, y and z
    are even."""
    directions = rng.standard_normal((COMPONENTS, 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    frequencies = directions * (2 * np.pi / rng.uniform(*wavelength_mm, size=(COMPONENTS, 1)))
    phases = rng.uniform(0.0, 2 * np.pi, size=COMPONENTS)
    amplitudes = rng.standard_normal((COMPONENTS, 3)) * std_mm * np.sqrt(2.0 / COMPONENTS)
    mirror = np.array([-1.0, 1.0, 1.0])

    def field(p: np.ndarray) -> np.ndarray:
        return np.sin(p @ frequencies.T + phases) @ amplitudes

    return 0.5 * (field(points) + field(points * mirror) * mirror)  # the same warp on both halves
