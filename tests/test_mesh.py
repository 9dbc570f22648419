"""Meshes: standard formats through trimesh, triangulation, and clear errors."""

from __future__ import annotations

import numpy as np
import pytest

from affectkit.data.mesh import Mesh
from affectkit.data.mesh_formats import load_mesh, save_mesh
from affectkit.errors import MeshError

QUAD_OBJ = """v 0 0 0
v 1 0 0
v 1 1 0
v 0 1 0
v 0.5 0.5 1
f 1 2 3 4
f 1 2 5
"""


def test_obj_quads_are_triangulated(tmp_path):
    path = tmp_path / "quad.obj"
    path.write_text(QUAD_OBJ)
    mesh = load_mesh(path)
    assert mesh.vertices.shape == (5, 3)
    assert mesh.faces.shape == (3, 3)
    assert mesh.source == str(path)


@pytest.mark.parametrize("suffix", [".ply", ".off", ".stl", ".glb", ".obj"])
def test_standard_formats_round_trip(tmp_path, suffix):
    import trimesh

    sphere = trimesh.creation.icosphere(subdivisions=2)
    path = tmp_path / f"sphere{suffix}"
    sphere.export(str(path))
    mesh = load_mesh(path)
    assert len(mesh.faces) == len(sphere.faces)
    assert np.allclose(mesh.vertices.min(0), sphere.vertices.min(0), atol=1e-5)
    assert np.allclose(mesh.vertices.max(0), sphere.vertices.max(0), atol=1e-5)


def test_vertex_colours_survive_ply(tmp_path):
    mesh = Mesh(np.eye(3), [[0, 1, 2]], colors=[[1, 0, 0], [0, 1, 0], [0, 0, 1]])
    loaded = load_mesh(save_mesh(mesh, tmp_path / "c.ply"))
    assert np.allclose(loaded.colors, mesh.colors, atol=1 / 255)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("v 0 0 0\nv 1 0 0\nv 0 1 0\n", "no triangle faces"),
        ("v 0 0 0\nv 1 0 nan\nv 0 1 0\nf 1 2 3\n", "vertex 1 has a NaN"),
        ("garbage \x00\x01\x02", ""),
    ],
)
def test_broken_obj_files_name_the_file(tmp_path, text, message):
    path = tmp_path / "broken.obj"
    path.write_text(text)
    with pytest.raises(MeshError, match=rf"broken.obj: .*{message}"):
        load_mesh(path)


def test_out_of_range_index_and_unknown_format(tmp_path):
    with pytest.raises(MeshError, match=r"face 0 indexes vertex \[0, 1, 7\], allowed 0..2"):
        Mesh(np.eye(3), [[0, 1, 7]], source="x.obj")
    with pytest.raises(MeshError, match=r"unsupported mesh format '.xyz'; allowed: .*\.obj"):
        load_mesh(tmp_path / "a.xyz")
    with pytest.raises(MeshError, match="no such file"):
        load_mesh(tmp_path / "missing.ply")


def test_save_mesh_writes_a_plugins_format_through_its_writer_and_names_what_it_cannot_write(tmp_path):
    face = Mesh(np.array([[0.0, 0, 0], [1, 0, 0], [0, 1, 0], [1, 1, 1]]), [[0, 1, 2], [1, 3, 2]])
    written = save_mesh(face, tmp_path / "deep" / "face.wrl")  # the vrml plugin's writer
    assert written.read_text().startswith("#VRML")
    again = load_mesh(written)
    assert np.allclose(again.vertices, face.vertices, atol=1e-5) and len(again.faces) == 2
    with pytest.raises(MeshError, match=r"face.bnt: cannot write the mesh format '.bnt' \(read only: its plugin \(built-in\) registered no writer\); writable: .*\.ply.*\.wrl"):
        save_mesh(face, tmp_path / "face.bnt")
    with pytest.raises(MeshError, match=r"face.xyz: cannot write the mesh format '.xyz' \(no plugin registered it\)"):
        save_mesh(face, tmp_path / "face.xyz")
    assert not (tmp_path / "face.bnt").exists() and not (tmp_path / "face.xyz").exists()


