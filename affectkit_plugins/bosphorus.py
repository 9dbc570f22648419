"""The ``bosphorus`` dataset: Bosphorus 3D face scans (``.bnt`` range images, read by
the ``bnt`` plugin, which also registers the ``.bnt`` mesh format)."""

from __future__ import annotations

import re
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from affectkit import hookimpl
from affectkit.data.disk_datasets import SampleIndex, check_root, chosen_subjects, scans_by_name, walk_files
from affectkit.data.mesh import Mesh
from affectkit.errors import DatasetError
from affectkit.interfaces import Dataset, Options, ResolvedPath, Sample
from affectkit_plugins.bnt import read_bnt, read_lm3

SIX = ("anger", "disgust", "fear", "happiness", "sadness", "surprise")
NEUTRAL = "neutral"

#: Bosphorus emotion codes (``bs002_E_SADNESS_0``) -> canonical labels.
EMOTIONS = {
    "ANGER": "anger",
    "DISGUST": "disgust",
    "FEAR": "fear",
    "HAPPY": "happiness",
    "SADNESS": "sadness",
    "SURPRISE": "surprise",
}
#: Action-unit scans: lower face, upper face, combined.
AU_KINDS = ("LFAU", "UFAU", "CAU")
#: Scans that are neither expressions nor action units: head poses and occlusions (skipped).
OTHER_KINDS = ("YR", "PR", "CR", "O", "IGN")

_NAME = re.compile(r"^(?P<subject>bs\d{3})_(?P<kind>[A-Z]+)_(?P<code>[A-Za-z0-9]+(?:_[A-Za-z0-9]+)*?)_(?P<take>\d+)$", re.I)
_AU_CODE = re.compile(r"^(\d+)([A-Z]*)$", re.I)


def parse_name(stem: str) -> dict[str, object] | None:
    """``bs002_E_SADNESS_0`` -> subject, kind (``emotion``/``neutral``/``action_unit``/
    ``other``), label, take; ``None`` when the name does not follow the Bosphorus scheme.

    Action-unit labels are ``AU`` and the code: ``LFAU_12L`` -> ``AU12L``; a combined
    ``CAU_A22A25`` -> ``AU22+AU25`` (*unconfirmed* naming of combined units).
    """
    match = _NAME.match(stem)
    if match is None:
        return None
    subject, kind, code, take = match["subject"].lower(), match["kind"].upper(), match["code"].upper(), int(match["take"])
    out: dict[str, object] = {"subject": subject, "take": take, "code": f"{kind}_{code}"}
    if kind == "E":
        if code not in EMOTIONS:
            return None
        return {**out, "kind": "emotion", "label": EMOTIONS[code]}
    if kind == "N" and code == "N":
        return {**out, "kind": "neutral", "label": NEUTRAL}
    if kind in AU_KINDS:
        units = [u for u in re.split(r"A(?=\d)", code) if u] if kind == "CAU" else [code]
        labels = []
        for unit in units:
            au = _AU_CODE.match(unit)
            if au is None:
                return None
            labels.append(f"AU{int(au[1])}{au[2]}")
        if not labels:
            return None
        return {**out, "kind": "action_unit", "label": "+".join(labels)}
    if kind in OTHER_KINDS:
        return {**out, "kind": "other", "label": None}
    return None


def au_label(label: str) -> dict[int, tuple[float, float]]:
    """The AU label of an action-unit scan: ``AU12L`` -> AU12 present on the left, ``AU22+AU25``
    -> both present. Only the AUs it names are coded: a scan posing one AU may show others."""
    out = {}
    for code, suffix in re.findall(r"AU(\d+)([A-Z]*)", label):
        out[int(code)] = (0.0 if suffix == "L" else 1.0, 0.0 if suffix == "R" else 1.0)
    return out


def _au_order(label: str) -> tuple:
    return tuple((int(n), suffix) for n, suffix in re.findall(r"AU(\d+)([A-Z]*)", label))


