"""The ``synthetic`` dataset: procedural 3D/4D expression scans, no licensed data needed."""

from __future__ import annotations

from functools import cached_property
from typing import Annotated

import numpy as np
from pydantic import Field

from affectkit.errors import DatasetError
from affectkit.interfaces import FaceGenerator, Options, Sample
from affectkit.mesh import Mesh, MeshSequence
from affectkit_plugins.synthetic import expressions, head

TAG_NOISE, TAG_HOLES = 41, 43


class SyntheticDataset(FaceGenerator):
    """Procedural 3D/4D faces: six basic expressions from FACS action units, many identities.

    Every subject shows every expression at every requested intensity (BU-3DFE style), or
    one neutral -> apex -> neutral sequence per expression (BU-4DFE style) with
    ``sequences``. Same options, same meshes, bit for bit, in any process. Units are
    millimetres; meshes carry vertex colours, 28 landmarks (names in
    ``affectkit_plugins.synthetic.LANDMARKS``) and the sample's attributes as metadata.
    """

    class Options(Options):
        subjects: int = Field(20, ge=1, le=10000, description="number of synthetic subjects")
        seed: int = Field(0, ge=0, description="population seed: identities and performances")
        vertices: int = Field(5000, ge=2000, le=200000, description="approximate vertices per mesh")
        intensities: list[Annotated[int, Field(ge=1, le=4)]] = Field(
            default_factory=lambda: [3, 4], min_length=1, description="expression intensities 1..4 (sequences peak at the highest)"
        )
        include_neutral: bool = Field(False, description="add one neutral scan (or sequence) per subject")
        sequences: bool = Field(False, description="4D: one sequence per subject and expression")
        frames: int = Field(25, ge=2, le=1000, description="frames per sequence")
        noise: float = Field(0.0, ge=0.0, le=10.0, description="scan noise: std of vertex jitter in mm")
        holes: float = Field(0.0, ge=0.0, le=0.5, description="about this fraction of triangles dropped in patches")

    options: Options

    @property
    def labels(self) -> tuple[str, ...]:
        return expressions.LABELS + ((expressions.NEUTRAL,) if self.options.include_neutral else ())

    @property
    def landmark_names(self) -> tuple[str, ...]:
        return head.LANDMARKS

    def subject_ids(self) -> list[str]:
        return [head.subject_name(i) for i in range(self.options.subjects)]

    def samples(self) -> list[Sample]:
        return list(self._samples.values())

    @cached_property
    def _samples(self) -> dict[str, Sample]:
        o = self.options
        intensities = sorted(set(o.intensities))
        out: dict[str, Sample] = {}
        for index in range(o.subjects):
            ident = head.identity(o.seed, index)
            for label in self.labels:
                code = expressions.CODES[label]
                levels = [0] if label == expressions.NEUTRAL else intensities
                if o.sequences:
                    level = levels[-1]
                    key = f"{ident.subject}_{code}"
                    attrs = {**ident.attributes, "intensity": level, "frames": o.frames}
                    out[key] = Sample(key, label, ident.subject, attrs, is_sequence=True)
                    continue
                for level in levels:
                    key = f"{ident.subject}_{code}_{level}"
                    out[key] = Sample(key, label, ident.subject, {**ident.attributes, "intensity": level})
        return out

    def face(self, subject: int, label: str, intensity: int = 4) -> Mesh | MeshSequence:
        """Subject number ``subject`` (1-based) showing ``label``: the app's synthetic controls.

        A sequence when the options ask for sequences (peaking at their highest intensity).
        """
        code = expressions.CODES.get(label, "?")
        name = head.subject_name(subject - 1)
        level = 0 if label == expressions.NEUTRAL else intensity
        known = self._samples.get(f"{name}_{code}" if self.options.sequences else f"{name}_{code}_{level}")
        if known is None:
            raise DatasetError(
                f"synthetic: no subject {subject} showing {label!r} at intensity {intensity}; these options have "
                f"subjects 1..{self.options.subjects}, expressions {', '.join(self.labels)}, intensities {sorted(set(self.options.intensities))}"
            )
        return self.load(known)

    def load(self, sample: Sample) -> Mesh | MeshSequence:
        known = self._samples.get(sample.key)
        if known is None:
            raise DatasetError(f"synthetic: no sample {sample.key!r} with these options (e.g. {next(iter(self._samples))!r})")
        o = self.options
        index = int(known.subject[1:]) - 1
        level = int(known.attributes["intensity"])
        face = head.neutral_face(o.vertices, o.seed, index)
        metadata = {**known.attributes, "label": known.label, "subject": known.subject}
        source = f"synthetic:{known.key}"
        holes = self._holes(face, index, known.label)
        if not known.is_sequence:
            acts = expressions.activations(o.seed, index, known.label, level)
            return self._mesh(face, acts, holes, metadata, source, (index, known.label, level, 0))
        frames = [
            self._mesh(face, acts, holes, {**metadata, "frame": i}, f"{source}/{i:03d}", (index, known.label, level, i + 1))
            for i, acts in enumerate(expressions.timeline(o.seed, index, known.label, o.frames, level))
        ]
        return MeshSequence(frames=frames, fps=25.0, metadata=metadata, source=source)

    def _mesh(self, face: head.Face, acts, faces: np.ndarray, metadata: dict, source: str, key: tuple) -> Mesh:
        vertices, colors, landmarks = expressions.expression_frame(face, acts)
        if self.options.noise > 0:
            index, label, level, frame = key
            rng = head.seeded_rng(self.options.seed, TAG_NOISE, index, expressions.label_index(label), level, frame)
            vertices = vertices + rng.normal(0.0, self.options.noise, vertices.shape)
        return Mesh(vertices=vertices, faces=faces, colors=colors, landmarks=landmarks, metadata=metadata, source=source)

    def _holes(self, face: head.Face, index: int, label: str) -> np.ndarray:
        """The template's faces minus random round patches covering about ``holes`` of them."""
        faces = face.template.faces
        fraction = self.options.holes
        if fraction <= 0:
            return faces
        rng = head.seeded_rng(self.options.seed, TAG_HOLES, index, expressions.label_index(label))
        corners = np.stack([face.X, face.Y], 1)[faces]  # material coordinates, [F, 3, 2]
        centre = corners.mean(axis=1)
        e1, e2 = corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]
        area = np.abs(e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]) / 2
        patches = 1 + int(fraction * 12)
        radius = np.sqrt(fraction * area.sum() / patches / np.pi)
        drop = np.zeros(len(faces), bool)
        for _ in range(patches * 4):  # patches overlap and spill off the edge: add until enough
            c = centre[rng.integers(len(faces))]
            drop |= ((centre - c) ** 2).sum(1) < radius**2
            if area[drop].sum() >= fraction * area.sum():
                break
        return faces[~drop]
