"""Prompt augmenters: ``templates``, ``attributes`` and ``file``.

Training draws one prompt at random from a sample's candidates at every step; evaluation
embeds every class prompt (``attributes={}``) and averages them per class, as open_clip's
zero-shot classifiers do. ``templates`` and ``attributes`` share one emotion vocabulary
(:data:`EMOTIONS`); a label it does not know is used as the word itself, so any dataset's
labels work.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, field_validator

from affectkit import hookimpl
from affectkit.errors import PluginError
from affectkit.interfaces import Options, PromptAugmenter

# ---------------------------------------------------------------------------------------
# Vocabulary
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Emotion:
    """The words for one emotion: ``adjectives[0]`` and ``nouns[0]`` are the plain forms."""

    adjectives: tuple[str, ...]
    nouns: tuple[str, ...]
    aliases: tuple[str, ...] = ()
    graded: bool = True  # whether an intensity ("strongly ...") makes sense


#: label -> words; labels are matched case-insensitively, also by any alias, adjective or noun
EMOTIONS: dict[str, Emotion] = {
    "anger": Emotion(("angry", "furious", "irritated", "enraged", "annoyed", "mad"), ("anger", "rage", "fury"), ("an",)),
    "disgust": Emotion(
        ("disgusted", "repulsed", "revolted", "sickened", "appalled", "grossed out"), ("disgust", "revulsion", "distaste"), ("di",)
    ),
    "fear": Emotion(("fearful", "scared", "afraid", "frightened", "terrified", "anxious"), ("fear", "fright", "terror"), ("fe",)),
    "happiness": Emotion(
        ("happy", "joyful", "smiling", "cheerful", "delighted", "glad"), ("happiness", "joy", "delight"), ("ha", "happy", "joy")
    ),
    "sadness": Emotion(("sad", "unhappy", "sorrowful", "gloomy", "downcast", "miserable"), ("sadness", "sorrow", "grief"), ("sa",)),
    "surprise": Emotion(
        ("surprised", "astonished", "amazed", "shocked", "startled", "astounded"), ("surprise", "astonishment", "amazement"), ("su",)
    ),
    "neutral": Emotion(
        ("neutral", "expressionless", "calm", "relaxed", "blank", "impassive"),
        ("no emotion", "calm", "composure"),
        ("ne", "neutrality", "none"),
        graded=False,
    ),
    "contempt": Emotion(
        ("contemptuous", "scornful", "disdainful", "sneering", "derisive", "dismissive"), ("contempt", "scorn", "disdain"), ("co",)
    ),
}

_LOOKUP: dict[str, str] = {}
for _label, _emotion in EMOTIONS.items():
    for _word in (_label, *_emotion.aliases, *_emotion.adjectives, *_emotion.nouns):
        _LOOKUP.setdefault(_word.lower(), _label)


def emotion(label: str) -> Emotion:
    """The vocabulary of ``label`` (BU-3DFE codes like ``HA`` and forms like ``Happy`` too);
    an unknown label is its own word (``"pain"`` -> ``a pain face``, ``a face showing pain``)."""
    key = label.strip().lower().replace("_", " ")
    known = _LOOKUP.get(key)
    if known is not None:
        return EMOTIONS[known]
    word = key or "unknown"
    return Emotion((word,), (word,))


#: BU-3DFE's four expression intensities: level -> (adverb, adjective)
INTENSITIES: dict[int, tuple[str, str]] = {1: ("slightly", "slight"), 2: ("moderately", "moderate"), 3: ("clearly", "clear"), 4: ("strongly", "strong")}

_SEXES: dict[str, tuple[str, str]] = {  # -> (noun, adjective)
    "f": ("woman", "female"),
    "female": ("woman", "female"),
    "woman": ("woman", "female"),
    "m": ("man", "male"),
    "male": ("man", "male"),
    "man": ("man", "male"),
}

_AGE_WORDS = {"young": "young", "middle-aged": "middle-aged", "middle aged": "middle-aged", "old": "older", "older": "older", "elderly": "older"}


def age_word(value: Any) -> str:
    """``"18-29"``/``25`` -> young, ``"30-49"`` -> middle-aged, ``"50+"`` -> older; ``""`` if unknown."""
    if isinstance(value, bool) or value is None:
        return ""
    text = str(value).strip().lower()
    if text in _AGE_WORDS:
        return _AGE_WORDS[text]
    match = re.match(r"^(\d+(?:\.\d+)?)", text)
    if not match:
        return ""
    low = float(match.group(1))
    return "young" if low < 30 else "middle-aged" if low < 50 else "older"


def intensity_level(value: Any) -> int | None:
    """1..4 (ints, ``"3"``, ``3.0``), else ``None``."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        level = int(float(str(value).strip()))
    except ValueError:
        return None
    return level if level in INTENSITIES else None


