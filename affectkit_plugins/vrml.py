"""The ``.wrl`` mesh format (BU-3DFE, BU-4DFE): VRML meshes and their ``.bnd`` landmarks,
read and written.

A BU-3DFE scan is a VRML 2.0 text file laid out like this (line breaks, commas and
spacing vary between files)::

    #VRML V2.0 utf8
    Shape {
      appearance Appearance { texture ImageTexture { url "F0001_AN01WH_F2D.bmp" } }
      geometry IndexedFaceSet {
        coord Coordinate { point [ x y z, x y z, ... ] }
        coordIndex [ 0, 1, 2, -1, 2, 3, 4, 5, -1, ... ]
        texCoord TextureCoordinate { point [ u v, u v, ... ] }
        texCoordIndex [ 0, 1, 2, -1, ... ]
      }
    }
    DEF Tricorder_Camera_Front Viewpoint { ... }

:func:`read_wrl` finds the blocks with ``str.find`` and short regular expressions and
parses their numbers with numpy in one call each (no per-token Python loop), so a
35,000-vertex scan reads in about 0.1 s (``benchmarks/readers.py``). It also reads VRML 1.0 spellings (``Coordinate3``,
``TextureCoordinate2``, ``textureCoordIndex``), per-vertex or per-face
``color Color { color [...] }`` with or without ``colorIndex``, ``#`` comments, ``DEF``
names, several ``IndexedFaceSet`` nodes in one file (merged) and any other nodes around
them (ignored; ``USE`` references are not followed). Polygons with more than three corners
are fan-triangulated; polygons with fewer than three are skipped (counted in
``metadata["degenerate_polygons"]``). Colours given as 0..255 are scaled to 0..1.

Texture coordinates (and indexed colours) are per polygon corner in VRML but per vertex
in :class:`Mesh`: a vertex whose corners use several texture coordinates (a texture seam)
is split into one vertex per distinct coordinate; the first keeps its index, copies are
appended after the file's vertices. The
texture image named by ``url`` is read with PIL from beside the ``.wrl`` (also by base
name, case-insensitively, and with another image extension); when it is missing the
mesh has neither ``uv`` nor ``texture`` and ``metadata["texture_missing"]`` names it.

Every malformed file raises one :class:`MeshError` naming the file, the block and the
line: unclosed brackets (truncated files), coordinates not a multiple of 3, indices out
of range (with the polygon and the allowed range), non-numeric tokens, no faces.

``.bnd`` landmark files hold one landmark per line, ``index x y z``, whitespace
separated (BU-3DFE has 83 per scan, *unconfirmed*). Public code treats the first column
as the 0-based index of the nearest mesh vertex (*unconfirmed*); :func:`read_bnd` keeps
file order and returns the coordinates only.

:func:`write_wrl` and :func:`write_bnd` write the same formats (``affectkit synth``'s
BU-3DFE and BU-4DFE layouts use them).
"""

from __future__ import annotations

import io
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path, PureWindowsPath

import numpy as np

from affectkit import hookimpl
from affectkit.data.mesh import Mesh
from affectkit.errors import MeshError

IMAGE_SUFFIXES = (".png", ".bmp", ".jpg", ".jpeg", ".tif", ".tiff")

