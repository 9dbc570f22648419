"""The ``facekit`` dataset: 3D/4D expression scans from ICT-FaceKit's morphable model."""

from __future__ import annotations

from functools import cached_property, lru_cache
from typing import Annotated

import numpy as np
from pydantic import Field

from affectkit.errors import DatasetError
from affectkit.facs import CODES, LABELS, NEUTRAL, activations, label_index, seeded_rng, timeline
from affectkit.interfaces import FaceGenerator, Options, Sample
from affectkit.mesh import Mesh, MeshSequence
from affectkit_plugins.facekit import model as face_model
from affectkit_plugins.facekit.scan import Scan, ScanRealism, simulate_scan

TAG_IDENTITY, TAG_SCAN, TAG_PARTS = 61, 67, 71
#: probability that a subject leaves out one secondary AU of an emotion's prototype
MISSING_AU_P = 0.25
INTERIOR = ("mouth_socket", "teeth_upper", "teeth_lower")
EYES = ("eyeball_left", "eyeball_right")


@lru_cache(maxsize=64)
def neutral_face(seed: int, index: int) -> np.ndarray:
    """Subject ``index``'s neutral face: identity weights drawn from the PCA's own spread."""
    model = face_model.load_face_model()
    weights = seeded_rng(seed, TAG_IDENTITY, index).standard_normal(model.identity_count)
    return model.identity(weights)


def subject_name(index: int) -> str:
    return f"S{index + 1:03d}"


