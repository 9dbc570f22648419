"""Models that travel: the shipped default model, exported folders, loading without the
text tower, the Hugging Face Hub round trip (against a local stand-in of its API, through
the real client) and ONNX / TorchScript export with parity to eager PyTorch."""

from __future__ import annotations

import json
import os
import subprocess
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_runs import ROOT, command, run_ok
from hub_server import FakeHub

from affectkit.data.mesh_formats import load_mesh, save_mesh
from affectkit.errors import AffectkitError
from affectkit.factory import DeferredTextEncoder
from affectkit.model.checkpoint import TRAINING_FILE, export_model, read_meta
from affectkit.serve.export import ViewClassifier
from affectkit.serve.hub import DEFAULT_MODEL, resolve_model
from affectkit.serve.inference import Predictor
from affectkit_plugins.synthetic import SyntheticDataset

FIXTURES = Path(__file__).parent / "fixtures"
HAPPY = FIXTURES / "happy-face.ply"


@pytest.fixture(scope="module")
def happy_scan(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A happy facekit scan of a person no shipped model trained on (seed 4242), as PLY."""
    from affectkit.factory import build_dataset
    from affectkit.recipe import ComponentRef

    dataset = build_dataset(ComponentRef(name="facekit", options={"subjects": 1, "intensities": [4], "seed": 4242}))
    (sample,) = [s for s in dataset.samples() if s.label == "happiness"]
    return save_mesh(dataset.load(sample), tmp_path_factory.mktemp("scan") / "happy.ply")


@pytest.fixture
def tiny_model(tmp_path: Path) -> Path:
    """The format-1 test checkpoint (a tiny encoder) exported as a model folder."""
    return export_model(FIXTURES / "checkpoint-v1", tmp_path / "tiny")


def predictions(out: str) -> list[dict]:
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


# -- the shipped model --------------------------------------------------------------------


def test_predict_with_no_model_uses_the_shipped_one_and_gets_a_happy_face_right(happy_scan):
    (record,) = predictions(run_ok("predict", str(happy_scan), "--json"))
    assert record["label"] == "happiness", record
    assert set(record["probabilities"]) == {"anger", "disgust", "fear", "happiness", "sadness", "surprise"}


def test_the_shipped_model_is_small_inference_only_and_carded():
    files = {p.name for p in DEFAULT_MODEL.iterdir()}
    assert files == {"checkpoint.json", "model.safetensors", "text_features.safetensors", "README.md"}
    assert sum(p.stat().st_size for p in DEFAULT_MODEL.iterdir()) <= 15 * 2**20
    meta, document = read_meta(DEFAULT_MODEL)
    assert "training" not in document and meta.provenance["dataset"]["name"] == "facekit"
    card = (DEFAULT_MODEL / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: affectkit\n")
    for needed in ("## Training data", "## Results", "facekit", "inherits the terms of the data", "synthetic"):
        assert needed in card, needed
    # and the honest figure on a face model no stage saw, as the transfer benchmark measured it last
    rows = json.loads((ROOT / "benchmarks" / "results" / "transfer.json").read_text())["rows"]
    across = next(r for r in rows if (r["variant"], r["row"]) == ("AffectVLM (shipped recipe)", "facekit -> synthetic"))
    assert "expect far less" in card and f"the procedural faces {across['accuracy']['mean']:.1%} ± {across['accuracy']['std']:.1%}" in card


def test_loading_runs_no_text_encoder_until_a_new_prompt_needs_one(happy_scan):
    predictor = Predictor.from_pretrained()
    tower = predictor.model.text_encoder
    assert isinstance(tower, DeferredTextEncoder) and not tower._built
    face = load_mesh(happy_scan)
    assert predictor.predict(face).label == "happiness"
    assert not tower._built
    # zero-shot: a seventh class beside the trained six, embedded by the real encoder on demand
    classes = predictor.class_prompts
    extended = predictor.encode_classes({**classes, "contempt": ["a 3D face scan showing contempt"]})
    assert tower._built and len(extended.labels) == 7
    # the stored features are what the encoder gives
    rebuilt = predictor.encode_classes(classes)
    assert torch.allclose(rebuilt.class_embeddings, predictor.classes.class_embeddings, atol=1e-5)


# -- exported folders ---------------------------------------------------------------------


def test_an_exported_folder_drops_training_state_and_predicts_the_same(tmp_path):
    half = export_model(FIXTURES / "checkpoint-v1", tmp_path / "half", dtype=torch.float16)
    full = export_model(FIXTURES / "checkpoint-v1", tmp_path / "full")
    assert not (half / TRAINING_FILE).exists()
    assert (half / "model.safetensors").stat().st_size < 0.6 * (full / "model.safetensors").stat().st_size
    face = load_mesh(HAPPY)
    expected = json.loads((FIXTURES / "checkpoint-v1-expected.json").read_text())["probabilities"]
    assert Predictor.from_checkpoint(full).predict(face).probabilities == pytest.approx(expected, abs=1e-5)
    assert Predictor.from_checkpoint(half).predict(face).probabilities == pytest.approx(expected, abs=1e-2)


def test_a_model_whose_encoder_was_pretrained_from_the_hub_loads_offline_without_fetching(tiny_model):
    """Its weights follow in the folder: the encoder's ``pretrained`` option is not acted on
    (the suite runs with HF_HUB_OFFLINE=1, so a download attempt would fail)."""
    path = tiny_model / "checkpoint.json"
    document = json.loads(path.read_text())
    document["inference"]["architecture"]["image_encoder"]["options"]["pretrained"] = True
    path.write_text(json.dumps(document))
    expected = json.loads((FIXTURES / "checkpoint-v1-expected.json").read_text())["probabilities"]
    assert Predictor.from_pretrained(tiny_model).predict(load_mesh(HAPPY)).probabilities == pytest.approx(expected, abs=1e-5)


def test_model_sources_that_are_not_models_fail_with_one_clear_line(tmp_path):
    with pytest.raises(AffectkitError, match="no such model folder"):
        resolve_model(tmp_path / "missing")
    with pytest.raises(AffectkitError, match="no such model folder"):
        resolve_model("face.ply")


# -- the Hugging Face Hub -----------------------------------------------------------------


def test_push_then_pull_by_hub_id_and_revision_then_offline_from_the_cache(tiny_model, tmp_path):
    hub = FakeHub()
    try:
        env = hub.client_env(tmp_path / "hf")
        out = run_ok("push", str(tiny_model), "--repo", "lab/fer-tiny", env=env)
        assert "README.md" in out and "model.safetensors" in out
        pushed = hub.repos["lab/fer-tiny"].revisions["main"]
        assert set(pushed) == {"README.md", "checkpoint.json", "model.safetensors", "text_features.safetensors"}
        assert pushed["README.md"].startswith(b"---\nlibrary_name: affectkit")
        first = hub.repos["lab/fer-tiny"].commits["main"]

        (tiny_model / "README.md").write_text(pushed["README.md"].decode() + "\nSecond version.\n")  # a card of one's own
        run_ok("push", str(tiny_model), "--repo", "lab/fer-tiny", env=env)
        assert hub.repos["lab/fer-tiny"].commits["main"] != first

        local = predictions(run_ok("predict", "--model", str(tiny_model), str(HAPPY), "--json"))
        pulled = predictions(run_ok("predict", "--model", "lab/fer-tiny", str(HAPPY), "--json", env=env))
        assert pulled[0]["probabilities"] == pytest.approx(local[0]["probabilities"], abs=1e-6)
        old = subprocess.run(
            [*command("predict", "--model", "lab/fer-tiny", "--revision", first, str(HAPPY))], capture_output=True, text=True, cwd=ROOT, env=env
        )
        assert old.returncode == 0, old.stderr
        folder = resolve_model_in(env, "lab/fer-tiny", first)
        assert "Second version" not in (folder / "README.md").read_text()
    finally:
        hub.close()
    # the hub is gone: the cached copy still loads, with HF_HUB_OFFLINE as users set it
    offline = predictions(run_ok("predict", "--model", "lab/fer-tiny", str(HAPPY), "--json", env={**env, "HF_HUB_OFFLINE": "1"}))
    assert offline[0]["label"] == local[0]["label"]


def resolve_model_in(env: dict[str, str], source: str, revision: str) -> Path:
    script = "import sys; from affectkit.serve.hub import resolve_model; print(resolve_model(sys.argv[1], sys.argv[2]))"
    result = subprocess.run([command()[0], "-c", script, source, revision], capture_output=True, text=True, env=env, check=True)
    return Path(result.stdout.strip())


def test_a_hub_id_offline_and_not_cached_fails_at_once_with_one_line(tmp_path):
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(command("predict", "--model", "someone/some-model", str(HAPPY)), capture_output=True, text=True, cwd=ROOT, env=env)
    assert result.returncode != 0
    assert "someone/some-model" in result.stderr and "not in the local cache" in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_an_unknown_hub_repository_and_a_refused_upload_are_clear_errors(tiny_model, tmp_path):
    hub = FakeHub()
    try:
        env = hub.client_env(tmp_path / "hf")
        missing = subprocess.run(command("predict", "--model", "lab/nothing", str(HAPPY)), capture_output=True, text=True, cwd=ROOT, env=env)
        assert missing.returncode != 0 and "no such model on the Hugging Face hub" in missing.stderr and "Traceback" not in missing.stderr
        (tiny_model / "README.md").write_text("no metadata block\n")
        refused = subprocess.run(command("push", str(tiny_model), "--repo", "lab/x"), capture_output=True, text=True, cwd=ROOT, env=env)
        assert refused.returncode != 0 and "refused the model card" in refused.stderr and "Traceback" not in refused.stderr
    finally:
        hub.close()


# -- deployment export --------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_export_matches_eager_pytorch_on_rendered_views(fmt, tmp_path, happy_scan):
    model = DEFAULT_MODEL
    out = tmp_path / f"model.{'onnx' if fmt == 'onnx' else 'pt'}"
    run_ok("export", str(model), "--format", fmt, "--out", str(out))
    sidecar = json.loads(Path(f"{out}.json").read_text())
    predictor = Predictor.from_pretrained(model)
    assert sidecar["labels"] == predictor.labels and sidecar["render"]["views"] == predictor.inputs.views
    synthetic = SyntheticDataset(SyntheticDataset.Options(subjects=1, intensities=[4]))
    faces = [load_mesh(happy_scan), *(synthetic.load(s) for s in synthetic.samples()[:2])]
    views = torch.cat([predictor.cache.render([face]).stack(predictor.inputs.maps) for face in faces])  # [B, V, C, H, W]
    with torch.no_grad():
        eager = ViewClassifier(predictor.model, predictor.classes.class_embeddings)(views).numpy()
    if fmt == "onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
        exported = session.run(None, {"views": views.numpy()})[0]
    else:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # PyTorch deprecates TorchScript; the format is still asked for
            exported = torch.jit.load(str(out))(views).numpy()
    np.testing.assert_allclose(exported, eager, atol=1e-4)
    assert predictor.labels[int(exported[0].argmax())] == predictor.predict(faces[0]).label


def test_the_documented_onnxruntime_deployment_runs_as_written(tmp_path, happy_scan):
    import re
    import shutil
    import sys

    page = (ROOT / "docs" / "models.md").read_text()
    snippet = re.search(r"Deployment with onnxruntime.*?```python\n(.*?)```", page, re.S).group(1)
    run_ok("export", "--format", "onnx", "--out", str(tmp_path / "affectvlm.onnx"))
    shutil.copyfile(happy_scan, tmp_path / "face.ply")
    result = subprocess.run([sys.executable, "-c", snippet], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "happiness"


def test_meshes_of_no_face_size_or_that_render_blank_get_no_label(tmp_path, happy_scan):
    from affectkit.data.mesh import Mesh

    face = load_mesh(happy_scan)
    outlier = face.vertices.copy()
    outlier[0] = 1e30
    variants = {
        "point": np.ones_like(face.vertices),
        "outlier": outlier,
        "tiny": face.vertices * 1e-30,
        "huge": face.vertices * 1e30,
    }
    paths = [str(save_mesh(Mesh(vertices, face.faces), tmp_path / f"{name}.ply")) for name, vertices in variants.items()]
    result = subprocess.run(command("predict", *paths, str(happy_scan), "--json"), capture_output=True, text=True, cwd=ROOT)
    records = predictions(result.stdout)
    assert result.returncode == 1 and "4 of 5 inputs could not be predicted" in result.stderr
    refusals = [r.get("error", "") for r in records[:4]]
    assert all("fits no unit a face is measured in" in e for e in (refusals[0], refusals[2], refusals[3])), refusals  # point, tiny, huge
    assert "renders blank" in refusals[1] and "label" in records[4]  # one vertex far out: the face shrinks to a dot


def test_a_face_turned_round_is_turned_back_and_a_model_without_the_frame_refuses_it(tmp_path, happy_scan, tiny_model):
    """The shipped model finds the face frame: a face turned 180° (or seen as the back of a
    face shell, which renders the same) is turned to face the cameras and labelled as the
    face is. A model that takes scans as they come (saved before the frame existed) still
    refuses it: its frontal view sees a bowl where a face is a dome."""
    from affectkit.data.mesh import Mesh
    from affectkit.errors import MeshError
    from affectkit.render.cameras import View

    face = load_mesh(happy_scan)

    def turned(degrees: float) -> Mesh:  # as a camera at yaw -degrees sees it
        rotation = View("turned", -degrees).rotation(torch.float64).numpy()
        return Mesh(face.vertices @ rotation.T, face.faces, colors=face.colors, source=f"turned-{degrees}.ply")

    paths = [str(save_mesh(turned(degrees), tmp_path / f"turned-{degrees}.ply")) for degrees in (180, 90)]
    records = predictions(run_ok("predict", *paths, "--json"))
    assert [r["label"] for r in records] == ["happiness", "happiness"]
    assert records[0]["frame"]["facing"] == "-z"
    with pytest.raises(MeshError, match="faces away from the cameras"):
        Predictor.from_checkpoint(tiny_model).predict(turned(180))