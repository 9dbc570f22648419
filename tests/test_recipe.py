"""Recipes: validation errors name the key path, overrides, the resolved dump."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from affectkit.errors import RecipeError
from affectkit.recipe import dump_recipe, load_recipe, parse_recipe

RECIPES = sorted((Path(__file__).parent.parent / "recipes").glob("*.yaml"))


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.name)
def test_shipped_recipes_are_valid(path):
    recipe = load_recipe(path)
    assert recipe.name


def test_overrides_set_nested_values_and_list_items(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("name: r\nloss:\n  terms: [affectvlm, clip]\n")
    recipe = load_recipe(path, ["train.epochs=3", "render.views=[front, 30]", "loss.terms.1=supcon", "data.dataset.options.subjects=7"])
    assert recipe.train.epochs == 3
    assert recipe.render.views == ["front", 30]
    assert [t.name for t in recipe.loss.terms] == ["affectvlm", "supcon"]
    assert recipe.data.dataset.options == {"subjects": 7}


def test_dump_round_trips_with_every_default(tmp_path):
    recipe = parse_recipe({"name": "r"})
    text = dump_recipe(recipe)
    assert parse_recipe(yaml.safe_load(text)) == recipe
    assert "warmup_epochs" in text


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({}, r"name: required key is missing"),
        ({"name": "r", "trian": {}}, r"trian: unknown key; allowed keys here: name, seed, data"),
        ({"name": "r", "train": {"epochs": 0}}, r"train.epochs: Input should be greater than or equal to 1 \(got 0\)"),
        ({"name": "r", "train": {"lr": "fast"}}, r"train.lr: .*\(got 'fast'\)"),
        ({"name": "r", "render": {"maps": ["rgb", "albedo"]}}, r"render.maps.1: .*'rgb', 'depth', 'normal' or 'mask'"),
        ({"name": "r", "render": {"sizee": 3}}, r"render.sizee: unknown key; allowed keys here: renderer, views, size"),
        ({"name": "r", "model": {"image_encoder": {"name": "nope"}}}, r"model.image_encoder: unknown image_encoder 'nope'; registered: clip, timm"),
        ({"name": "r", "loss": {"terms": [{"name": "affectvlm", "options": {"bogus": 1}}]}}, r"loss.terms.0: invalid options for loss 'affectvlm': bogus"),
        ({"name": "bad name"}, r"name: String should match pattern"),
        ([1, 2], r"a recipe must be a YAML mapping"),
    ],
)
def test_bad_recipes_name_the_key_path(data, message):
    with pytest.raises(RecipeError, match=message):
        parse_recipe(data, "bad.yaml")


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
