"""The ``synthetic`` dataset: procedural 3D/4D expression scans, no licensed data needed."""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import Field

from affectkit.data.action_units import coded
from affectkit.data.face_generator import FaceGenerator, subject_index
from affectkit.data.facs import GENERATED_AUS, label_index
from affectkit.data.mesh import Mesh, MeshSequence
from affectkit.interfaces import Sample
from affectkit_plugins.synthetic import expressions, head
from affectkit_plugins.synthetic.action_units import ACTION_UNITS
from affectkit_plugins.synthetic.face_models import FaceModelStyle, face_model_style

TAG_NOISE, TAG_HOLES = 41, 43


class SyntheticDataset(FaceGenerator):
    """Procedural 3D/4D faces: six basic expressions from FACS action units, many identities.

    Every subject shows every expression at every requested intensity (BU-3DFE style), or
    one neutral -> apex -> neutral sequence per expression (BU-4DFE style) with
    ``sequences``. Same options, same meshes, bit for bit, in any process. Units are
    millimetres; meshes carry vertex colours, 28 landmarks (names in
    ``affectkit_plugins.synthetic.LANDMARKS``) and the sample's attributes as metadata.
    """

    generator = "synthetic"

    class Options(FaceGenerator.Options):
        vertices: int = Field(5000, ge=2000, le=200000, description="approximate vertices per mesh")
        noise: float = Field(0.0, ge=0.0, le=10.0, description="scan noise: std of vertex jitter in mm")
        holes: float = Field(0.0, ge=0.0, le=0.5, description="about this fraction of triangles dropped in patches")
        face_models: int = Field(
            1, ge=1, le=1000,
            description="people spread over this many procedural face models, each shaping the action units and meshing "
            "the face its own way, drawn from the seed (1: the base face model only; docs/datasets.md)",
        )  # fmt: skip

    options: Options

    @property
    def landmark_names(self) -> tuple[str, ...]:
        return head.LANDMARKS

    def subject_attributes(self, index: int) -> dict[str, Any]:
        return dict(head.identity(self.options.seed, index).attributes)

    def face_model(self, index: int) -> FaceModelStyle | None:
        """The face model subject ``index`` belongs to (None: the base one); people take
        the face models in turn."""
        return face_model_style(self.options.seed, index % self.options.face_models, tuple(ACTION_UNITS))

    def load(self, sample: Sample) -> Mesh | MeshSequence:
        known = self.known(sample)
        o = self.options
        index = subject_index(known.subject)
        level = int(known.attributes["intensity"])
        style = self.face_model(index)
        face = head.neutral_face(round(o.vertices * style.density) if style else o.vertices, o.seed, index)
        metadata = {**known.attributes, "label": known.label, "subject": known.subject}
        source = f"synthetic:{known.key}"
        holes = self._holes(face, index, known.label)
        acts = self.activations(known)
        if not known.is_sequence:
            return self._mesh(face, style, acts, holes, {**metadata, "action_units": coded(acts, GENERATED_AUS)}, source, (index, known.label, level, 0))
        frames = [
            self._mesh(face, style, frame, holes, {**metadata, "frame": i, "action_units": coded(frame, GENERATED_AUS)}, f"{source}/{i:03d}", (index, known.label, level, i + 1))
            for i, frame in enumerate(acts)
        ]
        return MeshSequence(frames=frames, fps=25.0, metadata=metadata, source=source)

    def _mesh(self, face: head.Face, style: FaceModelStyle | None, acts, faces: np.ndarray, metadata: dict, source: str, key: tuple) -> Mesh:
        vertices, colors, landmarks = expressions.expression_frame(face, acts, style)
        if self.options.noise > 0:
            index, label, level, frame = key
            rng = head.seeded_rng(self.options.seed, TAG_NOISE, index, label_index(label), level, frame)
            vertices = vertices + rng.normal(0.0, self.options.noise, vertices.shape)
        return Mesh(vertices=vertices, faces=faces, colors=colors, landmarks=landmarks, metadata=metadata, source=source)

    def _holes(self, face: head.Face, index: int, label: str) -> np.ndarray:
        """The template's faces minus random round patches covering about ``holes`` of them."""
        faces = face.template.faces
        fraction = self.options.holes
        if fraction <= 0:
            return faces
        rng = head.seeded_rng(self.options.seed, TAG_HOLES, index, label_index(label))
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
