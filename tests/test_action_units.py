"""Action units as labels: written by ``affectkit synth`` and read back by every reader that
takes them, the AU term's gradient and masking, AU metrics on known inputs, AU prompts
(zero-shot too) through a real checkpoint, and the refusals."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from affectkit.data.action_units import (
    BP4D_AUS,
    PRESENT,
    au_prompts,
    au_title,
    f1_scores,
    known_codes,
    mean_f1,
    parse,
    targets,
)
from affectkit.data.facs import GENERATED_AUS
from affectkit.errors import AffectkitError, DatasetError
from affectkit.factory import build_dataset, build_model
from affectkit.interfaces import Sample
from affectkit.model.checkpoint import CheckpointMeta, save_checkpoint
from affectkit.recipe import ComponentRef, load_recipe
from affectkit.registry import create
from affectkit.render.model_inputs import ViewSet
from affectkit.render.pipeline import learned_action_units
from affectkit.serve.inference import Predictor
from tests.cli_runs import ROOT, command, run_ok

LABELS = ["anger", "disgust", "fear", "happiness", "sadness", "surprise"]


def generated(bu_subject: str) -> str:
    """A BU-layout copy's subject (``F0001``, ``M002``) -> the generator's (``S001``, ``S002``)."""
    return f"S{int(bu_subject[1:]):03d}"


def rounded(label):
    return None if label is None else {code: tuple(round(v, 4) for v in value) for code, value in label.items()}


# -- data ---------------------------------------------------------------------------------


@pytest.mark.parametrize("generator", ["facekit", "synthetic"])
def test_synth_writes_au_labels_that_every_reader_reads_back(tmp_path, generator):
    """Scans through the folder and bu3dfe readers, sequences (every frame) through folder
    and bu4dfe: the AU labels read back are the generator's own, to the 4 decimals written."""
    common = ["--dataset", generator, "--subjects", "1", "--no-neutral", "--seed", "5"]
    run_ok("synth", "--out", str(tmp_path / "static"), "--intensities", "2,4", *common)
    run_ok("synth", "--out", str(tmp_path / "bu3dfe"), "--intensities", "2,4", "--layout", "bu3dfe", *common)
    run_ok("synth", "--out", str(tmp_path / "seq"), "--sequences", "--frames", "3", *common)
    run_ok("synth", "--out", str(tmp_path / "bu4dfe"), "--frames", "3", "--layout", "bu4dfe", *common)
    options = {"subjects": 1, "seed": 5}
    scans = build_dataset(ComponentRef(name=generator, options={**options, "intensities": [2, 4]}))
    expected = {(s.subject, s.label, s.attributes["intensity"]): rounded(s.action_units) for s in scans.samples()}
    assert all(set(label) == set(GENERATED_AUS) for label in expected.values())  # every AU coded, most absent
    folder = build_dataset(ComponentRef(name="folder", options={"root": str(tmp_path / "static")}))
    assert {(s.subject, s.label, s.attributes["intensity"]): rounded(s.action_units) for s in folder.samples()} == expected
    bu3dfe = build_dataset(ComponentRef(name="bu3dfe", options={"root": str(tmp_path / "bu3dfe"), "intensities": [2, 4]}))
    assert {(generated(s.subject), s.label, s.attributes["intensity"]): rounded(s.action_units) for s in bu3dfe.samples()} == expected
    assert rounded(bu3dfe.load(bu3dfe.samples()[0]).metadata["action_units"]) == rounded(bu3dfe.samples()[0].action_units)

    sequences = build_dataset(ComponentRef(name=generator, options={**options, "sequences": True, "frames": 3}))
    frames = {(s.subject, s.label): [rounded(f.metadata["action_units"]) for f in sequences.load(s).frames] for s in sequences.samples()}
    assert any(max(max(v) for v in label.values()) > PRESENT for per_frame in frames.values() for label in per_frame)
    folder4 = build_dataset(ComponentRef(name="folder", options={"root": str(tmp_path / "seq")}))
    assert {(s.subject, s.label): [rounded(f.metadata["action_units"]) for f in folder4.load(s).frames] for s in folder4.samples()} == frames
    bu4dfe = build_dataset(ComponentRef(name="bu4dfe", options={"root": str(tmp_path / "bu4dfe")}))
    assert {(generated(s.subject), s.label): [rounded(f.metadata["action_units"]) for f in bu4dfe.load(s).frames] for s in bu4dfe.samples()} == frames
    # a sequence's own label is its apex: the strongest of its frames
    seq = folder4.samples()[0]
    apex = {code: max(f[code][0] for f in frames[(seq.subject, seq.label)]) for code in GENERATED_AUS}
    assert {code: value[0] for code, value in rounded(seq.action_units).items()} == pytest.approx(apex, abs=1e-4)


