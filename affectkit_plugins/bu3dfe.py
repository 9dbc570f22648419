"""The ``bu3dfe`` dataset: BU-3DFE static 3D expression scans (VRML ``.wrl``, read by
the ``vrml`` plugin, which also registers the ``.wrl`` mesh format)."""

from __future__ import annotations

import re
from functools import cached_property
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator

from affectkit import hookimpl
from affectkit.data.action_units import read_side_file
from affectkit.data.disk_datasets import SampleIndex, check_root, chosen_subjects, scans_by_name, subject_ids, walk_files
from affectkit.data.facs import CODES, LABELS, NEUTRAL
from affectkit.data.mesh import Mesh
from affectkit.errors import DatasetError
from affectkit.interfaces import Dataset, Options, ResolvedPath, Sample
from affectkit_plugins.bu_layout import bu_subject, ethnicity_code, loaded_samples, placeholder_attributes, write_record, write_scan
from affectkit_plugins.vrml import read_bnd, read_wrl

SIX = LABELS
#: BU-3DFE expression codes (shared by BU-4DFE and Bosphorus' names) -> canonical labels.
EXPRESSIONS: dict[str, str] = {code: label for label, code in CODES.items()}
#: BU-3DFE ethnicity codes -> the names the dataset's paper uses.
ETHNICITIES: dict[str, str] = {
    "WH": "white", "BL": "black", "AE": "east asian", "AM": "middle-east asian",
    "IN": "indian", "LA": "hispanic latino",
}

_NAME = re.compile(
    r"^(?P<sex>[FM])(?P<number>\d{4})_(?P<code>AN|DI|FE|HA|SA|SU|NE)(?P<level>\d{2})"
    r"(?P<ethnicity>WH|BL|AE|AM|IN|LA)_(?P<variant>F3D|RAW)$",
    re.I,
)


def parse_name(stem: str) -> dict[str, object] | None:
    """``F0001_AN01WH_F3D`` -> subject, sex, label, code, intensity, ethnicity, variant;
    ``None`` when the name does not follow the BU-3DFE scheme (or mixes neutral with an
    intensity, or an expression with intensity 00)."""
    match = _NAME.match(stem)
    if match is None:
        return None
    code, level = match["code"].upper(), int(match["level"])
    if (code == "NE") != (level == 0) or level > 4:
        return None
    sex, ethnicity = match["sex"].upper(), match["ethnicity"].upper()
    return {
        "subject": f"{sex}{match['number']}",
        "sex": sex,
        "code": code,
        "label": EXPRESSIONS[code],
        "intensity": level,
        "ethnicity_code": ethnicity,
        "ethnicity": ETHNICITIES[ethnicity],
        "variant": match["variant"].upper(),
    }


