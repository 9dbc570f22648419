"""Bosphorus file readers: ``.bnt`` range scans and ``.lm3`` 3D landmarks.

``.bnt`` (binary, little-endian)::

    uint16 rows, uint16 cols, float64 zmin, uint16 L, L bytes texture file name,
    uint32 N (= rows * cols * 5), N float64

The N values are five planes one after another (X, Y, Z, U, V), each ``rows x cols`` in
column-major order. Background points have ``Z == zmin`` (public readers also test for
``-1e9``). The range image is stored upside down: its first row is the bottom of the face.
:func:`read_bnt` flips it upright and triangulates every 2x2 block of neighbouring valid
points (two triangles when all four are valid, one when three are), wound
counter-clockwise as seen from the scanner.

Every size in the header is checked against the file's length before anything is
allocated, so a damaged or hostile header yields a :class:`MeshError` naming the file,
the field and its byte offset, never a ``MemoryError``.

*Unconfirmed*: whether ``V`` counts from the bottom of the texture image (as OBJ and the
renderer do) or from the top; it is passed through as stored unless ``flip_v`` is set.
"""

from __future__ import annotations

import re
import struct
from pathlib import Path

import numpy as np

from affectkit import hookimpl
from affectkit.data.mesh import Mesh
from affectkit.errors import MeshError

#: Z values at or below this are background too (public Bosphorus readers test -1e9).
BACKGROUND_Z = -1e9
#: Planes of a ``.bnt`` file, in stored order.
PLANES = ("x", "y", "z", "u", "v")

_FIXED = struct.Struct("<HHdH")  # rows, cols, zmin, name length


def read_bnt(path: str | Path, *, flip_v: bool = False) -> Mesh:
    """Read a Bosphorus ``.bnt`` scan as a triangle mesh.

    Vertices are the valid (non-background) points in millimetres, in row-major order of
    the upright range image; ``metadata`` holds ``grid`` (``[rows, cols]`` index of each
    vertex in that image), ``rows``, ``cols``, ``zmin`` and ``texture_file``. The texture
    is the PNG named in the header, looked up beside the file (else ``<stem>.png``); when
    there is none the mesh has neither ``uv`` nor ``texture``.
    """
    path = Path(path)
    grid, zmin, texture_name = _read_grid(path)
    x, y, z, u, v = grid
    rows, cols = z.shape
    valid = np.isfinite(x) & np.isfinite(y) & np.isfinite(z) & (z != zmin) & (z > BACKGROUND_Z)
    count = int(valid.sum())
    if count < 3:
        raise MeshError(f"{path}: only {count} of {rows * cols} points are valid (not background); a mesh needs 3")
    faces = grid_faces(valid)
    if len(faces) == 0:
        raise MeshError(f"{path}: no 2x2 block of neighbouring valid points, so no triangles ({count} valid points)")
    index = np.full(valid.shape, -1, dtype=np.int64)
    index[valid] = np.arange(count)
    vertices = np.stack([x[valid], y[valid], z[valid]], axis=1)
    texture_path = _texture_path(path, texture_name)
    uv = texture = None
    if texture_path is not None:
        texture = _read_texture(texture_path)
        uv = np.stack([u[valid], v[valid]], axis=1)
        if flip_v:
            uv[:, 1] = 1.0 - uv[:, 1]
        if not np.isfinite(uv).all():
            raise MeshError(f"{path}: texture coordinates (U, V planes) hold NaN or infinite values at valid points")
    metadata = {
        "rows": rows,
        "cols": cols,
        "zmin": zmin,
        "grid": np.argwhere(valid),
        "texture_file": None if texture_path is None else texture_path.name,
    }
    return Mesh(vertices=vertices, faces=index.ravel()[faces], uv=uv, texture=texture, metadata=metadata, source=str(path))


def read_bnt_grid(path: str | Path) -> tuple[np.ndarray, float, str]:
    """The raw content of a ``.bnt`` file: ``([5, rows, cols]`` planes X, Y, Z, U, V in
    the upright image (row 0 at the top), ``zmin``, texture file name from the header)."""
    return _read_grid(Path(path))