class FaceKitDataset(FaceGenerator):
    """Scans of people from ICT-FaceKit's morphable model (100 identity modes learnt from
    light-stage scans) showing the six basic emotions composed from FACS action units.

    Every subject shows every expression at every requested intensity (BU-3DFE style), or
    one neutral -> onset -> apex -> offset sequence per expression (BU-4DFE style) with
    ``sequences``. Each subject performs each emotion in its own way (AU gains, asymmetry,
    an added or a left-out AU: :mod:`affectkit.facs`). Scan realism (on by default) crops,
    resamples, smooths, adds noise and holes and jitters the pose, each drawn per scan
    (per sequence in 4D). Units are millimetres; meshes carry the 68 Multi-PIE landmarks
    (``affectkit_plugins.facekit.LANDMARKS``). The model's identities carry no sex, age or
    ethnicity: samples have only their intensity as attributes.
    """

    class Options(Options):
        subjects: int = Field(20, ge=1, le=10000, description="number of subjects (identities drawn from the PCA)")
        seed: int = Field(0, ge=0, description="population seed: identities, performances and scans")
        intensities: list[Annotated[int, Field(ge=1, le=4)]] = Field(
            default_factory=lambda: [3, 4], min_length=1, description="expression intensities 1..4 (sequences peak at the highest)"
        )
        include_neutral: bool = Field(False, description="add one neutral scan (or sequence) per subject")
        sequences: bool = Field(False, description="4D: one sequence per subject and expression")
        frames: int = Field(25, ge=2, le=1000, description="frames per sequence")
        realism: bool = Field(True, description="simulate a scanner (the options below); false: the clean model mesh, whole head")
        crop: bool = Field(True, description="crop to the face with a random extent of forehead, chin, ears and neck")
        resolution: tuple[float, float] | None = Field(
            (0.3, 2.0), description="vertex density drawn in this range, relative to the model's (null: the model's own)"
        )
        smoothing: int = Field(2, ge=0, le=20, description="up to this many Laplacian smoothing passes")
        noise: float = Field(0.3, ge=0.0, le=10.0, description="sensor noise along the normal: std up to this many mm")
        holes: float = Field(0.02, ge=0.0, le=0.5, description="up to this fraction of the surface lost in round patches")
        pose: float = Field(6.0, ge=0.0, le=45.0, description="yaw, pitch and roll jitter up to this many degrees")
        scale: float = Field(0.05, ge=0.0, le=0.5, description="size jitter up to this fraction")
        eyes: float = Field(0.7, ge=0.0, le=1.0, description="probability that a scan has the eyeballs")
        mouth_interior: float = Field(0.5, ge=0.0, le=1.0, description="probability that a scan has the teeth and mouth socket")

    options: Options

    @property
    def labels(self) -> tuple[str, ...]:
        return LABELS + ((NEUTRAL,) if self.options.include_neutral else ())

    @property
    def landmark_names(self) -> tuple[str, ...]:
        return face_model.LANDMARKS

    def subject_ids(self) -> list[str]:
        return [subject_name(i) for i in range(self.options.subjects)]

    def samples(self) -> list[Sample]:
        return list(self._samples.values())

    @cached_property
    def _samples(self) -> dict[str, Sample]:
        o = self.options
        intensities = sorted(set(o.intensities))
        out: dict[str, Sample] = {}
        for subject in self.subject_ids():
            for label in self.labels:
                levels = [0] if label == NEUTRAL else intensities
                if o.sequences:
                    key = f"{subject}_{CODES[label]}"
                    out[key] = Sample(key, label, subject, {"intensity": levels[-1], "frames": o.frames}, is_sequence=True)
                    continue
                for level in levels:
                    key = f"{subject}_{CODES[label]}_{level}"
                    out[key] = Sample(key, label, subject, {"intensity": level})
        return out

    def face(self, subject: int, label: str, intensity: int = 4) -> Mesh | MeshSequence:
        """Subject number ``subject`` (1-based) showing ``label``: the app's face controls."""
        level = 0 if label == NEUTRAL else intensity
        name = subject_name(subject - 1)
        code = CODES.get(label, "?")
        known = self._samples.get(f"{name}_{code}" if self.options.sequences else f"{name}_{code}_{level}")
        if known is None:
            raise DatasetError(
                f"facekit: no subject {subject} showing {label!r} at intensity {intensity}; these options have "
                f"subjects 1..{self.options.subjects}, expressions {', '.join(self.labels)}, intensities {sorted(set(self.options.intensities))}"
            )
        return self.load(known)

    def load(self, sample: Sample) -> Mesh | MeshSequence:
        known = self._samples.get(sample.key)
        if known is None:
            raise DatasetError(f"facekit: no sample {sample.key!r} with these options (e.g. {next(iter(self._samples))!r})")
        o = self.options
        index = int(known.subject[1:]) - 1
        level = int(known.attributes["intensity"])
        label = label_index(known.label)
        metadata = {**known.attributes, "label": known.label, "subject": known.subject}
        source = f"facekit:{known.key}"
        if not known.is_sequence:
            acts = activations(o.seed, index, known.label, level, MISSING_AU_P)
            return self._scan(index, acts, (index, label, level), metadata, source)
        frames = [
            self._scan(index, acts, (index, label, level), {**metadata, "frame": i}, f"{source}/{i:03d}")
            for i, acts in enumerate(timeline(o.seed, index, known.label, o.frames, level, MISSING_AU_P))
        ]
        return MeshSequence(frames=frames, fps=25.0, metadata=metadata, source=source)

    def _scan(self, index: int, acts, key: tuple[int, ...], metadata: dict, source: str) -> Mesh:
        """One scan of subject ``index`` showing ``acts``; ``key`` seeds the scanner (the
        same for every frame of a sequence: one session, one scanner setting)."""
        o = self.options
        model = face_model.load_face_model()
        vertices = model.expression(neutral_face(o.seed, index), acts)
        landmarks = vertices[model.landmarks]
        if not o.realism:
            return Mesh(vertices=vertices, faces=model.triangles, landmarks=landmarks, metadata=metadata, source=source)
        parts = seeded_rng(o.seed, TAG_PARTS, *key).uniform(size=2)
        dropped = (EYES if parts[0] >= o.eyes else ()) + (INTERIOR if parts[1] >= o.mouth_interior else ())
        triangles = model.triangles
        if dropped:
            triangles = triangles[~model.part_mask(*dropped)[triangles].any(axis=1)]
        frame = {
            "nose_tip": landmarks[face_model.NOSE_TIP],
            "chin": landmarks[face_model.CHIN],
            "brows": landmarks[list(face_model.BROWS)].mean(axis=0),
            "eye_width": float(landmarks[face_model.LEFT_EYE_OUTER, 0] - landmarks[face_model.RIGHT_EYE_OUTER, 0]),
        }
        realism = ScanRealism(
            crop=o.crop, resolution=o.resolution, smoothing=o.smoothing, noise=o.noise, holes=o.holes, pose=o.pose, scale=o.scale
        )
        scan = simulate_scan(Scan(vertices, triangles, landmarks), realism, seeded_rng(o.seed, TAG_SCAN, *key), frame)
        return Mesh(vertices=scan.vertices, faces=scan.triangles, landmarks=scan.landmarks, metadata=metadata, source=source)
