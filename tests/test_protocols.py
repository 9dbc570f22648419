"""Evaluation protocols: subject draws, repeated cross-validation, fold files, full
reports, leak guards and dataset specs, through the CLI on files in the real layouts."""

from __future__ import annotations

import json
import subprocess
from collections import Counter
from pathlib import Path

import pytest
from cli_runs import ROOT, command, run_ok

from affectkit.data.splits import draw_subjects
from affectkit.errors import AffectkitError
from affectkit.factory import build_dataset
from affectkit.interfaces import Sample
from affectkit.recipe import Recipe, load_recipe
from affectkit.render.model_inputs import sample_frames
from affectkit.render.pipeline import parse_dataset_spec
from affectkit.train.cross_validation import cv_plan

ETHNICITIES = ("white", "black", "east asian", "indian")


def people(women: int, men: int) -> list[Sample]:
    """Two scans each of ``women`` + ``men`` subjects, ids in BU-3DFE's order (F first)."""
    subjects = [(f"F{i:04d}", "F") for i in range(1, women + 1)] + [(f"M{i:04d}", "M") for i in range(1, men + 1)]
    return [
        Sample(f"{subject}_{label}", label, subject, {"sex": sex, "ethnicity": ETHNICITIES[i % len(ETHNICITIES)]})
        for i, (subject, sex) in enumerate(subjects)
        for label in ("happiness", "sadness")
    ]


def test_a_draw_keeps_the_proportions_of_sex_and_ethnicity_and_is_seeded():
    samples = people(56, 44)  # BU-3DFE's 56 women and 44 men
    drawn = draw_subjects(samples, 60, ["sex", "ethnicity"], seed=0)
    assert len(drawn) == 60 and drawn == draw_subjects(samples, 60, ["sex", "ethnicity"], seed=0)
    assert Counter(s[0] for s in drawn) == {"F": 34, "M": 26}  # not the first 60 ids: 56 women and 4 men
    ethnicity = {s.subject: s.attributes["ethnicity"] for s in samples}
    by_ethnicity = Counter(ethnicity[s] for s in drawn)  # 25 of each: 15, give or take a tie
    assert set(by_ethnicity) == set(ETHNICITIES) and all(14 <= n <= 16 for n in by_ethnicity.values())
    assert draw_subjects(samples, 60, ["sex", "ethnicity"], seed=1) != drawn
    # an attribute no sample carries is ignored, not an error
    assert len(draw_subjects(samples, 10, ["sex", "age_group"], seed=0)) == 10
    with pytest.raises(AffectkitError, match="60 subjects asked for, the dataset has 50"):
        draw_subjects(people(25, 25), 60, ["sex"], seed=0)


def test_the_bu3dfe_recipe_draws_60_subjects_and_repeats_10_fold_cv():
    recipe = load_recipe(ROOT / "recipes" / "bu3dfe-10fold.yaml")
    assert recipe.data.subjects.count == 60 and recipe.data.dataset.options["intensities"] == [3, 4]
    assert (recipe.eval.folds, recipe.eval.repeats) == (10, 10)


def test_one_frame_of_a_sequence_is_its_middle_by_default():
    assert Recipe(name="x").data.frame_sampler == "apex"
    assert sample_frames(25, 1, "apex") == [12]  # the apex of an onset-apex-offset sequence, not frame 0
    assert sample_frames(25, 3, "apex") == [6, 12, 18]
    assert sample_frames(25, 3, "uniform") == [0, 12, 24]