def test_folder_manifest_takes_facs_notation_and_json(tmp_path):
    from affectkit.data.mesh import Mesh
    from affectkit.data.mesh_formats import save_mesh

    face = Mesh(torch.rand(30, 3).numpy() * 100, torch.randint(0, 30, (20, 3)).numpy())
    for name in ("a", "b", "c"):
        save_mesh(face, tmp_path / f"{name}.ply")
    (tmp_path / "manifest.csv").write_text(
        'path,label,subject,action_units\na.ply,happiness,S1,6C+12E+25A\nb.ply,sadness,S2,"{""1"": [0.5, 0.3], ""15"": 0.8}"\nc.ply,anger,S3,\n'
    )
    samples = {s.key: s for s in build_dataset(ComponentRef(name="folder", options={"root": str(tmp_path)})).samples()}
    happy = samples["a"].action_units
    assert happy[6] == (0.6, 0.6) and happy[12] == (1.0, 1.0) and happy[25] == (0.2, 0.2)
    assert happy[4] == (0.0, 0.0)  # FACS lists every AU it sees: the others are absent
    assert samples["b"].action_units == {1: (0.5, 0.3), 15: (0.8, 0.8)}  # JSON codes only what it lists
    assert samples["c"].action_units is None  # an empty cell: not labelled


@pytest.mark.parametrize(
    ("cell", "message"),
    [
        ("6C+smile", r"'smile' in action units .* is not FACS notation"),
        ('"{""12"": [0.5]}"', r"action unit '12': \[0.5\] is neither one activation nor \[right, left\]"),
        ('"{""AU200"": 1}"', r"'AU200' is not an action unit"),
        ('"{""12"": 5}"', r"action unit '12': activation 5 is outside 0..2"),
    ],
)
def test_bad_au_cell_names_the_manifest_line(tmp_path, cell, message):
    from affectkit.data.mesh import Mesh
    from affectkit.data.mesh_formats import save_mesh

    save_mesh(Mesh(torch.rand(30, 3).numpy() * 100, torch.randint(0, 30, (20, 3)).numpy()), tmp_path / "a.ply")
    (tmp_path / "manifest.csv").write_text(f"path,label,subject,action_units\na.ply,happiness,S1,{cell}\n")
    with pytest.raises(DatasetError, match=r"manifest.csv: line 2: " + message):
        build_dataset(ComponentRef(name="folder", options={"root": str(tmp_path)})).samples()


def test_facs_sides_and_defaults():
    label = parse("R12D+L2+1", "here")
    assert label[12] == (0.8, 0.0) and label[2] == (0.0, 0.6) and label[1] == (0.6, 0.6)
    assert parse("", "here") is None and parse(None, "here") is None


# -- targets, loss, metrics ---------------------------------------------------------------


def test_targets_mask_what_a_label_does_not_code():
    got = targets([{12: (0.8, 1.3), 6: (0.0, 0.0)}, None, {4: (0.5, 0.2)}], [4, 6, 12])
    assert got[0, 1] == 0.0 and got[0, 2] == 1.0  # the stronger side, clipped to 1
    assert math.isnan(got[0, 0]) and torch.isnan(got[1]).all() and got[2, 0] == 0.5
    assert known_codes([{12: (0.8, 0.7), 6: (0.1, 0.1)}, None]) == [12]  # AU6 below PRESENT