#: What the reader looks for, by the name used in error messages: the lower-case words
#: that start it (found with ``str.find``, fast on multi-megabyte files) and the pattern
#: that must match there (on the lower-cased text, so spelling case does not matter).
_KEYWORDS: dict[str, tuple[tuple[str, ...], re.Pattern[str]]] = {
    "coord point": (("coordinate",), re.compile(r"coordinate3?\s*\{\s*point\s*\[")),
    "coordIndex": (("coordindex",), re.compile(r"coordindex\s*\[")),
    "texCoord point": (("texturecoordinate",), re.compile(r"texturecoordinate2?\s*\{\s*point\s*\[")),
    "texCoordIndex": (("texcoordindex", "texturecoordindex"), re.compile(r"(?:texcoordindex|texturecoordindex)\s*\[")),
    "color": (("color",), re.compile(r"color\s*\{\s*color\s*\[")),
    "colorIndex": (("colorindex",), re.compile(r"colorindex\s*\[")),
    "IndexedFaceSet": (("indexedfaceset",), re.compile(r"indexedfaceset\b")),
    "url": (("url",), re.compile(r'url\s*\[?\s*"([^"]*)"')),
    "colorPerVertex": (("colorpervertex",), re.compile(r"colorpervertex\s+(true|false)\b")),
}
_STRING_OR_COMMENT = re.compile(r'"[^"\n]*"|#[^\n]*')
_TOKEN = re.compile(r"[^\s,]+")
_STRUCTURE = re.compile(r"[\[\]{}]")


# ---------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------


def read_wrl(path: str | Path) -> Mesh:
    """Read a VRML ``.wrl`` mesh (BU-3DFE, BU-4DFE) as a triangle :class:`Mesh`.

    ``metadata`` holds ``format`` (``"vrml"``), ``texture_file`` (the image read, if any)
    or ``texture_missing`` (the ``url`` that was not found), and ``degenerate_polygons``
    when polygons with fewer than three corners were skipped.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise MeshError(f"{path}: cannot read file: {exc.strerror or exc}") from exc
    return parse_wrl(raw.decode("latin-1"), source=str(path), folder=path.parent)


def parse_wrl(text: str, source: str = "<vrml text>", folder: Path | None = None) -> Mesh:
    """Parse VRML text; ``folder`` is where texture images are looked up (none: no texture)."""
    doc = _Text(text)
    text = doc.text
    # Shape i owns the text from the end of the blocks shape i-1 used (VRML 1 puts the
    # Coordinate3 before its IndexedFaceSet, VRML 2 an Appearance with the url) to the
    # next IndexedFaceSet.
    geometry = [m.start() for m in doc.find_all("IndexedFaceSet", 0, len(text))] or [0]
    parts = []
    begin = 0
    for at, end in zip(geometry, geometry[1:] + [len(text)]):
        doc.used = begin
        part = _parse_shape(doc, source, begin, at, end)
        if part is not None:
            parts.append(part)
        begin = doc.used
    _check_balance(text, source)
    if not parts:
        raise MeshError(f"{source}: no 'coord Coordinate {{ point [...] }}' and 'coordIndex [...]' found: not a VRML mesh")
    if all(len(p.faces) == 0 for p in parts):
        raise MeshError(f"{source}: coordIndex holds no polygon with 3 or more corners: the mesh has no faces")
    return _assemble(parts, source, folder)


def read_bnd(path: str | Path) -> np.ndarray:
    """Read a BU-3DFE ``.bnd`` landmark file: ``[N, 3]`` float32 in file order.

    Lines are ``index x y z`` (or ``x y z``), separated by spaces, tabs or commas; blank
    lines and lines that do not start with a number (headers) are skipped.
    """
    path = Path(path)
    try:
        lines = path.read_text(encoding="latin-1").splitlines()
    except OSError as exc:
        raise MeshError(f"{path}: cannot read landmark file: {exc.strerror or exc}") from exc
    points = []
    for number, line in enumerate(lines, 1):
        tokens = line.replace(",", " ").split()
        if not tokens or not _is_number(tokens[0]):
            continue  # blank or header line
        try:
            values = [float(t) for t in tokens]
        except ValueError:
            bad = next(t for t in tokens if not _is_number(t))
            raise MeshError(f"{path}: line {number}: {bad!r} is not a number (expected 'index x y z')") from None
        if len(values) not in (3, 4):
            raise MeshError(f"{path}: line {number}: {len(values)} numbers, expected 'index x y z' (4) or 'x y z' (3)")
        points.append(values[-3:])
    if not points:
        raise MeshError(f"{path}: no landmark lines ('index x y z') found")
    with np.errstate(over="ignore"):  # beyond float32 becomes inf, named below
        out = np.asarray(points, dtype=np.float32)
    if not np.isfinite(out).all():
        bad = int(np.flatnonzero(~np.isfinite(out).all(axis=1))[0])
        raise MeshError(f"{path}: landmark {bad} has a NaN or infinite coordinate")
    return out


@dataclass
class _Part:
    """One ``IndexedFaceSet``: vertices, triangles and per-vertex appearance."""

    vertices: np.ndarray
    faces: np.ndarray
    colors: np.ndarray | None
    uv: np.ndarray | None
    url: str | None
    degenerate: int


class _Text:
    """VRML text with comments blanked out, and a lower-cased copy to search in."""

    def __init__(self, text: str) -> None:
        self.text = _blank_comments(text)
        self.low = self.text.lower()  # same length: the text is latin-1
        self.used = 0  # end of the last number block read

    def find_all(self, name: str, start: int, end: int) -> list[re.Match[str]]:
        """Every ``name`` keyword that starts in ``[start, end)``, in order."""
        words, pattern = _KEYWORDS[name]
        found = []
        for word in words:
            pos = self.low.find(word, start, end)
            while pos >= 0:
                before = self.low[pos - 1] if pos else " "
                if not (before.isalnum() or before == "_"):
                    match = pattern.match(self.low, pos)
                    if match is not None:
                        found.append(match)
                pos = self.low.find(word, pos + 1, end)
        return sorted(found, key=lambda m: m.start())

    def find(self, name: str, start: int, end: int) -> re.Match[str] | None:
        found = self.find_all(name, start, end)
        return found[0] if found else None


def _blank_comments(text: str) -> str:
    """Replace ``#`` comments by spaces (same length, so offsets and line numbers hold)."""
    pos = text.find("#")
    pieces, last = [], 0
    while pos >= 0:
        line_start = text.rfind("\n", 0, pos) + 1
        if text.count('"', line_start, pos) % 2:  # inside a string such as a url
            pos = text.find("#", pos + 1)
            continue
        eol = text.find("\n", pos)
        eol = len(text) if eol < 0 else eol
        pieces += [text[last:pos], " " * (eol - pos)]
        last = eol
        pos = text.find("#", eol)
    return "".join(pieces) + text[last:] if pieces else text