def ply_variants(tmp_path, mesh: Mesh) -> dict[str, object]:
    """The same coloured mesh as binary little- and big-endian and ASCII PLY (trimesh)."""
    import trimesh

    colours = (mesh.colors * 255).round().astype(np.uint8)
    loaded = trimesh.Trimesh(mesh.vertices, mesh.faces, vertex_colors=colours, process=False)
    paths = {}
    for name, encoding in (("binary", "binary"), ("ascii", "ascii")):
        paths[name] = tmp_path / f"{name}.ply"
        paths[name].write_bytes(trimesh.exchange.ply.export_ply(loaded, encoding=encoding))
    header, _, body = paths["binary"].read_bytes().partition(b"end_header\n")
    vertex_dtype = np.dtype([("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("red", "u1"), ("green", "u1"), ("blue", "u1"), ("alpha", "u1")])
    face_dtype = np.dtype([("n", "u1"), ("i", "<i4", 3)])
    vertices = np.frombuffer(body, vertex_dtype, len(mesh.vertices))
    faces = np.frombuffer(body, face_dtype, len(mesh.faces), len(mesh.vertices) * vertex_dtype.itemsize)
    paths["big-endian"] = tmp_path / "big.ply"
    paths["big-endian"].write_bytes(
        header.replace(b"binary_little_endian", b"binary_big_endian") + b"end_header\n"
        + vertices.astype(vertex_dtype.newbyteorder(">")).tobytes() + faces.astype(face_dtype.newbyteorder(">")).tobytes()
    )  # fmt: skip
    return paths


def test_the_fast_ply_reader_reads_what_trimesh_reads(tmp_path):
    from affectkit.data.mesh import read_standard_mesh
    from affectkit.data.ply import read_simple_ply

    rng = np.random.default_rng(0)
    mesh = Mesh(rng.normal(size=(50, 3)), rng.integers(0, 50, size=(80, 3)), colors=rng.random((50, 3)))
    for name, path in ply_variants(tmp_path, mesh).items():
        fast, reference = read_simple_ply(path), read_standard_mesh(path)
        assert fast is not None, name
        np.testing.assert_allclose(fast.vertices, reference.vertices, err_msg=name)
        np.testing.assert_array_equal(fast.faces, reference.faces, err_msg=name)
        np.testing.assert_allclose(fast.colors, reference.colors, atol=1e-6, err_msg=name)


def test_ply_layouts_the_fast_reader_does_not_take_go_to_trimesh_and_truncation_is_named(tmp_path):
    from affectkit.data.ply import read_simple_ply

    quads = tmp_path / "quads.ply"
    quads.write_text(
        "ply\nformat ascii 1.0\nelement vertex 4\nproperty float x\nproperty float y\nproperty float z\n"
        "element face 1\nproperty list uchar int vertex_indices\nend_header\n0 0 0\n1 0 0\n1 1 0\n0 1 0\n4 0 1 2 3\n"
    )
    assert read_simple_ply(quads) is None
    assert load_mesh(quads).faces.shape == (2, 3)  # trimesh triangulated it
    mesh = Mesh(np.eye(3), np.array([[0, 1, 2]]), colors=np.ones((3, 3)))
    binary = ply_variants(tmp_path, mesh)["binary"]
    binary.write_bytes(binary.read_bytes()[:-5])
    with pytest.raises(MeshError, match="binary.ply: the file ends before its 3 vertices and 1 faces"):
        load_mesh(binary)


def test_a_gltf_scene_of_several_meshes_is_refused_and_textures_are_capped(tmp_path, monkeypatch):
    import trimesh
    from PIL import Image

    import affectkit.data.mesh as mesh_module

    box, ball = trimesh.creation.box(), trimesh.creation.icosphere()
    ball.apply_translation([3, 0, 0])
    trimesh.Scene([box, ball]).export(tmp_path / "two.glb")
    with pytest.raises(MeshError, match="two.glb: the scene holds 2 meshes; affectkit reads one face"):
        load_mesh(tmp_path / "two.glb")
    box.visual = trimesh.visual.TextureVisuals(uv=np.random.default_rng(0).random((len(box.vertices), 2)), image=Image.new("RGB", (64, 64)))
    box.export(tmp_path / "textured.glb")
    assert load_mesh(tmp_path / "textured.glb").texture.shape == (64, 64, 3)
    monkeypatch.setattr(mesh_module, "MAX_TEXTURE_PIXELS", 100)
    with pytest.raises(MeshError, match="a 64x64 texture; affectkit reads textures of at most 100 pixels"):
        load_mesh(tmp_path / "textured.glb")


def test_a_ply_property_line_cut_short_is_a_mesh_error(tmp_path):
    """``property`` with no type or name made the fast PLY reader index an empty list
    (found by ``make fuzz``); such layouts go to trimesh, which refuses them."""
    path = tmp_path / "cut.ply"
    path.write_bytes(b"ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\nproperty float y\nproperty \nelement face 1\n"
                     b"property list uchar int vertex_indices\nend_header\n0 0 0\n1 0 0\n0 1 0\n3 0 1 2\n")  # fmt: skip
    with pytest.raises(MeshError, match="cut.ply"):
        load_mesh(path)


def test_copies_of_one_triangle_are_read_once(tmp_path):
    """20,000 copies of a face cost 20 to 40 s to render and change nothing in the image."""
    vertices = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [1, 1, 0]], dtype=float)
    path = save_mesh(Mesh(vertices, np.array([[0, 1, 2]] * 20000 + [[1, 3, 2]])), tmp_path / "copies.ply")
    assert load_mesh(path).faces.tolist() == [[0, 1, 2], [1, 3, 2]]


def test_unique_rows_is_numpys_unique_over_rows():
    """The fast path for triangles, edges and grid cells gives np.unique(axis=0)'s rows,
    first indices, inverse and counts exactly (generated scans and deduplicated faces do
    not change with it)."""
    from affectkit.data.mesh import unique_rows

    rng = np.random.default_rng(0)
    for rows in (rng.integers(0, 50, size=(2000, 3)), rng.integers(0, 3, size=(500, 2)), np.zeros((0, 3), dtype=np.int64)):
        expected = np.unique(rows, axis=0, return_index=True, return_inverse=True, return_counts=True)
        got = unique_rows(rows, return_index=True, return_inverse=True, return_counts=True)
        for a, b in zip(got, expected, strict=True):
            assert np.array_equal(a, b.reshape(a.shape))
        assert np.array_equal(unique_rows(rows), np.unique(rows, axis=0))
