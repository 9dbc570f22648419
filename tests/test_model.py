"""AffectVLM's model, checkpoints and prediction, without Ray (fast)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from affectkit.errors import AffectkitError, CheckpointError
from affectkit.factory import build_model
from affectkit.model.checkpoint import CheckpointMeta, load_checkpoint, save_checkpoint
from affectkit.recipe import parse_recipe
from affectkit.registry import create
from affectkit.serve.inference import Predictor

LABELS = ["anger", "disgust", "fear", "happiness", "sadness", "surprise"]


def small_recipe(**model):
    return parse_recipe(
        {
            "name": "t",
            "render": {"size": 32, "maps": ["normal", "depth"], "cache_dir": None},
            "data": {"dataset": {"name": "synthetic", "options": {"subjects": 2, "sequences": True, "frames": 6}}, "frames": 3},
            "model": {"image_encoder": {"name": "timm", "options": {"model": "resnet10t"}}, "embed_dim": 32, **model},
        }
    )


@pytest.fixture(scope="module")
def recipe():
    return small_recipe()


@pytest.fixture(scope="module")
def model(recipe):
    torch.manual_seed(0)
    return build_model(recipe.model, num_views=3, in_channels=4)


def test_forward_pools_time_and_fuses_views(model):
    views = torch.randn(2, 3, 3, 4, 32, 32)  # [B, T, V, C, H, W]
    per_view, joint, text, scale, classes, au_logits = model(views, ["a happy face", "an angry face"], [["a happy face"], ["an angry face"]])
    assert au_logits is None  # no AU prompts asked for
    assert per_view.shape == (2, 3, 32) and joint.shape == (2, 32) and text.shape == (2, 32)
    for t in (per_view, joint, text):
        assert torch.allclose(t.norm(dim=-1), torch.ones(()), atol=1e-5)
    assert torch.isclose(model.view_weights().sum(), torch.tensor(1.0))
    assert torch.isclose(scale, model.logit_scale.exp())
    assert torch.allclose(classes, model.class_embeddings([["a happy face"], ["an angry face"]]))
    joint.sum().backward()
    assert model.view_logits.grad is not None and model.view_logits.grad.abs().sum() > 0


def test_frozen_text_tower_has_no_gradient_and_stays_in_eval_mode(model):
    assert not model.text_trainable
    model.train()
    assert not model.text_encoder.training and model.image_encoder.training
    a = model.text_features(["a smiling person"])
    b = model.text_features(["a smiling person"])
    assert torch.equal(a, b)


def test_partial_fine_tuning_unfreezes_matching_parameters():
    recipe = small_recipe(text_encoder={"name": "minilm", "freeze": True, "trainable": ["*layer.5.*"]})
    model = build_model(recipe.model, 3, 4)
    trainable = [n for n, p in model.text_encoder.named_parameters() if p.requires_grad]
    assert trainable and all("layer.5." in n for n in trainable)


def test_attention_fusion_builds_and_runs():
    model = build_model(small_recipe(fusion="attention").model, 3, 4)
    _, joint = model.encode_views(torch.randn(2, 1, 3, 4, 32, 32))
    assert joint.shape == (2, 32)


def test_class_embeddings_average_each_prompt_ensemble(model):
    classes = model.class_embeddings([["a happy face", "a smiling face"], ["an angry face"]])
    single = model.encode_text(["an angry face"])
    assert classes.shape == (2, 32)
    assert torch.allclose(classes[1], single[0], atol=1e-5)


def test_checkpoint_round_trip_and_prediction_on_a_sequence(tmp_path, recipe, model):
    meta = CheckpointMeta.for_recipe(recipe, LABELS, [[f"a {x} face"] for x in LABELS], 3, 4, 0, {"val_accuracy": 0.5}, [])
    path = save_checkpoint(tmp_path / "ckpt", model, meta)
    loaded, loaded_meta = load_checkpoint(path)
    assert loaded_meta.labels == LABELS
    views = torch.randn(1, 3, 3, 4, 32, 32)
    model.eval()
    assert torch.allclose(loaded.encode_views(views)[1], model.encode_views(views)[1], atol=1e-5)

    predictor = Predictor(loaded, loaded_meta)
    dataset = create("dataset", "synthetic", {"subjects": 1, "sequences": True, "frames": 6})
    prediction = predictor.predict(dataset.load(dataset.samples()[0]))
    assert set(prediction.probabilities) == set(LABELS)
    assert abs(sum(prediction.probabilities.values()) - 1) < 1e-5
    assert set(prediction.view_weights) == {"front", "left", "right"}

    sequence = dataset.load(dataset.samples()[0])
    timeline = predictor.predict_frames(sequence)
    assert len(timeline) == len(sequence) == 6
    assert all(abs(sum(frame.values()) - 1) < 1e-5 for frame in timeline)

    predictor.set_class_prompts({"joy": ["a joyful face"], "rage": ["a furious face"], "calm": ["a calm face"]})
    assert set(predictor.predict(dataset.load(dataset.samples()[0])).probabilities) == {"joy", "rage", "calm"}


def test_altered_checkpoints_fail_clearly(tmp_path, recipe, model):
    meta = CheckpointMeta.for_recipe(recipe, LABELS, [[x] for x in LABELS], 3, 4, 0, {}, [])
    path = save_checkpoint(tmp_path / "ckpt", model, meta)
    (path / "checkpoint.json").write_text("{broken")
    with pytest.raises(CheckpointError, match=r"checkpoint.json: damaged checkpoint metadata"):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match=r"not a checkpoint \(no checkpoint.json\)"):
        load_checkpoint(tmp_path)


class _Payload:
    """Unpickling this runs code: it would create the marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_a_pickle_in_a_checkpoint_is_refused_never_run(tmp_path, recipe, model):
    import pickle

    meta = CheckpointMeta.for_recipe(recipe, LABELS, [[x] for x in LABELS], 3, 4, 0, {}, [])
    path = save_checkpoint(tmp_path / "ckpt", model, meta)
    marker = tmp_path / "code-ran"
    (path / "model.safetensors").write_bytes(pickle.dumps(_Payload(marker)))  # what torch.save files are
    with pytest.raises(CheckpointError, match=r"model.safetensors: contents do not match"):
        load_checkpoint(path)
    assert not marker.exists()


