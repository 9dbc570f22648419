"""Mirror test-time augmentation: the mirrored views are the views of the mirrored face, a
model scoring with it calls a face and its mirror image alike, and it is chosen in a recipe,
recorded with a model, and switched on or off for any model from the API and the CLI."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest
import torch
from cli_runs import ROOT, command, run_ok

from affectkit.data.mesh import Mesh
from affectkit.data.mesh_formats import save_mesh
from affectkit.model.inference_config import InputConfig
from affectkit.recipe import load_recipe
from affectkit.registry import create, registry
from affectkit.render.cameras import parse_views
from affectkit.serve.inference import Predictor
from affectkit.serve.test_time import MirroredViews, mirror_partners

VIEWS = parse_views(["front", "left", "right"])
MAPS = ["normal", "depth", "mask"]


def face(label: str = "happiness") -> Mesh:
    """A clean facekit face, its left and right made a little different (a lopsided smile)."""
    dataset = create("dataset", "facekit", {"subjects": 2, "intensities": [4], "realism": False, "seed": 4})
    mesh = dataset.load(next(s for s in dataset.samples() if s.label == label))
    vertices = mesh.vertices.copy()
    vertices[:, 2] += 4.0 * np.clip(vertices[:, 0] / 60.0, 0, 1) * np.exp(-(((vertices[:, 1] - vertices[:, 1].mean()) / 40.0) ** 2))
    return Mesh(vertices=vertices, faces=mesh.faces, source="lopsided")


def mirrored(mesh: Mesh) -> Mesh:
    return Mesh(vertices=mesh.vertices * np.array([-1.0, 1.0, 1.0], np.float32), faces=mesh.faces[:, ::-1].copy(), source="mirrored")


def test_the_mirrored_views_are_the_views_of_the_mirrored_face():
    renderer = registry().create("renderer", "torch")
    views = renderer.render([face()], VIEWS, 64).stack(MAPS)
    expected = renderer.render([mirrored(face())], VIEWS, 64).stack(MAPS)
    made = MirroredViews(VIEWS, MAPS)(views)
    assert made.shape == views.shape
    agree = (made[:, :, 4] == expected[:, :, 4]).float().mean()  # the masks
    assert agree > 0.99
    both = (made[:, :, 4] * expected[:, :, 4]).bool()
    normals = (made[:, :, :3] - expected[:, :, :3]).abs().amax(dim=2)[both]
    assert normals.median() < 0.01 and (normals < 0.1).float().mean() > 0.98
    assert (views[:, :, :3] - expected[:, :, :3]).abs().amax(dim=2)[both].median() > 0.03  # the face is not symmetric


def test_only_views_with_their_mirror_views_can_be_mirrored():
    assert mirror_partners(VIEWS) == [0, 2, 1]
    assert mirror_partners(parse_views(["front", "10:5:3", "-10:5:-3"])) == [0, 2, 1]
    assert mirror_partners(parse_views(["front", "left"])) is None
    with pytest.raises(ValueError, match="front, left lack one"):
        MirroredViews(parse_views(["front", "left"]), MAPS)


def test_with_mirror_a_face_and_its_mirror_image_get_the_same_probabilities():
    plain, tta = Predictor.from_pretrained(test_time=[]), Predictor.from_pretrained(test_time=["mirror"])
    scan, image = face(), mirrored(face())
    with_tta = [tta.predict(m).probabilities for m in (scan, image)]
    without = [plain.predict(m).probabilities for m in (scan, image)]
    assert max(abs(with_tta[0][k] - with_tta[1][k]) for k in with_tta[0]) < 0.02
    for label in with_tta[0]:  # the mean of the two plain calls
        assert with_tta[0][label] == pytest.approx((without[0][label] + without[1][label]) / 2, abs=0.02)


def test_a_recipe_chooses_it_and_the_model_records_it():
    recipe = load_recipe(ROOT / "recipes/affectvlm.yaml", ["render.test_time=[mirror]"])
    assert InputConfig.from_recipe(recipe).test_time == ["mirror"]
    assert InputConfig.from_recipe(load_recipe(ROOT / "recipes/affectvlm.yaml")).test_time == []
    result = subprocess.run(
        command("run", "recipes/quick.yaml", "--set", "render.test_time=[mirror]", "render.views=[front, left]"), cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "render: test_time: mirror needs each view's mirror view" in result.stderr, result.stderr


def test_predict_switches_it_on_and_off_and_says_which(tmp_path):
    path = save_mesh(face(), tmp_path / "lopsided.ply")
    records = {
        choice: json.loads(run_ok("predict", str(path), "--json", "--test-time", choice).strip().splitlines()[-1]) for choice in ("model", "mirror", "none")
    }
    assert records["mirror"]["test_time"] == ["mirror"] and records["none"]["test_time"] == [] == records["model"]["test_time"]
    # two processes: the same model and scan give the same scores up to float rounding
    assert records["model"]["probabilities"] == pytest.approx(records["none"]["probabilities"], abs=1e-6)
    assert records["none"]["probabilities"] != pytest.approx(records["mirror"]["probabilities"], abs=1e-6)
    bad = subprocess.run(command("predict", str(path), "--test-time", "flip"), cwd=ROOT, capture_output=True, text=True)
    assert bad.returncode == 2 and "'flip' is not one of 'model', 'mirror', 'none'" in bad.stderr
    assert torch.tensor(list(records["mirror"]["probabilities"].values())).sum() == pytest.approx(1.0, abs=1e-4)
