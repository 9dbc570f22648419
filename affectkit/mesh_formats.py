"""Reading and writing mesh files of every format: the standard ones through trimesh, and the
formats plugins register (``register_mesh_formats``: BU-3DFE's VRML, Bosphorus' BNT, ...)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from affectkit.errors import MeshError
from affectkit.mesh import Mesh, read_standard_mesh, unique_rows, write_standard_mesh
from affectkit.ply import read_simple_ply
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
    return reader(path)
