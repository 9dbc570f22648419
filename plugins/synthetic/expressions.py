"""Expressions as action-unit combinations, how each subject performs them, and 4D timing.

The six prototypes follow the FACS/EMFACS descriptions of the basic emotions:

=========  =====================================
anger      AU4 + AU5 + AU7 + AU23
disgust    AU9 + AU15 + AU16
fear       AU1 + AU2 + AU4 + AU5 + AU20 + AU26
happiness  AU6 + AU12
sadness    AU1 + AU4 + AU15
surprise   AU1 + AU2 + AU5 + AU26
=========  =====================================

A subject performs an expression in its own way (:func:`performance`): every AU gets a
gain (log-normal, about +-20%) and a left/right asymmetry, and some subjects add a common
optional AU (lips parting in happiness, chin raising in sadness, ...). Intensities 1..4
scale the activations like BU-3DFE's four levels; neutral is intensity 0. A 4D sequence
(:func:`timeline`) runs neutral -> onset -> apex -> offset -> neutral, each AU with a small
onset delay of its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from affectkit_plugins.synthetic import action_units, head

LABELS: tuple[str, ...] = ("anger", "disgust", "fear", "happiness", "sadness", "surprise")
NEUTRAL = "neutral"
CODES: dict[str, str] = {
    "anger": "AN", "disgust": "DI", "fear": "FE", "happiness": "HA",
    "sadness": "SA", "surprise": "SU", "neutral": "NE",
}

#: label -> {AU: weight at intensity 4}
PROTOTYPES: dict[str, dict[int, float]] = {
    "anger": {4: 1.0, 5: 0.7, 7: 1.0, 23: 1.0},
    "disgust": {9: 1.0, 15: 0.8, 16: 0.9},
    "fear": {1: 1.0, 2: 0.5, 4: 0.8, 5: 1.0, 20: 1.0, 26: 0.4},
    "happiness": {6: 1.0, 12: 1.0},
    "sadness": {1: 1.0, 4: 0.5, 15: 1.0},
    "surprise": {1: 1.0, 2: 1.0, 5: 0.8, 26: 1.0},
    "neutral": {},
}
#: label -> {AU: weight} that some subjects add (each with probability OPTIONAL_P)
OPTIONAL: dict[str, dict[int, float]] = {
    "anger": {17: 0.5},
    "disgust": {10: 0.6},
    "fear": {25: 0.5},
    "happiness": {25: 0.5},
    "sadness": {17: 0.6},
    "surprise": {},
    "neutral": {},
}
OPTIONAL_P = 0.4
MAX_ACTIVATION = 1.3  # per side, after gain and asymmetry
#: intensity level -> activation scale
INTENSITY_SCALE: tuple[float, ...] = (0.0, 0.3, 0.55, 0.8, 1.0)

TAG_PERFORMANCE, TAG_SAMPLE, TAG_TIMING = 23, 29, 31


def label_index(label: str) -> int:
    return (*LABELS, NEUTRAL).index(label)


@dataclass(frozen=True)
class Performance:
    """How one subject performs one expression at its apex (intensity 4)."""

    label: str
    gains: dict[int, tuple[float, float]]  # AU -> (right, left)


@lru_cache(maxsize=1024)
def performance(seed: int, subject: int, label: str) -> Performance:
    rng = head.seeded_rng(seed, TAG_PERFORMANCE, subject, label_index(label))
    gains: dict[int, tuple[float, float]] = {}
    units = dict(PROTOTYPES[label])
    for au, weight in OPTIONAL[label].items():
        if rng.random() < OPTIONAL_P:
            units[au] = weight * rng.uniform(0.4, 1.0)
    for au, weight in sorted(units.items()):
        gain = weight * float(np.clip(np.exp(0.2 * rng.standard_normal()), 0.65, 1.45))
        asym = float(np.clip(0.1 * rng.standard_normal(), -0.25, 0.25))
        gains[au] = (min(gain * (1 - asym), MAX_ACTIVATION), min(gain * (1 + asym), MAX_ACTIVATION))
    return Performance(label, gains)


def activations(seed: int, subject: int, label: str, intensity: int) -> dict[int, tuple[float, float]]:
    """AU activations of one static scan: the subject's performance at ``intensity``,
    with a little trial-to-trial variation."""
    if label == NEUTRAL or intensity == 0:
        return {}
    perf = performance(seed, subject, label)
    rng = head.seeded_rng(seed, TAG_SAMPLE, subject, label_index(label), intensity)
    scale = INTENSITY_SCALE[intensity]
    out = {}
    for au, (right, left) in perf.gains.items():
        jitter = float(np.exp(0.06 * rng.standard_normal()))
        out[au] = (scale * min(right * jitter, MAX_ACTIVATION), scale * min(left * jitter, MAX_ACTIVATION))
    return out


def smooth_ramp(t: np.ndarray, start: float, end: float) -> np.ndarray:
    return head.smoothstep(start, end, t)


def timeline(seed: int, subject: int, label: str, frames: int, intensity: int = 4) -> list[dict[int, tuple[float, float]]]:
    """Per-frame AU activations of a 4D sequence: neutral, onset, apex, offset, neutral.

    The first and last frames are exactly neutral; the apex holds the activations of
    :func:`activations` at ``intensity``.
    """
    apex = activations(seed, subject, label, intensity)
    rng = head.seeded_rng(seed, TAG_TIMING, subject, label_index(label))
    t = np.linspace(0.0, 1.0, frames)
    onset_start = rng.uniform(0.08, 0.14)
    onset_len = rng.uniform(0.18, 0.28)
    offset_len = rng.uniform(0.18, 0.26)
    apex_len = rng.uniform(0.15, 0.9 - onset_start - onset_len - offset_len)
    offset_start = onset_start + onset_len + apex_len
    profiles = {}
    for au in sorted(apex):
        delay = rng.uniform(-0.04, 0.04)
        profiles[au] = smooth_ramp(t, onset_start + delay, onset_start + onset_len + delay) * (
            1.0 - smooth_ramp(t, offset_start + delay, offset_start + offset_len + delay)
        )
    return [
        {au: (r * float(profiles[au][i]), l * float(profiles[au][i])) for au, (r, l) in apex.items()}
        for i in range(frames)
    ]


def expression_frame(face: head.Face, acts: action_units.Activations) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(vertices, colors, landmarks)`` of ``face`` showing ``acts``."""
    positions, lids = action_units.deform(face, acts)
    return head.finish(face, positions, lids)
