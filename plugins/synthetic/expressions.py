"""A synthetic face showing AU activations; the emotions themselves live in :mod:`affectkit.facs`.

The emotion vocabulary, the AU prototypes, per-subject performances and 4D timing are
shared with the ``facekit`` generator; this module re-exports the names the synthetic
plugin uses and turns activations into the procedural head's geometry.
"""

from __future__ import annotations

import numpy as np

from affectkit.facs import CODES, LABELS, NEUTRAL, activations, label_index, timeline
from affectkit_plugins.synthetic import action_units, head

__all__ = ["CODES", "LABELS", "NEUTRAL", "activations", "expression_frame", "label_index", "timeline"]


def expression_frame(face: head.Face, acts: action_units.Activations) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(vertices, colors, landmarks)`` of ``face`` showing ``acts``."""
    positions, lids = action_units.deform(face, acts)
    return head.finish(face, positions, lids)
