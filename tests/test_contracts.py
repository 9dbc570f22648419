"""Every registered renderer, dataset, logger and training callback honours its interface (timm-style: a broken
registration cannot hide), through the checks third-party plugins run too
(:mod:`affectkit.testing`). Encoders, losses, prompt augmenters and view augmentations
have their contract tests beside their own tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import dataset_files
import pytest

from affectkit.data.mesh import Mesh, MeshSequence
from affectkit.registry import face_generators, registry
from affectkit.testing import check_callback, check_dataset, check_logger, check_renderer
from affectkit_plugins.synthetic import SyntheticDataset, write_synthetic

RENDERERS = registry().names("renderer")
DATASETS = registry().names("dataset")
LOGGERS = registry().names("logger")
CALLBACKS = registry().names("callback")

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


@pytest.mark.parametrize("name", RENDERERS)
def test_every_renderer_renders_a_sphere(name):
    check_renderer(registry().create("renderer", name), device="cuda" if name == "kaolin" else "cpu")  # Kaolin rasterises on CUDA only


@pytest.mark.parametrize("name", DATASETS)
def test_every_dataset_lists_and_loads_valid_samples(name, tmp_path):
    assert name in DATASET_TEST_OPTIONS, f"add small test options for dataset {name!r}"
    options = DATASET_TEST_OPTIONS[name]
    check_dataset(registry().create("dataset", name, options(tmp_path) if callable(options) else options))


@pytest.mark.parametrize("name", LOGGERS)
def test_every_logger_follows_a_run(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # MLflow writes beside the working folder too
    check_logger(registry().create("logger", name), tmp_path)


@pytest.mark.parametrize("name", CALLBACKS)
def test_every_training_callback_follows_a_run(name):
    check_callback(registry().create("callback", name))


def test_the_tensorboard_logger_writes_events_in_the_run_folder(tmp_path):
    check_logger(registry().create("logger", "tensorboard"), tmp_path)
    assert list((tmp_path / "contract" / "run" / "tensorboard").rglob("events.out.tfevents.*"))


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
