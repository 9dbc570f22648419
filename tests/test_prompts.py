"""Prompt augmenters: a contract test over every registered one, then each built-in."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from affectkit.errors import PluginError
from affectkit.interfaces import PromptAugmenter
from affectkit.registry import registry
from affectkit.testing import check_prompt_augmenter
from affectkit_plugins.prompt_augmenters import EMOTIONS, TEMPLATES, age_word, emotion, tidy

LABELS = ("anger", "disgust", "fear", "happiness", "sadness", "surprise", "neutral")
SAMPLE = {"sex": "F", "age_group": "18-29", "intensity": 4, "ethnicity": "White"}
AUGMENTERS = registry().names("prompt_augmenter")


@pytest.fixture(scope="module")
def prompt_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("prompts") / "prompts.yaml"
    table = {label: [f"a face full of {label}", f"someone feeling {label}"] for label in LABELS}
    path.write_text(yaml.safe_dump(table))
    return path


#: options each registered augmenter is built with in the contract test; a registered
#: augmenter without an entry fails it
TEST_OPTIONS: dict[str, Callable[[pytest.FixtureRequest], dict[str, Any]]] = {
    "templates": lambda request: {},
    "attributes": lambda request: {},
    "file": lambda request: {"path": str(request.getfixturevalue("prompt_file"))},
}


def create(name: str, options: dict[str, Any] | None = None) -> PromptAugmenter:
    return registry().create("prompt_augmenter", name, options)


# ---------------------------------------------------------------------------------------
# Contract
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("attributes", [{}, SAMPLE], ids=["class", "sample"])
@pytest.mark.parametrize("name", AUGMENTERS)
def test_every_augmenter_writes_distinct_prompts_per_class(name: str, attributes: dict, request: pytest.FixtureRequest) -> None:
    if name not in TEST_OPTIONS:
        pytest.fail(f"prompt_augmenter {name!r} is registered but has no entry in this file's TEST_OPTIONS")
    augmenter = create(name, TEST_OPTIONS[name](request))
    assert isinstance(augmenter, PromptAugmenter)
    check_prompt_augmenter(augmenter, attributes, LABELS)


# ---------------------------------------------------------------------------------------
# Vocabulary
# ---------------------------------------------------------------------------------------


def test_vocabulary_covers_every_label_with_synonyms() -> None:
    for label in LABELS:
        assert len(EMOTIONS[label].adjectives) >= 5 and EMOTIONS[label].nouns
    assert {"happy", "joyful", "smiling", "cheerful", "delighted"} <= set(EMOTIONS["happiness"].adjectives)
    assert {"angry", "furious"} <= set(EMOTIONS["anger"].adjectives)


@pytest.mark.parametrize("label", ["happiness", "Happy", "HA", "happy", "joy"])
def test_label_forms_share_one_vocabulary(label: str) -> None:
    assert emotion(label) is EMOTIONS["happiness"]


def test_unknown_label_is_its_own_word() -> None:
    assert emotion("pain").adjectives == ("pain",)
    assert "a face showing pain" in create("templates").prompts("pain", {})
    assert "a pain person" in create("attributes").prompts("pain", {})


@pytest.mark.parametrize(
    ("text", "expected"),
    [("a angry face", "an angry face"), ("an young woman", "a young woman"), ("a  face , surprised", "a face, surprised"), ("A older man", "An older man")],
)
def test_tidy(text: str, expected: str) -> None:
    assert tidy(text) == expected


# ---------------------------------------------------------------------------------------
# templates
# ---------------------------------------------------------------------------------------


def test_templates() -> None:
    assert len(TEMPLATES) >= 10
    prompts = create("templates").prompts("happiness", {})
    assert {"a 3D scan of a happy face", "a photo of a joyful person", "a face showing happiness", "a 3D scan of a smiling face"} <= set(prompts)
    assert "a 3D scan of an angry face" in create("templates").prompts("anger", {})
    assert "a face showing no emotion" in create("templates").prompts("neutral", {})


def test_templates_without_synonyms_is_one_prompt_per_template() -> None:
    prompts = create("templates", {"synonyms": False}).prompts("surprise", {})
    assert len(prompts) == len(TEMPLATES)
    assert "a photo of a surprised person" in prompts


def test_templates_override() -> None:
    augmenter = create("templates", {"templates": ["a {} face", "{noun}!", "a {adjective} mesh of {noun}"], "synonyms": False})
    assert augmenter.prompts("sadness", {}) == ["a sad face", "sadness!", "a sad mesh of sadness"]


@pytest.mark.parametrize("template", ["a face", "a {emotion} face", "a {face"])
def test_bad_template_is_an_options_error(template: str) -> None:
    with pytest.raises(PluginError, match="invalid options for prompt_augmenter 'templates'.*template"):
        create("templates", {"templates": [template]})


# ---------------------------------------------------------------------------------------
# attributes
# ---------------------------------------------------------------------------------------


def test_attributes_describe_the_sample() -> None:
    prompts = create("attributes").prompts("surprise", {"sex": "F", "age_group": "18-29", "intensity": 4})
    assert "a strongly surprised young woman" in prompts
    assert "a 3D scan of a young female face showing strong surprise" in prompts
    older = create("attributes").prompts("anger", {"sex": "M", "age_group": "50+", "intensity": "1"})
    assert "a slightly angry older man" in older
    assert "a photo of an older man who looks slightly angry" in older


def test_attributes_without_attributes_are_class_prompts() -> None:
    prompts = create("attributes").prompts("surprise", {})
    assert "a surprised person" in prompts and "a 3D scan of a face showing surprise" in prompts
    assert not any("  " in p or p.endswith(" ") for p in prompts)


def test_attributes_ignore_what_they_do_not_know() -> None:
    plain = create("attributes").prompts("fear", {})
    assert create("attributes").prompts("fear", {"sex": "?", "age_group": "unknown", "intensity": 9, "ethnicity": "Indian"}) == plain


def test_neutral_has_no_intensity() -> None:
    prompts = create("attributes").prompts("neutral", {"sex": "M", "age_group": "30-49", "intensity": 3})
    assert "a neutral middle-aged man" in prompts
    assert not any("clearly" in p for p in prompts)


@pytest.mark.parametrize(
    ("value", "word"), [("18-29", "young"), ("30-49", "middle-aged"), ("50+", "older"), ("50-69", "older"), (25, "young"), ("elderly", "older"), ("?", "")]
)
def test_age_groups(value: Any, word: str) -> None:
    assert age_word(value) == word


def test_attributes_without_synonyms() -> None:
    prompts = create("attributes", {"synonyms": False}).prompts("happiness", SAMPLE)
    assert all("joyful" not in p for p in prompts) and "a strongly happy young woman" in prompts


# ---------------------------------------------------------------------------------------
# file
# ---------------------------------------------------------------------------------------


def test_file_prompts(prompt_file: Path) -> None:
    augmenter = create("file", {"path": str(prompt_file)})
    assert augmenter.prompts("fear", {}) == ["a face full of fear", "someone feeling fear"]
    assert augmenter.prompts("Fear", SAMPLE) == ["a face full of fear", "someone feeling fear"]


def test_file_missing_class_names_file_and_class(prompt_file: Path) -> None:
    with pytest.raises(PluginError, match=rf"prompt file '{prompt_file}' has no prompts for class 'contempt'; it lists: anger"):
        create("file", {"path": str(prompt_file)}).prompts("contempt", {})


def test_file_path_is_resolved_where_the_recipe_is_read(prompt_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(prompt_file.parent)
    augmenter = create("file", {"path": prompt_file.name})
    assert augmenter.path == prompt_file.resolve()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "does not exist"),
        ("happiness: [a happy face\n", "is not valid YAML"),
        ("", "must map each class to a list of prompts, got an empty file"),
        ("- a happy face\n", "must map each class to a list of prompts, got list"),
        ("happiness: []\n", "class 'happiness' must have a non-empty list of non-empty strings"),
        ("happiness: [1, 2]\n", "class 'happiness' must have a non-empty list"),
    ],
)
def test_bad_prompt_files(tmp_path: Path, content: str | None, message: str) -> None:
    path = tmp_path / "prompts.yaml"
    if content is not None:
        path.write_text(content)
    with pytest.raises(PluginError, match=rf"prompt file '{path}'.*{message}"):
        create("file", {"path": str(path)})


def test_file_single_string_is_one_prompt(tmp_path: Path) -> None:
    path = tmp_path / "prompts.yaml"
    path.write_text("happiness: a big smile\n")
    assert create("file", {"path": str(path)}).prompts("happiness", {}) == ["a big smile"]