def grid_faces(valid: np.ndarray) -> np.ndarray:
    """Triangles ``[F, 3]`` over a ``[rows, cols]`` mask, as flat indices into the grid.

    Each 2x2 block with corners ``a`` (top left), ``b`` (bottom left), ``c`` (bottom
    right), ``d`` (top right) gives ``(a, b, c)`` and ``(a, c, d)`` when all four are
    valid, and the one triangle of the three valid corners when one is missing, always in
    the cyclic order a-b-c-d: counter-clockwise in the image (row 0 at the top).
    """
    rows, cols = valid.shape
    if rows < 2 or cols < 2:
        return np.zeros((0, 3), dtype=np.int64)
    flat = np.arange(rows * cols, dtype=np.int64).reshape(rows, cols)
    corners = [flat[:-1, :-1], flat[1:, :-1], flat[1:, 1:], flat[:-1, 1:]]  # a, b, c, d
    ok = [valid[:-1, :-1], valid[1:, :-1], valid[1:, 1:], valid[:-1, 1:]]
    a, b, c, d = (corner.ravel() for corner in corners)
    va, vb, vc, vd = (mask.ravel() for mask in ok)
    n_valid = va.astype(np.int8) + vb + vc + vd
    full = n_valid == 4
    three = n_valid == 3
    parts = [np.stack([a[full], b[full], c[full]], 1), np.stack([a[full], c[full], d[full]], 1)]
    for missing, (p, q, r) in ((~va, (b, c, d)), (~vb, (a, c, d)), (~vc, (a, b, d)), (~vd, (a, b, c))):
        pick = three & missing
        parts.append(np.stack([p[pick], q[pick], r[pick]], 1))
    return np.concatenate(parts, axis=0)


def _read_grid(path: Path) -> tuple[np.ndarray, float, str]:
    try:
        size = path.stat().st_size
        handle = path.open("rb")
    except OSError as exc:
        raise MeshError(f"{path}: cannot open BNT file: {exc.strerror or exc}") from None
    with handle:
        head = handle.read(_FIXED.size)
        if len(head) < _FIXED.size:
            raise MeshError(
                f"{path}: truncated BNT header: {size} bytes, the fixed header (rows, cols, zmin, "
                f"name length) needs {_FIXED.size} (byte offset 0)"
            )
        rows, cols, zmin, name_length = _FIXED.unpack(head)
        if rows == 0 or cols == 0:
            raise MeshError(f"{path}: BNT header at byte offset 0 gives an empty grid ({rows} rows x {cols} cols)")
        if not np.isfinite(zmin):
            raise MeshError(f"{path}: BNT header field zmin at byte offset 4 is {zmin}, not a finite number")
        offset = _FIXED.size
        if offset + name_length + 4 > size:
            raise MeshError(
                f"{path}: truncated BNT header or bad texture-name length {name_length} (field at byte offset 12): "
                f"the name and the value count N would end at byte {offset + name_length + 4}, but the file has {size} bytes"
            )
        raw_name = handle.read(name_length)
        texture_name = _decode_name(path, raw_name, offset)
        offset += name_length
        (count,) = struct.unpack("<I", handle.read(4))
        expected = rows * cols * len(PLANES)
        if count != expected:
            raise MeshError(
                f"{path}: BNT value count N={count} at byte offset {offset} does not match "
                f"rows x cols x 5 = {rows} x {cols} x 5 = {expected}"
            )
        offset += 4
        available = size - offset
        if count * 8 > available:
            raise MeshError(
                f"{path}: truncated BNT data: the header announces {count} float64 values "
                f"({count * 8} bytes from byte offset {offset}), but only {available} bytes follow "
                f"(file size {size})"
            )
        data = np.fromfile(handle, dtype="<f8", count=count)
    if len(data) != count:  # the file shrank while being read
        raise MeshError(f"{path}: truncated BNT data: read {len(data)} of {count} values from byte offset {offset}")
    # column-major planes: element (r, c) of plane k is at k*rows*cols + c*rows + r
    planes = data.reshape(len(PLANES), cols, rows).transpose(0, 2, 1)
    return np.ascontiguousarray(planes[:, ::-1, :]), float(zmin), texture_name


