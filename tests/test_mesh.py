"""Meshes: standard formats through trimesh, triangulation, and clear errors."""

from __future__ import annotations

import numpy as np
import pytest

from affectkit.errors import MeshError
from affectkit.mesh import Mesh, save_mesh
from affectkit.mesh_formats import load_mesh

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
