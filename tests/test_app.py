"""The Streamlit app through ``streamlit.testing``: controls, uploads, prompt editing, errors.

The model is a freshly built (untrained) one saved as a real checkpoint: these tests check
that the page shows what :class:`Predictor` predicts, not that the model is good (the
browser test does that with a trained one).
"""

from __future__ import annotations

import io
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from affectkit_apps.settings import CONFIG_ENV, AppConfig, format_class_prompts, generated_face, parse_class_prompts
from streamlit.testing.v1 import AppTest

from affectkit.data.mesh import Mesh
from affectkit.data.mesh_formats import load_input, save_mesh
from affectkit.errors import AffectkitError
from affectkit.factory import build_model
from affectkit.model.checkpoint import CheckpointMeta, save_checkpoint
from affectkit.recipe import ComponentRef, load_recipe
from affectkit.serve.adapted_model import adapt_model
from affectkit.serve.inference import Predictor

ROOT = Path(__file__).parent.parent
APP = ROOT / "apps" / "affectkit_app.py"
LABELS = ["anger", "disgust", "fear", "happiness", "sadness", "surprise"]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    recipe = load_recipe(ROOT / "recipes/quick.yaml", ["render.size=32", "render.cache_dir=null"])
    torch.manual_seed(0)
    model = build_model(recipe.model, num_views=3, in_channels=3)
    prompts = [[f"a 3D face scan showing {label}", f"a {label} facial expression"] for label in LABELS]
    meta = CheckpointMeta.for_recipe(recipe, LABELS, prompts, 3, 3, 4, {"val_accuracy": 0.2}, [])
    return save_checkpoint(tmp_path_factory.mktemp("ckpt") / "model", model, meta)


@pytest.fixture(scope="module")
def predictor(checkpoint) -> Predictor:
    return Predictor.from_checkpoint(checkpoint)


@pytest.fixture(autouse=True)
def keep_main_module(monkeypatch):
    """AppTest runs the page as ``__main__`` and leaves it there; later spawned processes
    (multiprocessing re-imports ``__main__``) must not see the page."""
    monkeypatch.setitem(sys.modules, "__main__", sys.modules["__main__"])


@pytest.fixture
def app(checkpoint, monkeypatch, tmp_path):
    monkeypatch.setenv(CONFIG_ENV, AppConfig(checkpoint=checkpoint, runs_dir=tmp_path / "runs").model_dump_json())
    return AppTest.from_file(str(APP), default_timeout=60)


def predicted(at: AppTest) -> str:
    (line,) = [m.value for m in at.markdown if m.value.startswith("## Predicted:")]
    return line.split("**")[1]


def test_face_controls_rerender_and_repredict(app, predictor):
    at = app.run()
    assert not at.exception and not at.error
    assert predicted(at) == predictor.predict(generated_face(predictor.trained_on, "facekit", 25, "happiness", 4, False)).label
    assert len(at.image) == 2  # a row of rgb views, a row of the model's normal maps
    assert len(at.get("plotly_chart")) == 3  # probabilities, 3D scan, view weights

    at.sidebar.selectbox(key="expression").set_value("surprise")
    at.sidebar.slider(key="subject").set_value(3)
    at.sidebar.slider(key="intensity").set_value(2)
    at.run()
    assert predicted(at) == predictor.predict(generated_face(predictor.trained_on, "facekit", 3, "surprise", 2, False)).label
    weights = predictor.predict(generated_face(predictor.trained_on, "facekit", 3, "surprise", 2, False)).view_weights
    assert set(weights) == {"front", "left", "right"}

    assert at.sidebar.selectbox(key="generator").value == "facekit"  # the checkpoint's training data
    at.sidebar.selectbox(key="generator").set_value("synthetic")
    at.run()
    assert not at.exception and not at.error
    assert predicted(at) == predictor.predict(generated_face(predictor.trained_on, "synthetic", 3, "surprise", 2, False)).label

    at.sidebar.checkbox(key="sequence").check()
    at.run()
    assert not at.exception
    assert len(at.get("plotly_chart")) == 4  # plus the per-frame probabilities
    assert any("Per-frame probabilities" in s.value for s in at.subheader)


