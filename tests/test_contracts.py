"""Every registered renderer and dataset honours its interface (timm-style: a broken
registration cannot hide). Encoders, losses, prompt augmenters and view augmentations
have their contract tests beside their own tests."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import dataset_files
import numpy as np
import pytest
import torch

from affectkit.cameras import parse_views
from affectkit.interfaces import RenderedViews, Sample
from affectkit.mesh import Mesh, MeshSequence
from affectkit.registry import face_generators, registry
from affectkit_plugins.synthetic import SyntheticDataset, write_synthetic

RENDERERS = registry().names("renderer")
DATASETS = registry().names("dataset")

#: small options per dataset, so the contract runs in seconds; every registered dataset needs one.
#: Datasets read from disk give a function that writes a tiny dataset under a folder and
#: returns the options that read it.
DATASET_TEST_OPTIONS: dict[str, dict | Callable[[Path], dict]] = {
    "synthetic": {"subjects": 2, "intensities": [4]},
    "facekit": {"subjects": 2, "intensities": [4]},
    "mixture": {"parts": [{"name": "facekit", "options": {"subjects": 1, "intensities": [4]}}, {"name": "synthetic", "options": {"subjects": 1, "intensities": [4]}}]},
    "bosphorus": lambda tmp: {"root": dataset_files.bosphorus_tree(tmp)},
    "bp4d": lambda tmp: {"root": dataset_files.bp4d_tree(tmp), "max_frames": 2},
    "folder": lambda tmp: {"root": dataset_files.folder_tree(tmp)},
    "bu3dfe": lambda tmp: {
        "root": write_synthetic(tmp, SyntheticDataset.Options(subjects=2, intensities=[4], vertices=2000), layout="bu3dfe"),
        "intensities": [4],
    },
    "bu4dfe": lambda tmp: {
        "root": write_synthetic(tmp, SyntheticDataset.Options(subjects=2, vertices=2000, sequences=True, frames=3), layout="bu4dfe"),
        "max_frames": 2,
    },
}


def sphere() -> Mesh:
    import trimesh

    s = trimesh.creation.icosphere(subdivisions=4)
    return Mesh(s.vertices, s.faces, source="sphere")


@pytest.mark.parametrize("name", RENDERERS)
def test_every_renderer_renders_a_sphere(name):
    renderer = registry().create("renderer", name)
    views = parse_views("front,left,right")
    device = "cuda" if name == "kaolin" else "cpu"  # Kaolin rasterises on CUDA only
    rendered = renderer.render([sphere(), sphere()], views, 48, device=device)
    out = RenderedViews(**{key: getattr(rendered, key).cpu() for key in RenderedViews.MAPS})
    assert isinstance(out, RenderedViews)
    for key, channels in RenderedViews.MAPS.items():
        tensor = getattr(out, key)
        assert tensor.shape == (2, 3, channels, 48, 48), key
        assert torch.isfinite(tensor).all(), key
    coverage = out.mask.mean().item()
    # normalised to a bounding-box half-diagonal of 1, the sphere's radius is 1/sqrt(3)
    assert abs(coverage - math.pi / 12) < 0.02
    assert (out.depth[out.mask.bool()] >= 0).all() and (out.depth[~out.mask.bool()] == 0).all()
    centre = out.normal[0, 0, :, 24, 24]
    assert centre[2] > 0.95  # the sphere faces the camera at the image centre


@pytest.mark.parametrize("name", DATASETS)
def test_every_dataset_lists_and_loads_valid_samples(name, tmp_path):
    assert name in DATASET_TEST_OPTIONS, f"add small test options for dataset {name!r}"
    options = DATASET_TEST_OPTIONS[name]
    dataset = registry().create("dataset", name, options(tmp_path) if callable(options) else options)
    samples = dataset.samples()
    assert samples and all(isinstance(s, Sample) for s in samples)
    assert len({s.key for s in samples}) == len(samples)
    assert {s.label for s in samples} <= set(dataset.labels)
    assert len({s.subject for s in samples}) >= 2
    item = dataset.load(samples[0])
    meshes = item.frames if isinstance(item, MeshSequence) else [item]
    for mesh in meshes:
        assert isinstance(mesh, Mesh) and len(mesh.faces) > 0
        assert np.isfinite(mesh.vertices).all()


@pytest.mark.parametrize("name", face_generators())
def test_every_face_generator_draws_any_subject_and_expression(name):
    options = DATASET_TEST_OPTIONS[name]
    generator = registry().create("dataset", name, {**options, "include_neutral": True})
    for label in generator.labels:
        face = generator.face(2, label, 4)
        assert isinstance(face, Mesh) and face.landmarks.shape == (len(generator.landmark_names), 3)
    assert generator.subject_ids()[1] == generator.samples()[-1].subject
    sequence = registry().create("dataset", name, {**options, "sequences": True, "frames": 3}).face(1, "happiness")
    assert isinstance(sequence, MeshSequence) and len(sequence) == 3
