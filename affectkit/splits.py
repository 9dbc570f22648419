"""Subject-independent splits: no subject is ever on both sides of a split."""

from __future__ import annotations

import random
from collections.abc import Sequence

from affectkit.errors import DatasetError
from affectkit.interfaces import Sample


def _subjects(samples: Sequence[Sample], seed: int) -> list[str]:
    subjects = sorted({s.subject for s in samples})
    random.Random(seed).shuffle(subjects)
    return subjects


def subject_split(samples: Sequence[Sample], val_fraction: float, seed: int) -> tuple[list[Sample], list[Sample]]:
    """Hold out ``val_fraction`` of the subjects (at least one) for validation."""
    subjects = _subjects(samples, seed)
    if len(subjects) < 2:
        raise DatasetError(f"a subject-independent split needs at least 2 subjects, the dataset has {len(subjects)}")
    n_val = min(len(subjects) - 1, max(1, round(len(subjects) * val_fraction)))
    held_out = set(subjects[:n_val])
    return [s for s in samples if s.subject not in held_out], [s for s in samples if s.subject in held_out]


def subject_folds(samples: Sequence[Sample], folds: int, seed: int) -> list[tuple[list[Sample], list[Sample]]]:
    """K subject-independent folds: each subject is in exactly one test fold."""
    subjects = _subjects(samples, seed)
    if folds > len(subjects):
        raise DatasetError(f"{folds} folds need at least {folds} subjects, the dataset has {len(subjects)}")
    result = []
    for k in range(folds):
        test = set(subjects[k::folds])
        result.append(([s for s in samples if s.subject not in test], [s for s in samples if s.subject in test]))
    return result
