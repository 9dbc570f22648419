"""Reading untrusted uploads: meshes, zips of frames, and every way they can be bad."""

from __future__ import annotations

import io
import tempfile
import zipfile

import pytest
from affectkit_apps.uploads import UploadError, UploadLimits, declared_vertex_count, read_upload

from affectkit.data.mesh import Mesh, MeshSequence
from affectkit.data.mesh_formats import save_mesh
from affectkit.registry import create

LIMITS = UploadLimits()


@pytest.fixture(scope="module")
def face_ply(tmp_path_factory) -> bytes:
    dataset = create("dataset", "synthetic", {"subjects": 1, "intensities": [4]})
    path = save_mesh(dataset.load(dataset.samples()[0]), tmp_path_factory.mktemp("face") / "face.ply")
    return path.read_bytes()


def zip_of(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def test_a_mesh_upload_reads_as_the_file_would(face_ply):
    mesh = read_upload("face.ply", face_ply, LIMITS)
    assert isinstance(mesh, Mesh) and mesh.source == "face.ply"
    assert len(mesh.vertices) > 1000 and mesh.colors is not None


def test_a_zip_of_frames_is_a_sequence_in_natural_name_order(face_ply):
    frames = {f"seq/frame{i}.ply": face_ply for i in (10, 2, 1)}
    sequence = read_upload("seq.zip", zip_of({**frames, "seq/notes.txt": b"x", "__MACOSX/seq/._frame1.ply": b"junk"}), LIMITS)
    assert isinstance(sequence, MeshSequence) and len(sequence) == 3
    assert [frame.source for frame in sequence.frames] == ["seq.zip/seq/frame1.ply", "seq.zip/seq/frame2.ply", "seq.zip/seq/frame10.ply"]


def test_temporary_files_are_removed(face_ply, tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    read_upload("face.ply", face_ply, LIMITS)
    with pytest.raises(UploadError):
        read_upload("face.ply", b"ply\ngarbage", LIMITS)
    read_upload("seq.zip", zip_of({"a.ply": face_ply}), LIMITS)
    assert list(tmp_path.iterdir()) == []


BAD = {
    "wrong format": ("notes.txt", b"hello", "unsupported format '.txt'; allowed: "),
    "no extension": ("face", b"hello", "unsupported format '(no extension)'"),
    "corrupt mesh": ("face.ply", b"ply\nformat ascii 1.0\nelement vertex 3\nend_header\n1 2", "face.ply: "),
    "huge ply header": ("face.ply", b"ply\nformat binary_little_endian 1.0\nelement vertex 4000000000\nend_header\n", "declares 4,000,000,000 vertices; the limit is 500,000 (max_vertices)"),
    "huge off header": ("face.off", b"OFF\n# a comment\n900000000 1 0\n", "declares 900,000,000 vertices"),
    "not a zip": ("seq.zip", b"PK\x03\x04 not really", "seq.zip: not a valid zip file"),
    "zip with ..": ("seq.zip", zip_of({"../../etc/evil.ply": b"x"}), "zip entry '../../etc/evil.ply' has an absolute or '..' path"),
    "zip with absolute path": ("seq.zip", zip_of({"/etc/evil.ply": b"x"}), "zip entry '/etc/evil.ply' has an absolute or '..' path"),
    "zip with drive path": ("seq.zip", zip_of({"C:\\evil.ply": b"x"}), "absolute or '..' path"),
    "zip without frames": ("seq.zip", zip_of({"readme.txt": b"x"}), "the zip holds no mesh frames"),
    "zip with a corrupt frame": ("seq.zip", zip_of({"f1.ply": b"ply\nnonsense"}), "seq.zip/f1.ply: "),
}


@pytest.mark.parametrize("name,data,message", BAD.values(), ids=BAD.keys())
def test_bad_uploads_are_one_clear_error(name, data, message):
    with pytest.raises(UploadError) as caught:
        read_upload(name, data, LIMITS)
    assert message in str(caught.value)
    assert "/tmp" not in str(caught.value) and "affectkit-upload-" not in str(caught.value)


def test_limits_apply_to_size_vertices_frames_and_unpacked_bytes(face_ply):
    vertices = len(read_upload("face.ply", face_ply, LIMITS).vertices)
    cases = [
        (UploadLimits(max_upload_mb=0.01), "face.ply", face_ply, "over the upload limit of 0.01 MiB (max_upload_mb)"),
        (UploadLimits(max_vertices=vertices - 1), "face.ply", face_ply, f"{vertices:,} vertices; the limit is {vertices - 1:,}"),
        (UploadLimits(max_frames=2), "seq.zip", zip_of({f"{i}.ply": face_ply for i in range(3)}), "3 frames; the limit is 2 (max_frames)"),
        (UploadLimits(max_unzipped_mb=len(face_ply) * 1.5 / 2**20), "seq.zip", zip_of({f"{i}.ply": face_ply for i in range(2)}), "max_unzipped_mb"),
    ]
    for limits, name, data, message in cases:
        with pytest.raises(UploadError, match=message.replace("(", r"\(").replace(")", r"\)")):
            read_upload(name, data, limits)


def test_a_zip_bomb_is_refused_before_it_is_unpacked():
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("bomb.ply", b"\0" * (64 * 2**20))
    assert len(buffer.getvalue()) < 2**20
    with pytest.raises(UploadError, match="unpack to more than 16 MiB"):
        read_upload("bomb.zip", buffer.getvalue(), UploadLimits(max_unzipped_mb=16))


def test_declared_vertex_counts():
    assert declared_vertex_count(b"ply\nformat ascii 1.0\nelement vertex 12\nend_header\n", ".ply") == 12
    assert declared_vertex_count(b"OFF 7 2 0\n", ".off") == 7
    assert declared_vertex_count(b"v 1 2 3\n", ".obj") is None


def test_damaged_zips_are_upload_errors_never_anything_else(face_ply):
    """1,000 copies of a zip of frames, each with a few random bytes changed: every one
    reads or is refused with an UploadError (zlib, struct, seek and method errors included)."""
    import random

    from affectkit.errors import AffectkitError

    good = zip_of({"f1.ply": face_ply, "f2.ply": face_ply})
    rng = random.Random(0)
    outcomes = {"read": 0, "refused": 0}
    for _ in range(1000):
        data = bytearray(good)
        for _ in range(rng.randint(1, 4)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        try:
            read_upload("frames.zip", bytes(data), UploadLimits())
            outcomes["read"] += 1
        except UploadError:
            outcomes["refused"] += 1
        except AffectkitError as exc:  # a reader's own error is fine too, if it is ours
            assert "frames.zip" in str(exc), exc
            outcomes["refused"] += 1
    assert outcomes["refused"] > 100 and sum(outcomes.values()) == 1000


def test_an_off_header_with_a_non_ascii_digit_is_refused_cleanly():
    text = "OFF\n3\u00b2 1 0\n0 0 0\n1 0 0\n0 1 0\n3 0 1 2\n".encode()
    with pytest.raises(UploadError, match="face.off"):
        read_upload("face.off", text, UploadLimits())


def test_copies_of_one_triangle_are_dropped_and_faces_are_capped():
    import numpy as np

    vertices = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [1, 1, 0]], dtype=float)
    faces = np.array([[0, 1, 2]] * 20000 + [[1, 3, 2]])
    with tempfile.TemporaryDirectory() as tmp:
        data = save_mesh(Mesh(vertices, faces), f"{tmp}/dup.ply").read_bytes()
    mesh = read_upload("dup.ply", data, UploadLimits())
    assert mesh.faces.tolist() == [[0, 1, 2], [1, 3, 2]]
    with pytest.raises(UploadError, match=r"dup.ply: the header declares 20,001 faces; the limit is 10 \(max_faces\)"):
        read_upload("dup.ply", data, UploadLimits(max_faces=10))


def glb_of(mesh_bytes: bytes) -> bytes:
    """``mesh_bytes`` (a PLY) converted to a binary glTF by trimesh."""
    import trimesh

    return trimesh.load(io.BytesIO(mesh_bytes), file_type="ply", process=False).export(file_type="glb")


def test_a_glb_chunk_claiming_more_than_the_file_is_refused_before_allocating(face_ply):
    """A 4-byte edit made trimesh allocate a gigabyte for a chunk the file does not hold
    (found by ``make fuzz``); the chunks are checked against the file first."""
    import struct
    import tracemalloc

    glb = bytearray(glb_of(face_ply))
    assert read_upload("face.glb", bytes(glb), LIMITS).vertices.shape[1] == 3
    json_length = struct.unpack_from("<I", glb, 12)[0]
    struct.pack_into("<I", glb, 20 + json_length, 1_000_000_000)  # the binary chunk's length
    tracemalloc.start()
    try:
        with pytest.raises(UploadError, match=r"face.glb: damaged GLB: the chunk at byte \d+ declares 1,000,000,000 bytes"):
            read_upload("face.glb", bytes(glb), LIMITS)
        assert tracemalloc.get_traced_memory()[1] < 64 * 2**20
    finally:
        tracemalloc.stop()


def test_a_gltf_naming_a_server_file_is_refused(face_ply, tmp_path):
    """A glTF buffer whose ``uri`` is a path would make the reader open a file on the server."""
    import json
    import struct

    secret = tmp_path / "secret.bin"
    secret.write_bytes(b"\0" * 4096)
    glb = glb_of(face_ply)
    json_length = struct.unpack_from("<I", glb, 12)[0]
    document = json.loads(glb[20 : 20 + json_length])
    document["buffers"][0]["uri"] = str(secret)
    gltf = json.dumps(document).encode()
    with pytest.raises(UploadError, match=r"face.gltf: its buffers refer to another file \('/.*secret.bin'\); upload a self-contained GLB"):
        read_upload("face.gltf", gltf, LIMITS)
