"""A procedural face showing AU activations.

The emotions themselves (AU prototypes, per-subject performances, 4D timing) live in
:mod:`affectkit.data.facs`, shared with the ``facekit`` generator; this module turns their
activations into the procedural head's geometry.
"""

from __future__ import annotations

import numpy as np

from affectkit_plugins.synthetic import action_units, head
from affectkit_plugins.synthetic.face_models import FaceModelStyle


def expression_frame(
    face: head.Face, acts: action_units.Activations, style: FaceModelStyle | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(vertices, colors, landmarks)`` of ``face`` showing ``acts`` as the face model
    ``style`` shapes them (None: the base one)."""
    positions, lids = action_units.deform(face, acts, style)
    return head.finish(face, positions, lids)
