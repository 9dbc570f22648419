"""Reading scans against their person's neutral scan: ``affectkit neutral`` calibrates a model
on neutral scans of its training face model, then ``eval --neutral-reference`` and
``predict --neutral`` read each scan less its person's neutral; bad requests get one line."""

from __future__ import annotations

import csv
import json
import subprocess
from pathlib import Path

import pytest
import torch
from cli_runs import ROOT, command, run_ok

from affectkit.data.mesh_formats import load_input
from affectkit.model.checkpoint import load_checkpoint, save_checkpoint
from affectkit.model.neutral_reference import CALIBRATION
from affectkit.serve.hub import resolve_model
from affectkit.serve.inference import Predictor

TRAINING_FACES = "facekit:subjects=3,intensities=[4],seed=7,include_neutral=true"  # 3 neutral scans of its face model
NEW_FACES = "synthetic:subjects=2,intensities=[4],seed=2000,include_neutral=true"


def fails(*args: str) -> str:
    result = subprocess.run(command(*args), capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    return result.stderr


def first_json(printed: str) -> dict:
    """The JSON object a ``--json`` command printed (stderr follows it)."""
    return json.JSONDecoder().raw_decode(printed[printed.index("{") :])[0]


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("neutral") / "calibrated"
    printed = run_ok("neutral", "--model", str(resolve_model()), "--data", TRAINING_FACES, "--out", str(out))
    assert "on 3 neutral scans of facekit" in printed and str(out) in printed
    return out


@pytest.fixture(scope="module")
def faces(tmp_path_factory) -> dict[str, dict[str, Path]]:
    """Two new facekit people (seed 2000), each a neutral scan and six expressions as PLY files: subject -> label -> file."""
    folder = tmp_path_factory.mktemp("faces")
    manifest = Path(run_ok("synth", "--out", str(folder), "--subjects", "2", "--intensities", "4", "--seed", "2000").strip())
    people: dict[str, dict[str, Path]] = {}
    for row in csv.DictReader(manifest.open()):
        people.setdefault(row["subject"], {})[row["label"]] = manifest.parent / row["path"]
    return people


def test_calibrating_stores_the_mean_neutral_and_changes_no_learnt_weight(calibrated):
    before, _ = load_checkpoint(resolve_model())
    after, meta = load_checkpoint(calibrated)
    old, new = before.state_dict(), after.state_dict()
    assert after.neutral_features is not None and after.neutral_features.shape[0] == meta.num_views
    for name in set(old) & set(new) - {"neutral_features"}:
        assert torch.equal(old[name], new[name]), f"{name} changed"
    assert meta.provenance[CALIBRATION]["scans"] == 3
    assert "## Neutral reference" in (calibrated / "README.md").read_text()


def test_a_neutral_scan_read_against_itself_lands_on_the_calibrated_neutral_whoever_it_is(calibrated, faces):
    """What the person looks like at rest is taken out: two people's neutral scans, each read
    against itself, give the same prediction."""
    predictor = Predictor.from_checkpoint(calibrated)
    neutral = [person["neutral"] for person in faces.values()]
    first, second = (predictor.predict_file(path, neutral=load_input(path)) for path in neutral)
    assert first.probabilities == pytest.approx(second.probabilities, abs=1e-5)
    plain = [predictor.predict_file(path).probabilities for path in neutral]
    assert plain[0] != pytest.approx(plain[1], abs=1e-3)


def test_a_neutral_scan_read_anew_is_not_rendered_again_and_another_persons_is(calibrated, faces):
    """The app reads an uploaded neutral scan from its bytes on every interaction: the same
    scan, read again, reuses its views; another person's scan gets its own."""
    predictor = Predictor.from_checkpoint(calibrated)
    first, second = faces["S001"], faces["S002"]
    predictor.predict_file(first["happiness"], neutral=load_input(first["neutral"]))
    rendered = predictor.cache.misses
    again = predictor.predict_file(first["happiness"], neutral=load_input(first["neutral"]))
    assert predictor.cache.misses == rendered + 1  # the scan itself, not its neutral
    other = predictor.predict_file(first["happiness"], neutral=load_input(second["neutral"]))
    assert predictor.cache.misses == rendered + 3 and other.probabilities != pytest.approx(again.probabilities, abs=1e-4)


def test_predict_and_eval_read_scans_against_their_neutral(calibrated, faces):
    person = faces["S001"]
    neutral, scans = person["neutral"], [str(path) for label, path in person.items() if label != "neutral"]
    against = [json.loads(line) for line in run_ok("predict", "-m", str(calibrated), *scans, "--neutral", str(neutral), "--json").splitlines() if line.startswith("{")]
    plain = [json.loads(line) for line in run_ok("predict", "-m", str(calibrated), *scans, "--json").splitlines() if line.startswith("{")]
    assert len(against) == len(plain) == len(scans)
    assert all(a["probabilities"] != p["probabilities"] for a, p in zip(against, plain, strict=True))  # read against the neutral

    printed = run_ok("eval", str(calibrated), "--data", NEW_FACES, "--neutral-reference", "--json")
    report = first_json(printed)["report"]
    assert report["samples"] == 12 and "neutral reference" in report["about"]  # the neutral scans are references, not samples


def test_a_sequence_is_read_against_its_first_frame_and_first_frames_calibrate(calibrated, tmp_path):
    data = tmp_path / "bu4dfe"
    run_ok("synth", "--out", str(data), "--layout", "bu4dfe", "--subjects", "2", "--frames", "6", "--seed", "2000")
    printed = run_ok("eval", str(calibrated), "--data", f"bu4dfe:{data}", "--neutral-reference", "--json")
    assert first_json(printed)["report"]["samples"] == 12
    # predict: the sequence folder against its own first frame, its timeline too
    sequence = data / "F001" / "Happy"
    own = first_json(run_ok("predict", "-m", str(calibrated), str(sequence), "--first-frame-neutral", "--frames", "--json"))
    predictor, frames = Predictor.from_checkpoint(calibrated), load_input(sequence)
    against, plain = predictor.predict(frames, neutral=frames.frames[0]), predictor.predict(frames)
    assert own["probabilities"] == pytest.approx(against.probabilities, abs=1e-5) and own["probabilities"] != pytest.approx(plain.probabilities, abs=1e-3)
    timeline = predictor.predict_frames(frames, neutral=frames.frames[0])
    assert own["frames"] == [pytest.approx(frame, abs=1e-5) for frame in timeline] and timeline != predictor.predict_frames(frames)
    # BU-4DFE holds no neutral scan: a model is calibrated on the first frame of one sequence a person
    assert "on 2 neutral scans of bu4dfe" in run_ok("neutral", "--data", f"bu4dfe:{data}", "--out", str(tmp_path / "from-4d"))


def test_bad_requests_are_one_line_and_write_nothing(calibrated, faces, tmp_path):
    model, meta = load_checkpoint(resolve_model())
    model.neutral_features = None
    uncalibrated = save_checkpoint(tmp_path / "uncalibrated", model, meta)
    scan = faces["S001"]["anger"]
    assert "not calibrated to read scans against a neutral scan" in fails("predict", "-m", str(uncalibrated), str(scan), "--neutral", str(scan))
    assert "not calibrated" in fails("predict", "-m", str(uncalibrated), str(scan), "--first-frame-neutral")
    assert f"{scan}: one scan, with no first frame" in fails("predict", "-m", str(calibrated), str(scan), "--first-frame-neutral")
    assert "not calibrated" in fails("eval", str(uncalibrated), "--data", NEW_FACES, "--neutral-reference")
    assert "none for subject(s) S001, S002" in fails("eval", str(calibrated), "--data", NEW_FACES.removesuffix(",include_neutral=true"), "--neutral-reference")
    out = tmp_path / "never"
    assert "no scan labelled 'neutral' and no 4D sequence" in fails("neutral", "--data", "facekit:subjects=1,intensities=[4]", "--out", str(out))
    assert not out.exists()
    assert "already exists" in fails("neutral", "--data", TRAINING_FACES, "--out", str(calibrated))


@pytest.mark.slow
def test_training_reads_a_share_of_scans_against_their_neutral_and_the_model_is_calibrated(tmp_path):
    small = ["data.dataset.options.subjects=3", "train.epochs=1", "render.size=32", "render.cache_dir=null"]
    run_ok("run", "recipes/quick.yaml", "--set", *small, "train.neutral_reference=0.5", f"output.dir={tmp_path}")
    (run_dir,) = (tmp_path / "quick").glob("2*")
    assert json.loads((run_dir / "compute.json").read_text())["neutral_reference_scans"] == 2  # its 2 training people
    model, meta = load_checkpoint(run_dir / "model")
    assert model.neutral_features is not None and meta.recipe.train.neutral_reference == 0.5
    refused = fails("run", "recipes/quick.yaml", "--set", *small, "train.neutral_reference=2")
    assert "train.neutral_reference" in refused and "less than or equal to 1" in refused