def test_uploaded_mesh_and_zip_are_predicted(app, predictor, tmp_path, monkeypatch):
    face = generated_face(predictor.trained_on, "facekit", 30, "fear", 4, False)
    ply = save_mesh(face, tmp_path / "face.ply")
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()

    at = app.run()
    at.sidebar.radio(key="source").set_value("Upload a mesh")
    at.run()
    assert any("Upload a file" in i.value for i in at.info)
    at.sidebar.get("file_uploader")[0].set_value(("face.ply", ply.read_bytes(), "application/octet-stream"))
    at.run()
    assert not at.exception and not at.error
    assert predicted(at) == predictor.predict_file(ply).label

    buffer = io.BytesIO()
    sequence = generated_face(predictor.trained_on, "facekit", 30, "fear", 4, True, frames=5)
    with zipfile.ZipFile(buffer, "w") as archive:
        for i, frame in enumerate(sequence.frames):
            archive.write(save_mesh(frame, tmp_path / f"f{i}.ply"), f"seq/f{i}.ply")
    at.sidebar.radio(key="source").set_value("Upload a 4D sequence (zip)")
    at.run()
    at.sidebar.get("file_uploader")[0].set_value(("seq.zip", buffer.getvalue(), "application/zip"))
    at.run()
    assert not at.exception and not at.error
    assert len(at.get("plotly_chart")) == 4
    assert list((tmp_path / "tmp").iterdir()) == []  # uploads leave no files behind


def test_an_uploaded_scan_shows_the_face_frame_found_and_takes_its_units(app, predictor, tmp_path, monkeypatch):
    """A scan in centimetres exported Z-up is placed upright, and the page says how; the
    units chosen in the sidebar override the size test."""
    face = generated_face(predictor.trained_on, "facekit", 30, "happiness", 4, False)
    z_up = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
    ply = save_mesh(Mesh(face.vertices @ z_up.T / 10.0, face.faces), tmp_path / "cm-z-up.ply")
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    at = app.run()
    at.sidebar.radio(key="source").set_value("Upload a mesh")
    at.run()
    at.sidebar.get("file_uploader")[0].set_value(("cm-z-up.ply", ply.read_bytes(), "application/octet-stream"))
    at.run()
    assert not at.exception and not at.error
    (frame,) = [c.value for c in at.caption if c.value.startswith("Face frame")]
    assert "cm, +z up, facing -y" in frame
    assert predicted(at) == predictor.predict_file(ply).label
    at.sidebar.selectbox(key="units").set_value("m")  # a face 2 mm across in metres: no face's size
    at.run()
    assert not at.exception and any("in m it would be" in e.value for e in at.error)


def test_a_scan_is_read_against_the_persons_neutral_face_when_asked(checkpoint, app, monkeypatch, tmp_path):
    """The choice is off (and says why) for a model with no mean neutral; on a calibrated one
    a generated face is read against the same face at rest, a sequence against its first
    frame, an uploaded scan against an uploaded neutral scan (and a warning until there is one)."""
    at = app.run()
    assert at.sidebar.checkbox(key="against_neutral").disabled
    calibrated = tmp_path / "calibrated"
    adapt_model(checkpoint, calibrated, data=ComponentRef(name="facekit", options={"subjects": 2, "intensities": [4], "include_neutral": True}), neutral=True)
    predictor = Predictor.from_checkpoint(calibrated)
    monkeypatch.setenv(CONFIG_ENV, AppConfig(checkpoint=calibrated, runs_dir=tmp_path / "runs").model_dump_json())
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    at = AppTest.from_file(str(APP), default_timeout=60).run()
    at.sidebar.checkbox(key="against_neutral").check().run()
    assert not at.exception and not at.error
    assert any(c.value.startswith("Read against the same face at rest") for c in at.caption)
    at_rest = generated_face(predictor.trained_on, "facekit", 25, "neutral", 1, False)
    against = predictor.predict(generated_face(predictor.trained_on, "facekit", 25, "happiness", 4, False), neutral=at_rest)
    assert f"**{against.label}** ({against.probabilities[against.label]:.1%})" in [m.value for m in at.markdown if m.value.startswith("## Predicted")][0]
    at.sidebar.checkbox(key="sequence").check().run()
    assert any(c.value.startswith("Read against its first frame") for c in at.caption)

    face, neutral = (save_mesh(generated_face(predictor.trained_on, "facekit", 30, label, 4, False), tmp_path / f"{label}.ply") for label in ("fear", "neutral"))
    at.sidebar.radio(key="source").set_value("Upload a mesh").run()
    at.sidebar.file_uploader(key="mesh_upload").set_value(("fear.ply", face.read_bytes(), "application/octet-stream")).run()
    assert "Upload the person's neutral scan" in at.warning[0].value and predicted(at) == predictor.predict_file(face).label
    at.sidebar.file_uploader(key="neutral_upload").set_value(("neutral.ply", neutral.read_bytes(), "application/octet-stream")).run()
    assert not at.exception and not at.error and not at.warning
    assert any(c.value.startswith("Read against the neutral scan neutral.ply") for c in at.caption)
    assert predicted(at) == predictor.predict_file(face, neutral=load_input(neutral)).label