def tidy(text: str) -> str:
    """Collapse spaces, tidy punctuation and fix ``a``/``an`` before the following word."""
    text = re.sub(r"\s+", " ", text).strip()
    text = re.sub(r"\s+([,.])", r"\1", text)
    text = re.sub(r"\b([Aa])n? (?=[aeiouAEIOU])", r"\1n ", text)
    return re.sub(r"\b([Aa])n (?=[^aeiouAEIOU\W])", r"\1 ", text)


def _unique(prompts: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(tidy(p) for p in prompts if p.strip()))


# ---------------------------------------------------------------------------------------
# templates
# ---------------------------------------------------------------------------------------

#: ``{}``/``{adjective}`` takes an adjective ("happy"), ``{noun}`` a noun ("happiness")
TEMPLATES: tuple[str, ...] = (
    "a 3D scan of a {adjective} face",
    "a photo of a {adjective} person",
    "a face showing {noun}",
    "a rendering of a {adjective} face",
    "a 3D face mesh with a {adjective} expression",
    "a {adjective} facial expression",
    "a person who looks {adjective}",
    "a face expressing {noun}",
    "a close-up of a {adjective} face",
    "the face of a {adjective} person",
    "a depth map of a face showing {noun}",
    "a {adjective} look on someone's face",
)

_FIELDS = {"", "adjective", "noun"}