@pytest.mark.parametrize(
    ("spec", "options"),
    [
        ("bu3dfe:/data/BU-3DFE", {"root": "/data/BU-3DFE"}),
        ("bu3dfe:root=x,subjects=[F0002, F0003],intensities=[4]", {"root": "x", "subjects": ["F0002", "F0003"], "intensities": [4]}),
        ("bu3dfe:{root: x, subjects: [F0002, F0003]}", {"root": "x", "subjects": ["F0002", "F0003"]}),
        ("facekit:subjects=4,seed=7", {"subjects": 4, "seed": 7}),
    ],
)
def test_dataset_specs_take_lists_and_yaml_mappings(spec, options):
    assert parse_dataset_spec(spec).options == options


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("bu3dfe:root=x,subjects=[F0002,F0003", "an unclosed bracket"),
        ("bu3dfe:{root: [x}", "not a YAML mapping"),
        ("bu3dfe:root=x,F0003", "'F0003' is not key=value"),
        (":x", "no dataset name"),
    ],
)
def test_a_bad_dataset_spec_is_one_line_naming_the_forms(tmp_path, spec, message):
    result = subprocess.run(command("eval", str(tmp_path / "no-model"), "--data", spec), capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert message in result.stderr and "NAME:{key: value" in result.stderr and len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"repeats": [{"folds": [["S001", "S002"], ["S002", "S003"]]}]}', "repeat 1: subject S002 is in fold 1 and fold 2"),
        ("folds: [[S001, S002], [S099]]", "names subject(s) S099 that the recipe's dataset does not have"),
        ("folds: [[S001, S002]]", "at least 2 non-empty lists"),
        ("[1, 2", "not valid YAML"),
    ],
)
def test_a_bad_fold_file_stops_cv_before_training_with_one_line(tmp_path, content, message):
    folds = tmp_path / "folds.yaml"
    folds.write_text(content)
    result = subprocess.run(command("cv", "recipes/quick.yaml", "--folds-file", str(folds), "--set", f"output.dir={tmp_path}"),
                            capture_output=True, text=True, cwd=ROOT, timeout=300)  # fmt: skip
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert message in result.stderr and str(folds) in result.stderr
    assert not list(tmp_path.glob("*/*")), "nothing is written for a refused protocol"


def test_a_hand_written_fold_file_gives_exactly_its_folds(tmp_path):
    (tmp_path / "folds.yaml").write_text("folds: [[F0002, F0001], [F0003, F0004]]\n")
    samples = [Sample(f"{s}_AN03", "anger", s) for s in ("F0001", "F0002", "F0003", "F0004")]
    assert cv_plan(Recipe(name="x", seed=5), samples, 10, 10, tmp_path / "folds.yaml") == [{"seed": 5, "folds": [["F0002", "F0001"], ["F0003", "F0004"]]}]


def test_a_fold_file_excludes_repeats_and_folds_options(tmp_path):
    result = subprocess.run(command("cv", "recipes/quick.yaml", "--folds-file", str(tmp_path / "f.json"), "--folds", "3"),
                            capture_output=True, text=True, cwd=ROOT)  # fmt: skip
    assert result.returncode == 2 and "--folds-file fixes the folds and repeats" in result.stderr


def test_select_best_in_cv_needs_a_validation_split_inside_the_training_subjects(tmp_path):
    result = subprocess.run(command("cv", "recipes/quick.yaml", "--set", "eval.select=best", f"output.dir={tmp_path}"),
                            capture_output=True, text=True, cwd=ROOT, timeout=300)  # fmt: skip
    assert result.returncode == 1 and "eval.cv_validation: true" in result.stderr


