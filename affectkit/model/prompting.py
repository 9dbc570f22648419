"""The prompts of a run: per-sample candidates for training, per-class ensembles for
classification, both written by the recipe's prompt augmenters."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence

from affectkit.interfaces import PromptAugmenter, Sample


class PromptBank:
    def __init__(self, augmenters: Sequence[PromptAugmenter]) -> None:
        self.augmenters = list(augmenters)

    def candidates(self, label: str, attributes: Mapping[str, object]) -> list[str]:
        """Every prompt any augmenter writes for this label and these attributes."""
        return list(dict.fromkeys(p for a in self.augmenters for p in a.prompts(label, attributes)))

    def sample_candidates(self, samples: Sequence[Sample]) -> list[list[str]]:
        return [self.candidates(s.label, s.attributes) for s in samples]

    def class_prompts(self, labels: Sequence[str]) -> list[list[str]]:
        """The ensemble per class used for classification (no sample attributes)."""
        return [self.candidates(label, {}) for label in labels]


def draw(candidates: Sequence[Sequence[str]], indices: Sequence[int], rng: random.Random) -> list[str]:
    """One prompt per sample, drawn at random from its candidates (once per step)."""
    return [rng.choice(candidates[i]) for i in indices]