def test_editing_prompts_changes_the_classes_without_retraining(app):
    at = app.run()
    editor = at.sidebar.text_area(key="class_prompts")
    assert parse_class_prompts(editor.value)["happiness"][0] == "a 3D face scan showing happiness"
    editor.set_value("joy: a joyful face | a smiling person\nrage: a furious face\ncalm: a calm, relaxed face")
    at.run()
    assert not at.error
    assert predicted(at) in {"joy", "rage", "calm"}
    (table,) = at.dataframe
    assert set(table.value["prompt"]) <= {"a joyful face", "a smiling person", "a furious face", "a calm, relaxed face"}

    at.sidebar.text_area(key="class_prompts").set_value("joy: a joyful face\nthis line has no colon")
    at.run()
    assert "line 2" in at.error[0].value and "Using the trained classes" in at.error[0].value
    assert predicted(at) in LABELS  # still running, on the trained classes

    at.sidebar.button[0].click()  # reset
    at.run()
    assert not at.error and at.sidebar.text_area(key="class_prompts").value.startswith("anger: ")


BAD_UPLOADS = {
    "wrong format": ("notes.txt", b"hello", "unsupported format '.txt'"),
    "corrupt mesh": ("face.ply", b"ply\nformat ascii 1.0\nelement vertex 3\nend_header\n1 2", "face.ply: "),
    "huge header": ("face.ply", b"ply\nformat binary_little_endian 1.0\nelement vertex 4000000000\nend_header\n", "declares 4,000,000,000 vertices"),
    "zip with ..": ("seq.zip", None, "zip entry '../evil.ply' has an absolute or '..' path"),
    "collapsed to a point": ("dot.ply", "point", "dot.ply: its size fits no unit a face is measured in"),
    "a face 10 m across": ("giant.ply", "giant", "giant.ply: its size fits no unit a face is measured in"),
}


def face_bytes(kind: str, folder: Path) -> bytes:
    """A facekit face collapsed to a point, or scaled to a size no face has in any unit."""
    face = generated_face(None, "facekit", 1, "happiness", 4, False)
    vertices = np.ones_like(face.vertices) if kind == "point" else face.vertices * 50.0
    return save_mesh(Mesh(vertices, face.faces), folder / "face.ply").read_bytes()


@pytest.mark.parametrize("name,data,message", BAD_UPLOADS.values(), ids=BAD_UPLOADS.keys())
def test_bad_uploads_show_a_clear_message_and_the_app_keeps_running(app, predictor, tmp_path, name, data, message):
    if data is None:
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            archive.writestr("../evil.ply", b"ply")
        data = buffer.getvalue()
    elif isinstance(data, str):
        data = face_bytes(data, tmp_path)
    at = app.run()
    at.sidebar.radio(key="source").set_value("Upload a 4D sequence (zip)" if name.endswith(".zip") else "Upload a mesh")
    at.run()
    at.sidebar.get("file_uploader")[0].set_value((name, data, "application/octet-stream"))
    at.run()
    assert not at.exception
    assert message in at.error[0].value

    good = save_mesh(generated_face(predictor.trained_on, "facekit", 2, "sadness", 4, False), tmp_path / "good.ply")
    at.sidebar.radio(key="source").set_value("Upload a mesh")
    at.run()
    at.sidebar.get("file_uploader")[0].set_value(("good.ply", good.read_bytes(), "application/octet-stream"))
    at.run()
    assert not at.error and predicted(at) == predictor.predict_file(good).label


def test_oversized_upload_is_refused(checkpoint, predictor, monkeypatch, tmp_path):
    monkeypatch.setenv(CONFIG_ENV, AppConfig(checkpoint=checkpoint, max_upload_mb=0.05).model_dump_json())
    at = AppTest.from_file(str(APP), default_timeout=60).run()
    at.sidebar.radio(key="source").set_value("Upload a mesh").run()
    ply = save_mesh(generated_face(predictor.trained_on, "facekit", 2, "anger", 4, False), tmp_path / "big.ply")
    at.sidebar.get("file_uploader")[0].set_value(("big.ply", ply.read_bytes(), "application/octet-stream")).run()
    assert "over the upload limit of 0.05 MiB (max_upload_mb)" in at.error[0].value


