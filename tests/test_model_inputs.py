"""Rendering a dataset split: bad files raise naming the file, or are skipped and listed."""

from __future__ import annotations

import pytest

from affectkit.errors import MeshError
from affectkit.factory import build_render_cache
from affectkit.model.inference_config import InputConfig
from affectkit.registry import create, registry
from affectkit.render.model_inputs import sample_frames
from affectkit.render.pipeline import render_samples
from affectkit_plugins.synthetic import write_synthetic


@pytest.fixture
def folder_with_a_broken_scan(tmp_path):
    options = registry().options("dataset", "synthetic", {"subjects": 2, "intensities": [4]})
    manifest = write_synthetic(tmp_path / "data", options)
    broken = sorted((tmp_path / "data" / "meshes").rglob("*_HA_4.ply"))[0]
    broken.write_bytes(broken.read_bytes()[:200])
    return manifest.parent, broken


INPUTS = InputConfig(size=24, maps=["normal"])


def test_a_bad_file_stops_rendering_naming_the_file(folder_with_a_broken_scan):
    root, broken = folder_with_a_broken_scan
    dataset = create("dataset", "folder", {"root": str(root)})
    with pytest.raises(MeshError, match=broken.name):
        render_samples(INPUTS, dataset, dataset.samples(), build_render_cache(INPUTS))


def test_skipped_bad_files_are_listed_not_dropped(folder_with_a_broken_scan):
    root, broken = folder_with_a_broken_scan
    dataset = create("dataset", "folder", {"root": str(root)})
    samples = dataset.samples()
    views = render_samples(INPUTS, dataset, samples, build_render_cache(INPUTS), skip_bad_files=True)
    assert len(views) == len(samples) - 1
    assert len(views.skipped) == 1 and broken.name in views.skipped[0]


def test_frame_samplers():
    assert sample_frames(25, 5, "uniform") == [0, 6, 12, 18, 24]
    apex = sample_frames(25, 3, "apex")
    assert apex[1] == 12 and apex[0] > 0 and apex[-1] < 24


def test_dataset_specs():
    from affectkit.errors import AffectkitError
    from affectkit.render.pipeline import parse_dataset_spec

    assert parse_dataset_spec("synthetic").model_dump() == {"name": "synthetic", "options": {}}
    assert parse_dataset_spec("bu3dfe:/data/BU-3DFE").options == {"root": "/data/BU-3DFE"}
    assert parse_dataset_spec("synthetic:subjects=3,seed=7").options == {"subjects": 3, "seed": 7}
    with pytest.raises(AffectkitError, match="'seed' is not key=value"):
        parse_dataset_spec("synthetic:subjects=3,seed")
