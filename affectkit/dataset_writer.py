"""Write a generated dataset (``synthetic``, ``facekit``) to disk as other datasets lay it out.

Layout ``affectkit`` under ``out_dir``::

    manifest.csv                       path,label,subject,frame,action_units, then the samples' attributes
    options.json                       the dataset and options that made it
    meshes/S001/S001_HA_4.ply          a static scan (vertex colours where the dataset has them)
    meshes/S001/S001_HA_4.lm.txt       its landmarks
    meshes/S001/S001_HA/000.ply        frame 0 of a sequence
    meshes/S001/S001_HA/000.lm.txt

``path`` is relative to ``out_dir``; ``frame`` is empty for static scans and counts from 0
in sequences (one row per frame); ``action_units`` is each scan's or frame's AU label as
JSON (:mod:`affectkit.action_units`). The attribute columns are the samples' own (the
``synthetic`` faces have ``sex,age_group,intensity``; ``facekit`` only ``intensity``). A
``.lm.txt`` file has one landmark per line, ``name x y z`` separated by single spaces, in
the order of the dataset's ``landmark_names``; coordinates are in millimetres, in the
mesh's own frame. The ``folder`` dataset reads this layout.

With ``layout="bu3dfe"`` or ``"bu4dfe"`` the same meshes are written as those datasets
lay out their files, so the ``bu3dfe`` and ``bu4dfe`` dataset plugins read them::

    F0001/F0001_HA04WH_F3D.wrl         BU-3DFE: VRML with per-vertex colours
    F0001/F0001_HA04WH_F3D.bnd         its landmarks, "index x y z" (index: nearest vertex)
    F0001/F0001_HA04WH_F3D.au.json     its AU label (JSON; BU-3DFE itself has none)
    F001/Happy/000.wrl                 BU-4DFE: frame 0 of a sequence (needs sequences)
    F001/Happy/000.bnd
    F001/Happy/000.au.json
    affectkit_synthetic.json           the dataset and options that made it, and its placeholders

Subject ``S001`` becomes ``F0001`` or ``M0001`` (``F001``/``M001`` in BU-4DFE) by its sex.
Those names need a sex letter and an ethnicity code that generated faces may not have:
where a sample has no ``sex`` the letter is a placeholder alternating F, M by subject
number, and the ethnicity code always cycles through the codes by subject number. Both
are unrelated to the face, and ``affectkit_synthetic.json`` lists them under
``placeholders`` so that readers drop them.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Literal

from affectkit.action_units import to_json, write_side_file
from affectkit.errors import DatasetError
from affectkit.face_generator import FaceGenerator
from affectkit.facs import CODES, NEUTRAL
from affectkit.interfaces import Sample
from affectkit.mesh import Mesh, MeshSequence
from affectkit.mesh_formats import landmark_file, save_mesh, write_landmark_file

BASE_COLUMNS = ("path", "label", "subject", "frame", "action_units")
Layout = Literal["affectkit", "bu3dfe", "bu4dfe"]
LAYOUTS: tuple[str, ...] = ("affectkit", "bu3dfe", "bu4dfe")
#: the file beside a BU-layout copy that says which generator made it
RECORD = "affectkit_synthetic.json"
#: placeholder BU-3DFE ethnicity codes, cycled by subject number (see the module docstring)
ETHNICITY_CODES = ("WH", "AE", "BL", "IN", "LA", "AM")
SEX_PLACEHOLDERS = ("F", "M")
#: canonical label -> BU-4DFE expression folder
BU4DFE_FOLDERS = {
    "anger": "Angry", "disgust": "Disgust", "fear": "Fear", "happiness": "Happy", "sadness": "Sad", "surprise": "Surprise",
}


def placeholder_attributes(root: Path) -> set[str]:
    """The attributes a BU-layout copy under ``root`` only pretends to have (none for a real dataset)."""
    try:
        record = json.loads((Path(root) / RECORD).read_text())
    except (OSError, ValueError):
        return set()
    names = set(record.get("placeholders", ())) if isinstance(record, dict) else set()
    return names


def manifest_columns(dataset: FaceGenerator) -> tuple[str, ...]:
    """``path,label,subject,frame,action_units`` and the attributes of the dataset's samples (``frames`` aside)."""
    keys: dict[str, None] = {}
    for sample in dataset.samples():
        keys.update(dict.fromkeys(k for k in sample.attributes if k != "frames"))
    return BASE_COLUMNS + tuple(keys)


