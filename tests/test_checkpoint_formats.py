"""Checkpoints keep loading: the inference config is all that loading reads.

``tests/fixtures/checkpoint-v1/`` was written by affectkit before the inference config
existed (format 1: a test_resnet encoder, 1 epoch on 4 facekit people, weights only);
``checkpoint-v1-expected.json`` holds what it predicted then for ``happy-face.ply``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

from affectkit.data.mesh_formats import load_mesh
from affectkit.errors import AffectkitError, CheckpointError
from affectkit.model.checkpoint import load_checkpoint, read_meta
from affectkit.serve.inference import Predictor

FIXTURES = Path(__file__).parent / "fixtures"
OLD = FIXTURES / "checkpoint-v1"


def expected() -> dict:
    return json.loads((FIXTURES / "checkpoint-v1-expected.json").read_text())


def test_a_format_1_checkpoint_loads_and_predicts_what_it_predicted_when_written():
    predictor = Predictor.from_checkpoint(OLD)
    prediction = predictor.predict(load_mesh(FIXTURES / expected()["input"]))
    assert prediction.probabilities == pytest.approx(expected()["probabilities"], abs=1e-5)
    assert prediction.view_weights == pytest.approx(expected()["view_weights"], abs=1e-6)
    inference = predictor.meta.inference
    assert inference.architecture.image_encoder.options["model"] == "test_resnet" and inference.input.size == 32


def copy_with(tmp_path: Path, edit) -> Path:
    copy = tmp_path / "ckpt"
    shutil.copytree(OLD, copy)
    document = json.loads((copy / "checkpoint.json").read_text())
    edit(document)
    (copy / "checkpoint.json").write_text(json.dumps(document))
    return copy


def test_a_recipe_the_schema_no_longer_accepts_does_not_stop_loading(tmp_path):
    def retired_key(document):
        document["recipe"]["train"]["retired_option"] = 1

    with pytest.warns(UserWarning, match="recorded training recipe does not validate any more"):
        model, meta = load_checkpoint(copy_with(tmp_path, retired_key))
    assert meta.recipe is None and meta.labels == expected_labels()


def expected_labels() -> list[str]:
    return list(expected()["probabilities"])


def test_settings_a_newer_affectkit_adds_are_dropped_with_a_warning(tmp_path):
    # a checkpoint of this version, with keys from the future in its inference config
    model, meta = load_checkpoint(OLD)
    from affectkit.model.checkpoint import save_checkpoint

    saved = save_checkpoint(tmp_path / "new", model, meta)
    document = json.loads((saved / "checkpoint.json").read_text())
    assert document["format"] == 2 and document["inference"]["architecture"]["embed_dim"] == 16
    document["inference"]["input"]["hdr"] = True
    document["inference"]["architecture"]["image_encoder"]["lora_rank"] = 8
    document["inference"]["calibration"] = {"temperature": 1.5}
    (saved / "checkpoint.json").write_text(json.dumps(document))
    with pytest.warns(UserWarning, match=r"ignoring settings this affectkit does not know: architecture.image_encoder.lora_rank, input.hdr, calibration"):
        again, meta = load_checkpoint(saved)
    assert meta.inference.input.size == 32


def test_an_unknown_format_is_one_clear_error(tmp_path):
    def future(document):
        document["format"] = 99

    with pytest.raises(CheckpointError, match=r"checkpoint format 99, this affectkit reads formats 1, 2"):
        read_meta(copy_with(tmp_path, future))


def test_new_checkpoints_record_the_library_versions():
    from affectkit.model.inference_config import InferenceConfig
    from affectkit.recipe import Recipe

    config = InferenceConfig.from_recipe(Recipe(name="x"), ["a", "b"], [["an a"], ["a b"]], 3, 3)
    assert {"affectkit", "torch", "timm"} <= set(config.versions)


def test_a_checkpoint_is_evaluated_on_what_it_held_out_or_on_named_data(tmp_path):
    """``evaluate_checkpoint`` (``affectkit eval``): named data; else the recorded held-out
    subjects; else, for checkpoints that predate them, the recipe's held-out split."""
    from affectkit.evaluate.reports import evaluate_checkpoint
    from affectkit.render.pipeline import parse_dataset_spec

    named = evaluate_checkpoint(OLD, parse_dataset_spec("facekit:subjects=1,intensities=[4],include_neutral=false,seed=11"))
    assert named.report.samples == 6 and named.warnings == [] and named.notes == []
    held_out = evaluate_checkpoint(OLD)
    assert held_out.notes == ["scoring the 1 subjects this checkpoint held out of facekit"] and held_out.report.samples == 12
    older = evaluate_checkpoint(copy_with(tmp_path / "a", lambda document: document.pop("provenance")))
    assert "scoring its recipe's held-out split" in older.notes[0] and older.report.samples == 12

    def neither(document):
        document.pop("provenance")
        document["recipe"]["train"]["retired_option"] = 1

    with pytest.warns(UserWarning), pytest.raises(AffectkitError, match="records neither its held-out subjects nor a recipe; name the data"):
        evaluate_checkpoint(copy_with(tmp_path / "b", neither))


