"""ICT-FaceKit's morphable face model, as shipped in ``ict_face_model.npz``.

The file is built from the ICT-FaceKit repository by ``tools/build_facekit_model.py`` (see
there for what is kept and how it is quantised); its SHA-256 is :data:`MODEL_SHA256` and is
checked on load, so a damaged or swapped file is an error, never a different face. Units
are millimetres; a face looks along +z with +y up and its left at +x. The model is MIT
licensed: ``LICENSE-ICT-FaceKit`` beside the file.

Expressions are driven by FACS action units (:data:`AU_BLENDSHAPES`): ICT-FaceKit's README
maps each AU to its ARKit-named blendshapes; AUs it has no shape for are composed from the
nearest ones (noted in the table).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cache, cached_property
from pathlib import Path

import numpy as np

from affectkit.data.performances import Activations
from affectkit.errors import DatasetError

MODEL_FILE = Path(__file__).with_name("ict_face_model.npz")
MODEL_SHA256 = "589ce6e28fcb518adff86a3d9e0b2db86c654bdab2ce5c3177f0609673cf1ddd"

#: how action units drive blendshapes: AU -> [(blendshape, weight)]
AuRig = dict[int, tuple[tuple[str, float], ...]]

#: The model's rig. A name without a side suffix gets the mean of both sides' activations,
#: ``_L``/``_R`` shapes get their own side's. From ICT-FaceKit's README table, except AU23,
#: AU25 and AU26, which it does not list.
AU_BLENDSHAPES: AuRig = {
    1: (("browInnerUp", 1.0),),
    2: (("browOuterUp", 1.0),),
    4: (("browDown", 1.0),),
    5: (("eyeWide", 1.0),),
    6: (("cheekSquint", 1.0),),
    7: (("eyeSquint", 1.0),),
    9: (("noseSneer", 1.0),),
    10: (("mouthShrugUpper", 1.0),),
    12: (("mouthSmile", 1.0),),
    15: (("mouthFrown", 1.0),),
    16: (("mouthLowerDown", 1.0),),
    17: (("mouthShrugLower", 1.0),),
    20: (("mouthStretch", 1.0),),
    23: (("mouthPress", 1.0), ("mouthRollUpper", 0.2)),  # lip tightener: pressed, narrowed lips (AU24's shape)
    25: (("jawOpen", 0.1), ("mouthLowerDown", 0.3)),  # lips part
    26: (("jawOpen", 0.45),),  # jaw drop: AU27 (mouth stretch) is jawOpen at 1
}

#: Multi-PIE 68-point landmark names, in ICT-FaceKit's order ("right" is the subject's right, -x).
LANDMARKS: tuple[str, ...] = (
    *(f"jaw_{i:02d}" for i in range(1, 18)),
    *(f"right_brow_{i}" for i in range(1, 6)),
    *(f"left_brow_{i}" for i in range(1, 6)),
    *(f"nose_bridge_{i}" for i in range(1, 5)),
    *(f"nostrils_{i}" for i in range(1, 6)),
    *(f"right_eye_{i}" for i in range(1, 7)),
    *(f"left_eye_{i}" for i in range(1, 7)),
    *(f"outer_lip_{i:02d}" for i in range(1, 13)),
    *(f"inner_lip_{i}" for i in range(1, 9)),
)
#: landmark rows used by the scan simulation and the tests
NOSE_TIP, CHIN, RIGHT_EYE_OUTER, LEFT_EYE_OUTER = 30, 8, 36, 45
MOUTH_RIGHT, MOUTH_LEFT, UPPER_LIP, LOWER_LIP = 48, 54, 51, 57
BROWS = tuple(range(17, 27))


@dataclass(frozen=True, eq=False)
class FaceModel:
    """The neutral head, identity modes and expression blendshapes (displacements in mm)."""

    neutral: np.ndarray  # [N, 3] float32
    triangles: np.ndarray  # [F, 3] int64
    part: np.ndarray  # [N] part index per vertex
    part_names: tuple[str, ...]
    identity_modes: np.ndarray  # [100, N, 3] float32: one standard deviation of each PCA mode
    expression_names: tuple[str, ...]
    expression_modes: np.ndarray  # [53, N, 3] float32
    landmarks: np.ndarray  # [68] vertex index per landmark

    @property
    def identity_count(self) -> int:
        return len(self.identity_modes)

    def part_mask(self, *names: str) -> np.ndarray:
        """``[N]`` True on the vertices of the named parts."""
        return np.isin(self.part, [self.part_names.index(name) for name in names])

    def identity(self, weights: np.ndarray) -> np.ndarray:
        """The neutral face of identity ``weights`` (in standard deviations), ``[N, 3]``."""
        weights = np.asarray(weights, dtype=np.float32)
        return self.neutral + np.tensordot(weights, self.identity_modes[: len(weights)], axes=1)

    @cached_property
    def expression_index(self) -> dict[str, int]:
        """Blendshape name -> row of ``expression_modes``."""
        return {name: i for i, name in enumerate(self.expression_names)}

    def blendshape_weights(self, acts: Activations, rig: AuRig = AU_BLENDSHAPES) -> np.ndarray:
        """ARKit blendshape weights ``[53]`` for AU activations ``{au: (right, left)}``."""
        weights = np.zeros(len(self.expression_names), dtype=np.float32)
        index = self.expression_index
        for au, (right, left) in acts.items():
            for shape, gain in rig[au]:
                if shape in index:
                    weights[index[shape]] += gain * (right + left) / 2
                else:
                    weights[index[f"{shape}_R"]] += gain * right
                    weights[index[f"{shape}_L"]] += gain * left
        return weights

    def expression(self, neutral: np.ndarray, acts: Activations, rig: AuRig = AU_BLENDSHAPES) -> np.ndarray:
        """``neutral`` (an identity's face) showing AU activations ``acts`` through ``rig``, ``[N, 3]``."""
        weights = self.blendshape_weights(acts, rig)
        used = np.flatnonzero(weights)
        if not len(used):
            return neutral.copy()
        return neutral + np.tensordot(weights[used], self.expression_modes[used], axes=1)


@cache
def load_face_model(path: Path = MODEL_FILE, sha256: str = MODEL_SHA256) -> FaceModel:
    """Read and check the shipped model file (once per process)."""
    try:
        blob = path.read_bytes()
    except OSError as exc:
        raise DatasetError(f"facekit: cannot read the face model {str(path)!r}: {exc.strerror}; reinstall affectkit") from exc
    digest = hashlib.sha256(blob).hexdigest()
    if digest != sha256:
        raise DatasetError(
            f"facekit: the face model {str(path)!r} has SHA-256 {digest}, expected {sha256}; it is damaged or "
            "not the shipped file: reinstall affectkit or rebuild it with tools/build_facekit_model.py"
        )
    with np.load(path, allow_pickle=False) as z:

        def modes(name: str) -> np.ndarray:
            return z[f"{name}_codes"].astype(np.float32) * z[f"{name}_scale"][:, None, None]

        return FaceModel(
            neutral=z["neutral"].astype(np.float32),
            triangles=z["triangles"].astype(np.int64),
            part=z["part"].astype(np.int64),
            part_names=tuple(str(name) for name in z["part_names"]),
            identity_modes=modes("identity"),
            expression_names=tuple(str(name) for name in z["expression_names"]),
            expression_modes=modes("expression"),
            landmarks=z["landmarks"].astype(np.int64),
        )
