"""Subject-independent protocols: which subjects a run uses, and how they are split.

No subject is ever on both sides of a split. Selections and folds depend only on the
subject ids, their attributes and a seed, so a protocol is reproducible from the recipe,
and folds can be written to a file and read back by another lab (:func:`write_folds`).
"""

from __future__ import annotations

import json
import random
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from affectkit.errors import AffectkitError, DatasetError
from affectkit.interfaces import Sample
from affectkit.recipe import read_yaml


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


def subject_folds(samples: Sequence[Sample], folds: int, seed: int) -> list[list[str]]:
    """K subject-independent folds (their test subjects): each subject is in exactly one."""
    subjects = _subjects(samples, seed)
    if folds > len(subjects):
        raise DatasetError(f"{folds} folds need at least {folds} subjects, the dataset has {len(subjects)}")
    return [sorted(subjects[k::folds]) for k in range(folds)]


def split_by_subjects(samples: Sequence[Sample], test: Sequence[str]) -> tuple[list[Sample], list[Sample]]:
    """(samples of the other subjects, samples of ``test``'s subjects)."""
    held_out = set(test)
    return [s for s in samples if s.subject not in held_out], [s for s in samples if s.subject in held_out]


def subject_attributes(samples: Sequence[Sample], keys: Sequence[str]) -> dict[str, tuple[str, ...]]:
    """Each subject's values of ``keys`` (``"?"`` where a sample does not carry one)."""
    return {s.subject: tuple(str(s.attributes.get(key, "?")) for key in keys) for s in samples}


def draw_subjects(samples: Sequence[Sample], count: int, stratify: Sequence[str], seed: int) -> list[str]:
    """A seeded random draw of ``count`` subjects that keeps the proportions of the
    ``stratify`` attributes, the first most exactly (those no sample carries are ignored):
    each value of the first attribute gets its share of ``count`` (largest remainder, ties
    drawn at random), which is shared out by the next attribute within it, and so on; the
    subjects of each final group are drawn at random."""
    present = [key for key in stratify if any(key in s.attributes for s in samples)]
    values = subject_attributes(samples, present)
    if count > len(values):
        raise DatasetError(f"data.subjects.count: {count} subjects asked for, the dataset has {len(values)}")
    rng = random.Random(seed)

    def draw(subjects: list[str], wanted: int, depth: int) -> list[str]:
        if depth == len(present):
            return rng.sample(subjects, wanted)
        groups: dict[str, list[str]] = defaultdict(list)
        for subject in subjects:
            groups[values[subject][depth]].append(subject)
        quotas = {value: wanted * len(members) / len(subjects) for value, members in sorted(groups.items())}
        shares = {value: int(quota) for value, quota in quotas.items()}
        order = sorted(quotas, key=lambda value: (shares[value] - quotas[value], rng.random()))
        for value in order[: wanted - sum(shares.values())]:
            shares[value] += 1
        return [s for value in sorted(groups) for s in draw(groups[value], shares[value], depth + 1)]

    return sorted(draw(sorted(values), count, 0))


def read_subject_list(path: Path) -> list[str]:
    """Subject ids, one per line; blank lines and ``#`` comments ignored."""
    try:
        lines = Path(path).read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise AffectkitError(f"{path}: cannot read the subject list ({exc})") from None
    subjects = [line.split("#", 1)[0].strip() for line in lines]
    subjects = [s for s in subjects if s]
    if not subjects:
        raise AffectkitError(f"{path}: the subject list names no subject (one id per line)")
    return subjects


def select_subjects(samples: Sequence[Sample], selection: Any, seed: int) -> list[Sample]:
    """The samples of the subjects a recipe's ``data.subjects`` section selects: those of
    its ``file``, then a stratified draw of ``count`` of them (all when neither is set)."""
    if selection.file is not None:
        wanted = read_subject_list(selection.file)
        known = {s.subject for s in samples}
        missing = [s for s in wanted if s not in known]
        if missing:
            raise DatasetError(
                f"{selection.file}: subject(s) {', '.join(missing[:10])} are not in the dataset; it has {', '.join(sorted(known)[:10])}"
                + (", ..." if len(known) > 10 else "")
            )
        samples = [s for s in samples if s.subject in set(wanted)]
    if selection.count is not None:
        drawn = set(draw_subjects(samples, selection.count, selection.stratify, seed))
        samples = [s for s in samples if s.subject in drawn]
    return list(samples)


def write_folds(path: Path, repeats: Sequence[dict[str, Any]], dataset: dict[str, Any]) -> None:
    """Write the folds a cross-validation used: ``{"dataset": ..., "repeats": [{"seed": s,
    "folds": [[test subjects of fold 1], ...]}, ...]}`` (JSON, which is also YAML)."""
    Path(path).write_text(json.dumps({"dataset": dataset, "repeats": list(repeats)}, indent=1))


def read_folds(path: Path) -> list[dict[str, Any]]:
    """The repeats of a fold file written by :func:`write_folds` (or by hand, in YAML:
    ``repeats: [{folds: [[F0001, M0002], [F0003, M0004]]}]``, or just ``folds: [...]``)."""
    data = read_yaml(Path(path), "fold")
    if isinstance(data, dict) and "folds" in data and "repeats" not in data:
        data = {"repeats": [{"folds": data["folds"]}]}
    repeats = data.get("repeats") if isinstance(data, dict) else None
    expected = "a mapping with `repeats: [{folds: [[subject, ...], ...]}, ...]` or `folds: [[subject, ...], ...]`"
    if not isinstance(repeats, list) or not repeats:
        raise AffectkitError(f"{path}: a fold file is {expected}")
    out = []
    for r, repeat in enumerate(repeats):
        folds = repeat.get("folds") if isinstance(repeat, dict) else None
        if not (isinstance(folds, list) and len(folds) >= 2 and all(isinstance(f, list) and f for f in folds)):
            raise AffectkitError(f"{path}: repeat {r + 1} needs `folds`, at least 2 non-empty lists of subject ids; a fold file is {expected}")
        folds = [[str(s) for s in fold] for fold in folds]
        seen: dict[str, int] = {}
        for k, fold in enumerate(folds):
            for subject in fold:
                if subject in seen:
                    raise AffectkitError(f"{path}: repeat {r + 1}: subject {subject} is in fold {seen[subject] + 1} and fold {k + 1}")
                seen[subject] = k
        out.append({"seed": repeat.get("seed"), "folds": folds})
    return out