def test_a_checkpoint_without_digests_is_refused_unless_trusted(tmp_path):
    from cli_runs import command

    copy = copy_with(tmp_path, lambda document: document.pop("sha256"))
    with pytest.raises(CheckpointError, match="no SHA-256 digest of model.safetensors"):
        read_meta(copy)
    assert Predictor.from_checkpoint(copy, trust_unverified=True).labels == expected_labels()
    face = FIXTURES / expected()["input"]
    refused = subprocess.run(command("predict", "--model", str(copy), str(face)), capture_output=True, text=True)
    assert refused.returncode == 1 and "--trust-unverified" in refused.stderr and "Traceback" not in refused.stderr
    trusted = subprocess.run(command("predict", "--model", str(copy), str(face), "--trust-unverified"), capture_output=True, text=True)
    assert trusted.returncode == 0, trusted.stderr


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d["labels"].append("contempt"), "7 labels but 6 class prompt lists"),
        (lambda d: d.update(num_views=5), "num_views 5 but 3 input views"),
        (lambda d: d.update(in_channels=7), "in_channels 7 but the maps"),
        (lambda d: d["recipe"]["render"].update(size=10**6), "size"),
        (lambda d: d["recipe"]["model"].update(embed_dim=10**8), "embed_dim"),
        (lambda d: d["recipe"]["render"].update(views=["front", "sideways", "right"]), "input.views: unknown view 'sideways'"),
    ],
)
def test_a_checkpoint_json_that_contradicts_itself_is_one_clear_error(tmp_path, edit, message):
    copy = copy_with(tmp_path, edit)
    with pytest.raises(CheckpointError, match="damaged checkpoint metadata") as caught:
        load_checkpoint(copy)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_nan_weights_are_refused_with_the_tensor_named(tmp_path):
    import hashlib

    from safetensors.torch import load_file, save_file

    copy = copy_with(tmp_path, lambda document: None)
    state = load_file(str(copy / "model.safetensors"))
    state["logit_scale"] = torch.tensor(float("nan"))
    save_file(state, str(copy / "model.safetensors"))
    document = json.loads((copy / "checkpoint.json").read_text())
    document["sha256"]["model.safetensors"] = hashlib.sha256((copy / "model.safetensors").read_bytes()).hexdigest()
    (copy / "checkpoint.json").write_text(json.dumps(document))
    with pytest.raises(CheckpointError, match="NaN or infinite weights in logit_scale"):
        load_checkpoint(copy)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d["recipe"]["model"]["image_encoder"]["options"].update(model="resnet10x"), "unknown timm model 'resnet10x'"),
        (lambda d: d["recipe"]["render"].update(renderer={"name": "tkrch"}), "unknown renderer 'tkrch'; registered: auto, torch"),
    ],
)
def test_a_checkpoint_naming_an_unknown_component_is_refused_naming_the_file(tmp_path, edit, message):
    """An edited component name or option (or a plugin not installed here): the error names
    the checkpoint's file, not just the component (found by ``make fuzz``)."""
    with pytest.raises(CheckpointError, match=r"checkpoint.json: the model it describes cannot be set up: ") as caught:
        load_checkpoint(copy_with(tmp_path, edit))
    assert message in str(caught.value)


def test_no_path_inside_a_checkpoint_decides_where_affectkit_writes(tmp_path):
    """A ``checkpoint.json`` whose recipe names a render cache and an output folder: eval
    reads only the inference config, so nothing is written where the file says."""
    from affectkit.evaluate.reports import evaluate_checkpoint
    from affectkit.render.pipeline import parse_dataset_spec

    steered = tmp_path / "written-by-the-checkpoint"

    def steer(document):
        document["recipe"]["render"]["cache_dir"] = str(steered / "cache")
        document["recipe"]["output"]["dir"] = str(steered / "runs")

    evaluate_checkpoint(copy_with(tmp_path, steer), parse_dataset_spec("facekit:subjects=1,intensities=[4],include_neutral=false,seed=11"))
    assert not steered.exists()