def _decode_name(path: Path, raw: bytes, offset: int) -> str:
    text = raw.split(b"\x00", 1)[0].decode("latin-1").strip()
    if any(ord(ch) < 32 for ch in text):
        raise MeshError(
            f"{path}: bad texture file name at byte offset {offset}: {text!r} holds control characters "
            f"(is the name length {len(raw)} right?)"
        )
    return text


def _texture_path(path: Path, name: str) -> Path | None:
    """The texture named in the header (its base name, beside ``path``), else ``<stem>.png``."""
    candidates = []
    if name:
        base = re.split(r"[\\/]", name)[-1]
        if base not in ("", ".", ".."):
            candidates.append(path.with_name(base))
    candidates.append(path.with_suffix(".png"))
    return next((c for c in candidates if c.is_file()), None)


def _read_texture(path: Path) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            return np.array(image.convert("RGB"))  # a writable copy
    except (OSError, UnidentifiedImageError) as exc:
        raise MeshError(f"{path}: cannot read texture image: {exc}") from None


# ---------------------------------------------------------------------------------------
# Landmarks
# ---------------------------------------------------------------------------------------

_COUNT = re.compile(r"^\s*(\d+)\b")


def read_lm3(path: str | Path) -> tuple[list[str], np.ndarray]:
    """Read a Bosphorus ``.lm3`` landmark file: ``(names, [N, 3] float32 points)``.

    Layout: a header line; optionally a line ``*`` followed by info lines up to a blank
    line; the count ``N`` (a line starting with the integer, e.g. ``22`` or
    ``22 landmarks:``); then per landmark a label line and an ``x y z`` line. Blank lines
    between entries are skipped. Errors name the file and the line.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise MeshError(f"{path}: cannot read LM3 file: {exc.strerror or exc}") from None
    lines = text.splitlines()
    if not lines:
        raise MeshError(f"{path}: empty LM3 file (expected a header line, then the landmark count)")
    i = 1  # line 0 is the header
    if i < len(lines) and lines[i].strip() == "*":
        i += 1
        while i < len(lines) and lines[i].strip():
            i += 1
    while i < len(lines) and not lines[i].strip():
        i += 1
    if i >= len(lines):
        raise MeshError(f"{path}: LM3 file ends before the landmark count (line {i + 1})")
    match = _COUNT.match(lines[i])
    if match is None:
        raise MeshError(f"{path}: line {i + 1}: expected the landmark count, got {lines[i].strip()!r}")
    count = int(match.group(1))
    i += 1
    body = [(n + 1, line.strip()) for n, line in enumerate(lines[i:], start=i) if line.strip()]
    if len(body) < 2 * count:
        raise MeshError(
            f"{path}: truncated LM3 file: line {i} announces {count} landmarks (a label line and an "
            f"'x y z' line each), but only {len(body)} non-empty lines follow"
        )
    names: list[str] = []
    points = np.empty((count, 3), dtype=np.float32)
    for k in range(count):
        (_, label), (number, coords) = body[2 * k], body[2 * k + 1]
        parts = coords.split()
        try:
            values = [float(p) for p in parts]
        except ValueError:
            values = []
        with np.errstate(over="ignore"):  # beyond float32 becomes inf, named below
            point = np.array(values, dtype=np.float32)
        if point.shape != (3,) or not np.isfinite(point).all():
            raise MeshError(
                f"{path}: line {number}: expected 'x y z' for landmark {label!r} (finite numbers within "
                f"float32's range), got {coords!r}"
            )
        names.append(label)
        points[k] = point
    return names, points


__all__ = ["BACKGROUND_Z", "PLANES", "grid_faces", "read_bnt", "read_bnt_grid", "read_lm3"]


@hookimpl
def register_mesh_formats(register):
    register(".bnt", read_bnt)
