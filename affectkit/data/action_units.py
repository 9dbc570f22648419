"""FACS action units (AUs) as labels: their names and prompts, how datasets write them,
the model's targets and the metrics.

An AU label of a scan says how strongly each AU *coded* for it is active, per side of the
face, from 0 (absent) to 1 (FACS intensity E); an AU not coded is unknown, which is not the
same as absent: AU terms and metrics leave it out (a NaN target), never count it as 0.

* Generated scans code every AU their generator can move (:data:`affectkit.data.facs.GENERATED_AUS`),
  with the activations the face was made from.
* Disk datasets code what their annotation gives: BP4D's per-frame occurrence (and
  intensity) files, Bosphorus AU scans, a ``folder`` manifest column.

Written down (a manifest cell, a side file) an AU label is either JSON, ``{"12": [0.8, 0.7],
"25": [0, 0]}`` (code -> [right, left], or one number for both sides), or FACS notation,
``1B+2B+R12D+26``: each listed AU present at its intensity letter (A trace .. E maximum;
none: C), ``R``/``L`` for one side only, every other AU of :data:`AU_NAMES` absent, as a
FACS coder lists every AU visible.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from affectkit.errors import DatasetError

#: AU code -> its FACS name (Ekman, Friesen & Hager, 2002)
AU_NAMES: dict[int, str] = {
    1: "inner brow raiser", 2: "outer brow raiser", 4: "brow lowerer", 5: "upper lid raiser", 6: "cheek raiser",
    7: "lid tightener", 9: "nose wrinkler", 10: "upper lip raiser", 11: "nasolabial deepener", 12: "lip corner puller",
    13: "sharp lip puller", 14: "dimpler", 15: "lip corner depressor", 16: "lower lip depressor", 17: "chin raiser",
    18: "lip pucker", 20: "lip stretcher", 22: "lip funneler", 23: "lip tightener", 24: "lip pressor", 25: "lips part",
    26: "jaw drop", 27: "mouth stretch", 28: "lip suck", 34: "cheek puff", 43: "eyes closed",
}
#: AU code -> what it looks like, in the words the prompts use
AU_DESCRIPTIONS: dict[int, tuple[str, ...]] = {
    1: ("inner brows raised", "the inner corners of the eyebrows pulled up"),
    2: ("outer brows raised", "the outer ends of the eyebrows pulled up"),
    4: ("brows lowered and drawn together", "a frown between the brows"),
    5: ("upper eyelids raised", "eyes opened wide"),
    6: ("cheeks raised", "cheeks pushed up under the eyes"),
    7: ("eyelids tightened", "narrowed, tensed eyelids"),
    9: ("nose wrinkled", "a wrinkled nose"),
    10: ("upper lip raised", "the upper lip pulled up"),
    11: ("nasolabial furrows deepened", "deep lines from the nose to the mouth corners"),
    12: ("lip corners pulled up", "a smiling mouth"),
    13: ("lip corners pulled sharply up", "cheeks puffed up at the mouth corners"),
    14: ("dimpled mouth corners", "lip corners tightened into dimples"),
    15: ("lip corners pulled down", "a downturned mouth"),
    16: ("lower lip pulled down", "the lower lip lowered"),
    17: ("chin raised", "the chin pushed up, the lower lip pushed up"),
    18: ("lips puckered", "pursed lips pushed forward"),
    20: ("lips stretched sideways", "the mouth pulled wide and flat"),
    22: ("lips funnelled", "lips pushed out in a funnel"),
    23: ("lips tightened", "thin, tense lips"),
    24: ("lips pressed together", "lips firmly pressed"),
    25: ("lips parted", "a slightly open mouth"),
    26: ("jaw dropped", "the mouth dropped open"),
    27: ("mouth stretched wide open", "a wide open mouth"),
    28: ("lips sucked in", "lips drawn into the mouth"),
    34: ("cheeks puffed out", "air puffing out the cheeks"),
    43: ("eyes closed", "closed eyelids"),
}
#: the 12 AUs BP4D-Spontaneous codes per frame, over which its F1 is reported
BP4D_AUS: tuple[int, ...] = (1, 2, 4, 6, 7, 10, 12, 14, 15, 17, 23, 24)
#: an AU counts as present (occurrence) from this activation: about FACS intensity A
PRESENT = 0.15
#: FACS intensity letters -> activation
INTENSITY_LETTERS: dict[str, float] = {"A": 0.2, "B": 0.4, "C": 0.6, "D": 0.8, "E": 1.0}
#: the templates that put an AU's description into prompts
AU_TEMPLATES: tuple[str, ...] = ("a face with {}", "a 3D scan of a face with {}", "{}")

#: AU code -> (right, left) activation; the AUs coded for one scan
ActionUnits = Mapping[int, tuple[float, float]]

_FACS = re.compile(r"^(?P<side>[LR]?)(?:AU)?(?P<code>\d+)(?P<level>[A-E]?)$", re.I)


def au_name(code: int) -> str:
    """``12`` -> ``AU12``."""
    return f"AU{code}"


def au_code(name: str | int) -> int:
    """``AU12``, ``au 12``, ``12`` -> ``12``; a clear error for anything else."""
    text = str(name).strip().upper().removeprefix("AU").strip()
    if not text.isdigit() or not 0 < int(text) < 100:
        raise ValueError(f"{name!r} is not an action unit (AU1 .. AU99, or its number)")
    return int(text)


def au_title(name: str | int) -> str:
    """``12`` or ``AU12`` -> ``AU12 lip corner puller``; an AU not in :data:`AU_NAMES`, or a
    zero-shot query's own name, stays as it is."""
    try:
        code = au_code(name)
    except ValueError:
        return str(name)
    return f"{au_name(code)} {AU_NAMES[code]}" if code in AU_NAMES else au_name(code)