def test_no_code_path_unpickles():
    root = Path(__file__).parent.parent
    sources = [p for folder in ("affectkit", "affectkit_plugins", "apps") for p in (root / folder).rglob("*.py")]
    for path in sources:
        text = path.read_text()
        for call in ("torch.load(", "pickle.load", "allow_pickle=True", "joblib.load"):
            assert call not in text, f"{path.relative_to(root)} calls {call}"


def test_a_learned_classifier_scores_its_training_labels_only(tmp_path):
    """model.classifier: learned (the plain baseline) scores by learned class vectors; it
    cannot take other classes, and a checkpoint of it predicts with them."""
    recipe = small_recipe(classifier="learned")
    with pytest.raises(AffectkitError, match="number of classes"):
        build_model(recipe.model, num_views=3, in_channels=4)
    model = build_model(recipe.model, num_views=3, in_channels=4, num_classes=len(LABELS))
    classes = model.class_embeddings([[label] for label in LABELS])
    assert torch.allclose(classes, torch.nn.functional.normalize(model.class_vectors, dim=-1))
    assert not model.prompts_can_change
    with pytest.raises(AffectkitError, match="learned classifier over its 6 training labels"):
        model.class_embeddings([["a happy face"], ["a sad face"]])
    meta = CheckpointMeta.for_recipe(recipe, LABELS, [[f"a {label} face"] for label in LABELS], 3, 4, 0, {}, [])
    predictor = Predictor(*load_checkpoint(save_checkpoint(tmp_path / "model", model, meta)))
    assert torch.allclose(predictor.classes.class_embeddings, classes)
    with pytest.raises(AffectkitError, match="classes cannot change"):
        predictor.encode_classes({"joy": ["a joyful face"], "calm": ["a calm face"]})
