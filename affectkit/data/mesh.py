"""One mesh type for 3D scans and one sequence type for 4D scans, and the standard file
formats (OBJ, PLY, OFF, STL, glTF/GLB) through trimesh.

Reading any file, plugins' formats included (BU-3DFE's VRML, Bosphorus' BNT), is
:func:`affectkit.data.mesh_formats.load_mesh`; this module loads no plugin.
"""

from __future__ import annotations

import hashlib
import json
import struct
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from affectkit.errors import MeshError


@dataclass(eq=False)
class Mesh:
    """A triangle mesh with optional appearance and landmarks.

    ``vertices`` ``[N, 3]`` float32, ``faces`` ``[F, 3]`` int64, ``colors`` ``[N, 3]`` in
    [0, 1], ``uv`` ``[N, 2]`` per-vertex texture coordinates with ``texture`` an
    ``[H, W, 3]`` uint8 image, ``landmarks`` ``[L, 3]``. ``source`` names the file it came
    from, for error messages.
    """

    vertices: np.ndarray
    faces: np.ndarray
    colors: np.ndarray | None = None
    uv: np.ndarray | None = None
    texture: np.ndarray | None = None
    landmarks: np.ndarray | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    source: str | None = None

    def __post_init__(self) -> None:
        with np.errstate(over="ignore"):  # beyond float32 becomes inf, which validate() names
            self.vertices = np.ascontiguousarray(self.vertices, dtype=np.float32)
        self.faces = np.ascontiguousarray(self.faces, dtype=np.int64)
        if self.colors is not None:
            self.colors = np.ascontiguousarray(self.colors, dtype=np.float32)
        if self.uv is not None:
            self.uv = np.ascontiguousarray(self.uv, dtype=np.float32)
        if self.landmarks is not None:
            self.landmarks = np.ascontiguousarray(self.landmarks, dtype=np.float32)
        self.validate()

    @property
    def where(self) -> str:
        return self.source or "<in-memory mesh>"

    def set_landmarks(self, names: Sequence[str], points: np.ndarray) -> None:
        """Attach a landmark file's named points: the face frame pairs them with the
        reference face's landmarks by name (``metadata["landmark_names"]``)."""
        self.landmarks = np.ascontiguousarray(points, dtype=np.float32)
        self.metadata["landmark_names"] = list(names)

    def validate(self) -> None:
        """Raise :class:`MeshError` naming the file if the mesh cannot be rendered."""
        v, f = self.vertices, self.faces
        if v.ndim != 2 or v.shape[1] != 3 or len(v) == 0:
            raise MeshError(f"{self.where}: vertices must be a non-empty [N, 3] array, got {v.shape}")
        if f.ndim != 2 or f.shape[1] != 3 or len(f) == 0:
            raise MeshError(f"{self.where}: mesh has no triangle faces (faces shape {f.shape})")
        if not np.isfinite(v).all():
            bad = int(np.flatnonzero(~np.isfinite(v).all(axis=1))[0])
            raise MeshError(f"{self.where}: vertex {bad} has a NaN or infinite coordinate")
        if f.min() < 0 or f.max() >= len(v):
            bad = int(np.flatnonzero((f < 0).any(axis=1) | (f >= len(v)).any(axis=1))[0])
            raise MeshError(
                f"{self.where}: face {bad} indexes vertex {f[bad].tolist()}, "
                f"allowed 0..{len(v) - 1}"
            )
        for name, arr, width in (("colors", self.colors, 3), ("uv", self.uv, 2)):
            if arr is not None and arr.shape != (len(v), width):
                raise MeshError(f"{self.where}: {name} must be [{len(v)}, {width}], got {arr.shape}")
        if self.uv is not None and self.texture is None:
            raise MeshError(f"{self.where}: texture coordinates given without a texture image")

    def content_hash(self) -> str:
        """A digest of everything that changes how the mesh renders (for the render cache)."""
        digest = hashlib.blake2b(digest_size=16)
        for arr in (self.vertices, self.faces, self.colors, self.uv, self.texture, self.landmarks):
            digest.update(b"|" if arr is None else np.ascontiguousarray(arr).tobytes())
        return digest.hexdigest()


@dataclass(eq=False)
class MeshSequence:
    """A 4D scan: frames in time order sharing one ``metadata``."""

    frames: list[Mesh]
    fps: float = 25.0
    metadata: dict[str, Any] = field(default_factory=dict)
    source: str | None = None

    def __post_init__(self) -> None:
        if not self.frames:
            raise MeshError(f"{self.source or '<in-memory sequence>'}: a sequence needs at least one frame")

    def __len__(self) -> int:
        return len(self.frames)


def unique_rows(rows: np.ndarray, return_index: bool = False, return_inverse: bool = False, return_counts: bool = False) -> Any:
    """``np.unique(rows, axis=0, ...)`` for rows of non-negative integers (triangles, edges,
    grid cells), the same result several times faster: each row becomes one int64 key that
    sorts as the row does, instead of a lexicographic sort of structured rows."""
    span = rows.max(axis=0) + 1 if len(rows) else None
    if span is None or float(np.prod(span.astype(np.float64))) >= 2**62:
        return np.unique(rows, axis=0, return_index=return_index, return_inverse=return_inverse, return_counts=return_counts)
    key = np.zeros(len(rows), dtype=np.int64)
    for column in range(rows.shape[1]):
        key = key * span[column] + rows[:, column]
    _, first, *rest = np.unique(key, return_index=True, return_inverse=return_inverse, return_counts=return_counts)
    found = (rows[first], first, *rest) if return_index else (rows[first], *rest)
    return found if len(found) > 1 else found[0]