def au_prompts(codes: Iterable[int], templates: Sequence[str] = AU_TEMPLATES, descriptions: Mapping[int, Sequence[str]] | None = None) -> list[list[str]]:
    """One prompt ensemble per AU: each of its descriptions in each template (an AU without
    a description is described by its FACS name)."""
    table = {**AU_DESCRIPTIONS, **(descriptions or {})}
    out = []
    for code in codes:
        words = table.get(code) or ((AU_NAMES[code],) if code in AU_NAMES else (au_name(code),))
        out.append(list(dict.fromkeys(template.format(word) for word in words for template in templates)))
    return out


def strength(value: tuple[float, float]) -> float:
    """How active an AU is, over both sides (the stronger one), clipped to 0..1."""
    return float(min(1.0, max(0.0, max(value))))


def coded(activations: Mapping[int, tuple[float, float]], codes: Iterable[int]) -> dict[int, tuple[float, float]]:
    """Every AU of ``codes`` coded: those of ``activations`` as given, the rest absent."""
    return {code: tuple(float(v) for v in activations.get(code, (0.0, 0.0))) for code in sorted(set(codes) | set(activations))}  # type: ignore[misc]


def strongest(labels: Iterable[ActionUnits | None]) -> dict[int, tuple[float, float]] | None:
    """Per AU, the strongest activation over several labels (the frames of a sequence):
    coded where any of them codes it; ``None`` where none is labelled."""
    out: dict[int, tuple[float, float]] = {}
    seen = False
    for label in labels:
        if label is None:
            continue
        seen = True
        for code, (right, left) in label.items():
            old = out.get(code, (0.0, 0.0))
            out[code] = (max(old[0], right), max(old[1], left))
    return out if seen else None


def to_json(label: ActionUnits) -> str:
    """A label as JSON: ``{"12": [0.8, 0.7], ...}`` (4 decimals)."""
    return json.dumps({str(code): [round(r, 4), round(l, 4)] for code, (r, l) in sorted(label.items())}, separators=(",", ":"))


def parse(text: Any, where: str) -> dict[int, tuple[float, float]] | None:
    """An AU label as datasets write it (see the module docstring): JSON, FACS notation, or
    empty (``None``: not labelled). One clear error naming ``where`` otherwise."""
    if text is None or (isinstance(text, float) and math.isnan(text)):
        return None
    if isinstance(text, Mapping):
        return _from_mapping(text, where)
    text = str(text).strip()
    if not text:
        return None
    if text.startswith("{"):
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise DatasetError(f"{where}: action units {text[:80]!r} are not valid JSON ({exc})") from None
        if not isinstance(data, dict):
            raise DatasetError(f"{where}: action units must be a JSON object of AU -> activation, got {text[:80]!r}")
        return _from_mapping(data, where)
    return _from_facs(text, where)


