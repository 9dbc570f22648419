"""Meshes and 4D sequences from uploaded bytes, within limits: what the app reads.

An upload is untrusted. :func:`read_upload` checks its size, its format, the vertex count
its header declares (before parsing) and, for a zip of frames, every entry's name (no
absolute or ``..`` paths), the entry count and the unpacked size (as declared and as
actually read). Files go to a private temporary folder that is removed afterwards, and
every failure is one :class:`UploadError` naming the upload and what is allowed.
"""

from __future__ import annotations

import io
import re
import struct
import tempfile
import zipfile
import zlib
from pathlib import Path, PurePosixPath

from pydantic import BaseModel, ConfigDict, Field

from affectkit.data.mesh import Mesh, MeshSequence, read_gltf_document
from affectkit.data.mesh_formats import load_mesh, mesh_suffixes
from affectkit.errors import AffectkitError, MeshError, shorten

MB = 1024 * 1024
_HEADER_BYTES = 64 * 1024


#: what the standard library raises on a damaged archive (a flipped byte in a header, a
#: truncated or altered compressed stream, an unsupported method)
BROKEN_ZIP = (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, struct.error, ValueError, NotImplementedError, RuntimeError, OSError, EOFError)


class UploadError(AffectkitError):
    """An upload that is too big, of the wrong format, or unsafe to unpack."""


class UploadLimits(BaseModel):
    """Caps on what one upload may hold."""

    model_config = ConfigDict(extra="forbid")

    max_upload_mb: float = Field(50.0, gt=0, le=4096, description="largest upload (a mesh or a zip), in MiB")
    max_vertices: int = Field(500_000, ge=3, description="most vertices in one mesh or frame")
    max_faces: int = Field(1_000_000, ge=1, description="most triangles in one mesh or frame (duplicates removed first)")
    max_frames: int = Field(300, ge=1, description="most frames in one 4D zip")
    max_unzipped_mb: float = Field(500.0, gt=0, description="largest total size of a zip's frames once unpacked, in MiB")


def read_upload(name: str, data: bytes, limits: UploadLimits) -> Mesh | MeshSequence:
    """The mesh in a mesh file's bytes, or the sequence in a zip of frame files."""
    if len(data) > limits.max_upload_mb * MB:
        raise UploadError(f"{name}: {len(data) / MB:.1f} MiB is over the upload limit of {limits.max_upload_mb:g} MiB (max_upload_mb)")
    suffix = PurePosixPath(name).suffix.lower()
    with tempfile.TemporaryDirectory(prefix="affectkit-upload-") as tmp:
        if suffix == ".zip":
            return _read_zip(name, data, limits, Path(tmp))
        return _read_mesh(name, data, limits, Path(tmp))


def _read_mesh(name: str, data: bytes, limits: UploadLimits, folder: Path) -> Mesh:
    suffix = PurePosixPath(name).suffix.lower()
    allowed = mesh_suffixes()
    if suffix not in allowed:
        raise UploadError(f"{name}: unsupported format {suffix or '(no extension)'!r}; allowed: {', '.join(allowed)}, or .zip for a 4D sequence")
    declared = declared_vertex_count(data, suffix)
    if declared is not None and declared > limits.max_vertices:
        raise UploadError(f"{name}: the header declares {declared:,} vertices; the limit is {limits.max_vertices:,} (max_vertices)")
    faces = declared_face_count(data, suffix)
    if faces is not None and faces > 4 * limits.max_faces:  # room for duplicates, which are dropped below
        raise UploadError(f"{name}: the header declares {faces:,} faces; the limit is {limits.max_faces:,} (max_faces)")
    path = folder / f"upload{suffix}"
    path.write_bytes(data)
    try:
        if suffix in (".glb", ".gltf"):
            _check_self_contained(name, read_gltf_document(path))
        mesh = load_mesh(path)
    except MeshError as exc:
        raise UploadError(str(exc).replace(str(path), name)) from None
    if len(mesh.vertices) > limits.max_vertices:
        raise UploadError(f"{name}: {len(mesh.vertices):,} vertices; the limit is {limits.max_vertices:,} (max_vertices)")
    if len(mesh.faces) > limits.max_faces:
        raise UploadError(f"{name}: {len(mesh.faces):,} faces; the limit is {limits.max_faces:,} (max_faces)")
    mesh.source = name
    return mesh


