"""Bosphorus: the BNT and LM3 readers (geometry, background, row flip, texture, malformed
files) and the ``bosphorus`` dataset plugin."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from dataset_files import bosphorus_tree, grid_planes, sphere_cap, write_bnt, write_lm3
from PIL import Image

from affectkit.data.mesh import Mesh
from affectkit.data.mesh_formats import load_mesh
from affectkit.errors import DatasetError, MeshError, PluginError
from affectkit.registry import registry
from affectkit_plugins.bnt import read_bnt, read_bnt_grid, read_lm3
from affectkit_plugins.bosphorus import BosphorusDataset, au_label, parse_name

SIX = ("anger", "disgust", "fear", "happiness", "sadness", "surprise")


def dataset(**options) -> BosphorusDataset:
    return registry().create("dataset", "bosphorus", options)


def reference_triangles(valid: np.ndarray) -> int:
    """Triangles of the 2x2-block rule, counted the slow obvious way."""
    total = 0
    for r in range(valid.shape[0] - 1):
        for c in range(valid.shape[1] - 1):
            n = int(valid[r : r + 2, c : c + 2].sum())
            total += 2 if n == 4 else 1 if n == 3 else 0
    return total


def face_normals(mesh: Mesh) -> np.ndarray:
    a, b, c = (mesh.vertices[mesh.faces[:, i]] for i in range(3))
    return np.cross(b - a, c - a)


# ---------------------------------------------------------------------------------------
# BNT geometry
# ---------------------------------------------------------------------------------------


def test_plane_vertices_follow_the_upright_grid(tmp_path):
    rows, cols = 3, 4  # not square: a row-major or unflipped reader gets the positions wrong
    z = np.full((rows, cols), 5.0)
    path = write_bnt(tmp_path / "plane.bnt", grid_planes(z, spacing=2.0))
    mesh = read_bnt(path)
    assert mesh.vertices.shape == (rows * cols, 3)
    assert len(mesh.faces) == 2 * (rows - 1) * (cols - 1)
    r, c = np.divmod(np.arange(rows * cols), cols)  # vertices in row-major order of the upright image
    assert np.allclose(mesh.vertices, np.stack([2.0 * c, -2.0 * r, np.full(rows * cols, 5.0)], 1))
    assert mesh.vertices[0].tolist() == [0.0, 0.0, 5.0]  # top-left first: the stored bottom row came last
    assert (face_normals(mesh)[:, 2] > 0).all()  # wound counter-clockwise as seen from the scanner (+z)
    assert mesh.metadata["rows"] == rows and mesh.metadata["cols"] == cols
    assert mesh.metadata["grid"].tolist()[:2] == [[0, 0], [0, 1]]
    assert mesh.source == str(path) and mesh.uv is None and mesh.texture is None


def test_row_flip_and_column_major_planes(tmp_path):
    z = np.arange(12, dtype=float).reshape(3, 4)  # z encodes (row, col) of the upright image
    planes = read_bnt_grid(write_bnt(tmp_path / "g.bnt", grid_planes(z)))[0]
    assert planes.shape == (5, 3, 4)
    assert np.array_equal(planes[2], z)
    raw = np.frombuffer((tmp_path / "g.bnt").read_bytes()[-12 * 5 * 8 :], "<f8")
    z_stored = raw[2 * 12 : 3 * 12]
    assert z_stored[:3].tolist() == [8.0, 4.0, 0.0]  # column-major, bottom row first


def test_sphere_cap_lies_on_the_sphere_and_background_is_dropped(tmp_path):
    rows, cols, radius = 9, 11, 4.2
    heights = sphere_cap(rows, cols, radius)
    valid = ~np.isnan(heights)
    assert 0 < valid.sum() < rows * cols  # the cap leaves background corners
    mesh = read_bnt(write_bnt(tmp_path / "cap.bnt", grid_planes(heights)))
    centre = np.array([(cols - 1) / 2, -(rows - 1) / 2, 0.0])
    assert len(mesh.vertices) == valid.sum()
    assert np.allclose(np.linalg.norm(mesh.vertices - centre, axis=1), radius, atol=1e-4)
    assert len(mesh.faces) == reference_triangles(valid)
    assert (mesh.vertices[:, 2] > -1e6).all()
    assert (face_normals(mesh)[:, 2] > 0).all()


@pytest.mark.parametrize(
    ("hole", "vertices", "triangles"),
    [((0, 0), 8, 7), ((1, 1), 8, 4), ((2, 2), 8, 7)],
)
def test_one_background_point_leaves_single_triangles(tmp_path, hole, vertices, triangles):
    z = np.ones((3, 3))
    z[hole] = np.nan
    mesh = read_bnt(write_bnt(tmp_path / "h.bnt", grid_planes(z)))
    assert len(mesh.vertices) == vertices and len(mesh.faces) == triangles
    assert (face_normals(mesh)[:, 2] > 0).all()
    hole_xy = [hole[1], -hole[0]]
    assert not any(np.allclose(v[:2], hole_xy) for v in mesh.vertices)


@pytest.mark.parametrize("seed", range(5))
def test_random_masks_match_the_block_rule(seed):
    from affectkit_plugins.bnt import grid_faces

    rng = np.random.default_rng(seed)
    valid = rng.random((rng.integers(2, 12), rng.integers(2, 12))) < 0.7
    faces = grid_faces(valid)
    assert len(faces) == reference_triangles(valid)
    assert valid.ravel()[faces].all()  # only valid points are used
    assert len({tuple(sorted(f)) for f in faces.tolist()}) == len(faces)
    rows, cols = np.divmod(faces, valid.shape[1])
    assert (np.ptp(rows, axis=1) <= 1).all() and (np.ptp(cols, axis=1) <= 1).all()  # within one 2x2 block
    x, y = cols.astype(float), -rows.astype(float)
    area2 = (x[:, 1] - x[:, 0]) * (y[:, 2] - y[:, 0]) - (x[:, 2] - x[:, 0]) * (y[:, 1] - y[:, 0])
    assert (area2 > 0).all()  # counter-clockwise in the upright image


def test_minus_1e9_is_background_even_when_zmin_differs(tmp_path):
    planes = grid_planes(np.ones((3, 3)), zmin=-500.0)
    planes[2, 0, 0] = -1e9
    planes[2, 2, 2] = -500.0
    mesh = read_bnt(write_bnt(tmp_path / "z.bnt", planes, zmin=-500.0))
    assert len(mesh.vertices) == 7 and len(mesh.faces) == 6
    assert mesh.metadata["zmin"] == -500.0


def test_texture_named_in_the_header_else_same_stem(tmp_path):
    planes = grid_planes(np.ones((3, 4)))
    image = np.zeros((6, 8, 3), np.uint8)
    image[:, :, 0] = 200
    Image.fromarray(image).save(tmp_path / "skin.png")
    mesh = read_bnt(write_bnt(tmp_path / "a.bnt", planes, texture="skin.png"))
    assert mesh.texture.shape == (6, 8, 3) and mesh.metadata["texture_file"] == "skin.png"
    assert np.allclose(mesh.uv, np.stack([planes[3].ravel(), planes[4].ravel()], 1))
    flipped = read_bnt(tmp_path / "a.bnt", flip_v=True)
    assert np.allclose(flipped.uv[:, 1], 1 - planes[4].ravel())

    Image.fromarray(image).save(tmp_path / "b.png")
    assert read_bnt(write_bnt(tmp_path / "b.bnt", planes, texture="")).texture is not None
    # a name with folders only counts by its base name, beside the scan
    assert read_bnt(write_bnt(tmp_path / "c.bnt", planes, texture="../../elsewhere/skin.png")).metadata["texture_file"] == "skin.png"
    missing = read_bnt(write_bnt(tmp_path / "d.bnt", planes, texture="nowhere.png"))
    assert missing.texture is None and missing.uv is None and missing.metadata["texture_file"] is None


# ---------------------------------------------------------------------------------------
# Malformed BNT files
# ---------------------------------------------------------------------------------------

PLANES = grid_planes(np.ones((3, 4)))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"cut": 8}, r"truncated BNT data: the header announces 60 float64 values \(480 bytes from byte offset 18\), but only 472 bytes follow"),
        ({"cut": 480 + 4}, r"truncated BNT header or bad texture-name length 0 \(field at byte offset 12\).*file has 14 bytes"),
        ({"count": 59}, r"value count N=59 at byte offset 14 does not match rows x cols x 5 = 3 x 4 x 5 = 60"),
        ({"rows_cols": (20000, 10000), "count": 10**9}, r"announces 1000000000 float64 values .* only 480 bytes follow \(file size 498\)"),
        ({"rows_cols": (0, 4), "count": 0}, r"empty grid \(0 rows x 4 cols\)"),
        ({"name_length": 60000}, r"bad texture-name length 60000 \(field at byte offset 12\).*file has 498 bytes"),
        ({"texture": "a\x01b.png"}, r"bad texture file name at byte offset 14"),
        ({"zmin": float("nan")}, r"zmin at byte offset 4"),
    ],
)
def test_malformed_bnt_names_file_and_field(tmp_path, kwargs, message):
    path = write_bnt(tmp_path / "bad.bnt", PLANES, **kwargs)
    with pytest.raises(MeshError, match=rf"bad\.bnt: .*{message}"):
        read_bnt(path)


def test_huge_announced_count_fails_before_allocating(tmp_path):
    import tracemalloc

    path = write_bnt(tmp_path / "huge.bnt", PLANES, rows_cols=(65535, 13107), count=65535 * 13107 * 5)
    assert path.stat().st_size < 1024
    tracemalloc.start()
    try:
        with pytest.raises(MeshError, match=r"huge\.bnt: truncated BNT data: the header announces 4294836225 float64"):
            read_bnt(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 10 * 2**20


def test_short_and_empty_files(tmp_path):
    (tmp_path / "empty.bnt").write_bytes(b"")
    with pytest.raises(MeshError, match=r"empty\.bnt: truncated BNT header: 0 bytes.*needs 14 \(byte offset 0\)"):
        read_bnt(tmp_path / "empty.bnt")
    with pytest.raises(MeshError, match=r"gone\.bnt: cannot open"):
        read_bnt(tmp_path / "gone.bnt")


def test_all_background_or_no_block_is_an_error(tmp_path):
    with pytest.raises(MeshError, match=r"bg\.bnt: only 0 of 12 points are valid"):
        read_bnt(write_bnt(tmp_path / "bg.bnt", grid_planes(np.full((3, 4), np.nan))))
    checker = np.where(np.indices((3, 4)).sum(0) % 2 == 0, 1.0, np.nan)
    with pytest.raises(MeshError, match=r"checker\.bnt: no 2x2 block of neighbouring valid points"):
        read_bnt(write_bnt(tmp_path / "checker.bnt", grid_planes(checker)))


# ---------------------------------------------------------------------------------------
# LM3
# ---------------------------------------------------------------------------------------

NAMES = ["Outer left eyebrow", "Nose tip", "Chin middle"]
POINTS = np.array([[-40.5, 30.25, -1000.0], [0.0, 0.0, -950.125], [1.5, -60.0, -990.0]])


@pytest.mark.parametrize("info", [True, False])
def test_lm3_reads_names_and_points(tmp_path, info):
    names, points = read_lm3(write_lm3(tmp_path / "a.lm3", NAMES, POINTS, info=info))
    assert names == NAMES
    assert points.shape == (3, 3) and points.dtype == np.float32
    assert np.allclose(points, POINTS)


def test_lm3_bare_count_line(tmp_path):
    names, _ = read_lm3(write_lm3(tmp_path / "a.lm3", NAMES, POINTS, count_line="3"))
    assert names == NAMES


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", r"empty LM3 file"),
        ("Landmark Points\n*\ninfo\n", r"ends before the landmark count"),
        ("Landmark Points\n\nmany landmarks\n", r"line 3: expected the landmark count, got 'many landmarks'"),
        ("Landmark Points\n\n3 landmarks:\nNose tip\n1 2 3\n", r"line 3 announces 3 landmarks .* only 2 non-empty lines follow"),
        ("Landmark Points\n\n1000000000\nNose tip\n1 2 3\n", r"announces 1000000000 landmarks"),
        ("Landmark Points\n\n2\nNose tip\n1 2 3\nChin\n1 two 3\n", r"line 7: expected 'x y z' for landmark 'Chin' .*, got '1 two 3'"),
        ("Landmark Points\n\n1\nNose tip\n1 2 1e39\n", r"line 5: expected 'x y z' .*float32's range\), got '1 2 1e39'"),
        ("Landmark Points\n\n1\nNose tip\n1 2\n", r"line 5: expected 'x y z'"),
    ],
)
def test_bad_lm3_names_file_and_line(tmp_path, text, message):
    path = tmp_path / "bad.lm3"
    path.write_text(text)
    with pytest.raises(MeshError, match=rf"bad\.lm3: .*{message}"):
        read_lm3(path)


# ---------------------------------------------------------------------------------------
# The dataset
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stem", "expected"),
    [
        ("bs002_E_SADNESS_0", ("bs002", "emotion", "sadness", 0)),
        ("bs010_E_HAPPY_1", ("bs010", "emotion", "happiness", 1)),
        ("bs000_N_N_2", ("bs000", "neutral", "neutral", 2)),
        ("bs001_LFAU_14_0", ("bs001", "action_unit", "AU14", 0)),
        ("bs001_LFAU_12L_0", ("bs001", "action_unit", "AU12L", 0)),
        ("bs001_UFAU_2_0", ("bs001", "action_unit", "AU2", 0)),
        ("bs001_CAU_A22A25_0", ("bs001", "action_unit", "AU22+AU25", 0)),
        ("bs001_YR_R10_0", ("bs001", "other", None, 0)),
        ("bs001_O_GLASSES_0", ("bs001", "other", None, 0)),
    ],
)
def test_parse_name(stem, expected):
    info = parse_name(stem)
    assert (info["subject"], info["kind"], info["label"], info["take"]) == expected


@pytest.mark.parametrize("stem", ["scan1", "bs002_E_BORED_0", "bs002_E_HAPPY", "bs002_X_Y_0", "bs0021_E_HAPPY_0"])
def test_unparseable_names(stem):
    assert parse_name(stem) is None


@pytest.fixture
def tree(tmp_path):
    root = bosphorus_tree(tmp_path / "Bosphorus")
    planes = grid_planes(sphere_cap())
    write_bnt(root / "deeper" / "bs002" / "bs002_E_SURPRISE_0.bnt", planes)  # any folder layout
    write_bnt(root / "bs002_YR_R10_0.bnt", planes)  # a pose scan: skipped, no warning
    write_bnt(root / "misc" / "scan1.bnt", planes)  # not a Bosphorus name: warned about
    return root


def test_emotion_scans_by_default(tree):
    ds = dataset(root=str(tree))
    with pytest.warns(UserWarning, match=r"skipped 1 \.bnt file.*misc/scan1\.bnt"):
        samples = ds.samples()
    assert ds.labels == SIX
    assert sorted(s.key for s in samples) == [
        "bs000_E_ANGER_0", "bs000_E_HAPPY_0", "bs001_E_ANGER_0", "bs001_E_HAPPY_0", "bs002_E_SURPRISE_0",
    ]
    by_key = {s.key: s for s in samples}
    assert by_key["bs002_E_SURPRISE_0"].label == "surprise" and by_key["bs002_E_SURPRISE_0"].subject == "bs002"
    assert by_key["bs000_E_HAPPY_0"].attributes == {"kind": "emotion", "take": 0, "code": "E_HAPPY"}
    assert not any(s.is_sequence for s in samples)


def test_neutral_and_action_units_on_request(tree):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = dataset(root=tree, include_neutral=True, action_units="label", subjects=["BS000"])
        samples = ds.samples()
    assert ds.labels == (*SIX, "neutral", "AU12")
    assert sorted((s.key, s.label) for s in samples) == [
        ("bs000_E_ANGER_0", "anger"), ("bs000_E_HAPPY_0", "happiness"), ("bs000_LFAU_12_0", "AU12"), ("bs000_N_N_0", "neutral"),
    ]
    # an AU scan's AU label is the AU it poses; the emotion scans have none
    assert {s.key: s.action_units for s in samples if s.action_units} == {"bs000_LFAU_12_0": {12: (1.0, 1.0)}}


@pytest.mark.parametrize(
    ("label", "expected"),
    [("AU12L", {12: (0.0, 1.0)}), ("AU12R", {12: (1.0, 0.0)}), ("AU22+AU25", {22: (1.0, 1.0), 25: (1.0, 1.0)}), ("AU9", {9: (1.0, 1.0)})],
)
def test_action_unit_scans_label_the_units_they_pose(label, expected):
    assert au_label(label) == expected


def test_load_gives_mesh_with_landmarks_and_texture(tree):
    image = np.full((9, 9, 3), 120, np.uint8)
    Image.fromarray(image).save(tree / "bs000" / "bs000_E_HAPPY_0.png")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = dataset(root=tree)
        sample = next(s for s in ds.samples() if s.key == "bs000_E_HAPPY_0")
    mesh = ds.load(sample)
    assert isinstance(mesh, Mesh) and len(mesh.vertices) == 81 and len(mesh.faces) == 128
    assert mesh.metadata["landmark_names"] == ["Nose tip", "Chin middle"]
    assert np.allclose(mesh.landmarks, [[4, -4, 10], [4, -8, 6]])
    assert mesh.texture.shape == (9, 9, 3) and mesh.uv.shape == (81, 2)
    assert mesh.metadata["label"] == "happiness" and mesh.metadata["subject"] == "bs000"
    other = ds.load(next(s for s in ds.samples() if s.key == "bs001_E_HAPPY_0"))
    assert other.landmarks is None and other.texture is None
    assert ds.path(sample) == tree / "bs000" / "bs000_E_HAPPY_0.bnt"


def test_bnt_reader_is_registered_for_load_mesh(tree):
    registry()
    mesh = load_mesh(tree / "bs001" / "bs001_E_ANGER_0.bnt")
    assert len(mesh.faces) == 128


def test_scans_in_a_linked_folder_are_found_and_a_link_loop_is_walked_once(tmp_path):
    root = bosphorus_tree(tmp_path / "Bosphorus")
    elsewhere = bosphorus_tree(tmp_path / "elsewhere")
    (elsewhere / "bs000").rename(elsewhere / "bs007")
    for scan in (elsewhere / "bs007").iterdir():
        scan.rename(scan.with_name(scan.name.replace("bs000", "bs007")))
    (root / "more").symlink_to(elsewhere / "bs007", target_is_directory=True)
    (root / "bs000" / "loop").symlink_to(root, target_is_directory=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        subjects = sorted({s.subject for s in dataset(root=root).samples()})
    assert subjects == ["bs000", "bs001", "bs007"]


def test_dataset_errors(tmp_path, tree):
    with pytest.raises(DatasetError, match=r"bosphorus: root .*nowhere.* does not exist"):
        dataset(root=tmp_path / "nowhere").samples()
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match=r"no \.bnt files under .*empty"):
        dataset(root=tmp_path / "empty").samples()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(DatasetError, match=r"subject\(s\) bs099 not found .*found: bs000, bs001, bs002"):
            dataset(root=tree, subjects=["bs099"]).samples()
    with pytest.raises(PluginError, match="action_units"):
        dataset(root=tree, action_units="include")
    with pytest.raises(PluginError, match="root"):
        dataset()
    write_bnt(tree / "copy" / "bs000_E_HAPPY_0.bnt", PLANES)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(DatasetError, match=r"scan bs000_E_HAPPY_0 appears twice: bs000/bs000_E_HAPPY_0\.bnt and copy/"):
            dataset(root=tree).samples()


def test_unknown_sample_and_bad_scan_name_the_file(tree):
    from affectkit.interfaces import Sample

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = dataset(root=tree)
        ds.samples()
    with pytest.raises(DatasetError, match=r"no sample 'bs009_E_FEAR_0'"):
        ds.load(Sample("bs009_E_FEAR_0", "fear", "bs009"))
    bad = tree / "bs001" / "bs001_E_ANGER_0.bnt"
    bad.write_bytes(bad.read_bytes()[:100])
    with pytest.raises(MeshError, match=r"bs001_E_ANGER_0\.bnt: truncated BNT data"):
        ds.load(next(s for s in ds.samples() if s.key == "bs001_E_ANGER_0"))


def test_textured_scan_renders(tmp_path):
    from affectkit.render.cameras import parse_views

    image = np.zeros((8, 8, 3), np.uint8)
    image[..., 1] = 255  # green skin
    Image.fromarray(image).save(tmp_path / "cap.png")
    mesh = read_bnt(write_bnt(tmp_path / "cap.bnt", grid_planes(sphere_cap(9, 9, 4.5)), texture="cap.png"))
    out = registry().create("renderer", "torch").render([mesh], parse_views("front"), 32)
    mask = out.mask[0, 0, 0].bool()
    assert mask.float().mean() > 0.2
    assert out.normal[0, 0, 2, 16, 16] > 0.9  # the cap faces the front camera
    rgb = out.rgb[0, 0][:, mask]
    assert (rgb[1] > 0.2).all() and (rgb[0] < 0.05).all() and (rgb[2] < 0.05).all()