def _line(text: str, pos: int) -> int:
    return text.count("\n", 0, pos) + 1


def _check_balance(text: str, source: str) -> None:
    """Every ``{`` and ``[`` must be closed: a file cut short fails here."""
    for opening, closing in (("{", "}"), ("[", "]")):
        depth = text.count(opening) - text.count(closing)
        if depth:  # recount without strings, which may hold brackets
            text = _STRING_OR_COMMENT.sub(lambda m: " " * len(m.group()), text)
            depth = text.count(opening) - text.count(closing)
        if depth > 0:
            raise MeshError(
                f"{source}: file ends (line {_line(text, len(text))}) with {depth} unclosed {opening!r}: truncated file?"
            )
        if depth < 0:
            # locate the first closing bracket that has no opening one
            level = 0
            for m in re.finditer(re.escape(opening) + "|" + re.escape(closing), text):
                level += 1 if m.group() == opening else -1
                if level < 0:
                    raise MeshError(f"{source}: line {_line(text, m.start())}: {closing!r} without a matching {opening!r}")


def _is_number(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


def _block(doc: _Text, source: str, name: str, start: int, end: int, dtype: type) -> tuple[np.ndarray, int] | None:
    """The numbers of the first ``name`` block starting between ``start`` and ``end``, and
    the offset of its contents; ``None`` when there is no such block."""
    text = doc.text
    match = doc.find(name, start, end)
    if match is None:
        return None
    body = match.end()
    close = text.find("]", body)
    if close < 0:
        raise MeshError(f"{source}: {name} block opened at line {_line(text, body)} is never closed: truncated file?")
    doc.used = max(doc.used, close + 1)
    chunk = text[body:close]
    if not chunk.strip():
        return np.empty(0, dtype), body
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", DeprecationWarning)  # numpy < 2.x: partial parse warns
            values = np.fromstring(chunk.replace(",", " "), dtype=dtype, sep=" ")
    except (ValueError, DeprecationWarning):
        _explain_bad_block(text, source, name, body, close, dtype)
        raise  # _explain_bad_block always raises; kept for type checkers
    return values, body


def _explain_bad_block(text: str, source: str, name: str, body: int, close: int, dtype: type) -> None:
    """Raise the :class:`MeshError` that says why a block's numbers do not parse."""
    opened = body - 1
    chunk = text[body:close]
    structure = _STRUCTURE.search(chunk)
    if structure is not None:
        at = body + structure.start()
        raise MeshError(
            f"{source}: {name} block opened at line {_line(text, opened)} is not closed with ']' before "
            f"{structure.group()!r} at line {_line(text, at)}: truncated or malformed file?"
        )
    kind = "an integer" if np.issubdtype(dtype, np.integer) else "a number"
    convert = int if np.issubdtype(dtype, np.integer) else float
    for i, token in enumerate(_TOKEN.finditer(chunk)):
        try:
            convert(token.group())
        except ValueError:
            raise MeshError(
                f"{source}: {name} block (opened at line {_line(text, opened)}), value {i} at line "
                f"{_line(text, body + token.start())}: {token.group()[:40]!r} is not {kind}"
            ) from None
    raise MeshError(f"{source}: {name} block opened at line {_line(text, opened)} cannot be parsed as numbers")


def _token_line(text: str, body: int, index: int) -> int:
    """Line of the ``index``-th value of the block whose contents start at ``body``."""
    for i, token in enumerate(_TOKEN.finditer(text, body)):
        if i == index:
            return _line(text, token.start())
    return _line(text, body)


def _check_indices(text: str, source: str, name: str, body: int, values: np.ndarray, count: int, target: str,
                   polygon_of: np.ndarray | None = None) -> None:
    """Every value must be -1 (polygon end) or in ``0..count-1``."""
    bad = (values < -1) | (values >= count)
    if not bad.any():
        return
    i = int(np.flatnonzero(bad)[0])
    where = f"polygon {int(polygon_of[i])}, " if polygon_of is not None else ""
    raise MeshError(
        f"{source}: {name} ({where}value {i}, line {_token_line(text, body, i)}) refers to {target} "
        f"{int(values[i])}; allowed 0..{count - 1} (-1 ends a polygon)"
    )


def _parse_shape(doc: _Text, source: str, start: int, geometry: int, end: int) -> _Part | None:
    """The ``IndexedFaceSet`` keyword at ``geometry`` whose blocks lie in ``[start, end)``;
    ``None`` if there are none."""
    text = doc.text
    coords = _block(doc, source, "coord point", start, end, np.float64)
    index = _block(doc, source, "coordIndex", start, end, np.int64)
    if coords is None and index is None:
        return None
    if coords is None:
        raise MeshError(f"{source}: coordIndex without a 'coord Coordinate {{ point [...] }}' block before line {_line(text, end)}")
    if index is None:
        raise MeshError(f"{source}: points (line {_line(text, coords[1])}) but no 'coordIndex [...]': a point cloud, not a mesh")
    (points, points_at), (idx, idx_at) = coords, index
    vertices = _per_point(text, source, "coord point", points, points_at, 3, "x y z per point")
    n = len(vertices)
    if n == 0:
        raise MeshError(f"{source}: coord point block (opened at line {_line(text, points_at)}) is empty")

    # polygons: runs of indices ended by -1 (the last one may omit it)
    ends = np.flatnonzero(idx == -1)
    if len(idx) and idx[-1] != -1:
        ends = np.append(ends, len(idx))
    starts = np.concatenate([[0], ends[:-1] + 1])[: len(ends)].astype(np.int64)
    polygon_of = np.repeat(np.arange(len(ends)), ends - starts + 1)[: len(idx)]
    _check_indices(text, source, "coordIndex", idx_at, idx, n, "vertex", polygon_of)
    lengths = ends - starts
    triangles = np.maximum(lengths - 2, 0)
    degenerate = int(np.count_nonzero((lengths > 0) & (lengths < 3)))
    polygon = np.repeat(np.arange(len(starts)), triangles)
    k = np.arange(int(triangles.sum())) - np.repeat(np.cumsum(triangles) - triangles, triangles)
    first = starts[polygon]
    corners = np.stack([first, first + k + 1, first + k + 2], axis=1)  # positions in coordIndex
    faces = idx[corners]

    # appearance: explicit (indexed per corner) or implicit (per vertex) attributes
    explicit: list[tuple[np.ndarray, np.ndarray]] = []  # (values [K, d], index per corner [F, 3])
    implicit: list[np.ndarray] = []  # per-vertex values [N, d]
    slots: list[tuple[str, bool, int]] = []  # (attribute, explicit?, position in its list)

    tex = _block(doc, source, "texCoord point", start, end, np.float64)
    if tex is not None:
        uv_values, uv_at = tex
        uv_values = _per_point(text, source, "texCoord point", uv_values, uv_at, 2, "u v per point")
        tex_index = _block(doc, source, "texCoordIndex", start, end, np.int64)
        if tex_index is None:  # VRML: texture coordinates follow coordIndex
            _need_per_vertex(source, "texCoord point", len(uv_values), n, text, uv_at)
            slots.append(("uv", False, len(implicit)))
            implicit.append(uv_values[:n])
        else:
            tidx, tidx_at = tex_index
            _same_layout(text, source, "texCoordIndex", tidx, tidx_at, idx)
            _check_indices(text, source, "texCoordIndex", tidx_at, tidx, len(uv_values), "texture coordinate", polygon_of)
            slots.append(("uv", True, len(explicit)))
            explicit.append((uv_values, tidx[corners]))

    color = _block(doc, source, "color", start, end, np.float64)
    if color is not None:
        color_values, color_at = color
        color_values = _per_point(text, source, "color", color_values, color_at, 3, "r g b per colour")
        if len(color_values) and color_values.max() > 1.0 + 1e-6:  # 0..255 instead of VRML's 0..1
            color_values = color_values / 255.0
        color_values = np.clip(color_values, 0.0, 1.0)
        per_vertex = doc.find("colorPerVertex", start, end)
        per_vertex = per_vertex is None or per_vertex.group(1) == "true"
        color_index = _block(doc, source, "colorIndex", start, end, np.int64)
        if per_vertex and color_index is None:
            _need_per_vertex(source, "color", len(color_values), n, text, color_at)
            slots.append(("colors", False, len(implicit)))
            implicit.append(color_values[:n])
        elif per_vertex:
            cidx, cidx_at = color_index
            _same_layout(text, source, "colorIndex", cidx, cidx_at, idx)
            _check_indices(text, source, "colorIndex", cidx_at, cidx, len(color_values), "colour", polygon_of)
            slots.append(("colors", True, len(explicit)))
            explicit.append((color_values, cidx[corners]))
        else:  # one colour per polygon
            per_face = np.arange(len(starts)) if color_index is None else color_index[0]
            if len(per_face) < len(starts):
                raise MeshError(
                    f"{source}: colorPerVertex FALSE needs one colour per polygon: {len(starts)} polygons, "
                    f"{len(per_face)} {'colorIndex values' if color_index is not None else 'colours'}"
                )
            if color_index is not None:
                _check_indices(text, source, "colorIndex", color_index[1], per_face, len(color_values), "colour")
                if (per_face[: len(starts)] < 0).any():
                    raise MeshError(f"{source}: colorIndex (line {_line(text, color_index[1])}): -1 is not a colour index")
            elif len(color_values) < len(starts):
                raise MeshError(
                    f"{source}: colorPerVertex FALSE: {len(color_values)} colours for {len(starts)} polygons"
                )
            slots.append(("colors", True, len(explicit)))
            explicit.append((color_values, np.repeat(per_face[polygon][:, None], 3, axis=1)))

    vertex_of, faces, chosen = _split_corners(n, faces, [corner for _, corner in explicit])
    out: dict[str, np.ndarray] = {}
    for name, is_explicit, i in slots:
        if is_explicit:
            values, _ = explicit[i]
            picked = chosen[i]
            per = np.zeros((len(vertex_of), values.shape[1]))
            used = picked >= 0
            per[used] = values[picked[used]]
            out[name] = per
        else:
            out[name] = implicit[i][vertex_of]
    urls = doc.find_all("url", start, geometry) or doc.find_all("url", geometry, end)[:1]
    url_text = text[urls[-1].start(1) : urls[-1].end(1)] if urls else None
    return _Part(vertices[vertex_of], faces, out.get("colors"), out.get("uv"), url_text, degenerate)


def _per_point(text: str, source: str, name: str, values: np.ndarray, at: int, width: int, meaning: str) -> np.ndarray:
    """The flat numbers of block ``name`` (contents at offset ``at``) as rows of ``width``;
    ``meaning`` says what a row is (``"x y z per point"``)."""
    if len(values) % width:
        raise MeshError(
            f"{source}: {name} block (opened at line {_line(text, at)}) holds {len(values)} numbers, "
            f"not a multiple of {width} ({meaning})"
        )
    return values.reshape(-1, width)


def _need_per_vertex(source: str, name: str, have: int, need: int, text: str, at: int) -> None:
    if have < need:
        raise MeshError(
            f"{source}: {name} block (opened at line {_line(text, at)}) has {have} entries but there are {need} vertices "
            f"and no index block to map them"
        )


def _same_layout(text: str, source: str, name: str, values: np.ndarray, at: int, coord_index: np.ndarray) -> None:
    """An index block that runs parallel to ``coordIndex`` must have its polygon ends in the same places."""
    if len(values) != len(coord_index):
        raise MeshError(
            f"{source}: {name} (line {_line(text, at)}) has {len(values)} values but coordIndex has "
            f"{len(coord_index)}; they must match polygon by polygon"
        )
    mismatch = (values == -1) != (coord_index == -1)
    if mismatch.any():
        i = int(np.flatnonzero(mismatch)[0])
        raise MeshError(
            f"{source}: {name} (value {i}, line {_token_line(text, at, i)}) ends its polygons elsewhere than "
            f"coordIndex; they must match polygon by polygon"
        )


def _split_corners(n: int, faces: np.ndarray, corner_indices: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """Give every vertex one value of each per-corner attribute.

    Returns ``vertex_of`` (original vertex of each output vertex), the re-indexed faces,
    and per attribute the chosen value index of each output vertex (-1: unreferenced).
    A vertex whose corners disagree is split: the first distinct combination keeps the
    vertex's index, the others become copies appended after the original vertices.
    """
    if not corner_indices:
        return np.arange(n), faces, []
    flat_vertex = faces.ravel()
    sizes = [int(c.max()) + 1 if c.size else 1 for c in corner_indices]
    combined = np.zeros(flat_vertex.shape, np.int64)
    for corner, size in zip(corner_indices, sizes):  # mixed-radix code of the attribute indices
        combined = combined * size + corner.ravel()
    total = int(np.prod(sizes, dtype=object))
    owner = np.full(n, -1, np.int64)
    owner[flat_vertex] = combined
    if (owner[flat_vertex] == combined).all():  # consistent: no vertex needs splitting
        vertex_of, new_faces, codes = np.arange(n), faces, owner
    else:
        if n * total < 2**62:
            unique, inverse = np.unique(flat_vertex * total + combined, return_inverse=True)
            u_vertex, u_code = unique // total, unique % total
        else:  # too many combinations for one int64 key
            pairs, inverse = np.unique(np.stack([flat_vertex, combined], 1), axis=0, return_inverse=True)
            u_vertex, u_code = pairs[:, 0], pairs[:, 1]
        inverse = inverse.ravel()
        first = np.concatenate([[True], u_vertex[1:] != u_vertex[:-1]])
        new_id = np.where(first, u_vertex, n + np.cumsum(~first) - 1)
        vertex_of = np.concatenate([np.arange(n), u_vertex[~first]])
        codes = np.full(len(vertex_of), -1, np.int64)
        codes[new_id] = u_code
        new_faces = new_id[inverse].reshape(-1, 3)
    chosen = []
    for size in reversed(sizes):  # decode the mixed-radix code, last attribute first
        chosen.append(np.where(codes >= 0, codes % size, -1))
        codes = np.where(codes >= 0, codes // size, -1)
    return vertex_of, new_faces, chosen[::-1]


def _assemble(parts: list[_Part], source: str, folder: Path | None) -> Mesh:
    offsets = np.cumsum([0] + [len(p.vertices) for p in parts[:-1]])
    vertices = np.concatenate([p.vertices for p in parts])
    faces = np.concatenate([p.faces + o for p, o in zip(parts, offsets)])
    colors = np.concatenate([p.colors for p in parts]) if all(p.colors is not None for p in parts) else None
    metadata: dict[str, object] = {"format": "vrml"}
    degenerate = sum(p.degenerate for p in parts)
    if degenerate:
        metadata["degenerate_polygons"] = degenerate
    uv = texture = None
    urls = {p.url for p in parts if p.uv is not None}
    if all(p.uv is not None for p in parts) and len(urls) == 1 and None not in urls:
        url = urls.pop()
        found = _find_texture(folder, url) if folder is not None else None
        if found is None:
            metadata["texture_missing"] = url
        else:
            texture = _read_image(found, source)
            uv = np.concatenate([p.uv for p in parts])
            metadata["texture_file"] = str(found)
    return Mesh(vertices=vertices, faces=faces, colors=colors, uv=uv, texture=texture, metadata=metadata, source=source)


def _find_texture(folder: Path, url: str) -> Path | None:
    """The image ``url`` names, beside the mesh: as written, by base name, case-insensitively,
    or with another image extension (``.bmp`` converted to ``.png``)."""
    url = url.strip()
    if url.lower().startswith("file:"):
        url = url[5:].lstrip("/") if re.match(r"file:/*[A-Za-z]:", url, re.I) else url[5:]
    if not url:
        return None
    name = PureWindowsPath(url).name  # handles both / and \ separators
    for candidate in (folder / url, folder / name):
        try:
            if candidate.is_file():
                return candidate
        except OSError:
            continue
    try:
        entries = os.listdir(folder)
    except OSError:
        return None
    lower = {e.lower(): e for e in entries}
    stem = Path(name).stem.lower()
    for wanted in [name.lower()] + [stem + s for s in IMAGE_SUFFIXES]:
        if wanted in lower and (folder / lower[wanted]).is_file():
            return folder / lower[wanted]
    return None


def _read_image(path: Path, source: str) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"))
    except Exception as exc:  # PIL raises many types for damaged images
        raise MeshError(f"{source}: texture image {path} cannot be read: {exc}") from exc


# ---------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------


def _rows(values: np.ndarray, fmt: str, indent: str, delimiter: str = " ") -> str:
    buffer = io.StringIO()
    np.savetxt(buffer, values, fmt=fmt, delimiter=delimiter, newline=",\n" + indent)
    return indent + buffer.getvalue().rstrip().rstrip(",")


def format_wrl(mesh: Mesh, texture_url: str | None = None, title: str | None = None) -> str:
    """VRML 2.0 text of ``mesh`` in the BU-3DFE arrangement (url, coord, coordIndex,
    texCoord, texCoordIndex, then a Viewpoint). Vertex colours go in a per-vertex
    ``color Color`` node; ``uv`` is written (with ``texCoordIndex``) when ``texture_url``
    is given."""
    pad = " " * 10
    lines = ["#VRML V2.0 utf8", ""]
    if title:
        lines += [f"# {title}", ""]
    lines += ["Transform {", "  children [", "    Shape {", "      appearance Appearance {"]
    lines.append("        material Material { diffuseColor 0.8 0.8 0.8 }")
    textured = texture_url is not None and mesh.uv is not None
    if textured:
        lines.append(f'        texture ImageTexture {{ url "{texture_url}" }}')
    lines += ["      }", "      geometry IndexedFaceSet {", "        creaseAngle 1.5", "        solid FALSE"]
    lines += ["        coord Coordinate {", "          point ["]
    lines.append(_rows(mesh.vertices, "%.5f", pad))
    lines += ["          ]", "        }"]
    faces = np.concatenate([mesh.faces, np.full((len(mesh.faces), 1), -1)], axis=1)
    index = _rows(faces, "%d", pad, ", ")
    lines += ["        coordIndex [", index, "        ]"]
    if mesh.colors is not None:
        lines += ["        color Color {", "          color ["]
        lines.append(_rows(mesh.colors, "%.4f", pad))
        lines += ["          ]", "        }", "        colorPerVertex TRUE"]
    if textured:
        lines += ["        texCoord TextureCoordinate {", "          point ["]
        lines.append(_rows(mesh.uv, "%.6f", pad))
        lines += ["          ]", "        }", "        texCoordIndex [", index, "        ]"]
    lines += ["      }", "    }", "  ]", "}", ""]
    lines.append('DEF Front_Camera Viewpoint { position 0 0 400 orientation 0 0 1 0 description "front" }')
    return "\n".join(lines) + "\n"


def write_wrl(mesh: Mesh, path: str | Path, texture_name: str | None = None, title: str | None = None) -> Path:
    """Write ``mesh`` as a VRML file; with ``texture_name`` and a textured mesh, also write
    its texture image under that name beside it (PNG or BMP by the name's extension)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    url = None
    if texture_name is not None and mesh.uv is not None and mesh.texture is not None:
        from PIL import Image

        Image.fromarray(np.asarray(mesh.texture, dtype=np.uint8)).save(path.parent / texture_name)
        url = texture_name
    path.write_text(format_wrl(mesh, url, title), encoding="latin-1")
    return path


def write_bnd(landmarks: np.ndarray, path: str | Path, indices: np.ndarray | None = None) -> Path:
    """Write landmarks as a ``.bnd`` file: ``index x y z`` per line, tab separated
    (``indices`` default to 0, 1, 2, ...)."""
    path = Path(path)
    points = np.asarray(landmarks, dtype=np.float64).reshape(-1, 3)
    indices = np.arange(len(points)) if indices is None else np.asarray(indices)
    lines = [f"{int(i)}\t\t{x:.6f}\t\t{y:.6f}\t\t{z:.6f}" for i, (x, y, z) in zip(indices, points)]
    path.write_text("\n".join(lines) + "\n")
    return path


def write_scan(mesh: Mesh, path: str | Path) -> Path:
    """Write a scan as BU-3DFE lays it out: the VRML file and, when the mesh has
    landmarks, a ``.bnd`` beside it naming each landmark's nearest vertex. The VRML title
    is ``mesh.metadata["title"]`` when set."""
    path = write_wrl(mesh, path, title=mesh.metadata.get("title"))
    if mesh.landmarks is not None:
        nearest = ((mesh.landmarks[:, None, :] - mesh.vertices[None, :, :]) ** 2).sum(-1).argmin(axis=1)
        write_bnd(mesh.landmarks, path.with_suffix(".bnd"), nearest)
    return path


@hookimpl
def register_mesh_formats(register):
    register(".wrl", read_wrl, write_scan)
