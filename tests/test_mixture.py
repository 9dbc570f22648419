"""The mixture dataset: several datasets read as one, people kept apart."""

from __future__ import annotations

import numpy as np
import pytest

from affectkit.data.splits import split_by_subjects, subject_folds
from affectkit.errors import AffectkitError
from affectkit.registry import create

PARTS = [
    {"name": "facekit", "options": {"subjects": 2, "intensities": [4]}},
    {"name": "synthetic", "options": {"subjects": 2, "intensities": [4]}},
]


def test_a_mixture_lists_and_loads_every_parts_samples_as_that_part_does():
    mixture = create("dataset", "mixture", {"parts": PARTS})
    parts = [create("dataset", p["name"], p["options"]) for p in PARTS]
    samples = mixture.samples()
    assert len(samples) == sum(len(p.samples()) for p in parts)
    assert mixture.labels == parts[0].labels
    # the same subject id in both parts is two people
    assert {s.subject for s in samples} == {"0:S001", "0:S002", "1:S001", "1:S002"}
    for index, part in enumerate(parts):
        inner = part.samples()[-1]
        (outer,) = [s for s in samples if s.key == f"{index}:{inner.key}"]
        assert outer.attributes["part"] == PARTS[index]["name"] and outer.label == inner.label
        assert np.array_equal(mixture.load(outer).vertices, part.load(inner).vertices)
    for test in subject_folds(samples, 2, seed=0):
        train, held_out = split_by_subjects(samples, test)
        assert not {s.subject for s in train} & {s.subject for s in held_out}


def test_parts_with_other_labels_are_refused_by_name():
    with_neutral = {"name": "synthetic", "options": {"subjects": 1, "include_neutral": True}}
    with pytest.raises(AffectkitError, match="part 'synthetic' has labels .*neutral.* same labels in the same order"):
        create("dataset", "mixture", {"parts": [PARTS[0], with_neutral]})