def test_resume_does_not_pick_a_folder_left_by_a_failed_start(tmp_path):
    data = tmp_path / "faces"
    run_ok("synth", "--out", str(data), "--subjects", "2", "--intensities", "4", "--no-neutral")
    (next((data / "meshes").glob("*/*.ply"))).write_bytes(b"ply\nformat ascii 1.0\nelement vertex 3\n")  # damaged
    args = ["recipes/quick.yaml", "--set", f"data.dataset={{name: folder, options: {{root: {data}}}}}", f"output.dir={tmp_path / 'runs'}"]  # fmt: skip
    failed = subprocess.run(command("run", *args), capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert failed.returncode == 1 and list((tmp_path / "runs" / "quick").glob("2*/recipe.yaml"))
    again = subprocess.run(command("run", *args, "--resume"), capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert again.returncode == 1 and "no earlier run of 'quick' with a checkpoint" in again.stderr


@pytest.mark.slow
def test_repeated_cv_on_a_bu3dfe_copy_writes_folds_reports_and_guards_its_fold_models(tmp_path):
    root = Path(run_ok("synth", "--out", str(tmp_path / "BU-3DFE"), "--subjects", "6", "--intensities", "3,4", "--no-neutral",
                       "--layout", "bu3dfe", "--seed", "5").strip().splitlines()[-1])  # fmt: skip
    common = ["--set", f"data.dataset={{name: bu3dfe, options: {{root: {root}}}}}", "train.epochs=1", "render.size=32",
              f"output.dir={tmp_path / 'runs'}"]  # fmt: skip
    done = subprocess.run(command("cv", "recipes/quick.yaml", "--folds", "2", "--repeats", "2", *common, "data.subjects.count=4", "--json"),
                          capture_output=True, text=True, cwd=ROOT, timeout=900)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout)  # --json: stdout is cv.json and nothing else
    run_dir = Path(summary["run_dir"])
    assert summary == json.loads((run_dir / "cv.json").read_text())

    plan = json.loads((run_dir / "folds.json").read_text())
    assert plan["dataset"] == {"name": "bu3dfe", "root": str(root)}
    drawn = [sorted(s for fold in repeat["folds"] for s in fold) for repeat in plan["repeats"]]
    assert [len(d) for d in drawn] == [4, 4] and plan["repeats"][0]["folds"] != plan["repeats"][1]["folds"]
    assert len(summary["folds"]) == 4 and summary["repeats"] == 2
    for entry in summary["folds"]:
        report = json.loads((run_dir / entry["report"]).read_text())
        assert {p["subject"] for p in report["predictions"]} == set(entry["test_subjects"])
        assert report["samples"] == entry["test_samples"] == 12 * len(entry["test_subjects"])
        assert entry["validation_subjects"] == [] and "val_accuracy_by_epoch" not in entry  # the test fold is scored once
        assert set(report) >= {"uar", "confusion", "confusion_normalised", "per_class", "by_attribute"}
    metrics = summary["metrics"]["accuracy"]
    assert metrics["mean"] == pytest.approx(sum(f["accuracy"] for f in summary["folds"]) / 4)
    assert metrics["std_over_repeats"] is not None and len(metrics["repeat_means"]) == 2
    pooled = json.loads((run_dir / "pooled" / "report.json").read_text())
    assert pooled["samples"] == 96 and pooled["accuracy"] == pytest.approx(metrics["pooled"])
    assert (run_dir / "pooled" / "confusion.png").is_file() and "uar" in summary["metrics"]
    assert set(summary["compute"]) >= {"wall_seconds", "peak_rss_mb_worker"}

    # the written fold file gives another recipe exactly these folds
    recipe = load_recipe("recipes/baseline-cnn.yaml", [f"data.dataset={{name: bu3dfe, options: {{root: {root}}}}}"])
    samples = build_dataset(recipe.data.dataset).samples()
    assert cv_plan(recipe, samples, 10, 10, run_dir / "folds.json") == [{"seed": r["seed"], "folds": r["folds"]} for r in plan["repeats"]]

    # a fold's model is scored on its own test subjects; its training subjects are flagged
    fold = summary["folds"][0]
    model = run_dir / "repeat-1" / "fold-1" / "model"
    assert not (model / "training.safetensors").exists()
    out = run_ok("eval", str(model))
    assert f"scoring the {len(fold['test_subjects'])} subjects this checkpoint held out" in out and "WARNING" not in out
    assert f"samples {fold['test_samples']} " in out
    trained = sorted(set(drawn[0]) - set(fold["test_subjects"]))
    out = run_ok("eval", str(model), "--data", f"bu3dfe:{{root: {root}, subjects: [{trained[0]}]}}")
    assert f"WARNING: not a held-out figure: 1 of the evaluation subjects were training subjects of this checkpoint: {trained[0]}" in out
    assert "12 of the 12 evaluation scans are identical to training scans" in out