def _check_template(template: str) -> str:
    try:
        fields = [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
    except ValueError as exc:
        raise ValueError(f"template {template!r} is not a valid format string: {exc}") from None
    if not fields or any(f not in _FIELDS for f in fields):
        raise ValueError(f"template {template!r} must contain {{}}, {{adjective}} or {{noun}} and no other field")
    return template


def fill(template: str, adjective: str, noun: str) -> str:
    return tidy(template.format(adjective, adjective=adjective, noun=noun))


class TemplatePrompts(PromptAugmenter):
    """Class prompts from templates and emotion synonyms ("a 3D scan of a joyful face")."""

    class Options(Options):
        templates: list[str] = Field(
            default_factory=lambda: list(TEMPLATES),
            min_length=1,
            description="format strings with {} or {adjective} (happy) or {noun} (happiness)",
        )
        synonyms: bool = Field(True, description="use every synonym of the emotion, not only its plain word")

        @field_validator("templates")
        @classmethod
        def check_templates(cls, value: list[str]) -> list[str]:
            return [_check_template(t) for t in value]

    def prompts(self, label: str, attributes: Mapping[str, Any]) -> list[str]:
        words = emotion(label)
        count = None if self.options.synonyms else 1
        adjectives, nouns = words.adjectives[:count], words.nouns[:count]
        prompts = []
        for template in self.options.templates:
            fields = {f for _, f, _, _ in string.Formatter().parse(template) if f is not None}
            if "noun" in fields and fields & {"", "adjective"}:
                pairs = zip(adjectives, nouns * len(adjectives))
            elif "noun" in fields:
                pairs = ((adjectives[0], n) for n in nouns)
            else:
                pairs = ((a, nouns[0]) for a in adjectives)
            prompts += [fill(template, a, n) for a, n in pairs]
        return _unique(prompts)


# ---------------------------------------------------------------------------------------
# attributes
# ---------------------------------------------------------------------------------------

#: ``{intensity}`` (adverb, "strongly") / ``{intensity_adjective}`` ("strong"), ``{age}``,
#: ``{person}`` (woman/man/person), ``{sex}`` (female/male), ``{adjective}``, ``{noun}``;
#: missing attributes leave their field empty
ATTRIBUTE_TEMPLATES: tuple[str, ...] = (
    "a {intensity} {adjective} {age} {person}",
    "a photo of a {age} {person} who looks {intensity} {adjective}",
    "a 3D scan of a {age} {sex} face showing {intensity_adjective} {noun}",
    "the face of a {age} {person} with a {intensity} {adjective} expression",
    "a {age} {sex} face that looks {intensity} {adjective}",
)


class AttributePrompts(PromptAugmenter):
    """Prompts that describe the sample: sex, age group and intensity ("a strongly surprised young woman")."""

    class Options(Options):
        synonyms: bool = Field(True, description="use every synonym of the emotion, not only its plain word")

    def prompts(self, label: str, attributes: Mapping[str, Any]) -> list[str]:
        words = emotion(label)
        sex = _SEXES.get(str(attributes.get("sex", "")).strip().lower(), ("person", ""))
        age = age_word(attributes.get("age_group", attributes.get("age")))
        level = intensity_level(attributes.get("intensity")) if words.graded else None
        adverb, intensity_adjective = INTENSITIES.get(level, ("", "")) if level else ("", "")
        count = None if self.options.synonyms else 1
        prompts = []
        for i, adjective in enumerate(words.adjectives[:count]):
            noun = words.nouns[i % len(words.nouns)]
            values = dict(
                intensity=adverb, intensity_adjective=intensity_adjective, age=age, person=sex[0], sex=sex[1], adjective=adjective, noun=noun
            )
            prompts += [tidy(t.format(**values)) for t in ATTRIBUTE_TEMPLATES]
        return _unique(prompts)


# ---------------------------------------------------------------------------------------
# file
# ---------------------------------------------------------------------------------------


class FilePrompts(PromptAugmenter):
    """Prompts written by hand in a YAML file mapping each class to a list of prompts."""

    class Options(Options):
        path: Path = Field(description="YAML file: {class: [prompt, ...]} (a single string is one prompt)")

        @field_validator("path")
        @classmethod
        def absolute(cls, value: Path) -> Path:
            """Resolved where the recipe is read, so workers with another working directory find it."""
            return value.expanduser().resolve()

    def __init__(self, options: Options) -> None:
        super().__init__(options)
        self.path = options.path
        self.table = self._read(self.path)

    @staticmethod
    def _read(path: Path) -> dict[str, list[str]]:
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise PluginError(f"prompt file {str(path)!r} does not exist") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise PluginError(f"prompt file {str(path)!r} cannot be read: {exc}") from None
        except yaml.YAMLError as exc:
            raise PluginError(f"prompt file {str(path)!r} is not valid YAML: {exc}") from None
        if not isinstance(data, Mapping) or not data:
            got = "an empty file" if data is None else type(data).__name__
            raise PluginError(f"prompt file {str(path)!r} must map each class to a list of prompts, got {got}")
        table: dict[str, list[str]] = {}
        for label, prompts in data.items():
            prompts = [prompts] if isinstance(prompts, str) else prompts
            if not isinstance(prompts, list) or not prompts or not all(isinstance(p, str) and p.strip() for p in prompts):
                raise PluginError(f"prompt file {str(path)!r}: class {str(label)!r} must have a non-empty list of non-empty strings")
            table[str(label)] = list(dict.fromkeys(p.strip() for p in prompts))
        return table

    def prompts(self, label: str, attributes: Mapping[str, Any]) -> list[str]:
        if label in self.table:
            return list(self.table[label])
        folded = {key.lower(): key for key in self.table}
        if label.lower() in folded:
            return list(self.table[folded[label.lower()]])
        raise PluginError(f"prompt file {str(self.path)!r} has no prompts for class {label!r}; it lists: {', '.join(self.table)}")


@hookimpl
def register_prompt_augmenters(register):
    register("templates", TemplatePrompts)
    register("attributes", AttributePrompts)
    register("file", FilePrompts)
