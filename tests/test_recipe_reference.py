"""docs/recipes.md is the reference the recipe models write, and covers every key."""

from __future__ import annotations

from cli_runs import ROOT, run_ok

from affectkit.recipe import Recipe
from affectkit.recipe_reference import recipe_reference, section_models


def test_docs_recipes_md_is_current():
    assert (ROOT / "docs" / "recipes.md").read_text() == recipe_reference(), (
        "docs/recipes.md is stale: run `affectkit recipe reference > docs/recipes.md`"
    )


def test_every_key_of_every_section_is_listed():
    page = recipe_reference()
    for key in Recipe.model_fields:
        assert f"| `{key}` |" in page
    for name, model in section_models(Recipe):
        for key in model.model_fields:
            assert f"| `{name}.{key}` |" in page, f"{name}.{key}"


def test_the_cli_prints_it():
    assert run_ok("recipe", "reference").startswith(recipe_reference())