def test_au_term_gradient_and_masking():
    loss = create("loss", "action_units", {})
    logits = torch.randn(4, 3, requires_grad=True)
    target = torch.tensor([[1.0, 0.0, float("nan")], [0.0, 1.0, 0.0], [float("nan")] * 3, [0.5, 0.0, 1.0]])
    from affectkit.interfaces import LossInputs

    def value(scores):
        return loss(LossInputs(torch.zeros(4, 1, 2), torch.zeros(4, 2), torch.zeros(4, 2), torch.zeros(4), torch.tensor(1.0), au_logits=scores, au_targets=target))

    total = value(logits)
    total.backward()
    assert torch.isfinite(total) and total > 0
    coded = ~torch.isnan(target)
    assert (logits.grad[~coded] == 0).all() and (logits.grad[coded] != 0).all()
    # an uncoded entry's logit never changes the loss, however wrong it is
    moved = logits.detach().clone()
    moved[~coded] = 1e4
    assert value(moved).item() == pytest.approx(total.item())
    # scores that agree with the targets cost less than scores that contradict them
    agree = torch.where(torch.nan_to_num(target) >= 0.5, 8.0, -8.0)
    assert value(agree) < value(-agree)
    # nothing coded: zero, and still a gradient path
    nothing = torch.zeros(2, 3, requires_grad=True)
    empty = loss(LossInputs(torch.zeros(2, 1, 2), torch.zeros(2, 2), torch.zeros(2, 2), torch.zeros(2), torch.tensor(1.0), au_logits=nothing, au_targets=torch.full((2, 3), float("nan"))))
    empty.backward()
    assert empty.item() == 0.0 and nothing.grad is not None


def test_au_f1_on_known_inputs():
    scores = torch.tensor([[0.9, 0.2], [0.8, 0.7], [0.1, 0.6], [0.3, 0.1], [0.9, 0.9]])
    truth = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.0, float("nan")], [float("nan"), 0.0]])
    rows = {row["au"]: row for row in f1_scores(scores, truth, [1, 12])}
    # AU1 over the 4 coded scans: TP 1 (scan 0), FP 1 (scan 1), FN 1 (scan 2)
    assert (rows["AU1"]["precision"], rows["AU1"]["recall"], rows["AU1"]["f1"]) == (0.5, 0.5, 0.5)
    # AU12 over scans 0, 1, 2 and 4: TP 2, FP 1 (scan 4), FN 0
    assert rows["AU12"]["f1"] == pytest.approx(0.8) and rows["AU12"]["labelled"] == 4
    assert mean_f1(list(rows.values())) == pytest.approx(0.65)
    assert mean_f1(list(rows.values()), only=[1]) == 0.5 and mean_f1(list(rows.values()), only=[26]) is None


def test_au_prompts_say_each_unit_in_every_template():
    prompts = au_prompts([12, 99], ["a face with {}"], {99: ["an unusual twitch"]})
    assert prompts == [["a face with lip corners pulled up", "a face with a smiling mouth"], ["a face with an unusual twitch"]]
    assert au_title("AU12") == "AU12 lip corner puller" and au_title("dimples") == "dimples" and len(BP4D_AUS) == 12


# -- the model ----------------------------------------------------------------------------


def au_checkpoint(folder: Path, classifier: str = "prompts", codes: tuple[int, ...] = (1, 4, 12)) -> Path:
    recipe = load_recipe(ROOT / "recipes/quick.yaml", ["render.size=32", "render.cache_dir=null", f"model.classifier={classifier}"])
    codes = list(codes)
    torch.manual_seed(0)
    model = build_model(recipe.model, num_views=3, in_channels=3, num_classes=len(LABELS), action_units=len(codes))
    prompts = au_prompts(codes)
    meta = CheckpointMeta.for_recipe(recipe, LABELS, [[f"a {label} face"] for label in LABELS], 3, 3, 0, {}, [], None, codes, prompts)
    return save_checkpoint(folder / "model", model, meta)


