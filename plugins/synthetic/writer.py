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
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from affectkit.mesh import Mesh, MeshSequence, save_mesh
from affectkit_plugins.synthetic.dataset import SyntheticDataset
from affectkit_plugins.synthetic.head import LANDMARKS

MANIFEST_COLUMNS = ("path", "label", "subject", "frame", "sex", "age_group", "intensity")


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


def write_synthetic(out_dir: Path, options: SyntheticDataset.Options) -> Path:
    """Write every sample of ``SyntheticDataset(options)`` under ``out_dir``; return the manifest path."""
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
