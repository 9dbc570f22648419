"""BU-3DFE and BU-4DFE: the VRML and BND readers (polygons, texture seams, colours,
formatting variants, malformed files), the ``bu3dfe`` and ``bu4dfe`` dataset plugins, and
the synthetic dataset written in their layouts."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from affectkit.cli import main
from affectkit.data.mesh_formats import load_mesh
from affectkit.errors import DatasetError, MeshError, PluginError
from affectkit.registry import registry
from affectkit_plugins.bu3dfe import BU3DFEDataset, parse_name
from affectkit_plugins.bu4dfe import BU4DFEDataset, expression_of
from affectkit_plugins.synthetic import SyntheticDataset, write_synthetic
from affectkit_plugins.vrml import parse_wrl, read_bnd, read_wrl

SIX = ("anger", "disgust", "fear", "happiness", "sadness", "surprise")

# ---------------------------------------------------------------------------------------
# A VRML writer for tests, independent of affectkit.vrml, with formatting knobs
# ---------------------------------------------------------------------------------------

#: a unit square (quad) beside a pentagon and a triangle: 7 points
POINTS = np.array(
    [[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0], [2, 0, 0], [2, 1, 0], [1.5, 1.5, 0.5]], dtype=float
)
POLYGONS = [[0, 1, 2, 3], [1, 4, 5, 6, 2], [3, 2, 6]]
#: the fan triangulation of POLYGONS
TRIANGLES = [[0, 1, 2], [0, 2, 3], [1, 4, 5], [1, 5, 6], [1, 6, 2], [3, 2, 6]]


def indices(polygons, item_sep: str = ", ", poly_sep: str = ",\n      ", close_last: bool = True) -> str:
    parts = [item_sep.join(str(i) for i in list(p) + [-1]) for p in polygons]
    if not close_last:
        parts[-1] = item_sep.join(str(i) for i in polygons[-1])
    return poly_sep.join(parts)


def wrl(
    points=POINTS,
    polygons=POLYGONS,
    *,
    url: str | None = None,
    uv=None,
    uv_polygons=None,
    colors=None,
    color_index=None,
    color_per_vertex: bool | None = None,
    point_row_sep: str = ",\n      ",
    item_sep: str = ", ",
    poly_sep: str = ",\n      ",
    close_last: bool = True,
    viewpoint: bool = True,
) -> str:
    """VRML 2.0 text shaped like a BU-3DFE scan."""
    lines = ["#VRML V2.0 utf8", "", "# a test scan", "Shape {", "  appearance Appearance {"]
    if url is not None:
        lines.append(f'    texture ImageTexture {{ url "{url}" }}')
    lines += ["  }", "  geometry DEF FaceSet IndexedFaceSet {", "    ccw TRUE", "    coord DEF Points Coordinate {", "      point ["]
    lines += ["      " + point_row_sep.join(" ".join(f"{v:g}" for v in row) for row in np.asarray(points)), "      ]", "    }"]
    lines += ["    coordIndex [", "      " + indices(polygons, item_sep, poly_sep, close_last), "    ]"]
    if uv is not None:
        lines += ["    texCoord TextureCoordinate {", "      point [", "      " + ",\n      ".join(f"{u:g} {v:g}" for u, v in uv), "      ]", "    }"]
        if uv_polygons is not None:
            lines += ["    texCoordIndex [", "      " + indices(uv_polygons, item_sep, poly_sep, close_last), "    ]"]
    if colors is not None:
        lines += ["    color Color { color [ " + ", ".join(" ".join(f"{c:g}" for c in row) for row in colors) + " ] }"]
        if color_per_vertex is not None:
            lines.append(f"    colorPerVertex {'TRUE' if color_per_vertex else 'FALSE'}")
        if color_index is not None:
            lines.append("    colorIndex [ " + " ".join(str(i) for i in color_index) + " ]")
    lines += ["  }", "}"]
    if viewpoint:
        lines.append('DEF Tricorder_Camera_Front Viewpoint { position 0 0 500 description "Front [camera]" }')
    return "\n".join(lines) + "\n"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def triangles(mesh) -> set[tuple[float, ...]]:
    """Faces as sets of corner positions (independent of vertex numbering and rotation)."""
    out = set()
    for face in mesh.faces:
        corners = [tuple(np.round(mesh.vertices[i], 5)) for i in face]
        k = corners.index(min(corners))
        out.add(tuple(corners[k:] + corners[:k]))
    return out


def expected_triangles(points=POINTS, tris=TRIANGLES) -> set[tuple[float, ...]]:
    class M:
        vertices = np.asarray(points)
        faces = np.asarray(tris)

    return triangles(M)


# ---------------------------------------------------------------------------------------
# VRML geometry and formatting
# ---------------------------------------------------------------------------------------


def test_quads_and_pentagons_are_fan_triangulated(tmp_path):
    mesh = read_wrl(write(tmp_path / "F0001_AN01WH_F3D.wrl", wrl()))
    assert mesh.vertices.shape == (7, 3) and np.allclose(mesh.vertices, POINTS)
    assert mesh.faces.tolist() == TRIANGLES
    assert mesh.source == str(tmp_path / "F0001_AN01WH_F3D.wrl")
    assert mesh.uv is None and mesh.texture is None and mesh.colors is None
    assert mesh.metadata["format"] == "vrml"


@pytest.mark.parametrize(
    "layout",
    [
        {"point_row_sep": ", ", "item_sep": ", ", "poly_sep": ", "},  # all on one line
        {"point_row_sep": " ", "item_sep": " ", "poly_sep": " "},  # no commas at all
        {"point_row_sep": "\n\t", "item_sep": "\t", "poly_sep": "\n"},  # tabs and bare line breaks
        {"point_row_sep": " ,\n", "item_sep": " ,", "poly_sep": ",,\n"},  # stray spaces, doubled commas
        {"close_last": False},  # the last polygon without its -1
        {"viewpoint": False},
    ],
)
def test_formatting_variants_give_the_same_mesh(tmp_path, layout):
    mesh = read_wrl(write(tmp_path / "scan.wrl", wrl(**layout)))
    assert np.allclose(mesh.vertices, POINTS) and mesh.faces.tolist() == TRIANGLES


def test_crlf_comments_exponents_and_signs(tmp_path):
    text = wrl().replace("0.5", "+5e-1").replace("1.5", "15E-1")
    text = text.replace("coordIndex [", "coordIndex [ # polygons [ follow ] {\n")
    text = text.replace("      point [", "      point [ # x y z, one per line")
    path = tmp_path / "scan.wrl"
    path.write_bytes(text.replace("\n", "\r\n").encode())
    mesh = read_wrl(path)
    assert np.allclose(mesh.vertices, POINTS) and mesh.faces.tolist() == TRIANGLES


def test_other_nodes_before_and_after_and_vrml1_spellings():
    text = (
        "#VRML V1.0 ascii\nSeparator {\n DEF Cam PerspectiveCamera { position 0 0 10 }\n"
        "Coordinate3 { point [ 0 0 0, 1 0 0, 1 1 0, 0 1 0 ] }\n"
        "TextureCoordinate2 { point [ 0 0, 1 0, 1 1, 0 1 ] }\n"
        "IndexedFaceSet { coordIndex [ 0, 1, 2, 3, -1 ] textureCoordIndex [ 0, 1, 2, 3, -1 ] }\n"
        "DEF Light DirectionalLight { direction 0 0 -1 }\n}\n"
    )
    mesh = parse_wrl(text, "v1.wrl")
    assert mesh.faces.tolist() == [[0, 1, 2], [0, 2, 3]]


def test_several_shapes_are_merged():
    one = "Shape { geometry IndexedFaceSet { coord Coordinate { point [ 0 0 0, 1 0 0, 0 1 0 ] } coordIndex [ 0 1 2 -1 ] } }\n"
    two = "Shape { geometry IndexedFaceSet { coord Coordinate { point [ 5 0 0, 6 0 0, 5 1 0, 6 1 0 ] } coordIndex [ 0 1 3 2 -1 ] } }\n"
    mesh = parse_wrl("#VRML V2.0 utf8\n" + one + two, "two.wrl")
    assert len(mesh.vertices) == 7
    assert mesh.faces.tolist() == [[0, 1, 2], [3, 4, 6], [3, 6, 5]]


def test_random_polygon_soups_match_a_reference_triangulation():
    rng = np.random.default_rng(7)
    for _ in range(20):
        points = rng.normal(size=(int(rng.integers(3, 40)), 3))
        polygons = [list(rng.integers(0, len(points), size=int(rng.integers(3, 8)))) for _ in range(int(rng.integers(1, 30)))]
        reference = [[p[0], p[k], p[k + 1]] for p in polygons for k in range(1, len(p) - 1)]
        mesh = parse_wrl(wrl(points, polygons, point_row_sep=", ", item_sep=" "), "soup.wrl")
        assert mesh.faces.tolist() == reference
        assert np.allclose(mesh.vertices, points, atol=1e-5)


def test_degenerate_polygons_are_skipped_and_counted():
    mesh = parse_wrl(wrl(polygons=POLYGONS + [[4, 5]], close_last=True).replace("-1,\n      -1", "-1, -1, -1"), "d.wrl")
    assert mesh.faces.tolist() == TRIANGLES and mesh.metadata["degenerate_polygons"] == 1


def test_load_mesh_reads_wrl_through_the_registered_reader(tmp_path):
    path = write(tmp_path / "Scan.WRL", wrl())
    mesh = load_mesh(path)
    assert mesh.faces.tolist() == TRIANGLES


# ---------------------------------------------------------------------------------------
# Texture coordinates and colours
# ---------------------------------------------------------------------------------------

UV = [[0.0, 0.0], [0.5, 0.0], [0.5, 0.5], [0.0, 0.5], [1.0, 0.0], [1.0, 0.5], [0.8, 0.9], [0.9, 0.9]]


def texture(path: Path, size=(4, 6)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = np.zeros((*size, 3), np.uint8)
    image[..., 0] = 200
    Image.fromarray(image).save(path)
    return path


def corner_uvs(mesh) -> dict[tuple, set]:
    """position of each face corner -> the set of uvs it is drawn with."""
    out: dict[tuple, set] = {}
    for face in mesh.faces:
        for i in face:
            out.setdefault(tuple(np.round(mesh.vertices[i].astype(float), 5)), set()).add(tuple(np.round(mesh.uv[i].astype(float), 5)))
    return out


def test_texture_coordinates_per_corner_split_seam_vertices(tmp_path):
    texture(tmp_path / "F0001_AN01WH_F2D.bmp")
    # vertex 2 is drawn with uv 2 in the quad but uv 7 in the pentagon: a seam
    uv_polygons = [[0, 1, 2, 3], [1, 4, 5, 6, 7], [3, 2, 6]]
    mesh = read_wrl(write(tmp_path / "F0001_AN01WH_F3D.wrl", wrl(url="F0001_AN01WH_F2D.bmp", uv=UV, uv_polygons=uv_polygons)))
    assert mesh.texture.shape == (4, 6, 3) and mesh.texture.dtype == np.uint8
    assert len(mesh.vertices) == 8  # one copy of vertex 2, appended
    assert np.allclose(mesh.vertices[:7], POINTS) and np.allclose(mesh.vertices[7], POINTS[2])
    assert triangles(mesh) == expected_triangles()
    # every corner keeps the texture coordinate the file gave it
    expected: dict[tuple, set] = {}
    for poly, uvp in zip(POLYGONS, uv_polygons):
        for v, t in zip(poly, uvp):
            expected.setdefault(tuple(np.round(POINTS[v], 5)), set()).add(tuple(np.round(UV[t], 5)))
    assert corner_uvs(mesh) == expected
    assert mesh.metadata["texture_file"] == str(tmp_path / "F0001_AN01WH_F2D.bmp")


def test_consistent_texture_coordinates_keep_vertices(tmp_path):
    texture(tmp_path / "t.png")
    mesh = read_wrl(write(tmp_path / "a.wrl", wrl(url="t.png", uv=UV[:7], uv_polygons=POLYGONS)))
    assert len(mesh.vertices) == 7 and mesh.faces.tolist() == TRIANGLES
    assert np.allclose(mesh.uv, UV[:7])
    # no texCoordIndex: texture coordinates follow coordIndex (VRML rule)
    mesh = read_wrl(write(tmp_path / "b.wrl", wrl(url="t.png", uv=UV[:7])))
    assert len(mesh.vertices) == 7 and np.allclose(mesh.uv, UV[:7])


@pytest.mark.parametrize(
    ("url", "image"),
    [
        ("C:\\scans\\F0001\\F0001_AN01WH_F2D.bmp", "F0001_AN01WH_F2D.bmp"),  # a path from the scanning PC
        ("f0001_an01wh_f2d.BMP", "F0001_AN01WH_F2D.bmp"),  # another case
        ("F0001_AN01WH_F2D.bmp", "F0001_AN01WH_F2D.png"),  # converted to PNG
        ("textures/skin#1.png", "textures/skin#1.png"),  # a '#' in a string is not a comment
    ],
)
def test_texture_found_by_base_name_case_and_extension(tmp_path, url, image):
    texture(tmp_path / image)
    mesh = read_wrl(write(tmp_path / "scan.wrl", wrl(url=url, uv=UV[:7], uv_polygons=POLYGONS)))
    assert mesh.texture is not None and mesh.uv is not None


def test_missing_texture_file_gives_a_mesh_without_texture(tmp_path):
    mesh = read_wrl(write(tmp_path / "scan.wrl", wrl(url="F0001_AN01WH_F2D.bmp", uv=UV[:7], uv_polygons=POLYGONS)))
    assert mesh.uv is None and mesh.texture is None
    assert mesh.metadata["texture_missing"] == "F0001_AN01WH_F2D.bmp"
    assert mesh.faces.tolist() == TRIANGLES


def test_damaged_texture_image_names_it(tmp_path):
    (tmp_path / "t.png").write_bytes(b"not a png")
    with pytest.raises(MeshError, match=r"scan\.wrl: texture image .*t\.png cannot be read"):
        read_wrl(write(tmp_path / "scan.wrl", wrl(url="t.png", uv=UV[:7], uv_polygons=POLYGONS)))


COLORS = np.linspace(0, 1, 21).reshape(7, 3)


def test_per_vertex_colours():
    mesh = parse_wrl(wrl(colors=COLORS), "c.wrl")
    assert np.allclose(mesh.colors, COLORS, atol=1e-6) and len(mesh.vertices) == 7
    bytes_ = parse_wrl(wrl(colors=COLORS * 255, color_per_vertex=True), "c.wrl")  # 0..255 tolerated
    assert np.allclose(bytes_.colors, COLORS, atol=1e-6)


def test_indexed_and_per_face_colours():
    palette = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1]], dtype=float)
    # colorIndex per corner: the quad red, the pentagon green, the triangle blue
    index = [0, 0, 0, 0, -1, 1, 1, 1, 1, 1, -1, 2, 2, 2, -1]
    mesh = parse_wrl(wrl(colors=palette, color_index=index), "ci.wrl")
    per_face = mesh.colors[mesh.faces].mean(axis=1)
    assert np.allclose(per_face, palette[[0, 0, 1, 1, 1, 2]])
    # colorPerVertex FALSE: one colour per polygon
    mesh = parse_wrl(wrl(colors=palette, color_per_vertex=False), "pf.wrl")
    assert np.allclose(mesh.colors[mesh.faces].mean(axis=1), palette[[0, 0, 1, 1, 1, 2]])
    assert np.isclose(mesh.colors[mesh.faces].std(axis=1), 0).all()


# ---------------------------------------------------------------------------------------
# Malformed VRML: one MeshError naming the file, the block and the line
# ---------------------------------------------------------------------------------------


def line_of(text: str, needle: str) -> int:
    return text[: text.index(needle)].count("\n") + 1


def test_truncated_files(tmp_path):
    text = wrl()
    points_line = line_of(text, "point [")
    index_line = line_of(text, "coordIndex [")
    cases = {
        text[: text.index("1 1 0")]: rf"coord point block opened at line {points_line} is never closed: truncated",
        text[: text.index("3, 2, 6")]: rf"coordIndex block opened at line {index_line} is never closed: truncated",
        text[: text.index("  }\n}")]: r"file ends \(line \d+\) with 2 unclosed '\{': truncated",
    }
    for cut, message in cases.items():
        path = write(tmp_path / "F0001_AN01WH_F3D.wrl", cut)
        with pytest.raises(MeshError, match=re.escape(str(path)) + ": " + message):
            read_wrl(path)


def test_unclosed_bracket_before_the_next_node(tmp_path):
    text = wrl().replace("      ]\n    }\n    coordIndex", "    }\n    coordIndex", 1)  # point [ ... } without ]
    path = write(tmp_path / "scan.wrl", text)
    with pytest.raises(MeshError, match=rf"scan\.wrl: coord point block opened at line {line_of(text, 'point [')} is not closed with '\]' before '\}}' at line \d+"):
        read_wrl(path)


def test_coordinates_not_a_multiple_of_three(tmp_path):
    text = wrl().replace("1.5 1.5 0.5", "1.5 1.5")
    with pytest.raises(MeshError, match=rf"bad\.wrl: coord point block \(opened at line {line_of(text, 'point [')}\) holds 20 numbers, not a multiple of 3"):
        read_wrl(write(tmp_path / "bad.wrl", text))


def test_index_out_of_range_names_polygon_line_and_range(tmp_path):
    text = wrl(polygons=[[0, 1, 2, 3], [1, 4, 9, 6, 2], [3, 2, 6]], poly_sep=",\n      ")
    with pytest.raises(MeshError, match=rf"bad\.wrl: coordIndex \(polygon 1, value 7, line {line_of(text, '1, 4, 9')}\) refers to vertex 9; allowed 0\.\.6"):
        read_wrl(write(tmp_path / "bad.wrl", text))
    text = wrl(polygons=[[0, 1, -3]])
    with pytest.raises(MeshError, match=r"coordIndex \(polygon 0, value 2, line \d+\) refers to vertex -3; allowed 0\.\.6"):
        parse_wrl(text, "neg.wrl")


def test_texture_index_out_of_range(tmp_path):
    texture(tmp_path / "t.png")
    text = wrl(url="t.png", uv=UV, uv_polygons=[[0, 1, 2, 3], [1, 4, 5, 6, 8], [3, 2, 6]])
    with pytest.raises(MeshError, match=r"texCoordIndex \(polygon 1, value 9, line \d+\) refers to texture coordinate 8; allowed 0\.\.7"):
        read_wrl(write(tmp_path / "bad.wrl", text))
    text = wrl(url="t.png", uv=UV, uv_polygons=[[0, 1, 2, 3], [1, 4, 5, 6, 7, 2], [3, 2, 6]])
    with pytest.raises(MeshError, match=r"texCoordIndex .* has 16 values but coordIndex has 15"):
        read_wrl(write(tmp_path / "bad.wrl", text))


@pytest.mark.parametrize(
    ("old", "new", "block", "token"),
    [
        ("1 1 0", "1 one 0", "coord point", "'one'"),
        ("1 1 0", "1 1,0 NaNx", "coord point", "'NaNx'"),
        ("1, 4, 5, 6, 2", "1, 4, 5.5, 6, 2", "coordIndex", "'5.5'"),
        ("1, 4, 5, 6, 2", "1, 4, five, 6, 2", "coordIndex", "'five'"),
    ],
)
def test_non_numeric_tokens_name_block_and_line(tmp_path, old, new, block, token):
    text = wrl().replace(old, new, 1)
    with pytest.raises(MeshError, match=rf"bad\.wrl: {block} block \(opened at line \d+\), value \d+ at line {line_of(text, new)}: {re.escape(token)} is not an? "):
        read_wrl(write(tmp_path / "bad.wrl", text))


def test_files_without_faces(tmp_path):
    with pytest.raises(MeshError, match=r"a\.wrl: coordIndex holds no polygon with 3 or more corners"):
        parse_wrl(wrl(polygons=[[0, 1], [2, 3]]), "a.wrl")
    with pytest.raises(MeshError, match=r"b\.wrl: points \(line \d+\) but no 'coordIndex"):
        parse_wrl(wrl().replace("coordIndex", "normalIndex"), "b.wrl")
    with pytest.raises(MeshError, match=r"c\.wrl: no 'coord Coordinate .* not a VRML mesh"):
        parse_wrl("#VRML V2.0 utf8\nViewpoint { position 0 0 1 }\n", "c.wrl")
    with pytest.raises(MeshError, match=r"d\.wrl: cannot read file"):
        read_wrl(tmp_path / "d.wrl")


# ---------------------------------------------------------------------------------------
# BND landmarks
# ---------------------------------------------------------------------------------------


def test_bnd_with_header_blank_lines_and_tabs(tmp_path):
    path = write(tmp_path / "F0001_AN01WH_F3D.bnd", "landmarks of F0001\n\n17\t\t1.5\t\t-2.0\t\t30.25\n  230  4 5 6\n\n")
    assert read_bnd(path).tolist() == [[1.5, -2.0, 30.25], [4, 5, 6]]
    assert read_bnd(write(tmp_path / "b.bnd", "1 2 3\n4,5,6\n")).tolist() == [[1, 2, 3], [4, 5, 6]]


def test_bad_bnd_files(tmp_path):
    with pytest.raises(MeshError, match=r"a\.bnd: line 2: 'x' is not a number"):
        read_bnd(write(tmp_path / "a.bnd", "0 1 2 3\n1 2 x 4\n"))
    with pytest.raises(MeshError, match=r"b\.bnd: line 1: 5 numbers"):
        read_bnd(write(tmp_path / "b.bnd", "0 1 2 3 4\n"))
    with pytest.raises(MeshError, match=r"c\.bnd: no landmark lines"):
        read_bnd(write(tmp_path / "c.bnd", "header only\n"))


# ---------------------------------------------------------------------------------------
# The bu3dfe dataset
# ---------------------------------------------------------------------------------------


def bu3dfe(**options) -> BU3DFEDataset:
    return registry().create("dataset", "bu3dfe", options)


def bu3dfe_tree(root: Path) -> Path:
    """Two subjects: F0001 in its own folder (with landmarks), M0002 flat in the root."""
    for stem in ("F0001_NE00WH_F3D", "F0001_AN03WH_F3D", "F0001_AN04WH_F3D", "F0001_HA04WH_F3D", "F0001_HA01WH_F3D",
                 "F0001_HA04WH_RAW"):
        write(root / "F0001" / f"{stem}.wrl", wrl())
    write(root / "F0001" / "F0001_HA04WH_F3D.bnd", "0 0 0 0\n1 1 0 0\n2 1 1 0\n")
    for stem in ("M0002_SU04BL_F3D", "M0002_SA03BL_F3D", "M0002_NE00BL_F3D"):
        write(root / f"{stem}.WRL", wrl())
    write(root / "F0001" / "F0001_HA04WH_F2D.bmp", "not read")
    write(root / "README.txt", "BU-3DFE")
    return root


def test_parse_name():
    assert parse_name("F0001_AN01WH_F3D") == {
        "subject": "F0001", "sex": "F", "code": "AN", "label": "anger", "intensity": 1,
        "ethnicity_code": "WH", "ethnicity": "white", "variant": "F3D",
    }
    assert parse_name("m0044_ne00ae_raw")["label"] == "neutral"
    for bad in ("F0001_AN00WH_F3D", "F0001_NE01WH_F3D", "F0001_AN05WH_F3D", "F0001_XX01WH_F3D", "F001_AN01WH_F3D", "F0001_AN01WH"):
        assert parse_name(bad) is None, bad


def test_bu3dfe_lists_samples_from_nested_and_flat_folders(tmp_path):
    ds = bu3dfe(root=str(bu3dfe_tree(tmp_path)))
    assert ds.labels == SIX
    samples = ds.samples()
    assert [s.key for s in samples] == ["F0001_AN03WH_F3D", "F0001_AN04WH_F3D", "F0001_HA04WH_F3D", "M0002_SA03BL_F3D", "M0002_SU04BL_F3D"]
    s = samples[2]
    assert (s.label, s.subject, s.is_sequence) == ("happiness", "F0001", False)
    assert s.attributes == {"sex": "F", "ethnicity": "white", "intensity": 4, "variant": "F3D"}  # one ethnicity, readable
    assert samples[-1].attributes["ethnicity"] == "black" and samples[-1].attributes["sex"] == "M"
    assert samples == bu3dfe(root=str(tmp_path)).samples()  # deterministic


def test_bu3dfe_options_filter(tmp_path):
    root = str(bu3dfe_tree(tmp_path))
    with_neutral = bu3dfe(root=root, include_neutral=True, intensities=[1, 2, 3, 4])
    assert with_neutral.labels == SIX + ("neutral",)
    assert len(with_neutral.samples()) == 8
    neutral = [s for s in with_neutral.samples() if s.label == "neutral"]
    assert [s.attributes["intensity"] for s in neutral] == [0, 0]
    assert [s.key for s in bu3dfe(root=root, intensities=[4], subjects=["f1"]).samples()] == ["F0001_AN04WH_F3D", "F0001_HA04WH_F3D"]
    raw = bu3dfe(root=root, variant="RAW").samples()
    assert [s.key for s in raw] == ["F0001_HA04WH_RAW"] and raw[0].attributes["variant"] == "RAW"


def test_bu3dfe_loads_mesh_with_landmarks_when_present(tmp_path):
    ds = bu3dfe(root=str(bu3dfe_tree(tmp_path)))
    by_key = {s.key: s for s in ds.samples()}
    mesh = ds.load(by_key["F0001_HA04WH_F3D"])
    assert mesh.faces.tolist() == TRIANGLES
    assert mesh.landmarks.tolist() == [[0, 0, 0], [1, 0, 0], [1, 1, 0]]
    assert mesh.metadata["label"] == "happiness" and mesh.metadata["subject"] == "F0001"
    assert mesh.metadata["intensity"] == 4
    plain = ds.load(by_key["M0002_SU04BL_F3D"])  # no .bnd beside it: no landmarks, no error
    assert plain.landmarks is None and plain.source.endswith("M0002_SU04BL_F3D.WRL")
    assert ds.path(by_key["M0002_SU04BL_F3D"]).name == "M0002_SU04BL_F3D.WRL"


def test_bu3dfe_warns_about_names_it_cannot_parse(tmp_path):
    root = bu3dfe_tree(tmp_path)
    write(root / "F0001" / "F0001_AN01WH_F3D_copy.wrl", wrl())
    write(root / "extra" / "face.wrl", wrl())
    with pytest.warns(UserWarning, match=r"bu3dfe: skipped 2 \.wrl file\(s\) .*F0001_AN01WH_F3D_copy\.wrl.*extra/face\.wrl"):
        samples = bu3dfe(root=str(root)).samples()
    assert len(samples) == 5


def test_bu3dfe_errors(tmp_path):
    with pytest.raises(DatasetError, match=r"bu3dfe: root '.*nowhere' does not exist"):
        bu3dfe(root=str(tmp_path / "nowhere"))
    write(tmp_path / "file.txt", "x")
    with pytest.raises(DatasetError, match=r"bu3dfe: root '.*file\.txt' is not a folder"):
        bu3dfe(root=str(tmp_path / "file.txt"))
    with pytest.raises(PluginError, match=r"root: Field required"):
        registry().create("dataset", "bu3dfe", {})
    with pytest.raises(PluginError, match=r"subjects"):
        bu3dfe(root=str(tmp_path), subjects=["S001"])
    with pytest.raises(PluginError, match=r"variant"):
        bu3dfe(root=str(tmp_path), variant="F2D")
    with pytest.raises(PluginError, match=r"intensity"):
        bu3dfe(root=str(tmp_path), intensity=[4])
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DatasetError, match=r"bu3dfe: no BU-3DFE scans .* under '.*empty'"):
        bu3dfe(root=str(empty)).samples()
    root = bu3dfe_tree(tmp_path / "data")
    with pytest.raises(DatasetError, match=r"subject\(s\) M0009 not found .*found: F0001, M0002"):
        bu3dfe(root=str(root), subjects=["M0009"]).samples()
    with pytest.raises(DatasetError, match=r"none of the 9 scans"):
        bu3dfe(root=str(root), intensities=[2]).samples()
    write(root / "copy" / "M0002_SU04BL_F3D.wrl", wrl())
    with pytest.raises(DatasetError, match=r"scan M0002_SU04BL_F3D appears twice"):
        bu3dfe(root=str(root)).samples()


def test_bu3dfe_broken_scan_raises_mesh_error_naming_it(tmp_path):
    root = tmp_path / "data"
    write(root / "F0001" / "F0001_AN04WH_F3D.wrl", wrl()[:200])
    ds = bu3dfe(root=str(root), intensities=[4])
    with pytest.raises(MeshError, match=r"F0001_AN04WH_F3D\.wrl: .*truncated"):
        ds.load(ds.samples()[0])


# ---------------------------------------------------------------------------------------
# The bu4dfe dataset
# ---------------------------------------------------------------------------------------


def bu4dfe(**options) -> BU4DFEDataset:
    return registry().create("dataset", "bu4dfe", options)


def moved(offset: float) -> str:
    return wrl(POINTS + offset)


def bu4dfe_tree(root: Path) -> Path:
    """F001/Happy with unpadded frame numbers (0..11), M002/SU with padded ones, landmarks on one frame."""
    for frame in range(12):
        write(root / "F001" / "Happy" / f"{frame}.wrl", moved(frame))
    for frame in range(3):
        write(root / "M002" / "SU" / f"frame_{frame:04d}.wrl", moved(10 * frame))
    write(root / "M002" / "SU" / "frame_0001.bnd", "0 1 2 3\n")
    write(root / "F001" / "Happy" / "0.bmp", "texture, not read")
    return root


def test_expression_folder_names():
    assert [expression_of(n) for n in ("Angry", "Disgust", "Fear", "Happy", "Sad", "Surprise")] == list(SIX)
    assert expression_of("HA") == "happiness" and expression_of("F001_surprise") == "surprise"
    assert expression_of("Neutral") is None and expression_of("misc") is None


def test_bu4dfe_lists_sequences(tmp_path):
    ds = bu4dfe(root=str(bu4dfe_tree(tmp_path)))
    assert ds.labels == SIX
    samples = ds.samples()
    assert [(s.key, s.label, s.subject, s.is_sequence) for s in samples] == [
        ("F001_HA", "happiness", "F001", True),
        ("M002_SU", "surprise", "M002", True),
    ]
    assert samples[0].attributes == {"sex": "F", "frames": 12} and samples[1].attributes["sex"] == "M"
    assert [p.name for p in ds.frame_paths(samples[0])][:4] == ["0.wrl", "1.wrl", "2.wrl", "3.wrl"]  # numeric order
    assert [s.key for s in bu4dfe(root=str(tmp_path), subjects=["m2"]).samples()] == ["M002_SU"]


def test_bu4dfe_loads_frames_in_order_with_landmarks(tmp_path):
    ds = bu4dfe(root=str(bu4dfe_tree(tmp_path)))
    sequence = ds.load(ds.samples()[1])
    assert len(sequence) == 3 and sequence.fps == 25.0
    assert [f.vertices[0, 0] for f in sequence.frames] == [0.0, 10.0, 20.0]
    assert [f.metadata["frame"] for f in sequence.frames] == [0, 1, 2]
    assert sequence.frames[1].landmarks.tolist() == [[1, 2, 3]] and sequence.frames[0].landmarks is None
    assert sequence.metadata["label"] == "surprise" and sequence.metadata["subject"] == "M002"


def test_bu4dfe_max_frames_reads_only_the_chosen_frames(tmp_path):
    root = bu4dfe_tree(tmp_path)
    write(root / "F001" / "Happy" / "1.wrl", "broken")  # not among the chosen frames: never read
    ds = bu4dfe(root=str(root), max_frames=4)
    sequence = ds.load(ds.samples()[0])
    assert [f.metadata["frame"] for f in sequence.frames] == [0, 4, 7, 11]
    assert [f.vertices[0, 0] for f in sequence.frames] == [0.0, 4.0, 7.0, 11.0]
    assert sequence.metadata["frame_indices"] == [0, 4, 7, 11]
    with pytest.raises(MeshError, match=r"Happy/1\.wrl"):
        bu4dfe(root=str(root)).load(ds.samples()[0])


def test_bu4dfe_warnings_and_errors(tmp_path):
    root = bu4dfe_tree(tmp_path / "data")
    write(root / "F001" / "Misc" / "000.wrl", wrl())
    write(root / "loose" / "Happy" / "000.wrl", wrl())
    write(root / "F001" / "Happy" / "poster.wrl", wrl())
    with pytest.warns(UserWarning) as caught:
        samples = bu4dfe(root=str(root)).samples()
    messages = " ".join(str(w.message) for w in caught)
    assert "skipped 2 folder(s)" in messages and "F001/Misc" in messages and "loose/Happy" in messages
    assert "without a frame number: F001/Happy/poster.wrl" in messages
    assert len(samples) == 2
    with pytest.raises(DatasetError, match=r"bu4dfe: root '.*nowhere' does not exist"):
        bu4dfe(root=str(tmp_path / "nowhere"))
    with pytest.raises(PluginError, match=r"max_frames"):
        bu4dfe(root=str(root), max_frames=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(DatasetError, match=r"subject\(s\) F009 not found"):
            bu4dfe(root=str(root), subjects=["F009"]).samples()
        write(root / "F001" / "HA" / "000.wrl", wrl())
        with pytest.raises(DatasetError, match=r"sequence F001_HA appears twice"):
            bu4dfe(root=str(root)).samples()


# ---------------------------------------------------------------------------------------
# The synthetic dataset in the BU-3DFE and BU-4DFE layouts
# ---------------------------------------------------------------------------------------


def test_synthetic_bu3dfe_layout_round_trips(tmp_path):
    options = SyntheticDataset.Options(subjects=3, intensities=[2, 4], vertices=2000, include_neutral=True, holes=0.05)
    root = write_synthetic(tmp_path / "bu3dfe", options, layout="bu3dfe")
    assert root == tmp_path / "bu3dfe"
    synthetic = SyntheticDataset(options)
    expected = synthetic.samples()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # every written name parses
        ds = bu3dfe(root=str(root), intensities=[2, 4], include_neutral=True)
        samples = ds.samples()
    assert ds.labels == synthetic.labels
    assert len(samples) == len(expected) == 3 * (6 * 2 + 1)

    def subject(s):
        return f"{s.attributes['sex']}{int(s.subject[1:]):04d}"

    assert sorted((subject(s), s.label, s.attributes["intensity"]) for s in expected) == sorted(
        (s.subject, s.label, s.attributes["intensity"]) for s in samples
    )
    assert {s.subject for s in samples} == {subject(s) for s in expected}
    read = {(s.subject, s.label, s.attributes["intensity"]): s for s in samples}
    for original in expected[:: 5]:
        mesh = ds.load(read[(subject(original), original.label, original.attributes["intensity"])])
        source = synthetic.load(original)
        assert mesh.vertices.shape == source.vertices.shape and np.array_equal(mesh.faces, source.faces)
        assert np.abs(mesh.vertices - source.vertices).max() < 1e-4
        assert np.abs(mesh.colors - source.colors).max() < 1e-4
        assert np.abs(mesh.landmarks - source.landmarks).max() < 1e-5


def test_synthetic_bu4dfe_layout_round_trips(tmp_path):
    options = SyntheticDataset.Options(subjects=2, vertices=2000, sequences=True, frames=4)
    root = write_synthetic(tmp_path / "bu4dfe", options, layout="bu4dfe")
    synthetic = SyntheticDataset(options)
    expected = synthetic.samples()
    ds = bu4dfe(root=str(root))
    samples = ds.samples()
    assert len(samples) == len(expected) == 12
    assert sorted((f"{s.attributes['sex']}{int(s.subject[1:]):03d}", s.label) for s in expected) == sorted(
        (s.subject, s.label) for s in samples
    )
    assert (root / samples[0].subject / {"anger": "Angry"}[samples[0].label] / "000.wrl").is_file()
    sequence = ds.load(samples[0])
    source = synthetic.load(next(s for s in expected if s.label == samples[0].label and s.attributes["sex"] == samples[0].subject[0]
                                 and int(s.subject[1:]) == int(samples[0].subject[1:])))
    assert len(sequence) == len(source) == 4
    for mine, theirs in zip(sequence.frames, source.frames):
        assert mine.vertices.shape == theirs.vertices.shape and np.abs(mine.vertices - theirs.vertices).max() < 1e-4


def test_synthetic_layouts_refuse_the_wrong_kind_of_sample(tmp_path):
    with pytest.raises(DatasetError, match="bu4dfe layout holds sequences"):
        write_synthetic(tmp_path, SyntheticDataset.Options(subjects=1, vertices=2000), layout="bu4dfe")
    with pytest.raises(DatasetError, match="bu3dfe layout holds static scans"):
        write_synthetic(tmp_path, SyntheticDataset.Options(subjects=1, vertices=2000, sequences=True), layout="bu3dfe")
    with pytest.raises(DatasetError, match="numbers subjects with 3 digits: at most 999 subjects, got 1000"):
        write_synthetic(tmp_path, SyntheticDataset.Options(subjects=1000, vertices=2000, sequences=True), layout="bu4dfe")
    with pytest.raises(DatasetError, match="no neutral sequences"):
        write_synthetic(tmp_path, SyntheticDataset.Options(subjects=1, vertices=2000, sequences=True, include_neutral=True), layout="bu4dfe")


def test_cli_synth_layout(tmp_path):
    result = CliRunner().invoke(
        main, ["synth", "--dataset", "synthetic", "--out", str(tmp_path / "d"), "--subjects", "2", "--intensities", "4", "--vertices", "2000", "--layout", "bu3dfe"]
    )
    assert result.exit_code == 0, result.output
    assert Path(result.output.strip()) == tmp_path / "d"
    assert len(bu3dfe(root=str(tmp_path / "d"), intensities=[4], include_neutral=True).samples()) == 2 * 7