#: a 4096x4096 texture: more than a face scan's, a bounded 48 MB once decoded to RGB
MAX_TEXTURE_PIXELS = 4096 * 4096


def read_gltf_document(path: Path) -> dict[str, Any]:
    """The JSON document of a glTF (``.gltf``) or binary glTF (``.glb``) file.

    A GLB's chunks are checked against the file's size first: trimesh allocates whatever a
    chunk claims (a gigabyte from a 3 KB file) before it reads it, and reads chunks up to
    the end of the file, past the length the header declares.
    """
    if path.suffix.lower() != ".glb":
        data = path.read_bytes()
    else:  # chunk headers only: the binary chunks (meshes, textures) are not read here
        size = path.stat().st_size
        with open(path, "rb") as file:
            if size < 20 or file.read(4) != b"glTF":
                raise MeshError(f"{path}: not a binary glTF file (it must start with 'glTF' and a 12-byte header)")
            offset, data = 12, None
            while offset + 8 <= size:
                file.seek(offset)
                length = struct.unpack("<I", file.read(4))[0]
                if offset + 8 + length > size:
                    raise MeshError(f"{path}: damaged GLB: the chunk at byte {offset} declares {length:,} bytes, {size - offset - 8:,} remain")
                if data is None:  # the first chunk is the JSON document
                    file.seek(offset + 8)
                    data = file.read(length)
                offset += 8 + length
            data = data or b""
    try:
        document = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise MeshError(f"{path}: damaged glTF: its JSON does not parse ({str(exc)[:200]})") from None
    if not isinstance(document, dict):
        raise MeshError(f"{path}: damaged glTF: its JSON is not an object")
    return document


def read_standard_mesh(path: Path) -> Mesh:
    """Read an OBJ, PLY, OFF, STL or glTF/GLB file through trimesh."""
    import PIL.Image
    import trimesh

    scene = Path(path).suffix.lower() in (".glb", ".gltf")
    if scene:
        read_gltf_document(Path(path))
    # trimesh scales colours before clipping them to 0..255, so a huge colour overflows on
    # the way to 255, and a damaged GLB's NaNs are cast to indices: no warning for either,
    # the Mesh built below names coordinates beyond float32 and indices out of range.
    # PIL's decompression-bomb warning becomes the error it is meant to be.
    with np.errstate(over="ignore", invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("error", PIL.Image.DecompressionBombWarning)
        try:
            # an OBJ's material groups are parts of one scan (merged); a glTF scene's meshes may be anything
            loaded = trimesh.load(str(path), process=False, force=None if scene else "mesh")
            # a scene's meshes are copied out with their materials: PIL decodes textures then
            meshes = [g for g in loaded.dump() if isinstance(g, trimesh.Trimesh)] if isinstance(loaded, trimesh.Scene) and loaded.geometry else []
        except Exception as exc:  # trimesh raises many types for bad files
            raise MeshError(f"{path}: cannot read mesh: {str(exc)[:300]}") from None
        if isinstance(loaded, trimesh.Scene):  # one face mesh, never a silent merge
            if len(meshes) > 1:
                raise MeshError(f"{path}: the scene holds {len(meshes)} meshes; affectkit reads one face: export the face alone, or merge them first")
            loaded = meshes[0] if meshes else None
        if not isinstance(loaded, trimesh.Trimesh) or len(loaded.faces) == 0:
            raise MeshError(f"{path}: file holds no triangle faces")
        colors = None
        visual = loaded.visual
        uv = texture = None
        if visual.kind == "vertex":
            colors = np.asarray(visual.vertex_colors)[:, :3] / 255.0
        elif visual.kind == "texture" and getattr(visual, "uv", None) is not None:
            image = getattr(visual.material, "image", None) or getattr(visual.material, "baseColorTexture", None)
            if image is not None and image.width * image.height > MAX_TEXTURE_PIXELS:  # read from the header, before decoding
                raise MeshError(f"{path}: a {image.width}x{image.height} texture; affectkit reads textures of at most {MAX_TEXTURE_PIXELS:,} pixels")
            if image is not None:
                try:
                    uv, texture = np.asarray(visual.uv), np.array(image.convert("RGB"))  # writable for torch
                except Exception as exc:  # PIL decodes lazily, here: OSError, SyntaxError, ValueError, ...
                    raise MeshError(f"{path}: its texture image cannot be decoded ({str(exc)[:200]})") from None
    return Mesh(
        vertices=np.asarray(loaded.vertices),
        faces=np.asarray(loaded.faces),
        colors=colors,
        uv=uv,
        texture=texture,
        source=str(path),
    )


def write_standard_mesh(mesh: Mesh, path: Path) -> Path:
    """Write an OBJ, PLY, OFF, STL or glTF/GLB file through trimesh (PLY keeps vertex
    colours and is compact)."""
    import trimesh

    colors = None if mesh.colors is None else np.clip(mesh.colors * 255.0, 0, 255).astype(np.uint8)
    trimesh.Trimesh(mesh.vertices, mesh.faces, vertex_colors=colors, process=False).export(str(path))
    return path
