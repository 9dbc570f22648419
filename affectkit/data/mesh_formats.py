"""Reading and writing mesh files of every format: the standard ones through trimesh, and the
formats plugins register (``register_mesh_formats``: BU-3DFE's VRML, Bosphorus' BNT, ...);
and the ``.lm.txt`` landmark files affectkit writes beside meshes."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from affectkit.data.mesh import Mesh, MeshSequence, read_standard_mesh, unique_rows, write_standard_mesh
from affectkit.data.ply import read_simple_ply
from affectkit.errors import MeshError
from affectkit.registry import STANDARD_MESH_SUFFIXES, MeshFormat, registry


def mesh_suffixes() -> list[str]:
    """Every readable mesh file suffix, the plugins' formats included."""
    return sorted((*STANDARD_MESH_SUFFIXES, *registry().mesh_formats()))


def mesh_format(suffix: str) -> MeshFormat:
    """The registered format of ``suffix`` (not a standard one), naming the formats there are."""
    formats = registry().mesh_formats()
    if suffix not in formats:
        raise MeshError(f"no plugin registered the mesh format {suffix!r}; registered: {', '.join(formats) or 'none'}")
    return formats[suffix]


def load_mesh(path: str | Path) -> Mesh:
    """Read a mesh file; polygons are triangulated, repeated triangles dropped, bad files
    raise :class:`MeshError`."""
    return without_repeated_faces(_read(Path(path)))


def load_sequence(path: Path) -> MeshSequence:
    """A folder of frame files, read in name order."""
    frames = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
    allowed = mesh_suffixes()
    meshes = [load_mesh(p) for p in frames if p.suffix.lower() in allowed]
    if not meshes:
        raise MeshError(f"{path}: folder holds no mesh frames ({', '.join(allowed)})")
    return MeshSequence(meshes, source=str(path))


def load_input(path: str | Path) -> Mesh | MeshSequence:
    """A mesh file, or a folder of frame files as one sequence: what predict and adapt take."""
    path = Path(path)
    return load_sequence(path) if path.is_dir() else load_mesh(path)


def save_mesh(mesh: Mesh, path: str | Path) -> Path:
    """Write ``mesh`` in the format of ``path``'s suffix: a standard one through trimesh, a
    plugin's through the writer it registered. A format nobody can write is a
    :class:`MeshError` naming the writable suffixes."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in STANDARD_MESH_SUFFIXES:
        write = write_standard_mesh
    else:
        formats = registry().mesh_formats()
        found = formats.get(suffix)
        if found is None or found.writer is None:
            writable = [*STANDARD_MESH_SUFFIXES, *(s for s, f in formats.items() if f.writer is not None)]
            why = "no plugin registered it" if found is None else f"read only: its plugin ({found.origin}) registered no writer"
            raise MeshError(f"{path}: cannot write the mesh format {path.suffix!r} ({why}); writable: {', '.join(writable)}")
        write = found.writer
    path.parent.mkdir(parents=True, exist_ok=True)
    written = write(mesh, path)
    return Path(written) if written is not None else path


def without_repeated_faces(mesh: Mesh) -> Mesh:
    """``mesh`` with each triangle once: copies add render cost and nothing else (a 260 KB
    PLY of 20,000 copies of one face took 20 to 40 s to render)."""
    _, first = unique_rows(mesh.faces, return_index=True)
    if len(first) < len(mesh.faces):
        mesh.faces = mesh.faces[np.sort(first)]
    return mesh


def _read(path: Path) -> Mesh:
    suffix = path.suffix.lower()
    if suffix in STANDARD_MESH_SUFFIXES:
        reader = read_standard_mesh
    else:
        formats = registry().mesh_formats()
        if suffix not in formats:
            raise MeshError(f"{path}: unsupported mesh format {path.suffix!r}; allowed: {', '.join(mesh_suffixes())}")
        reader = formats[suffix].reader
    if not path.is_file():
        raise MeshError(f"{path}: no such file")
    if suffix == ".ply":
        mesh = read_simple_ply(path)
        if mesh is not None:
            return mesh
    try:
        mesh = reader(path)
    except MeshError:
        raise
    except Exception as exc:  # a plugin reader's own error: named by the file, not a traceback
        raise MeshError(f"{path}: cannot be read as {suffix} ({type(exc).__name__}: {str(exc)[:300]})") from exc
    if mesh.source is None:  # later errors about the geometry name the file too
        mesh.source = str(path)
    return mesh


def landmark_file(mesh_path: Path) -> Path:
    """``000.ply`` -> ``000.lm.txt``: the landmarks beside a mesh."""
    return mesh_path.with_suffix(".lm.txt")


def write_landmark_file(path: Path, names: tuple[str, ...] | list[str], points: np.ndarray) -> Path:
    """Write landmarks as a ``.lm.txt`` file: one ``name x y z`` per line."""
    lines = [f"{name} {x:.4f} {y:.4f} {z:.4f}" for name, (x, y, z) in zip(names, np.asarray(points).tolist(), strict=True)]
    path.write_text("\n".join(lines) + "\n")
    return path


def read_landmark_file(path: Path) -> tuple[list[str], np.ndarray]:
    """Read a ``.lm.txt`` file: ``(names, [L, 3])``; a malformed line is a :class:`MeshError`
    naming the file and the line."""
    names, points = [], []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split()
        try:
            if len(parts) != 4:
                raise ValueError
            points.append([float(v) for v in parts[1:]])
        except ValueError:
            raise MeshError(f"{path}: line {number}: expected 'name x y z', got {line.strip()!r}") from None
        names.append(parts[0])
    return names, np.asarray(points, dtype=np.float32).reshape(-1, 3)
