"""How a subject performs an emotion: the FACS tables of :mod:`affectkit.data.facs` drawn
per subject, scaled to an intensity, and timed as a 4D sequence.

A subject performs an expression in its own way (:func:`performance`): every AU gets a
gain (log-normal, about +-20%) and a left/right asymmetry, some subjects add a common
optional AU (lips parting in happiness, chin raising in sadness, ...) and, where a
generator asks for it, leave out one of the prototype's secondary AUs.

With ``performances="emfacs"`` a subject instead draws, for each emotion, one of the
EMFACS-7 prototypes and major variants (:data:`affectkit.data.facs.EMFACS_VARIANTS`; the FACS Investigator's
Guide's table, as reprinted by Matsumoto, Keltner, Shiota, O'Sullivan & Frank, "Facial
expressions of emotion", Handbook of Emotions, 3rd ed., 2008, Table 13.1), so that no
single cue decides an emotion: happiness as 6+12, 12, 6+12+25 or 6+12+26; fear with and
without 20 or 4, the mouth parted or dropped; anger with 10 or 17, any one of 4, 5, 7, 10
sometimes left out; sadness as 1+4+15, 6+15 or 1+4+15+17, lips sometimes parted; surprise
without 5 or without the brows; disgust as 9 or 10 with 15, 16, 17, 25 or 26. Variants that
need an AU no generator moves (AU11, 22, 24, 27; head and eye positions) are left out:
1+4+11+15, 1+4+11 and 11+17 (sadness), 4+5+7+10+22+23+25/26 and those with 24 (anger), the
27s of surprise and fear (their 26s stay); so is fear's 1+2+5Z, which with these gains is
surprise's 1+2+5 at another strength.

Intensities 1..4 scale the activations like BU-3DFE's four levels; neutral is intensity 0. A 4D sequence
(:func:`timeline`) runs neutral -> onset -> apex -> offset -> neutral, each AU with a small
onset delay of its own. Activations are ``{AU: (right, left)}``, about 0..1.3 per side.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

import numpy as np

from affectkit.data.facs import (
    EMFACS_DROPPABLE,
    EMFACS_OPTIONAL,
    EMFACS_VARIANTS,
    EMFACS_WEIGHTS,
    NEUTRAL,
    OPTIONAL,
    OPTIONAL_P,
    PROTOTYPES,
    SECONDARY,
    label_index,
)

#: how subjects perform the emotions (:func:`performance`)
Performances = Literal["prototypes", "emfacs"]
MAX_ACTIVATION = 1.3  # per side, after gain and asymmetry
#: intensity level -> activation scale
INTENSITY_SCALE: tuple[float, ...] = (0.0, 0.3, 0.55, 0.8, 1.0)

TAG_PERFORMANCE, TAG_SAMPLE, TAG_TIMING, TAG_MISSING, TAG_VARIANT, TAG_STRENGTH = 23, 29, 31, 37, 41, 43

Activations = dict[int, tuple[float, float]]


def seeded_rng(*keys: int) -> np.random.Generator:
    """A generator that depends only on integer ``keys`` (stable across processes)."""
    return np.random.default_rng(np.random.SeedSequence([int(k) for k in keys]))


def smoothstep(e0: float, e1: float, x: np.ndarray) -> np.ndarray:
    """0 at ``e0``, 1 at ``e1`` (either order), cubic in between."""
    t = np.clip((x - e0) / (e1 - e0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


@dataclass(frozen=True)
class Performance:
    """How one subject performs one expression at its apex (intensity 4)."""

    label: str
    gains: Activations


@lru_cache(maxsize=4096)
def performance(seed: int, subject: int, label: str, missing_p: float = 0.0, performances: Performances = "prototypes") -> Performance:
    """Subject ``subject``'s way of showing ``label``: the prototype, or with
    ``performances="emfacs"`` one EMFACS variant drawn for this subject. With ``missing_p``
    > 0 the subject leaves out, with that probability, one secondary AU of the prototype
    (or one of the variant's droppable AUs)."""
    rng = seeded_rng(seed, TAG_PERFORMANCE, subject, label_index(label))
    gains: Activations = {}
    skip = seeded_rng(seed, TAG_MISSING, subject, label_index(label))
    if performances == "emfacs":
        units = emfacs_units(seed, subject, label)
        droppable = [au for au in EMFACS_DROPPABLE.get(label, ()) if au in units]
        if missing_p > 0 and len(units) > 2 and droppable and skip.random() < missing_p:
            units.pop(droppable[skip.integers(len(droppable))])
    else:
        units = dict(PROTOTYPES[label])
        for au, weight in OPTIONAL[label].items():
            if rng.random() < OPTIONAL_P:
                units[au] = weight * rng.uniform(0.4, 1.0)
        if missing_p > 0 and SECONDARY[label] and skip.random() < missing_p:
            units.pop(SECONDARY[label][skip.integers(len(SECONDARY[label]))])
    for au, weight in sorted(units.items()):
        gain = weight * float(np.clip(np.exp(0.2 * rng.standard_normal()), 0.65, 1.45))
        asym = float(np.clip(0.1 * rng.standard_normal(), -0.25, 0.25))
        gains[au] = (min(gain * (1 - asym), MAX_ACTIVATION), min(gain * (1 + asym), MAX_ACTIVATION))
    return Performance(label, gains)


def emfacs_units(seed: int, subject: int, label: str) -> dict[int, float]:
    """{AU: weight} of the EMFACS variant subject ``subject`` draws for ``label``, with the
    optional AU it adds, if any."""
    rng = seeded_rng(seed, TAG_VARIANT, subject, label_index(label))
    variants = EMFACS_VARIANTS[label]
    odds = np.array([often for _, often in variants])
    chosen, _ = variants[int(rng.choice(len(variants), p=odds / odds.sum()))]
    units = {au: EMFACS_WEIGHTS[label][au] for au in chosen}
    for au in EMFACS_OPTIONAL.get(label, ()):
        if rng.random() < OPTIONAL_P:
            units[au] = EMFACS_WEIGHTS[label][au] * rng.uniform(0.4, 1.0)
            break
    return units


def activations(seed: int, subject: int, label: str, intensity: int, missing_p: float = 0.0, performances: Performances = "prototypes") -> Activations:
    """AU activations of one static scan: the subject's performance at ``intensity``,
    with a little trial-to-trial variation."""
    if label == NEUTRAL or intensity == 0:
        return {}
    perf = performance(seed, subject, label, missing_p, performances)
    rng = seeded_rng(seed, TAG_SAMPLE, subject, label_index(label), intensity)
    scale = INTENSITY_SCALE[intensity]
    out = {}
    for au, (right, left) in perf.gains.items():
        jitter = float(np.exp(0.06 * rng.standard_normal()))
        out[au] = (scale * min(right * jitter, MAX_ACTIVATION), scale * min(left * jitter, MAX_ACTIVATION))
    return out


def timeline(
    seed: int, subject: int, label: str, frames: int, intensity: int = 4, missing_p: float = 0.0, performances: Performances = "prototypes"
) -> list[Activations]:
    """Per-frame AU activations of a 4D sequence: neutral, onset, apex, offset, neutral.

    The first and last frames are exactly neutral; the apex holds the activations of
    :func:`activations` at ``intensity``.
    """
    apex = activations(seed, subject, label, intensity, missing_p, performances)
    rng = seeded_rng(seed, TAG_TIMING, subject, label_index(label))
    t = np.linspace(0.0, 1.0, frames)
    onset_start = rng.uniform(0.08, 0.14)
    onset_len = rng.uniform(0.18, 0.28)
    offset_len = rng.uniform(0.18, 0.26)
    apex_len = rng.uniform(0.15, 0.9 - onset_start - onset_len - offset_len)
    offset_start = onset_start + onset_len + apex_len
    profiles = {}
    for au in sorted(apex):
        delay = rng.uniform(-0.04, 0.04)
        profiles[au] = smoothstep(onset_start + delay, onset_start + onset_len + delay, t) * (
            1.0 - smoothstep(offset_start + delay, offset_start + offset_len + delay, t)
        )
    return [
        {au: (r * float(profiles[au][i]), l * float(profiles[au][i])) for au, (r, l) in apex.items()}
        for i in range(frames)
    ]