def _check_self_contained(name: str, document: dict) -> None:
    """An upload is one file: a glTF that names other files (``"uri": "/etc/..."``) would
    make the reader open files on the server."""
    for kind in ("buffers", "images"):
        items = document.get(kind)
        for item in items if isinstance(items, list) else []:
            uri = item.get("uri") if isinstance(item, dict) else None
            if isinstance(uri, str) and not uri.startswith("data:"):
                raise UploadError(f"{name}: its {kind} refer to another file ({shorten(uri)}); upload a self-contained GLB, or a glTF with embedded data")


def declared_vertex_count(data: bytes, suffix: str) -> int | None:
    """The vertex count a PLY or OFF header promises, read before any parsing allocates."""
    return _declared(data, suffix, "vertex", 0)


def declared_face_count(data: bytes, suffix: str) -> int | None:
    """The face count a PLY or OFF header promises."""
    return _declared(data, suffix, "face", 1)


def _declared(data: bytes, suffix: str, element: str, off_position: int) -> int | None:
    head = data[:_HEADER_BYTES].decode("latin-1")
    if suffix == ".ply":
        match = re.search(rf"^element\s+{element}\s+(\d+)\s*$", head.split("end_header", 1)[0], re.MULTILINE | re.ASCII)
        return int(match.group(1)) if match else None
    if suffix == ".off":
        lines = [line.split("#", 1)[0].strip() for line in head.splitlines()]
        words = " ".join(line for line in lines if line).split()
        if words and words[0].upper().endswith("OFF"):
            words = words[1:]
        word = words[off_position] if len(words) > off_position else ""
        return int(word) if re.fullmatch(r"\d+", word, re.ASCII) else None
    return None


def _read_zip(name: str, data: bytes, limits: UploadLimits, folder: Path) -> MeshSequence:
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except BROKEN_ZIP as exc:
        raise UploadError(f"{name}: not a valid zip file ({type(exc).__name__}: {str(exc)[:200]})") from None
    with archive:
        entries = [info for info in archive.infolist() if not info.is_dir()]
        for info in entries:
            _check_entry_name(name, info.filename)
        allowed = mesh_suffixes()
        frames = sorted(
            (info for info in entries if PurePosixPath(info.filename).suffix.lower() in allowed and not _hidden(info.filename)),
            key=lambda info: _natural_key(info.filename),
        )
        if not frames:
            raise UploadError(f"{name}: the zip holds no mesh frames; allowed frame formats: {', '.join(allowed)}")
        if len(frames) > limits.max_frames:
            raise UploadError(f"{name}: {len(frames)} frames; the limit is {limits.max_frames} (max_frames)")
        budget = int(limits.max_unzipped_mb * MB)
        if sum(info.file_size for info in frames) > budget:
            raise UploadError(f"{name}: the frames unpack to more than {limits.max_unzipped_mb:g} MiB (max_unzipped_mb)")
        meshes = []
        for info in frames:
            content = _read_entry(name, archive, info, budget)
            budget -= len(content)
            frame = _read_mesh(f"{name}/{info.filename}", content, limits, folder)
            meshes.append(frame)
    return MeshSequence(meshes, source=name)


def _check_entry_name(name: str, entry: str) -> None:
    path = PurePosixPath(entry.replace("\\", "/"))
    if path.is_absolute() or ".." in path.parts or re.match(r"^[A-Za-z]:", entry):
        raise UploadError(f"{name}: zip entry {entry!r} has an absolute or '..' path; only relative paths inside the archive are allowed")


def _read_entry(name: str, archive: zipfile.ZipFile, info: zipfile.ZipInfo, budget: int) -> bytes:
    """An entry's bytes, never more than the budget left, whatever its header says."""
    try:
        with archive.open(info) as handle:
            content = handle.read(budget + 1)
    except BROKEN_ZIP as exc:
        raise UploadError(f"{name}: cannot unpack {info.filename!r} ({type(exc).__name__}: {str(exc)[:200]})") from None
    if len(content) > budget:
        raise UploadError(f"{name}: the frames unpack to more than the unpacked-size limit (max_unzipped_mb)")
    return content


def _hidden(entry: str) -> bool:
    return any(part.startswith((".", "__MACOSX")) for part in PurePosixPath(entry).parts)


def _natural_key(entry: str) -> list[object]:
    """frame2 before frame10."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", entry)]
