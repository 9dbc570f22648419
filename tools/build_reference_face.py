"""Build ``affectkit/data/reference_face.npz``, the face every scan is aligned to
(:mod:`affectkit.data.face_frame`), from the ICT-FaceKit model shipped in the facekit plugin.

    python tools/build_reference_face.py

The reference is ICT-FaceKit's mean face (MIT licence, USC ICT; see
``affectkit_plugins/facekit/LICENSE-ICT-FaceKit``) in its own frame, which is affectkit's
canonical one: millimetres, +y up, looking along +z. It keeps only what no expression moves
and every scan crop keeps: the vertices of the face that no ICT-FaceKit blendshape moves by
more than ``RIGID_MM`` at full strength (forehead, brow ridge, temples, the nose; not the
mouth, jaw, brows, lids or cheeks), inside the tightest crop the facekit scans are cut to,
thinned to one point per ``CELL_MM`` grid cell. It also keeps the mean face's 68 Multi-PIE
landmarks, for scans that come with landmarks.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from affectkit.data.mesh import unique_rows
from affectkit_plugins.facekit.model import load_face_model

RIGID_MM = 4.0
CELL_MM = 3.0
OUT = Path(__file__).resolve().parents[1] / "affectkit" / "data" / "reference_face.npz"


def thinned(points: np.ndarray, cell_mm: float = CELL_MM) -> np.ndarray:
    """One point per ``cell_mm`` grid cell."""
    cells = np.floor(points / cell_mm).astype(np.int64)
    _, first = unique_rows(cells - cells.min(axis=0), return_index=True)
    return points[np.sort(first)].astype(np.float32)


def reference_points(rigid_mm: float = RIGID_MM) -> dict[str, np.ndarray]:
    """The mean face's rigid points ``[P, 3]``, face points ``[Q, 3]`` and 68 landmarks, in mm."""
    model = load_face_model()
    vertices = model.neutral.astype(np.float64)
    landmarks = vertices[model.landmarks]
    moved = np.linalg.norm(model.expression_modes, axis=2).max(axis=0)
    nose_tip, brows = landmarks[30], landmarks[17:27].mean(axis=0)
    x, y, z = vertices.T
    face = (
        model.part_mask("face")
        & (np.abs(x) < 65.0)  # inside the cheeks: the narrowest crop
        & (y < brows[1] + 15.0)  # below the lowest hairline a crop keeps
        & (y > landmarks[8, 1])  # above the chin
        & (z > nose_tip[2] - 70.0)  # in front of the shallowest crop
    )
    rigid = face & (moved < rigid_mm) & (y > nose_tip[1] - 25.0)  # and above the mouth
    return {"points": thinned(vertices[rigid]), "face": thinned(vertices[face]), "landmarks": landmarks.astype(np.float32)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    arrays = reference_points()
    np.savez_compressed(args.out, **arrays)
    print(f"{args.out}: " + ", ".join(f"{len(a)} {name}" for name, a in arrays.items()))


if __name__ == "__main__":
    main()