@pytest.fixture(scope="module")
def au_model(tmp_path_factory) -> Path:
    return au_checkpoint(tmp_path_factory.mktemp("au"))


@pytest.fixture(scope="module")
def face(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("face")
    run_ok("synth", "--out", str(out), "--subjects", "1", "--intensities", "4", "--no-neutral")
    return out / "meshes" / "S001" / "S001_HA_4.ply"


def test_predict_gives_every_au_score_in_json_and_the_likeliest_in_text(au_model, face):
    import subprocess

    record = json.loads(run_ok("predict", "--model", str(au_model), str(face), "--json").splitlines()[-1])
    assert set(record["action_units"]) == {"AU1", "AU4", "AU12"} and all(0 <= v <= 1 for v in record["action_units"].values())
    text = subprocess.run(command("predict", "--model", str(au_model), str(face)), capture_output=True, text=True, cwd=ROOT).stdout
    assert "  action units: " in text
    # the shipped model scores AUs too: on this smile, the lip corners pulled up, not down
    shipped = json.loads(run_ok("predict", str(face), "--json").splitlines()[-1])["action_units"]
    assert shipped["AU12"] > 0.5 > shipped["AU15"]


def test_zero_shot_au_queries(au_model, face):
    predictor = Predictor.from_checkpoint(au_model)
    assert set(predictor.au_prompts) == {"AU1", "AU4", "AU12"}
    query = predictor.encode_action_units({**predictor.au_prompts, "dimples": ["a face with dimpled mouth corners"]})
    prediction = predictor.predict_file(face, action_units=query)
    assert list(prediction.action_units) == ["AU1", "AU4", "AU12", "dimples"]
    own = predictor.predict_file(face).action_units
    assert prediction.action_units["AU12"] == pytest.approx(own["AU12"])  # the same prompts, the same score
    with pytest.raises(AffectkitError, match="every AU needs at least one prompt"):
        predictor.encode_action_units({"AU1": [" "]})


def test_an_au_readout_is_trained_by_the_au_term_alone(tmp_path):
    """With ``model.action_units: readout`` the AU term's gradient stops at the readout: the
    encoder, the projections and the prompts learn from the emotions only; the readout
    scores AUs through a checkpoint and takes zero-shot AU prompts."""
    recipe = load_recipe(ROOT / "recipes/quick.yaml", ["model.action_units=readout"])
    torch.manual_seed(0)
    model = build_model(recipe.model, num_views=3, in_channels=3, num_classes=len(LABELS), action_units=2)
    out = model(torch.randn(2, 1, 3, 3, 32, 32), class_prompts=[[f"a {label} face"] for label in LABELS], au_prompts=au_prompts([4, 12]))
    out.au_logits.sum().backward(retain_graph=True)
    trained = {name for name, p in model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    assert trained and all(name.startswith(("au_readout.", "au_calibration")) for name in trained), trained
    model.zero_grad(set_to_none=True)
    (out.joint @ out.classes.T).sum().backward()  # an emotion term
    assert all(p.grad is None for p in model.au_readout.parameters())
    assert model.image_encoder.model.conv1[0].weight.grad is not None  # the emotions train the encoder
    codes = [1, 4, 12]
    model = build_model(recipe.model, num_views=3, in_channels=3, num_classes=len(LABELS), action_units=len(codes))
    meta = CheckpointMeta.for_recipe(recipe, LABELS, [[f"a {label} face"] for label in LABELS], 3, 3, 0, {}, [], None, codes, au_prompts(codes))
    predictor = Predictor.from_checkpoint(save_checkpoint(tmp_path / "model", model, meta))
    faces = build_dataset(ComponentRef(name="facekit", options={"subjects": 1}))
    scan = faces.load(faces.samples()[0])
    query = predictor.encode_action_units({**predictor.au_prompts, "dimples": ["a face with dimpled mouth corners"]})
    scores = predictor.predict(scan, action_units=query).action_units
    assert list(scores) == ["AU1", "AU4", "AU12", "dimples"] and scores["AU12"] == pytest.approx(predictor.predict(scan).action_units["AU12"])


def test_a_learned_au_head_scores_only_its_own_units(tmp_path):
    predictor = Predictor.from_checkpoint(au_checkpoint(tmp_path, classifier="learned"))
    faces = build_dataset(ComponentRef(name="facekit", options={"subjects": 1}))
    assert set(predictor.predict(faces.load(faces.samples()[0])).action_units) == {"AU1", "AU4", "AU12"}
    with pytest.raises(AffectkitError, match="learned classifier over its 3 training action units"):
        predictor.encode_action_units({"dimples": ["dimples"]})


def test_a_model_without_aus_refuses_au_queries(tmp_path):
    predictor = Predictor.from_checkpoint(au_checkpoint(tmp_path, codes=()))
    assert predictor.au_prompts == {}
    with pytest.raises(AffectkitError, match="not trained on action units"):
        predictor.encode_action_units({"AU12": ["a smile"]})


def viewset(labels) -> ViewSet:
    samples = [Sample(f"s{i}", "happiness", f"S{i}") for i in range(len(labels))]
    return ViewSet(samples, torch.zeros(len(labels), dtype=torch.long), torch.zeros(len(labels), 1, 1, 1, 2, 2), action_units=list(labels))


def test_data_without_au_labels_trains_without_aus_and_says_so():
    recipe = load_recipe(ROOT / "recipes/quick.yaml", ['loss.terms=["affectvlm", "action_units"]'])
    with pytest.warns(UserWarning, match="carry no action-unit labels, so the action_units loss term has nothing to learn"):
        assert learned_action_units(recipe, viewset([None, None])) == []
    assert learned_action_units(recipe, viewset([{12: (0.9, 0.8), 6: (0.0, 0.0)}, None])) == [12]  # what the data shows
    without = load_recipe(ROOT / "recipes/quick.yaml", ['loss.terms=["affectvlm"]'])
    assert learned_action_units(without, viewset([{12: (0.9, 0.8)}])) == []  # no AU term: no AUs


def test_aus_asked_for_that_no_training_scan_shows_are_refused():
    recipe = load_recipe(ROOT / "recipes/quick.yaml", ['loss.terms=["affectvlm", "action_units"]', "data.action_units=[AU12, 14]"])
    with pytest.raises(AffectkitError, match=r"data.action_units: no training scan of facekit shows AU14 .*; AUs it shows: AU12"):
        learned_action_units(recipe, viewset([{12: (0.9, 0.8), 14: (0.0, 0.0)}]))


def test_the_au_term_without_au_scores_adds_nothing():
    from affectkit.interfaces import LossInputs

    joint = torch.randn(2, 4, requires_grad=True)
    value = create("loss", "action_units", {})(LossInputs(joint[:, None], joint, joint, torch.zeros(2), torch.tensor(1.0)))
    value.backward()
    assert value.item() == 0.0 and joint.grad is not None


def test_pooled_folds_whose_models_score_different_aus_are_scored_au_by_au():
    """One fold's model never saw AU6 in training: the pool scores AU6 over the other fold."""
    from affectkit.evaluate.reports import report_from_predictions

    def record(scores, truth):
        return {"key": "k", "subject": "S", "label": "happiness", "predicted": "happiness", "attributes": {}, "action_units": scores, "action_units_true": truth}

    records = [
        record({"AU6": 0.9, "AU12": 0.8}, {"AU6": 1.0, "AU12": 1.0}),
        record({"AU12": 0.1}, {"AU6": 1.0, "AU12": 0.0}),  # this fold's model scores no AU6
    ]
    rows = {row["au"]: row for row in report_from_predictions(LABELS, records).action_units["per_au"]}
    assert rows["AU6"]["labelled"] == 1 and rows["AU6"]["f1"] == 1.0
    assert rows["AU12"]["labelled"] == 2 and rows["AU12"]["f1"] == 1.0