def write_dataset(dataset: FaceGenerator, name: str, out_dir: Path, layout: Layout = "affectkit") -> Path:
    """Write every sample of ``dataset`` (registered as ``name``) under ``out_dir`` in
    ``layout``; return the manifest path (``affectkit``) or ``out_dir`` (``bu3dfe``, ``bu4dfe``)."""
    out_dir = Path(out_dir)
    if layout == "bu3dfe":
        return _write_bu3dfe(dataset, name, out_dir)
    if layout == "bu4dfe":
        return _write_bu4dfe(dataset, name, out_dir)
    if layout != "affectkit":
        raise DatasetError(f"{name}: unknown layout {layout!r}; allowed: {', '.join(LAYOUTS)}")
    columns = manifest_columns(dataset)
    names = dataset.landmark_names
    rows: list[dict[str, object]] = []

    def put(mesh: Mesh, relative: Path, sample: Sample, frame: int | str) -> None:
        path = save_mesh(mesh, out_dir / relative)
        if mesh.landmarks is not None and names:
            write_landmark_file(landmark_file(path), names, mesh.landmarks)
        attributes = {k: sample.attributes.get(k, "") for k in columns[len(BASE_COLUMNS):]}
        units = mesh.metadata.get("action_units")
        rows.append(
            {"path": relative.as_posix(), "label": sample.label, "subject": sample.subject, "frame": frame, "action_units": to_json(units) if units else "", **attributes}
        )

    for sample in dataset.samples():
        loaded = dataset.load(sample)
        folder = Path("meshes") / sample.subject
        if isinstance(loaded, MeshSequence):
            for i, frame in enumerate(loaded.frames):
                put(frame, folder / sample.key / f"{i:03d}.ply", sample, i)
        else:
            put(loaded, folder / f"{sample.key}.ply", sample, "")

    out_dir.mkdir(parents=True, exist_ok=True)
    record = {"dataset": name, "options": dataset.options.model_dump(mode="json")}
    (out_dir / "options.json").write_text(json.dumps(record, indent=2) + "\n")
    manifest = out_dir / "manifest.csv"
    with manifest.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    return manifest


def bu_subject(sample: Sample, digits: int) -> str:
    """``S001`` (sex F) -> ``F0001`` with 4 digits (BU-3DFE) or ``F001`` with 3 (BU-4DFE);
    without a sex, the placeholder letter of the subject's number."""
    number = int(sample.subject[1:])
    sex = sample.attributes.get("sex") or SEX_PLACEHOLDERS[(number - 1) % len(SEX_PLACEHOLDERS)]
    return f"{sex}{number:0{digits}d}"


def bu3dfe_name(sample: Sample) -> str:
    """The BU-3DFE file stem of a generated static sample: ``F0001_HA04WH_F3D``."""
    number = int(sample.subject[1:])
    code = CODES[sample.label]
    level = 0 if sample.label == NEUTRAL else int(sample.attributes["intensity"])
    return f"{bu_subject(sample, 4)}_{code}{level:02d}{ETHNICITY_CODES[(number - 1) % len(ETHNICITY_CODES)]}_F3D"


def _write_scan(mesh: Mesh, path: Path, title: str) -> None:
    """Write a scan in the format of ``path``'s suffix, with its title and AU side file."""
    mesh.metadata["title"] = title
    save_mesh(mesh, path)
    if mesh.metadata.get("action_units"):
        write_side_file(mesh.metadata["action_units"], path)


def _check_numbering(dataset: FaceGenerator, name: str, digits: int, layout: str) -> None:
    if len(dataset.subject_ids()) >= 10**digits:
        raise DatasetError(
            f"{name}: the {layout} layout numbers subjects with {digits} digits: at most {10**digits - 1} subjects, "
            f"got {len(dataset.subject_ids())}"
        )


def _write_record(dataset: FaceGenerator, name: str, out_dir: Path, layout: str) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    has_sex = all("sex" in s.attributes for s in dataset.samples())
    placeholders = ["ethnicity"] + ([] if has_sex else ["sex"])
    record = {"dataset": name, "layout": layout, "options": dataset.options.model_dump(mode="json"), "placeholders": placeholders}
    (out_dir / RECORD).write_text(json.dumps(record, indent=2) + "\n")


def _write_bu3dfe(dataset: FaceGenerator, name: str, out_dir: Path) -> Path:
    if dataset.options.sequences:
        raise DatasetError(f"{name}: the bu3dfe layout holds static scans; use layout 'bu4dfe' for sequences")
    _check_numbering(dataset, name, 4, "bu3dfe")
    for sample in dataset.samples():
        stem = bu3dfe_name(sample)
        _write_scan(dataset.load(sample), out_dir / bu_subject(sample, 4) / f"{stem}.wrl", f"affectkit {name} {sample.key}")
    _write_record(dataset, name, out_dir, "bu3dfe")
    return out_dir


def _write_bu4dfe(dataset: FaceGenerator, name: str, out_dir: Path) -> Path:
    if not dataset.options.sequences:
        raise DatasetError(f"{name}: the bu4dfe layout holds sequences; set sequences=True (or use layout 'bu3dfe')")
    if dataset.options.include_neutral:
        raise DatasetError(f"{name}: BU-4DFE has no neutral sequences; set include_neutral=False for the bu4dfe layout")
    _check_numbering(dataset, name, 3, "bu4dfe")
    for sample in dataset.samples():
        folder = out_dir / bu_subject(sample, 3) / BU4DFE_FOLDERS[sample.label]
        sequence = dataset.load(sample)
        for i, frame in enumerate(sequence.frames):
            _write_scan(frame, folder / f"{i:03d}.wrl", f"affectkit {name} {sample.key} frame {i}")
    _write_record(dataset, name, out_dir, "bu4dfe")
    return out_dir
