"""The ``facekit`` dataset: 3D/4D expression scans from ICT-FaceKit's morphable model."""

from __future__ import annotations

from functools import lru_cache
from typing import Annotated

import numpy as np
from pydantic import Field, field_validator

from affectkit.data.action_units import coded
from affectkit.data.face_generator import FaceGenerator, subject_index
from affectkit.data.facs import GENERATED_AUS, label_index
from affectkit.data.mesh import Mesh, MeshSequence
from affectkit.data.performances import Activations, seeded_rng
from affectkit.interfaces import Sample
from affectkit_plugins.facekit import model as face_model
from affectkit_plugins.facekit.rig import VariedRig, varied_rig
from affectkit_plugins.facekit.scan import CropFrame, Scan, ScanRealism, simulate_scan
from affectkit_plugins.facekit.warp import smooth_warp

TAG_IDENTITY, TAG_SCAN, TAG_PARTS, TAG_WARP, TAG_RIG = 61, 67, 71, 73, 79
#: probability that a subject leaves out one secondary AU of an emotion's prototype
MISSING_AU_P = 0.25
INTERIOR = ("mouth_socket", "teeth_upper", "teeth_lower")
EYES = ("eyeball_left", "eyeball_right")
#: a vertex density relative to the model's
Density = Annotated[float, Field(gt=0.0, le=8.0)]


@lru_cache(maxsize=64)
def neutral_face(seed: int, index: int) -> np.ndarray:
    """Subject ``index``'s neutral face: identity weights drawn from the PCA's own spread."""
    model = face_model.load_face_model()
    weights = seeded_rng(seed, TAG_IDENTITY, index).standard_normal(model.identity_count)
    return model.identity(weights)


@lru_cache(maxsize=64)
def identity_warp(seed: int, index: int, std_mm: float) -> np.ndarray:
    """Subject ``index``'s warp beyond the PCA span (:mod:`.warp`), at its neutral face:
    a strength drawn up to ``std_mm``."""
    rng = seeded_rng(seed, TAG_WARP, index)
    return smooth_warp(neutral_face(seed, index), rng, std_mm * rng.uniform())


@lru_cache(maxsize=64)
def person_rig(seed: int, index: int, strength: float) -> VariedRig:
    """Subject ``index``'s own expression rig (:mod:`.rig`), its strength drawn up to ``strength``."""
    rng = seeded_rng(seed, TAG_RIG, index)
    return varied_rig(neutral_face(seed, index), rng, strength * rng.uniform())


