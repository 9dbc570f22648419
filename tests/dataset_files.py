"""Writers of small files in real dataset formats (BNT, LM3, OBJ), for dataset tests.

The real datasets are licensed and cannot be downloaded, so tests build tiny ones: these
writers follow FORMATS.md byte for byte and are independent of the readers under test.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

ZMIN = -1e9


def write_bnt(
    path: Path,
    planes: np.ndarray,
    *,
    zmin: float = ZMIN,
    texture: str = "",
    count: int | None = None,
    name_length: int | None = None,
    rows_cols: tuple[int, int] | None = None,
    cut: int | None = None,
) -> Path:
    """Write ``planes`` ``[5, rows, cols]`` (X, Y, Z, U, V of the upright image, row 0 at
    the top) as a ``.bnt``: rows stored bottom to top, each plane column-major.

    ``count``, ``name_length`` and ``rows_cols`` override header fields; ``cut`` drops
    that many bytes from the end: all to write malformed files.
    """
    planes = np.asarray(planes, dtype=np.float64)
    _, rows, cols = planes.shape
    stored = planes[:, ::-1, :]  # upside down
    data = np.concatenate([plane.ravel(order="F") for plane in stored])
    name = texture.encode("latin-1")
    r, c = rows_cols or (rows, cols)
    out = struct.pack("<HHdH", r, c, zmin, len(name) if name_length is None else name_length)
    out += name + struct.pack("<I", rows * cols * 5 if count is None else count) + data.astype("<f8").tobytes()
    if cut:
        out = out[:-cut]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(out)
    return path


def grid_planes(z: np.ndarray, *, spacing: float = 1.0, zmin: float = ZMIN) -> np.ndarray:
    """Planes of a range image ``z`` ``[rows, cols]`` (NaN = background): X = column *
    spacing, Y = -row * spacing (up is +Y), U/V = pixel centres with V up."""
    rows, cols = z.shape
    r, c = np.mgrid[0:rows, 0:cols].astype(np.float64)
    background = np.isnan(z)
    x, y = c * spacing, -r * spacing
    u, v = (c + 0.5) / cols, 1.0 - (r + 0.5) / rows
    zz = np.where(background, zmin, z)
    planes = np.stack([x, y, zz, u, v])
    planes[:, background] = zmin  # background points hold zmin in every plane, as scanners write
    return planes


def sphere_cap(rows: int = 9, cols: int = 9, radius: float = 10.0, spacing: float = 1.0) -> np.ndarray:
    """Heights of a sphere of ``radius`` centred under the grid's middle point; NaN outside."""
    r, c = np.mgrid[0:rows, 0:cols].astype(np.float64)
    x = (c - (cols - 1) / 2) * spacing
    y = (r - (rows - 1) / 2) * spacing
    inside = x**2 + y**2 < radius**2
    return np.where(inside, np.sqrt(np.clip(radius**2 - x**2 - y**2, 0, None)), np.nan)


def write_lm3(path: Path, names: list[str], points: np.ndarray, *, info: bool = True, count_line: str | None = None) -> Path:
    """Write a Bosphorus ``.lm3``: header, optional ``*`` info block, count, label/xyz pairs."""
    lines = ["Landmark Points"]
    lines += ["*", "Subject: test", "Created by dataset_files.py", ""] if info else [""]
    lines.append(count_line if count_line is not None else f"{len(names)} landmarks:")
    for name, (x, y, z) in zip(names, np.asarray(points, dtype=float).tolist()):
        lines += [name, f"{x:.6f} {y:.6f} {z:.6f}"]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def write_obj(path: Path, vertices: np.ndarray, faces: np.ndarray) -> Path:
    lines = [f"v {x:.6f} {y:.6f} {z:.6f}" for x, y, z in np.asarray(vertices, dtype=float).tolist()]
    lines += [f"f {a + 1} {b + 1} {c + 1}" for a, b, c in np.asarray(faces).tolist()]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def tetrahedron(offset: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    vertices = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]], dtype=float) + offset
    return vertices, np.array([[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]])


# ---------------------------------------------------------------------------------------
# Whole small datasets
# ---------------------------------------------------------------------------------------


def bosphorus_tree(root: Path) -> Path:
    """Two subjects with emotion, neutral and action-unit scans, one with landmarks."""
    planes = grid_planes(sphere_cap())
    for subject in ("bs000", "bs001"):
        folder = root / subject
        for stem in (f"{subject}_E_HAPPY_0", f"{subject}_E_ANGER_0", f"{subject}_N_N_0", f"{subject}_LFAU_12_0"):
            write_bnt(folder / f"{stem}.bnt", planes, texture=f"{stem}.png")
    write_lm3(root / "bs000" / "bs000_E_HAPPY_0.lm3", ["Nose tip", "Chin middle"], [[4, -4, 10], [4, -8, 6]])
    return root


def bp4d_tree(root: Path, subjects=("F001", "M002"), tasks=("T1", "T2"), frames: int = 3) -> Path:
    """``root/<subject>/<task>/<frame>.obj``: a tetrahedron moving by frame."""
    for subject in subjects:
        for task in tasks:
            for frame in range(frames):
                write_obj(root / subject / task / f"{frame:04d}.obj", *tetrahedron(offset=frame))
    return root


def folder_tree(root: Path) -> Path:
    """A ``manifest.csv`` with two single meshes and one three-frame sequence."""
    rows = ["path,label,subject,frame,age", "a.obj,fear,S1,,30", "b.obj,anger,S2,,41"]
    write_obj(root / "a.obj", *tetrahedron())
    write_obj(root / "b.obj", *tetrahedron(1.0))
    for frame in range(3):
        write_obj(root / "seq" / f"{frame}.obj", *tetrahedron(float(frame)))
        rows.append(f"seq/{frame}.obj,happiness,S2,{frame},41")
    (root / "manifest.csv").write_text("\n".join(rows) + "\n")
    return root
