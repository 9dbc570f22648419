"""Recipes: validation errors name the key path, overrides, the resolved dump."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from fuzz_targets import alias_bomb

from affectkit.errors import RecipeError
from affectkit.recipe import dump_recipe, load_recipe, parse_recipe

RECIPES = sorted((Path(__file__).parent.parent / "recipes").glob("*.yaml"))


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.name)
def test_shipped_recipes_are_valid(path):
    recipe = load_recipe(path)
    assert recipe.name


@pytest.mark.parametrize("name", ["bu3dfe-10fold", "clip-baseline"])
def test_recipes_that_say_they_train_as_the_shipped_one_do(name):
    """The protocol recipe and the loss baseline differ from affectvlm.yaml only in data and
    loss (no AU labels to learn from), so a retuned shipped recipe cannot leave them behind."""
    shipped, recipe = (load_recipe(RECIPES[0].parent / f"{n}.yaml") for n in ("affectvlm", name))
    assert recipe.render == shipped.render and recipe.train == shipped.train and recipe.scaling == shipped.scaling
    assert recipe.data.pose_spread == shipped.data.pose_spread and recipe.prompts == shipped.prompts
    assert recipe.model.model_dump(exclude={"action_units"}) == shipped.model.model_dump(exclude={"action_units"})


def test_overrides_set_nested_values_and_list_items(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("name: r\nloss:\n  terms: [affectvlm, clip]\n")
    recipe = load_recipe(path, ["train.epochs=3", "render.views=[front, 30]", "loss.terms.1=supcon", "data.dataset.options.subjects=7"])
    assert recipe.train.epochs == 3
    assert recipe.render.views == ["front", 30]
    assert [t.name for t in recipe.loss.terms] == ["affectvlm", "supcon"]
    assert recipe.data.dataset.options == {"subjects": 7}


def test_min_steps_gives_a_small_training_set_more_epochs_and_a_large_one_its_epochs():
    train = load_recipe(RECIPES[0], ["train.epochs=8", "train.min_steps=96"]).train
    assert [train.epochs_for(steps) for steps in (1, 6, 7, 12, 36)] == [96, 16, 14, 8, 8]
    assert load_recipe(RECIPES[0], ["train.epochs=8"]).train.epochs_for(1) == 8  # 0 by default: epochs exactly


def test_dump_round_trips_with_every_default(tmp_path):
    recipe = parse_recipe({"name": "r"})
    text = dump_recipe(recipe)
    assert parse_recipe(yaml.safe_load(text)) == recipe
    assert "warmup_epochs" in text


#: (recipe, the one message it must give): every message names the key path and what is allowed
MALFORMED_RECIPES = [
    ({}, r"name: required key is missing"),
    ({"name": "bad name"}, r"name: String should match pattern"),
    ({"name": "r", "seed": "abc"}, r"seed: Input should be a valid integer.*\(got 'abc'\)"),
    ({"name": "r", "trian": {}}, r"trian: unknown key; allowed keys here: name, seed, data"),
    ({"name": "r", "train": []}, r"train: should be a section, a mapping of keys \(epochs, min_steps, batch_size, .*\); got \[\]"),
    ({"name": "r", "output": "runs"}, r"output: should be a section, a mapping of keys \(dir\); got 'runs'"),
    ({"name": "r", "data": {"val_fraction": 1.5}}, r"data.val_fraction: Input should be less than 1 \(got 1.5\)"),
    ({"name": "r", "data": {"frames": 0}}, r"data.frames: Input should be greater than or equal to 1 \(got 0\)"),
    ({"name": "r", "data": {"frame_sampler": "peak"}}, r"data.frame_sampler: Input should be 'uniform' or 'apex' \(got 'peak'\)"),
    ({"name": "r", "data": {"dataset": {"name": "bu3dfe"}}}, r"data.dataset: invalid options for dataset 'bu3dfe': root: Field required; allowed fields: root,"),
    ({"name": "r", "data": {"dataset": {"name": "synthetic", "options": {"subjects": -1}}}}, r"data.dataset: invalid options for dataset 'synthetic': subjects: .*greater than or equal to 1"),
    ({"name": "r", "render": {"sizee": 3}}, r"render.sizee: unknown key; allowed keys here: renderer, views, size"),
    ({"name": "r", "render": {"size": 8}}, r"render.size: Input should be greater than or equal to 16 \(got 8\)"),
    ({"name": "r", "render": {"views": []}}, r"render.views: List should have at least 1 item"),
    ({"name": "r", "render": {"views": ["front", "sideways"]}}, r"render.views: unknown view 'sideways': use a name \(front, left, right, up, down\)"),
    ({"name": "r", "render": {"maps": ["rgb", "albedo"]}}, r"render.maps.1: .*'rgb', 'depth', 'normal' or 'mask'"),
    ({"name": "r", "render": {"renderer": "povray"}}, r"render.renderer: unknown renderer 'povray'; registered: auto, torch"),
    ({"name": "r", "prompts": {"augmenters": []}}, r"prompts.augmenters: List should have at least 1 item"),
    ({"name": "r", "prompts": {"augmenters": ["templates", {"name": "nope"}]}}, r"prompts.augmenters.1: unknown prompt_augmenter 'nope'; registered: attributes, file, templates"),
    ({"name": "r", "model": {"image_encoder": {"name": "nope"}}}, r"model.image_encoder: unknown image_encoder 'nope'; registered: clip, timm"),
    ({"name": "r", "model": {"text_encoder": {"name": "minilm", "freeze": "maybe"}}}, r"model.text_encoder.freeze: Input should be a valid boolean"),
    ({"name": "r", "model": {"embed_dim": 4}}, r"model.embed_dim: Input should be greater than or equal to 8 \(got 4\)"),
    ({"name": "r", "model": {"fusion": "concat"}}, r"model.fusion: Input should be 'weighted' or 'attention' \(got 'concat'\)"),
    ({"name": "r", "loss": {"terms": [{"name": "affectvlm", "options": {"bogus": 1}}]}}, r"loss.terms.0: invalid options for loss 'affectvlm': bogus"),
    ({"name": "r", "loss": {"terms": [{"name": "affectvlm", "weight": "heavy"}]}}, r"loss.terms.0.weight: Input should be a valid number"),
    ({"name": "r", "train": {"epochs": 0}}, r"train.epochs: Input should be greater than or equal to 1 \(got 0\)"),
    ({"name": "r", "train": {"lr": "fast"}}, r"train.lr: .*\(got 'fast'\)"),
    ({"name": "r", "train": {"batch_size": 1}}, r"train.batch_size: Input should be greater than or equal to 2 \(got 1\)"),
    ({"name": "r", "train": {"grad_clip": 0}}, r"train.grad_clip: Input should be greater than 0 \(got 0\)"),
    ({"name": "r", "train": {"augmentations": [{"name": "mixed", "options": {"bogus": 1}}]}}, r"train.augmentations.0: invalid options for view_augmentation 'mixed': bogus: .*; allowed fields: flip_p,"),
    ({"name": "r", "scaling": {"num_workers": 0}}, r"scaling.num_workers: Input should be greater than or equal to 1 \(got 0\)"),
    ({"name": "r", "scaling": {"max_failures": -2}}, r"scaling.max_failures: Input should be greater than or equal to -1 \(got -2\)"),
    ({"name": "r", "eval": {"select": "worst"}}, r"eval.select: Input should be 'last' or 'best' \(got 'worst'\)"),
    ({"name": "r", "eval": {"folds": 1}}, r"eval.folds: Input should be greater than or equal to 2 \(got 1\)"),
    ([1, 2], r"a recipe must be a YAML mapping of sections, got list"),
]


@pytest.mark.parametrize(("data", "message"), MALFORMED_RECIPES, ids=[m.split(":")[0] for _, m in MALFORMED_RECIPES])
def test_malformed_recipe_files_give_one_message_naming_the_key_path(tmp_path, data, message):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(RecipeError) as caught:
        load_recipe(path)
    text = str(caught.value)
    assert text.startswith(f"{path}: ") and "\n" not in text, text
    assert re.search(message, text), text


def test_every_error_of_a_recipe_is_in_its_one_message():
    with pytest.raises(RecipeError, match=r"^bad.yaml: render.size: .*; train.epochs: .*"):
        parse_recipe({"name": "r", "train": {"epochs": 0}, "render": {"size": 8}}, "bad.yaml")


def test_a_malformed_recipe_is_one_line_from_the_cli(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("name: r\nrender: {views: [front, sideways]}\n")
    result = subprocess.run([sys.executable, "-m", "affectkit", "recipe", "validate", str(path)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 1 and result.stderr.count("\n") == 1 and "render.views: unknown view 'sideways'" in result.stderr


def test_file_errors_name_the_file(tmp_path):
    with pytest.raises(RecipeError, match="no such recipe file"):
        load_recipe(tmp_path / "missing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: [unclosed\n")
    with pytest.raises(RecipeError, match=r"broken.yaml: not valid YAML"):
        load_recipe(broken)
    valid = tmp_path / "valid.yaml"
    valid.write_text("name: r\n")
    with pytest.raises(RecipeError, match=r"override 'train.epochs' is not of the form"):
        load_recipe(valid, ["train.epochs"])


def test_shipped_recipes_run_by_name_from_any_folder(tmp_path):
    from cli_runs import command

    for name in ("quick", "affectvlm.yaml"):
        result = subprocess.run(command("recipe", "validate", name), capture_output=True, text=True, cwd=tmp_path, timeout=120)
        assert result.returncode == 0 and "valid recipe" in result.stderr + result.stdout, result.stderr
    missing = subprocess.run(command("recipe", "validate", "quik"), capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert missing.returncode == 1 and "no shipped recipe of that name; shipped: " in missing.stderr and "quick" in missing.stderr


def test_the_render_cache_is_the_user_cache_folder_or_affectkit_cache_dir(monkeypatch, tmp_path):
    import platformdirs

    monkeypatch.delenv("AFFECTKIT_CACHE_DIR", raising=False)
    assert load_recipe("quick").render.cache_dir == Path(platformdirs.user_cache_dir("affectkit")) / "renders"
    monkeypatch.setenv("AFFECTKIT_CACHE_DIR", str(tmp_path))
    assert load_recipe("quick").render.cache_dir == tmp_path / "renders"
    assert load_recipe("quick", ["render.cache_dir=null"]).render.cache_dir is None


def test_paths_in_a_recipe_file_are_relative_to_its_folder_and_overrides_to_the_working_one(tmp_path, monkeypatch):
    """Every component's path options, a dataset's root as an encoder's weights file, are
    recorded absolute where the recipe is read: Ray workers run in other folders. Names
    that are not paths (shipped weights) stay as they are."""
    folder = tmp_path / "project" / "recipes"
    folder.mkdir(parents=True)
    (folder / "mine.yaml").write_text(
        "name: mine\ndata:\n  dataset: {name: bu3dfe, options: {root: ../data/BU-3DFE}}\n  subjects: {file: people.txt}\n"
        "model:\n  image_encoder: {name: timm, options: {pretrained: ../weights/mine.safetensors}}\n"
    )
    monkeypatch.chdir(tmp_path)
    recipe = load_recipe("project/recipes/mine.yaml")
    assert recipe.data.dataset.options["root"] == str(tmp_path / "project" / "data" / "BU-3DFE")
    assert recipe.model.image_encoder.options["pretrained"] == str(tmp_path / "project" / "weights" / "mine.safetensors")
    assert recipe.data.subjects.file == folder / "people.txt"
    overridden = load_recipe(
        "project/recipes/mine.yaml", ["data.dataset.options.root=elsewhere", "model.image_encoder.options.pretrained=w/x.safetensors"]
    )
    assert overridden.data.dataset.options["root"] == str(tmp_path / "elsewhere")
    assert overridden.model.image_encoder.options["pretrained"] == str(tmp_path / "w" / "x.safetensors")
    named = load_recipe("project/recipes/mine.yaml", ["model.image_encoder.options.pretrained=affectkit-faces"])
    assert named.model.image_encoder.options["pretrained"] == "affectkit-faces"


@pytest.mark.parametrize(
    ("content", "overrides", "message"),
    [
        (None, [], "a folder, not a recipe file"),
        ("name: x\nseed: " + "[" * 500 + "]" * 500 + "\n", [], "levels of nesting; a recipe may have 100 and 50"),
        (alias_bomb(), [], "its aliases expand to 926,177,119 values; a recipe may hold 100,000"),
        ("name: x\n", ["train.lr=.inf"], "train.lr: Input should be a finite number"),
        ("name: x\n", ["render.views=[.nan]"], "Input should be a finite number"),
        ("name: x\n", ["model.embed_dim=100000000"], "model.embed_dim: Input should be less than or equal to 8192"),
        ("name: x\n", ["render.views.x=front"], "render.views.x is not an item of a list of 3 (use an index 0..2)"),
        ("name: x\n", ["render.views.7=front"], "render.views.7 is not an item of a list of 3"),
        ("name: x\n", ["train.epochs=[[["], "the value is not valid YAML"),
        ("name: x\n", ["render.size=" + "9" * 5000], "the value is not valid YAML (Exceeds the limit"),
        ("name: x\n", ["render.views=[" + "front, " * 5000 + "]"], "render.views: List should have at most 32 items"),
    ],
)
def test_hostile_recipes_and_overrides_are_one_short_line(tmp_path, content, overrides, message):
    from cli_runs import command

    path = tmp_path / "recipe.yaml"
    if content is None:
        path.mkdir()
    else:
        path.write_text(content)
    result = subprocess.run(command("recipe", "validate", str(path), *(["--set", *overrides] if overrides else [])), capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr[-3000:]
    assert message in result.stderr and len(result.stderr) < 1000, result.stderr[:1000]
