"""The six basic emotions as FACS action units: the EMFACS prototypes and major variants.

Shared by the face generators (``synthetic``, ``facekit``) so that both compose the same
emotions from the same action units (AUs) and differ only in how an AU moves a face.
The prototypes follow the EMFACS descriptions of the basic emotions (Friesen & Ekman,
EMFACS-7, 1983; the FACS Investigator's Guide, Ekman, Friesen & Hager, 2002):

=========  =====================================
anger      AU4 + AU5 + AU7 + AU23
disgust    AU9 + AU15 + AU16
fear       AU1 + AU2 + AU4 + AU5 + AU20 + AU26
happiness  AU6 + AU12
sadness    AU1 + AU4 + AU15
surprise   AU1 + AU2 + AU5 + AU26
=========  =====================================

EMFACS-7's prototypes and major variants are :data:`EMFACS_VARIANTS` (the FACS
Investigator's Guide's table, as reprinted by Matsumoto, Keltner, Shiota, O'Sullivan &
Frank, "Facial expressions of emotion", Handbook of Emotions, 3rd ed., 2008, Table 13.1),
as far as the generators can move them. How a subject draws from these tables, and which
variants are left out, is :mod:`affectkit.data.performances`.
"""

from __future__ import annotations

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
#: label -> the prototype's secondary AUs, of which a subject may leave one out
SECONDARY: dict[str, tuple[int, ...]] = {
    "anger": (5, 23),
    "disgust": (15, 16),
    "fear": (2, 4, 26),
    "happiness": (6,),
    "sadness": (4,),
    "surprise": (2, 5),
    "neutral": (),
}
#: label -> {AU: weight at intensity 4} of every AU its EMFACS variants use (5B: surprise's
#: upper lids rise only slightly)
EMFACS_WEIGHTS: dict[str, dict[int, float]] = {
    "anger": {4: 1.0, 5: 0.7, 7: 1.0, 10: 0.6, 17: 0.6, 23: 1.0, 25: 0.5, 26: 0.5},
    "disgust": {9: 1.0, 10: 1.0, 15: 0.8, 16: 0.9, 17: 0.6, 25: 0.5, 26: 0.5},
    "fear": {1: 1.0, 2: 0.5, 4: 0.8, 5: 1.0, 20: 1.0, 25: 0.6, 26: 0.5},
    "happiness": {6: 1.0, 12: 1.0, 25: 0.5, 26: 0.4},
    "sadness": {1: 1.0, 4: 0.5, 6: 0.6, 15: 1.0, 17: 0.6, 25: 0.4, 26: 0.4},
    "surprise": {1: 1.0, 2: 1.0, 5: 0.5, 26: 1.0},
    "neutral": {},
}
#: label -> (AUs, how often drawn): EMFACS-7's prototypes (2) and major variants (1), as far
#: as the generators can move them (module docstring); anger's are all prototypes
EMFACS_VARIANTS: dict[str, tuple[tuple[tuple[int, ...], float], ...]] = {
    "anger": (((4, 5, 7, 10, 23, 25), 1.0), ((4, 5, 7, 10, 23, 26), 1.0), ((4, 5, 7, 23, 25), 1.0),
              ((4, 5, 7, 23, 26), 1.0), ((4, 5, 7, 17, 23), 1.0), ((4, 5, 7, 23), 1.0)),
    "disgust": (((9,), 1.0), ((9, 15, 16), 1.0), ((9, 16, 26), 1.0), ((9, 17), 1.0),
                ((10,), 1.0), ((10, 16, 25), 1.0), ((10, 16, 26), 1.0), ((10, 17), 1.0)),
    "fear": (((1, 2, 4, 5, 20, 25), 2.0), ((1, 2, 4, 5, 20, 26), 2.0), ((1, 2, 4, 5, 25), 2.0), ((1, 2, 4, 5, 26), 2.0),
             ((1, 2, 4, 5), 1.0), ((5, 20, 25), 1.0), ((5, 20, 26), 1.0), ((5, 20), 1.0)),
    "happiness": (((6, 12), 2.0), ((12,), 2.0), ((6, 12, 25), 1.0), ((6, 12, 26), 1.0)),
    "sadness": (((1, 4, 15), 2.0), ((6, 15), 2.0), ((1, 4, 15, 17), 1.0)),
    "surprise": (((1, 2, 5, 26), 2.0), ((1, 2, 5), 1.0), ((1, 2, 26), 1.0), ((5, 26), 1.0)),
    "neutral": (((), 1.0),),
}  # fmt: skip
#: label -> AUs that may join any of its variants, each with probability OPTIONAL_P, the
#: first that does (EMFACS: "25 or 26 may occur with all prototypes or major variants" of sadness)
EMFACS_OPTIONAL: dict[str, tuple[int, ...]] = {"sadness": (25, 26)}
#: label -> AUs of which a subject may leave one out (EMFACS: anger "without any one of")
EMFACS_DROPPABLE: dict[str, tuple[int, ...]] = {"anger": (4, 5, 7, 10)}
#: every AU a generator moves: the labels of generated scans code all of them
GENERATED_AUS: tuple[int, ...] = tuple(
    sorted({au for table in (PROTOTYPES, OPTIONAL, EMFACS_WEIGHTS) for units in table.values() for au in units})
)


def label_index(label: str) -> int:
    """The label's place in :data:`LABELS`, neutral last: a stable key for seeded draws."""
    return (*LABELS, NEUTRAL).index(label)