def _from_mapping(data: Mapping[Any, Any], where: str) -> dict[int, tuple[float, float]]:
    out = {}
    for key, value in data.items():
        try:
            code = au_code(key)
        except ValueError as exc:
            raise DatasetError(f"{where}: {exc}") from None
        try:
            sides = [value, value] if isinstance(value, int | float) else list(value)
            if len(sides) != 2:
                raise ValueError(f"{value!r} is neither one activation nor [right, left]")
            right, left = (float(v) for v in sides)
            if not (0.0 <= right <= 2.0 and 0.0 <= left <= 2.0):
                raise ValueError(f"activation {value!r} is outside 0..2")
        except (ValueError, TypeError) as exc:
            raise DatasetError(f"{where}: action unit {key!r}: {exc}") from None
        out[code] = (right, left)
    return out


def _from_facs(text: str, where: str) -> dict[int, tuple[float, float]]:
    out = dict.fromkeys(AU_NAMES, (0.0, 0.0))
    for part in re.split(r"\s*\+\s*|\s+", text):
        match = _FACS.match(part)
        if match is None:
            raise DatasetError(
                f"{where}: {part!r} in action units {text[:80]!r} is not FACS notation (e.g. 1B+2B+R12D+26: AU number, "
                "optional intensity A-E, optional R/L side) nor a JSON object"
            )
        value = INTENSITY_LETTERS[match["level"].upper() or "C"]
        side = match["side"].upper()
        out[int(match["code"])] = (value if side != "L" else 0.0, value if side != "R" else 0.0)
    return out


def targets(labels: Sequence[ActionUnits | None], codes: Sequence[int]) -> Tensor:
    """``[N, A]`` float targets for the model's AUs ``codes``: each AU's strength (0..1),
    NaN where a scan's label does not code it (or it has none)."""
    out = torch.full((len(labels), len(codes)), float("nan"))
    column = {code: j for j, code in enumerate(codes)}
    for i, label in enumerate(labels):
        for code, value in (label or {}).items():
            if code in column:
                out[i, column[code]] = strength(value)
    return out


def known_codes(labels: Iterable[ActionUnits | None]) -> list[int]:
    """The AUs present (:data:`PRESENT`) in at least one of ``labels``, in code order: those
    a model can learn from this data."""
    return sorted({code for label in labels if label for code, value in label.items() if strength(value) >= PRESENT})


def f1_scores(scores: Tensor, target: Tensor, codes: Sequence[int], threshold: float = 0.5) -> list[dict[str, Any]]:
    """Per AU: F1, precision, recall and support (present scans) of ``scores`` ``[N, A]``
    (probabilities) thresholded at ``threshold`` against ``target`` ``[N, A]`` (strengths,
    present from :data:`PRESENT`), over the scans that code it (NaN targets left out)."""
    rows = []
    for j, code in enumerate(codes):
        labelled = ~torch.isnan(target[:, j])
        truth, said = target[labelled, j] >= PRESENT, scores[labelled, j] >= threshold
        tp, fp, fn = int((truth & said).sum()), int((~truth & said).sum()), int((truth & ~said).sum())
        precision, recall = tp / max(1, tp + fp), tp / max(1, tp + fn)
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        rows.append({"au": au_name(code), "name": AU_NAMES.get(code, ""), "f1": f1, "precision": precision, "recall": recall, "support": int(truth.sum()), "labelled": int(labelled.sum())})
    return rows


def mean_f1(rows: Sequence[Mapping[str, Any]], only: Iterable[int] | None = None) -> float | None:
    """Mean F1 over the AUs of ``rows`` that some scan shows (support > 0), of ``only`` where
    given (e.g. :data:`BP4D_AUS`); ``None`` where there is none."""
    keep = None if only is None else {au_name(code) for code in only}
    scores = [row["f1"] for row in rows if row["support"] > 0 and (keep is None or row["au"] in keep)]
    return sum(scores) / len(scores) if scores else None


#: the suffix of the file beside a mesh that holds its AU label (BU-layout copies)
SIDE_SUFFIX = ".au.json"


def side_file(mesh_path: Path) -> Path:
    """``F0001_HA04WH_F3D.wrl`` -> ``F0001_HA04WH_F3D.au.json``."""
    return mesh_path.with_name(mesh_path.stem + SIDE_SUFFIX)


def write_side_file(label: ActionUnits, mesh_path: Path) -> Path:
    path = side_file(mesh_path)
    path.write_text(to_json(label) + "\n")
    return path


def read_side_file(mesh_path: Path) -> dict[int, tuple[float, float]] | None:
    """The AU label beside ``mesh_path``, ``None`` where there is no side file."""
    path = side_file(mesh_path)
    if not path.is_file():
        return None
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: cannot read the action units: {exc}") from None
    return parse(text, str(path))
