"""Write the synthetic dataset to disk as PLY meshes, landmark files and a CSV manifest.

Layout under ``out_dir``::

    manifest.csv                       path,label,subject,frame,sex,age_group,intensity
    options.json                       the SyntheticDataset options that made it
    meshes/S001/S001_HA_4.ply          a static scan (vertex colours)
    meshes/S001/S001_HA_4.lm.txt       its landmarks
    meshes/S001/S001_HA/000.ply        frame 0 of a sequence (with --sequences)
    meshes/S001/S001_HA/000.lm.txt

``path`` is relative to ``out_dir``; ``frame`` is empty for static scans and counts from 0
in sequences (one row per frame). A ``.lm.txt`` file has one landmark per line,
``name x y z`` separated by single spaces, in the order of
:data:`affectkit_plugins.synthetic.LANDMARKS`; coordinates are in millimetres, in the
mesh's own frame.

With ``layout="bu3dfe"`` or ``"bu4dfe"`` the same meshes are written as those datasets
lay out their files, so the ``bu3dfe`` and ``bu4dfe`` dataset plugins read them::

    F0001/F0001_HA04WH_F3D.wrl         BU-3DFE: VRML with per-vertex colours
    F0001/F0001_HA04WH_F3D.bnd         its landmarks, "index x y z" (index: nearest vertex)
    F001/Happy/000.wrl                 BU-4DFE: frame 0 of a sequence (needs sequences)
    F001/Happy/000.bnd
    affectkit_synthetic.json           the SyntheticDataset options that made it

Subject ``S001`` becomes ``F0001`` or ``M0001`` (``F001``/``M001`` in BU-4DFE) by its sex.
The synthetic population has no ethnicity: the ethnicity code in BU-3DFE names is a
placeholder cycling through the codes by subject number, unrelated to the face.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Literal

import numpy as np

from affectkit.errors import DatasetError
from affectkit.interfaces import Sample
from affectkit.mesh import Mesh, MeshSequence, save_mesh
from affectkit.vrml import write_bnd, write_wrl
from affectkit_plugins.synthetic import expressions
from affectkit_plugins.synthetic.dataset import SyntheticDataset
from affectkit_plugins.synthetic.head import LANDMARKS

MANIFEST_COLUMNS = ("path", "label", "subject", "frame", "sex", "age_group", "intensity")
Layout = Literal["affectkit", "bu3dfe", "bu4dfe"]
LAYOUTS: tuple[str, ...] = ("affectkit", "bu3dfe", "bu4dfe")
#: placeholder BU-3DFE ethnicity codes, cycled by subject number (see the module docstring)
ETHNICITY_CODES = ("WH", "AE", "BL", "IN", "LA", "AM")
#: canonical label -> BU-4DFE expression folder
BU4DFE_FOLDERS = {
    "anger": "Angry", "disgust": "Disgust", "fear": "Fear", "happiness": "Happy", "sadness": "Sad", "surprise": "Surprise",
}


def landmark_path(mesh_path: Path) -> Path:
    """``.../000.ply`` -> ``.../000.lm.txt``."""
    return mesh_path.with_suffix(".lm.txt")


def write_landmarks(landmarks: np.ndarray, path: Path) -> Path:
    lines = [f"{name} {x:.4f} {y:.4f} {z:.4f}" for name, (x, y, z) in zip(LANDMARKS, landmarks.tolist())]
    path.write_text("\n".join(lines) + "\n")
    return path


def read_landmarks(path: str | Path) -> dict[str, np.ndarray]:
    """Read a ``.lm.txt`` file back: name -> ``[3]`` array."""
    out = {}
    for line in Path(path).read_text().splitlines():
        if line.strip():
            name, *xyz = line.split()
            out[name] = np.array([float(v) for v in xyz], dtype=np.float32)
    return out


def write_synthetic(out_dir: Path, options: SyntheticDataset.Options, layout: Layout = "affectkit") -> Path:
    """Write every sample of ``SyntheticDataset(options)`` under ``out_dir`` in ``layout``;
    return the manifest path (``affectkit``) or ``out_dir`` (``bu3dfe``, ``bu4dfe``)."""
    if layout == "bu3dfe":
        return _write_bu3dfe(Path(out_dir), options)
    if layout == "bu4dfe":
        return _write_bu4dfe(Path(out_dir), options)
    if layout != "affectkit":
        raise DatasetError(f"synthetic: unknown layout {layout!r}; allowed: {', '.join(LAYOUTS)}")
    out_dir = Path(out_dir)
    dataset = SyntheticDataset(options)
    rows: list[dict[str, object]] = []

    def put(mesh: Mesh, relative: Path, sample, frame: int | str) -> None:
        path = save_mesh(mesh, out_dir / relative)
        if mesh.landmarks is not None:
            write_landmarks(mesh.landmarks, landmark_path(path))
        rows.append(
            {
                "path": relative.as_posix(), "label": sample.label, "subject": sample.subject, "frame": frame,
                "sex": sample.attributes["sex"], "age_group": sample.attributes["age_group"],
                "intensity": sample.attributes["intensity"],
            }
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
    (out_dir / "options.json").write_text(json.dumps(options.model_dump(), indent=2) + "\n")
    manifest = out_dir / "manifest.csv"
    with manifest.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=MANIFEST_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    return manifest


def bu_subject(sample: Sample, digits: int) -> str:
    """``S001`` (sex F) -> ``F0001`` with 4 digits (BU-3DFE) or ``F001`` with 3 (BU-4DFE)."""
    return f"{sample.attributes['sex']}{int(sample.subject[1:]):0{digits}d}"


def bu3dfe_name(sample: Sample) -> str:
    """The BU-3DFE file stem of a synthetic static sample: ``F0001_HA04WH_F3D``."""
    number = int(sample.subject[1:])
    code = expressions.CODES[sample.label]
    level = 0 if sample.label == expressions.NEUTRAL else int(sample.attributes["intensity"])
    return f"{bu_subject(sample, 4)}_{code}{level:02d}{ETHNICITY_CODES[(number - 1) % len(ETHNICITY_CODES)]}_F3D"


def _nearest_vertices(mesh: Mesh) -> np.ndarray:
    d = ((mesh.landmarks[:, None, :] - mesh.vertices[None, :, :]) ** 2).sum(-1)
    return d.argmin(axis=1)


def _write_scan(mesh: Mesh, wrl: Path, title: str) -> None:
    write_wrl(mesh, wrl, title=title)
    if mesh.landmarks is not None:
        write_bnd(mesh.landmarks, wrl.with_suffix(".bnd"), _nearest_vertices(mesh))


def _check_numbering(options: SyntheticDataset.Options, digits: int, layout: str) -> None:
    if options.subjects >= 10**digits:
        raise DatasetError(
            f"synthetic: the {layout} layout numbers subjects with {digits} digits: at most {10**digits - 1} subjects, "
            f"got {options.subjects}"
        )


def _write_options(out_dir: Path, options: SyntheticDataset.Options, layout: str) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    record = {"layout": layout, "options": options.model_dump()}
    (out_dir / "affectkit_synthetic.json").write_text(json.dumps(record, indent=2) + "\n")


def _write_bu3dfe(out_dir: Path, options: SyntheticDataset.Options) -> Path:
    if options.sequences:
        raise DatasetError("synthetic: the bu3dfe layout holds static scans; use layout 'bu4dfe' for sequences")
    _check_numbering(options, 4, "bu3dfe")
    dataset = SyntheticDataset(options)
    for sample in dataset.samples():
        stem = bu3dfe_name(sample)
        _write_scan(dataset.load(sample), out_dir / bu_subject(sample, 4) / f"{stem}.wrl", f"affectkit synthetic {sample.key}")
    _write_options(out_dir, options, "bu3dfe")
    return out_dir


def _write_bu4dfe(out_dir: Path, options: SyntheticDataset.Options) -> Path:
    if not options.sequences:
        raise DatasetError("synthetic: the bu4dfe layout holds sequences; set sequences=True (or use layout 'bu3dfe')")
    if options.include_neutral:
        raise DatasetError("synthetic: BU-4DFE has no neutral sequences; set include_neutral=False for the bu4dfe layout")
    _check_numbering(options, 3, "bu4dfe")
    dataset = SyntheticDataset(options)
    for sample in dataset.samples():
        folder = out_dir / bu_subject(sample, 3) / BU4DFE_FOLDERS[sample.label]
        sequence = dataset.load(sample)
        for i, frame in enumerate(sequence.frames):
            _write_scan(frame, folder / f"{i:03d}.wrl", f"affectkit synthetic {sample.key} frame {i}")
    _write_options(out_dir, options, "bu4dfe")
    return out_dir
