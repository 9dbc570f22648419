"""Reading a scan against its person's neutral scan.

Much of what a model trained on one face model misreads on another is the face at rest: its
proportions, the resting shape of the mouth and lips (docs/benchmarks.md, transfer). A
person's neutral scan carries exactly that, and BU-3DFE and Bosphorus hold one per person,
while a BU-4DFE sequence starts at rest. With a neutral reference a scan's per-view image
features are taken less those of its person's neutral scan (or of its sequence's first
frame) and placed at the mean neutral of the face model the model was calibrated on:
``features(scan) - features(neutral) + neutral_features``. Nothing is retrained: the model
needs only that mean, :func:`calibrate` stores it with its weights.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

import torch
from torch import Tensor

from affectkit.data.facs import NEUTRAL
from affectkit.errors import DatasetError
from affectkit.interfaces import Dataset, Sample
from affectkit.model.affectvlm import AffectVLM
from affectkit.recipe import ComponentRef

#: the key of a model's record (checkpoint provenance) saying what its neutral was calibrated on
CALIBRATION = "neutral_reference"


def neutral_scans(samples: Sequence[Sample]) -> dict[str, Sample]:
    """Each subject's neutral sample (the first listed)."""
    found: dict[str, Sample] = {}
    for sample in samples:
        if sample.label == NEUTRAL:
            found.setdefault(sample.subject, sample)
    return found


def neutral_scans_of(ref: ComponentRef, dataset: Dataset, subjects: Collection[str]) -> tuple[Dataset, list[Sample]]:
    """The neutral scans of ``subjects`` of dataset ``ref`` (built: ``dataset``): those it
    lists, or, where its ``include_neutral`` option leaves them out (the face generators,
    BU-3DFE, Bosphorus), those it lists with that option on; none where it has none.
    Returns the dataset that lists them, and them."""
    from affectkit.factory import build_dataset

    found = [s for s in neutral_scans(dataset.samples()).values() if s.subject in subjects]
    if not found and getattr(dataset.options, "include_neutral", None) is False:
        dataset = build_dataset(ComponentRef(name=ref.name, options={**ref.options, "include_neutral": True}))
        found = [s for s in neutral_scans(dataset.samples()).values() if s.subject in subjects]
    return dataset, found


def pair_with_neutral(samples: Sequence[Sample]) -> tuple[list[Sample], list[Sample | None]]:
    """The expression samples, and each one's reference: its subject's neutral sample, or
    ``None`` for a sequence of a subject without one (its own first frame is the reference).
    A scan whose person has no neutral scan is an error naming them."""
    neutral = neutral_scans(samples)
    expressions = [s for s in samples if s.label != NEUTRAL]
    missing = sorted({s.subject for s in expressions if s.subject not in neutral and not s.is_sequence})
    if missing:
        raise DatasetError(
            f"a neutral reference needs each person's neutral scan (label {NEUTRAL!r}); none for subject(s) {', '.join(missing[:5])}"
            + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
            + " (a BU-3DFE-layout set: include_neutral=true; a 4D sequence is read against its first frame)"
        )
    if not expressions:
        raise DatasetError("a neutral reference reads expression scans against neutral ones; these samples hold no expression scan")
    return expressions, [neutral.get(s.subject) for s in expressions]


@torch.no_grad()
def calibrate(model: AffectVLM, neutral_views: Tensor, batch_size: int = 64) -> Tensor:
    """Set and return ``model.neutral_features``: the mean per-view image features ``[V, F]``
    of ``neutral_views`` ``[N, T, V, C, H, W]``: neutral scans of people of the face model
    it was trained on (its training people will do)."""
    if len(neutral_views) == 0:
        raise DatasetError("calibrating a neutral reference needs neutral scans; none were given")
    was_training = model.training
    model.eval()
    device = model.logit_scale.device
    total = sum(model.view_features(neutral_views[i : i + batch_size].float().to(device)).sum(0) for i in range(0, len(neutral_views), batch_size))
    model.neutral_features = (total / len(neutral_views)).detach()
    model.train(was_training)
    return model.neutral_features