class FaceKitDataset(FaceGenerator):
    """Realistic 3D/4D expression scans: ICT-FaceKit identities through a scanner simulation.

    People are drawn from ICT-FaceKit's morphable model (100 identity modes learnt from
    light-stage scans) and show the six basic emotions composed from FACS action units.
    Every subject shows every expression at every requested intensity (BU-3DFE style), or
    one neutral -> onset -> apex -> offset sequence per expression (BU-4DFE style) with
    ``sequences``. Each subject performs each emotion in its own way (AU gains, asymmetry,
    an added or a left-out AU: :mod:`affectkit.data.facs`). Scan realism (on by default) crops,
    resamples, smooths, adds noise and holes and jitters the pose, each drawn per scan
    (per sequence in 4D). Units are millimetres; meshes carry the 68 Multi-PIE landmarks
    (``affectkit_plugins.facekit.LANDMARKS``). The model's identities carry no sex, age or
    ethnicity: samples have only their intensity as attributes.
    """

    generator = "facekit"
    missing_au_p = MISSING_AU_P

    class Options(FaceGenerator.Options):
        realism: bool = Field(True, description="simulate a scanner (the options below); false: the clean model mesh, whole head")
        crop: bool = Field(True, description="crop to the face with a random extent of forehead, chin, ears and neck")
        resolution: tuple[Density, Density] | None = Field(
            (0.3, 2.0), description="vertex density drawn in this range, relative to the model's (null: the model's own)"
        )
        smoothing: int = Field(2, ge=0, le=20, description="up to this many Laplacian smoothing passes")
        noise: float = Field(0.3, ge=0.0, le=10.0, description="sensor noise along the normal: std up to this many mm")
        holes: float = Field(0.02, ge=0.0, le=0.5, description="up to this fraction of the surface lost in round patches")
        pose: float = Field(6.0, ge=0.0, le=45.0, description="yaw, pitch and roll jitter up to this many degrees")
        scale: float = Field(0.08, ge=0.0, le=0.5, description="size jitter up to this fraction, along each axis on its own")
        eyes: float = Field(0.7, ge=0.0, le=1.0, description="probability that a scan has the eyeballs")
        mouth_interior: float = Field(0.5, ge=0.0, le=1.0, description="probability that a scan has the teeth and mouth socket")
        warp: float = Field(
            0.0, ge=0.0, le=20.0,
            description="identities beyond the model's span: each person's face warped smoothly and symmetrically, std up to this many mm",
        )  # fmt: skip
        rig: float = Field(
            0.0, ge=0.0, le=2.0,
            description="expressions beyond the model's rig: each person's AUs drive its blendshapes with gains, mixed-in "
            "neighbours and a smooth reshaping of their own, drawn up to this strength (0: the model's rig)",
        )  # fmt: skip

        @field_validator("resolution")
        @classmethod
        def low_to_high(cls, value: tuple[float, float] | None) -> tuple[float, float] | None:
            if value is not None and value[0] > value[1]:
                raise ValueError(f"resolution is a range [low, high] with low <= high, got {list(value)}")
            return value

    options: Options

    @property
    def landmark_names(self) -> tuple[str, ...]:
        return face_model.LANDMARKS

    def load(self, sample: Sample) -> Mesh | MeshSequence:
        known = self.known(sample)
        index = subject_index(known.subject)
        level = int(known.attributes["intensity"])
        label = label_index(known.label)
        metadata = {**known.attributes, "label": known.label, "subject": known.subject}
        source = f"facekit:{known.key}"
        acts = self.activations(known)
        if not known.is_sequence:
            return self._scan(index, acts, (index, label, level), {**metadata, "action_units": coded(acts, GENERATED_AUS)}, source)
        frames = [
            self._scan(index, frame, (index, label, level), {**metadata, "frame": i, "action_units": coded(frame, GENERATED_AUS)}, f"{source}/{i:03d}")
            for i, frame in enumerate(acts)
        ]
        return MeshSequence(frames=frames, fps=25.0, metadata=metadata, source=source)

    def _scan(self, index: int, acts: Activations, key: tuple[int, ...], metadata: dict, source: str) -> Mesh:
        """One scan of subject ``index`` showing ``acts``; ``key`` seeds the scanner (the
        same for every frame of a sequence: one session, one scanner setting)."""
        o = self.options
        model = face_model.load_face_model()
        neutral = neutral_face(o.seed, index)
        if o.rig > 0:
            vertices = person_rig(o.seed, index, o.rig).expression(model, neutral, acts)
        else:
            vertices = model.expression(neutral, acts)
        if o.warp > 0:
            vertices = vertices + identity_warp(o.seed, index, o.warp).astype(vertices.dtype)
        landmarks = vertices[model.landmarks]
        if not o.realism:
            return Mesh(vertices=vertices, faces=model.triangles, landmarks=landmarks, metadata=metadata, source=source)
        parts = seeded_rng(o.seed, TAG_PARTS, *key).uniform(size=2)
        dropped = (EYES if parts[0] >= o.eyes else ()) + (INTERIOR if parts[1] >= o.mouth_interior else ())
        triangles = model.triangles
        if dropped:
            triangles = triangles[~model.part_mask(*dropped)[triangles].any(axis=1)]
        frame = CropFrame(
            nose_tip=landmarks[face_model.NOSE_TIP],
            chin=landmarks[face_model.CHIN],
            brows=landmarks[list(face_model.BROWS)].mean(axis=0),
            eye_width=float(landmarks[face_model.LEFT_EYE_OUTER, 0] - landmarks[face_model.RIGHT_EYE_OUTER, 0]),
        )
        realism = ScanRealism(
            crop=o.crop, resolution=o.resolution, smoothing=o.smoothing, noise=o.noise, holes=o.holes, pose=o.pose, scale=o.scale
        )
        scan = simulate_scan(Scan(vertices, triangles, landmarks), realism, seeded_rng(o.seed, TAG_SCAN, *key), frame)
        return Mesh(vertices=scan.vertices, faces=scan.triangles, landmarks=scan.landmarks, metadata=metadata, source=source)