class BosphorusDataset(Dataset):
    """Bosphorus 3D faces: emotion scans (``bs002_E_SADNESS_0.bnt``), optionally neutral and action units.

    Scans are found recursively under ``root`` whatever the folder layout; names that do not
    follow the Bosphorus scheme are listed in a warning. Pose and occlusion scans
    (``YR``, ``PR``, ``CR``, ``O``, ``IGN``) are skipped. Meshes carry the PNG texture
    and the ``.lm3`` landmarks beside a scan when present (names in
    ``metadata["landmark_names"]``). The file names give no sex or age, so samples carry
    ``kind``, ``take`` and ``code`` attributes only.
    """

    path_option = "root"

    class Options(Options):
        root: ResolvedPath = Field(description="folder holding the Bosphorus scans (searched recursively)")
        subjects: list[str] | None = Field(None, description="subject ids to keep (e.g. bs002); all when unset")
        include_neutral: bool = Field(False, description="add the neutral scans (N_N) as class 'neutral'")
        action_units: Literal["exclude", "label"] = Field(
            "exclude", description="action-unit scans (LFAU/UFAU/CAU): skip them, or keep them labelled e.g. 'AU14', with the AUs they pose as their AU label"
        )
        flip_v: bool = Field(False, description="flip the texture V coordinate (if textures appear upside down)")

        @field_validator("subjects")
        @classmethod
        def lower(cls, value: list[str] | None) -> list[str] | None:
            return None if value is None else [s.strip().lower() for s in value]

    options: Options

    @property
    def labels(self) -> tuple[str, ...]:
        return self._index[0]

    def samples(self) -> list[Sample]:
        return self._index[1].samples()

    def path(self, sample: Sample) -> Path:
        """The ``.bnt`` file of ``sample``."""
        return self._index[1].find(sample)[1]

    def load(self, sample: Sample) -> Mesh:
        known, path = self._index[1].find(sample)
        mesh = read_bnt(path, flip_v=self.options.flip_v)
        mesh.metadata.update({**known.attributes, "label": known.label, "subject": known.subject, "action_units": known.action_units})
        landmarks = path.with_suffix(".lm3")
        if landmarks.is_file():
            mesh.set_landmarks(*read_lm3(landmarks))
        return mesh

    @cached_property
    def _index(self) -> tuple[tuple[str, ...], SampleIndex[Path]]:
        """The labels these options give, and the samples with their ``.bnt`` files."""
        o = self.options
        check_root("bosphorus", o.root)
        files = [p for p in walk_files(o.root) if p.suffix.lower() == ".bnt"]
        if not files:
            raise DatasetError(f"bosphorus: no .bnt files under {str(o.root)!r}")
        found = scans_by_name(
            "bosphorus", o.root, files, parse_name, lambda info: f"{info['subject']}_{info['code']}_{info['take']}",
            ".bnt file(s) whose names are not like bs002_E_SADNESS_0 or bs001_LFAU_14_0",
        )  # fmt: skip
        chosen = chosen_subjects("bosphorus", o.root, {info["subject"] for _, info in found.values()}, o.subjects)
        keep = {"emotion"} | ({"neutral"} if o.include_neutral else set())
        keep |= {"action_unit"} if o.action_units == "label" else set()
        entries: dict[str, tuple[Sample, Path]] = {}
        for key, (path, info) in sorted(found.items()):
            if info["kind"] not in keep or info["subject"] not in chosen:
                continue
            attributes = {"kind": info["kind"], "take": info["take"], "code": info["code"]}
            units = au_label(str(info["label"])) if info["kind"] == "action_unit" else None
            entries[key] = (Sample(key, str(info["label"]), str(info["subject"]), attributes, action_units=units), path)
        if not entries:
            raise DatasetError(
                f"bosphorus: none of the {len(found)} scans under {str(o.root)!r} is selected "
                f"(subjects={o.subjects}, include_neutral={o.include_neutral}, action_units={o.action_units!r})"
            )
        labels = SIX + ((NEUTRAL,) if o.include_neutral else ())
        if o.action_units == "label":
            # from every subject's scans, so class indices do not depend on the subject filter
            units = {str(info["label"]) for _, info in found.values() if info["kind"] == "action_unit"}
            labels += tuple(sorted(units, key=_au_order))
        return labels, SampleIndex("bosphorus", o.root, entries)


@hookimpl
def register_datasets(register):
    register("bosphorus", BosphorusDataset)
