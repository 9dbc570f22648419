"""A fast reader for the PLY layout scanners and affectkit write: one ``vertex`` element of
scalar properties (x, y, z, optionally red, green, blue), then one ``face`` element of
triangles, ASCII or binary. NumPy reads it in one pass, with no trimesh import (half a
second of every cold ``affectkit predict``). Any other layout returns ``None`` and is read
by trimesh.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from affectkit.data.mesh import Mesh
from affectkit.errors import MeshError

HEADER_LIMIT = 1 << 16
TYPES = {
    "char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1", "short": "i2", "int16": "i2", "ushort": "u2", "uint16": "u2",
    "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4", "float": "f4", "float32": "f4", "double": "f8", "float64": "f8",
}  # fmt: skip
ENDIAN = {"binary_little_endian": "<", "binary_big_endian": ">", "ascii": "<"}


def read_simple_ply(path: Path) -> Mesh | None:
    """The mesh of a PLY file in the simple layout, or ``None`` for trimesh to read."""
    data = Path(path).read_bytes()
    end = data.find(b"end_header", 0, HEADER_LIMIT)
    if not data.startswith(b"ply") or end < 0:
        return None
    body_start = data.find(b"\n", end) + 1
    try:
        header = data[:end].decode("ascii").split("\n")
    except UnicodeDecodeError:
        return None
    layout = _layout(header)
    if layout is None:
        return None
    fmt, vertex_count, vertex_props, face_count, face_types = layout
    if fmt == "ascii":
        return _ascii(path, data[body_start:], vertex_count, vertex_props, face_count)
    order = ENDIAN[fmt]
    vertex_dtype = np.dtype([(name, order + TYPES[kind]) for kind, name in vertex_props])
    face_dtype = np.dtype([("n", order + TYPES[face_types[0]]), ("i", order + TYPES[face_types[1]], 3)])
    needed = vertex_count * vertex_dtype.itemsize + face_count * face_dtype.itemsize
    if len(data) - body_start < needed:
        raise MeshError(f"{path}: the file ends before its {vertex_count} vertices and {face_count} faces (truncated?)")
    vertices = np.frombuffer(data, vertex_dtype, vertex_count, body_start)
    faces = np.frombuffer(data, face_dtype, face_count, body_start + vertex_count * vertex_dtype.itemsize)
    if not (faces["n"] == 3).all():
        return None  # polygons: trimesh triangulates them
    names = vertex_dtype.names or ()
    colors = np.stack([vertices[c] for c in ("red", "green", "blue")], 1) / 255.0 if {"red", "green", "blue"} <= set(names) else None
    xyz = np.stack([vertices[c].astype(np.float64) for c in ("x", "y", "z")], 1)
    return Mesh(vertices=xyz, faces=faces["i"].astype(np.int64), colors=colors, source=str(path))


def _layout(header: list[str]) -> tuple[str, int, list[tuple[str, str]], int, tuple[str, str]] | None:
    """(format, vertex count, vertex properties, face count, face list types) of the simple
    layout, or ``None``."""
    fmt, elements = None, []
    for line in header[1:]:
        words = line.split()
        if not words or words[0] in ("comment", "obj_info"):
            continue
        if words[0] == "format" and len(words) == 3 and words[1] in ENDIAN:
            fmt = words[1]
        elif words[0] == "element" and len(words) == 3 and words[2].isdigit():
            elements.append((words[1], int(words[2]), []))
        elif words[0] == "property" and elements:
            elements[-1][2].append(words[1:])
        else:
            return None
    if fmt is None or [e[0] for e in elements] != ["vertex", "face"]:
        return None
    (_, vertex_count, vertex_props), (_, face_count, face_props) = elements
    if not all(len(p) == 2 and p[0] in TYPES for p in vertex_props):
        return None  # lists, unknown types, a property line cut short: trimesh's reader decides
    names = [p[1] for p in vertex_props]
    if not {"x", "y", "z"} <= set(names) or len(set(names)) != len(names):
        return None
    if any(TYPES[kind] != "u1" for kind, name in (tuple(p) for p in vertex_props) if name in ("red", "green", "blue")):
        return None  # colours as floats or wider integers: trimesh scales them
    if len(face_props) != 1 or len(face_props[0]) != 4 or face_props[0][0] != "list" or face_props[0][3] not in ("vertex_indices", "vertex_index"):
        return None
    count_type, index_type = face_props[0][1], face_props[0][2]
    if count_type not in TYPES or index_type not in TYPES or TYPES[index_type][0] == "f":
        return None
    return fmt, vertex_count, [(p[0], p[1]) for p in vertex_props], face_count, (count_type, index_type)


def _ascii(path: Path, body: bytes, vertex_count: int, vertex_props: list[tuple[str, str]], face_count: int) -> Mesh | None:
    lines = body.split(b"\n", vertex_count + face_count)
    if len(lines) < vertex_count + face_count:
        raise MeshError(f"{path}: the file ends before its {vertex_count} vertices and {face_count} faces (truncated?)")
    try:
        vertices = np.array(b" ".join(lines[:vertex_count]).split(), dtype=np.float64)
        faces = np.array(b" ".join(lines[vertex_count : vertex_count + face_count]).split(), dtype=np.int64)
    except ValueError:
        raise MeshError(f"{path}: a vertex or face line holds something other than numbers") from None
    if vertices.size != vertex_count * len(vertex_props) or faces.size != 4 * face_count:
        return None  # polygons or ragged lines: trimesh's reader decides
    faces = faces.reshape(face_count, 4)
    if not (faces[:, 0] == 3).all():
        return None
    table = dict(zip((name for _, name in vertex_props), vertices.reshape(vertex_count, len(vertex_props)).T, strict=True))
    colors = np.stack([table[c] for c in ("red", "green", "blue")], 1) / 255.0 if {"red", "green", "blue"} <= set(table) else None
    return Mesh(vertices=np.stack([table["x"], table["y"], table["z"]], 1), faces=faces[:, 1:], colors=colors, source=str(path))