def test_without_a_model_of_ones_own_the_shipped_one_answers_and_training_is_offered(monkeypatch, tmp_path):
    monkeypatch.setenv(CONFIG_ENV, AppConfig(runs_dir=tmp_path / "runs").model_dump_json())
    at = AppTest.from_file(str(APP), default_timeout=60).run()
    assert not at.exception and not at.error
    assert "shipped with affectkit" in at.caption[0].value
    assert "affectkit run" in at.info[0].value and "recipes/quick.yaml" in at.info[0].value
    assert at.button[0].label == "Train quick.yaml now"
    assert predicted(at) in LABELS  # a working model on the first screen, before any training


def test_a_broken_checkpoint_is_a_message_in_the_page(checkpoint, monkeypatch, tmp_path):
    import shutil

    broken = Path(shutil.copytree(checkpoint, tmp_path / "broken"))
    (broken / "model.safetensors").write_bytes(b"\0" * 100)
    monkeypatch.setenv(CONFIG_ENV, AppConfig(checkpoint=broken).model_dump_json())
    at = AppTest.from_file(str(APP), default_timeout=60).run()
    assert not at.exception
    assert "Cannot load the model" in at.error[0].value and "model.safetensors" in at.error[0].value


def test_class_prompt_text_round_trips_and_names_bad_lines():
    classes = {"joy": ["a joyful face", "a smile"], "calm": ["a calm face"]}
    assert parse_class_prompts(format_class_prompts(classes)) == classes
    for text, message in [
        ("joy: a\njoy: b", "line 2: class 'joy' appears twice"),
        ("joy: a", "at least two classes"),
        ("joy:\ncalm: a", "line 1: 'joy:' should read"),
    ]:
        with pytest.raises(AffectkitError, match=message):
            parse_class_prompts(text)


def test_app_command_checks_its_settings_before_starting(tmp_path):
    from cli_runs import command

    (tmp_path / "app.yaml").write_text("max_upload_mb: 10\nmax_vertexes: 5\n")
    for args, message in [
        (["--checkpoint", str(tmp_path / "nowhere")], "nowhere"),
        (["--config", str(tmp_path / "app.yaml")], "max_vertexes: Extra inputs are not permitted"),
        (["--max-upload-mb", "-1"], "max_upload_mb: Input should be greater than 0"),
    ]:
        result = subprocess.run(command("app", *args), capture_output=True, text=True, timeout=60, cwd=ROOT)
        assert result.returncode == 1 and message in result.stderr, result.stderr
        assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_the_app_trains_the_quick_recipe_when_there_is_no_model(monkeypatch, tmp_path):
    from affectkit.recipe import dump_recipe

    recipe = tmp_path / "tiny.yaml"
    # under 32 training scans: one step an epoch, so min_steps=2 trains two epochs, and the progress says so
    tiny = ["train.epochs=1", "train.min_steps=2", "render.size=32", "render.cache_dir=null", "data.dataset.options.subjects=6", "data.dataset.options.intensities=[4]"]
    recipe.write_text(dump_recipe(load_recipe(ROOT / "recipes/quick.yaml", tiny)))
    monkeypatch.setenv(CONFIG_ENV, AppConfig(runs_dir=tmp_path / "runs", train_recipe=recipe).model_dump_json())
    at = AppTest.from_file(str(APP), default_timeout=60).run()
    at.button[0].click().run(timeout=600)
    assert not at.exception and not at.error
    assert "Trained quick: 2 of 2 epochs" in at.success[0].value
    assert (tmp_path / "runs" / "quick" / "model" / "checkpoint.json").is_file()
    assert predicted(at) in LABELS  # the page reran with the new model


def test_a_model_that_knows_action_units_shows_them_beside_the_probabilities(monkeypatch, tmp_path):
    from affectkit.data.action_units import au_prompts

    recipe = load_recipe(ROOT / "recipes/quick.yaml", ["render.size=32", "render.cache_dir=null"])
    torch.manual_seed(0)
    codes = [1, 4, 12]
    model = build_model(recipe.model, num_views=3, in_channels=3, action_units=len(codes))
    meta = CheckpointMeta.for_recipe(recipe, LABELS, [[f"a {label} face"] for label in LABELS], 3, 3, 4, {}, [], None, codes, au_prompts(codes))
    checkpoint = save_checkpoint(tmp_path / "model", model, meta)
    monkeypatch.setenv(CONFIG_ENV, AppConfig(checkpoint=checkpoint, runs_dir=tmp_path / "runs").model_dump_json())
    at = AppTest.from_file(str(APP), default_timeout=60).run()
    assert not at.exception and not at.error
    assert any(s.value == "Action units" for s in at.subheader)
    assert len(at.get("plotly_chart")) == 4  # probabilities, action units, 3D scan, view weights