class BU3DFEDataset(Dataset):
    """BU-3DFE static 3D scans: six expressions at four intensities, optionally neutral.

    Scans (``F0001_AN01WH_F3D.wrl``) are found recursively under ``root``, in per-subject
    folders or all in one; the file-name suffix and the name are matched case-insensitively.
    ``.wrl`` files whose names do not follow the scheme are listed in a warning; other files
    are ignored. Samples carry ``sex``, ``ethnicity`` (readable),
    ``intensity`` (0 for neutral) and ``variant``. Meshes carry the texture named in the
    VRML file and the ``.bnd`` landmarks beside a scan when present (83 points,
    *unconfirmed*); the ``_RAW`` variant has no landmark files of its own.
    """

    path_option = "root"
    layout = "bu3dfe"

    class Options(Options):
        root: ResolvedPath = Field(description="folder holding the BU-3DFE scans (searched recursively)")
        intensities: list[Annotated[int, Field(ge=1, le=4)]] = Field(
            default_factory=lambda: [3, 4], min_length=1, description="expression intensities 1..4 to keep (the usual protocol: 3 and 4)"
        )
        subjects: list[str] | None = Field(None, description="subject ids to keep (e.g. F0001, M0044); all when unset")
        include_neutral: bool = Field(False, description="add the neutral scans (NE00) as class 'neutral'")
        variant: Literal["F3D", "RAW"] = Field("F3D", description="cropped faces (F3D) or raw scans (RAW)")

        @field_validator("subjects")
        @classmethod
        def canonical(cls, value: list[str] | None) -> list[str] | None:
            return None if value is None else subject_ids(value, 4, "BU-3DFE", "F0001 or M0044")

    options: Options

    def __init__(self, options: Options) -> None:
        super().__init__(options)
        check_root("bu3dfe", options.root)

    @property
    def labels(self) -> tuple[str, ...]:
        return SIX + ((NEUTRAL,) if self.options.include_neutral else ())

    def samples(self) -> list[Sample]:
        return self._index.samples()

    def path(self, sample: Sample) -> Path:
        """The ``.wrl`` file of ``sample``."""
        return self._index.find(sample)[1][0]

    def load(self, sample: Sample) -> Mesh:
        known, (path, landmarks) = self._index.find(sample)
        mesh = read_wrl(path)
        mesh.metadata.update({**known.attributes, "label": known.label, "subject": known.subject, "action_units": known.action_units})
        if landmarks is not None:
            mesh.landmarks = read_bnd(landmarks)
            mesh.metadata["landmark_file"] = str(landmarks)
        return mesh

    @cached_property
    def _index(self) -> SampleIndex[tuple[Path, Path | None]]:
        """Samples with their ``.wrl`` and ``.bnd`` (when present) files, by key."""
        o = self.options
        files = list(walk_files(o.root))
        bnd = {(path.parent, path.stem.upper()): path for path in files if path.suffix.lower() == ".bnd"}
        scans = scans_by_name(
            "bu3dfe", o.root, [path for path in files if path.suffix.lower() == ".wrl"], parse_name,
            lambda info: f"{info['subject']}_{info['code']}{info['intensity']:02d}{info['ethnicity_code']}_{info['variant']}",
            ".wrl file(s) whose names are not like F0001_AN01WH_F3D.wrl",
        )  # fmt: skip
        if not scans:
            raise DatasetError(f"bu3dfe: no BU-3DFE scans (like F0001/F0001_AN01WH_F3D.wrl) under {str(o.root)!r}")
        chosen = chosen_subjects("bu3dfe", o.root, {info["subject"] for _, info in scans.values()}, o.subjects)
        order = {label: i for i, label in enumerate(SIX + (NEUTRAL,))}
        keep = [
            (key, path, info)
            for key, (path, info) in scans.items()
            if info["variant"] == o.variant
            and info["subject"] in chosen
            and (info["intensity"] in o.intensities if info["label"] != NEUTRAL else o.include_neutral)
        ]
        keep.sort(key=lambda item: (item[2]["subject"], order[item[2]["label"]], item[2]["intensity"], item[0]))
        entries: dict[str, tuple[Sample, tuple[Path, Path | None]]] = {}
        placeholders = placeholder_attributes(o.root)
        for key, path, info in keep:
            attributes = {
                name: info[name] for name in ("sex", "ethnicity", "intensity", "variant") if name not in placeholders
            }
            sample = Sample(key, str(info["label"]), str(info["subject"]), attributes, action_units=read_side_file(path))
            entries[key] = (sample, (path, bnd.get((path.parent, path.stem.upper()))))
        if not entries:
            raise DatasetError(
                f"bu3dfe: none of the {len(scans)} scans under {str(o.root)!r} is selected "
                f"(variant={o.variant!r}, intensities={o.intensities}, include_neutral={o.include_neutral}, subjects={o.subjects})"
            )
        return SampleIndex("bu3dfe", o.root, entries)


    @classmethod
    def write_layout(cls, generated: Dataset, name: str, out_dir: Path) -> Path:
        """``F0001/F0001_HA04WH_F3D.wrl`` (VRML with per-vertex colours), its landmarks as
        ``.bnd`` and its AU label as ``.au.json`` (:mod:`affectkit_plugins.bu_layout`)."""
        for sample, scan in loaded_samples(generated, name, "bu3dfe", 4, sequences=False):
            write_scan(scan, out_dir / bu_subject(sample, 4) / f"{bu3dfe_name(sample)}.wrl", f"affectkit {name} {sample.key}")
        write_record(generated, name, out_dir, "bu3dfe")
        return out_dir


def bu3dfe_name(sample: Sample) -> str:
    """The BU-3DFE file stem of a generated static sample: ``F0001_HA04WH_F3D``."""
    level = 0 if sample.label == NEUTRAL else int(sample.attributes["intensity"])
    return f"{bu_subject(sample, 4)}_{CODES[sample.label]}{level:02d}{ethnicity_code(sample)}_F3D"


@hookimpl
def register_datasets(register):
    register("bu3dfe", BU3DFEDataset)
