"""The ``torch`` renderer against analytic geometry, the render cache, and the PNG writers."""

from __future__ import annotations

import math
import multiprocessing
from pathlib import Path

import numpy as np
import pytest
import torch
import trimesh
from PIL import Image

import affectkit_plugins.renderer_torch as renderer_torch
from affectkit.data.mesh import Mesh
from affectkit.errors import PluginError
from affectkit.interfaces import RenderedViews
from affectkit.registry import registry
from affectkit.render.cameras import DEFAULT_VIEWS, View, normalise
from affectkit.render.render_cache import RenderCache, renderer_id
from affectkit.render.view_pngs import save_grid, write_view_pngs

FRONT, BACK = View("front"), View("back", 180.0)
RED, GREEN, GREY = (1.0, 0.1, 0.1), (0.1, 1.0, 0.1), (0.7, 0.7, 0.7)


def renderer(**options) -> renderer_torch.TorchRenderer:
    return registry().create("renderer", "torch", options)


def combine(*parts: tuple[trimesh.Trimesh, tuple[float, float, float]]) -> Mesh:
    """One mesh from (trimesh, rgb) parts, each part in a single vertex colour."""
    vertices, faces, colors, start = [], [], [], 0
    for part, rgb in parts:
        vertices.append(np.asarray(part.vertices))
        faces.append(np.asarray(part.faces) + start)
        colors.append(np.tile(rgb, (len(part.vertices), 1)))
        start += len(part.vertices)
    return Mesh(np.concatenate(vertices), np.concatenate(faces), colors=np.concatenate(colors))


def sphere(subdivisions: int = 4) -> trimesh.Trimesh:
    return trimesh.creation.icosphere(subdivisions=subdivisions)


def pixel(size: int, x: float, y: float) -> tuple[int, int]:
    """(row, column) of the pixel whose centre is nearest normalised camera (x, y)."""
    column = round((x + 1.0) / 2.0 * size - 0.5)
    row = round((1.0 - y) / 2.0 * size - 0.5)
    return row, column


def centres(size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Camera x, y of every pixel centre, ``[H, W]`` each (row 0 at the top)."""
    t = (torch.arange(size) + 0.5) / size * 2.0 - 1.0
    return t.view(1, -1).expand(size, size), (-t).view(-1, 1).expand(size, size)


def normalised_radius(mesh: Mesh) -> float:
    return float(normalise(torch.from_numpy(mesh.vertices)).norm(dim=1).mean())


# ---------------------------------------------------------------------------------------
# Geometry
# ---------------------------------------------------------------------------------------


def test_sphere_depth_normals_and_area_match_the_analytic_sphere():
    mesh = Mesh(sphere(4).vertices, sphere(4).faces)
    r, size = normalised_radius(mesh), 128
    out = renderer().render([mesh], [FRONT], size)
    assert {name: tuple(getattr(out, name).shape) for name in RenderedViews.MAPS} == {
        "rgb": (1, 1, 3, size, size), "depth": (1, 1, 1, size, size),
        "normal": (1, 1, 3, size, size), "mask": (1, 1, 1, size, size),
    }
    assert all(getattr(out, name).dtype == torch.float32 for name in RenderedViews.MAPS)

    x, y = centres(size)
    rho2 = x**2 + y**2
    interior = rho2 < (0.9 * r) ** 2
    z = (r**2 - rho2).clamp_min(0).sqrt()
    depth, normal = out.depth[0, 0, 0], out.normal[0, 0]
    assert (depth[interior] - (1 - z)[interior]).abs().mean() < 2e-3
    analytic = torch.stack([x, y, z]) / r
    cosine = (normal * analytic).sum(0)[interior]
    assert cosine.mean() > 0.9995 and cosine.min() > 0.995
    assert torch.allclose(normal.norm(dim=0)[interior], torch.ones(()), atol=1e-5)

    mask = out.mask[0, 0, 0]
    assert set(mask.unique().tolist()) == {0.0, 1.0}
    area = mask.sum().item() * (2.0 / size) ** 2
    assert area == pytest.approx(math.pi * r * r, rel=0.01)
    assert (mask[rho2 > (1.02 * r) ** 2] == 0).all() and (mask[rho2 < (0.98 * r) ** 2] == 1).all()
    background = mask == 0
    assert (depth[background] == 0).all() and (out.normal[0, 0][:, background] == 0).all()
    assert (out.rgb[0, 0][:, background] == 0).all()
    # Untextured, uncoloured: grey 0.7, fully lit where the surface faces the headlight.
    row, column = pixel(size, 0.0, 0.0)
    assert torch.allclose(out.rgb[0, 0, :, row, column], torch.full((3,), 0.7), atol=2e-3)


def brute_force_depth(mesh: Mesh, view: View, size: int) -> np.ndarray:
    """Nearest-hit depth per pixel by testing every pixel against every face, in float64."""
    tri = (normalise(torch.from_numpy(mesh.vertices)).double() @ view.rotation(torch.float64).T).numpy()[mesh.faces]
    a, b, c = (tri[None, :, k] for k in range(3))
    x, y = centres(size)
    p = torch.stack([x.reshape(-1), y.reshape(-1)], 1).double().numpy()[:, None, :]

    def edge(o, u, w):
        return (u[..., 0] - o[..., 0]) * (w[..., 1] - o[..., 1]) - (u[..., 1] - o[..., 1]) * (w[..., 0] - o[..., 0])

    area = edge(a, b, c)
    w0, w1 = edge(p, b, c) / area, edge(a, p, c) / area
    w2 = 1 - w0 - w1
    z = w0 * a[..., 2] + w1 * b[..., 2] + w2 * c[..., 2]
    depth = np.where((w0 >= 0) & (w1 >= 0) & (w2 >= 0), 1 - z, np.inf).min(axis=1)
    return np.where(np.isfinite(depth), depth, 0.0).reshape(size, size)


def test_depth_matches_a_brute_force_ray_cast_for_any_view():
    rng = np.random.default_rng(0)
    ball = sphere(2)
    bumpy = ball.vertices * (1 + 0.15 * rng.standard_normal((len(ball.vertices), 1))) * [1.7, 1.0, 1.0]
    mesh = Mesh(bumpy, ball.faces)  # self-occluding, so the z-buffer matters
    views = [View("a", 30.0, 20.0, 10.0), View("b", -70.0, -10.0), View("c", 180.0)]
    out = renderer().render([mesh], views, 40)
    for k, view in enumerate(views):
        expected = brute_force_depth(mesh, view, 40)
        assert torch.equal(out.mask[0, k, 0].bool(), torch.from_numpy(expected > 0)), view
        assert np.abs(out.depth[0, k, 0].numpy() - expected).max() < 1e-5, view


def cube_in_front_of_sphere(cube_first: bool = False) -> Mesh:
    ball = (sphere(4), RED)
    box = (trimesh.creation.box(extents=(0.6, 0.6, 0.6)).apply_translation((0.0, 0.0, 1.5)), GREEN)
    return combine(box, ball) if cube_first else combine(ball, box)


def test_nearest_surface_wins_whatever_the_face_order():
    size = 96
    mesh = cube_in_front_of_sphere()
    out = renderer().render([mesh, cube_in_front_of_sphere(cube_first=True)], [FRONT, BACK], size)
    for name in RenderedViews.MAPS:
        assert torch.equal(getattr(out, name)[0], getattr(out, name)[1]), name

    # Expected depths from the normalisation the renderer promises to use.
    vertices = torch.from_numpy(mesh.vertices)
    centre = (vertices.amin(0) + vertices.amax(0)) / 2
    scale = ((vertices.amax(0) - vertices.amin(0)).norm() / 2).item()
    assert torch.allclose(normalise(vertices), (vertices - centre) / scale)

    def camera(wx: float, wy: float, wz: float) -> tuple[float, float, float]:
        return ((wx - centre[0]) / scale).item(), ((wy - centre[1]) / scale).item(), ((wz - centre[2]) / scale).item()

    # Front: the cube's front face (world z = 1.8) covers the centre.
    x, y, z = camera(0.0, 0.0, 1.8)
    row, column = pixel(size, x, y)
    rgb = out.rgb[0, 0, :, row, column]
    assert rgb[1] > 3 * rgb[0]
    assert out.depth[0, 0, 0, row, column].item() == pytest.approx(1 - z, abs=1e-4)
    assert out.normal[0, 0, 2, row, column] > 0.95  # smooth shading: the cube's corners blend in
    # Beside the cube the sphere shows, at the sphere's depth.
    wx = 0.7
    x, y, z = camera(wx, 0.0, math.sqrt(1 - wx * wx))
    row, column = pixel(size, x, y)
    assert out.rgb[0, 0, 0, row, column] > 3 * out.rgb[0, 0, 1, row, column]
    assert out.depth[0, 0, 0, row, column].item() == pytest.approx(1 - z, abs=0.01)
    # From behind, the sphere hides the cube.
    row, column = pixel(size, 0.0, 0.0)
    back = out.rgb[0, 1, :, row, column]
    assert back[0] > 3 * back[1]
    assert out.depth[0, 1, 0, row, column].item() == pytest.approx(1 - (1 + centre[2].item()) / scale, abs=0.01)


def patched_sphere(axis: int, threshold: float = 0.5) -> Mesh:
    """A grey sphere whose vertices beyond ``threshold`` along ``axis`` are red."""
    ball = sphere(4)
    colors = np.tile(GREY, (len(ball.vertices), 1))
    colors[ball.vertices[:, axis] > threshold] = RED
    return Mesh(ball.vertices, ball.faces, colors=colors)


def is_red(rgb: torch.Tensor) -> bool:
    return bool(rgb[0] > 2 * rgb[1])


def test_camera_conventions_yaw_toward_plus_x_and_row_zero_at_the_top():
    size = 64
    views = [View("front"), View("left90", 90.0), View("right90", -90.0), View("up90", 0.0, 90.0)]
    out = renderer().render([patched_sphere(axis=0), patched_sphere(axis=1)], views, size)
    centre = pixel(size, 0.0, 0.0)
    plus_x, plus_y = out.rgb[0, :, :, centre[0], centre[1]], out.rgb[1, :, :, centre[0], centre[1]]
    # Yaw +90 turns the camera toward the subject's left (+x): the +x patch faces it.
    assert [is_red(plus_x[v]) for v in range(4)] == [False, True, False, False]
    # Front view: +x is image right, +y is image top (row 0); pitch +90 looks down on +y.
    assert is_red(out.rgb[0, 0, :, *pixel(size, 0.5, 0.0)]) and not is_red(out.rgb[0, 0, :, *pixel(size, -0.5, 0.0)])
    assert is_red(out.rgb[1, 0, :, *pixel(size, 0.0, 0.5)]) and not is_red(out.rgb[1, 0, :, *pixel(size, 0.0, -0.5)])
    assert [is_red(plus_y[v]) for v in range(4)] == [False, False, False, True]


def test_the_same_mesh_moved_and_scaled_renders_the_same():
    mesh = cube_in_front_of_sphere()
    moved = Mesh(mesh.vertices * 2.5 + np.array([3.0, -1.0, 7.0]), mesh.faces, colors=mesh.colors)
    out = renderer().render([mesh, moved], DEFAULT_VIEWS, 64)
    assert (out.mask[0] != out.mask[1]).float().mean() < 1e-3
    both = (out.mask[0] * out.mask[1]).bool().squeeze(1)
    for name in ("rgb", "depth", "normal"):
        a, b = getattr(out, name)[0].movedim(1, -1)[both], getattr(out, name)[1].movedim(1, -1)[both]
        assert (a - b).abs().max() < 1e-3, name


def test_a_batch_renders_each_mesh_as_if_alone():
    meshes = [patched_sphere(axis=0), cube_in_front_of_sphere()]
    r = renderer()
    together = r.render(meshes, DEFAULT_VIEWS, 48)
    for i, mesh in enumerate(meshes):
        alone = r.render([mesh], DEFAULT_VIEWS, 48)
        for name in RenderedViews.MAPS:
            assert torch.allclose(getattr(together, name)[i], getattr(alone, name)[0], atol=1e-5), name


def test_results_do_not_depend_on_how_the_work_is_chunked(monkeypatch):
    meshes = [cube_in_front_of_sphere(), patched_sphere(axis=1), quad()]
    reference = renderer().render(meshes, DEFAULT_VIEWS, 40)
    monkeypatch.setattr(renderer_torch, "_CANDIDATE_BUDGET", 500)
    monkeypatch.setattr(renderer_torch, "_INSTANCE_BUDGET", 10_000)
    monkeypatch.setattr(renderer_torch, "_SETUP_CHUNK", 7)
    chunked = renderer().render(meshes, DEFAULT_VIEWS, 40)
    for name in RenderedViews.MAPS:
        assert torch.allclose(getattr(chunked, name), getattr(reference, name), atol=1e-5), name


def quad(texture: np.ndarray | None = None) -> Mesh:
    """The square [-1, 1]^2 at z = 0 facing +z, as two triangles with uv (v up)."""
    vertices = np.array([[-1, -1, 0], [1, -1, 0], [1, 1, 0], [-1, 1, 0]], dtype=np.float32)
    uv = np.array([[0, 0], [1, 0], [1, 1], [0, 1]], dtype=np.float32)
    faces = np.array([[0, 1, 2], [0, 2, 3]])
    if texture is None:
        return Mesh(vertices, faces)
    return Mesh(vertices, faces, uv=uv, texture=texture)


def test_texture_is_sampled_through_per_vertex_uv():
    colours = np.array([[[255, 0, 0], [0, 255, 0]], [[0, 0, 255], [255, 255, 255]]], dtype=np.uint8)
    texture = np.repeat(np.repeat(colours, 8, axis=0), 8, axis=1)  # 16x16, one colour per quadrant
    size, half = 64, 0.5 / math.sqrt(2)  # the quad spans +-1/sqrt(2) once normalised
    out = renderer().render([quad(texture), quad()], [FRONT], size)
    expected = {(-half, half): colours[0, 0], (half, half): colours[0, 1], (-half, -half): colours[1, 0], (half, -half): colours[1, 1]}
    for (x, y), rgb in expected.items():
        got = out.rgb[0, 0, :, *pixel(size, x, y)]
        assert torch.allclose(got, torch.from_numpy(rgb / 255.0).float(), atol=1e-4), (x, y, got)
    # A flat quad facing the camera: depth 1 (z = 0), normal +z, full coverage of its square.
    inside = out.mask[0, 0, 0].bool()
    assert torch.allclose(out.depth[0, 0, 0][inside], torch.ones(()), atol=1e-5)
    assert torch.allclose(out.normal[0, 0][:, inside], torch.tensor([0.0, 0.0, 1.0]).view(3, 1), atol=1e-5)
    per_side = ((centres(size)[0][0].abs() <= 2 * half).sum().item())  # centres in [-1/sqrt2, 1/sqrt2]
    assert inside.sum().item() == per_side**2
    # Without texture or colours the same quad is plain grey.
    assert torch.allclose(out.rgb[1, 0][:, inside], torch.full((3, 1), 0.7), atol=1e-5)


def test_back_faces_show_their_other_side_and_degenerate_faces_are_harmless():
    flat = quad()
    flipped = Mesh(flat.vertices, flat.faces[:, ::-1].copy())
    with_sliver = Mesh(
        np.concatenate([flat.vertices, [[0, 0, 0], [0, 0, 0]]]),
        np.concatenate([flat.faces, [[4, 5, 4], [0, 4, 4]]]),
    )
    out = renderer().render([flat, flipped, with_sliver], [FRONT, BACK], 32)
    for i in range(3):
        inside = out.mask[i, 0, 0].bool()
        assert torch.allclose(out.normal[i, :, :, inside], torch.tensor([0.0, 0.0, 1.0]).view(1, 3, 1), atol=1e-5)
    assert torch.equal(out.mask[0], out.mask[2])


def test_supersampling_keeps_geometry_and_smooths_edges():
    meshes = [Mesh(sphere(4).vertices, sphere(4).faces), quad()]
    plain = renderer().render(meshes, [FRONT], 64)
    smooth = renderer(supersample=2).render(meshes, [FRONT], 64)
    assert smooth.rgb.shape == plain.rgb.shape
    assert set(smooth.mask.unique().tolist()) == {0.0, 1.0}
    r = normalised_radius(meshes[0])
    assert smooth.mask[0].sum().item() * (2 / 64) ** 2 == pytest.approx(math.pi * r * r, rel=0.03)
    assert smooth.mask[1].sum().item() == pytest.approx(plain.mask[1].sum().item(), rel=0.03)
    inside = (smooth.mask * plain.mask).bool()
    x, y = centres(64)
    interior = inside & (x**2 + y**2 < (0.9 * r) ** 2)  # away from the steep rim
    assert (smooth.depth - plain.depth)[interior].abs().max() < 0.01
    assert torch.allclose(smooth.normal.norm(dim=2)[inside.squeeze(2)], torch.ones(()), atol=1e-5)
    # The grey quad's edges blend into the black background instead of jumping 0 -> 0.7.
    assert ((plain.rgb[1] == 0) | ((plain.rgb[1] - 0.7).abs() < 1e-5)).all()
    blended = ((smooth.rgb[1] > 0.01) & (smooth.rgb[1] < 0.69)).sum()
    assert blended > 0


def test_options_are_validated_and_described():
    info = registry().get("renderer", "torch")
    assert info.cls is renderer_torch.TorchRenderer and info.description
    with pytest.raises(PluginError, match="ambiant"):
        renderer(ambiant=0.5)
    dim = renderer(ambient=1.0).render([Mesh(sphere(3).vertices, sphere(3).faces)], [FRONT], 32)
    inside = dim.mask[0, 0, 0].bool()
    assert torch.allclose(dim.rgb[0, 0, 1][inside], torch.full((), 0.7), atol=1e-5)  # no diffuse term


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA is not available on this machine")
def test_cuda_and_cpu_agree():
    meshes = [cube_in_front_of_sphere(), quad(np.full((4, 4, 3), 200, dtype=np.uint8))]
    cpu = renderer().render(meshes, DEFAULT_VIEWS, 64)
    cuda = renderer().render(meshes, DEFAULT_VIEWS, 64, device="cuda")
    assert cuda.rgb.device.type == "cuda"
    assert (cuda.mask.cpu() != cpu.mask).float().mean() < 1e-3
    both = (cuda.mask.cpu() * cpu.mask).bool().squeeze(2)
    for name in ("rgb", "depth", "normal"):
        a, b = getattr(cpu, name).movedim(2, -1)[both], getattr(cuda, name).cpu().movedim(2, -1)[both]
        assert (a - b).abs().max() < 1e-3, name


# ---------------------------------------------------------------------------------------
# kaolin and auto
# ---------------------------------------------------------------------------------------


def test_kaolin_is_registered_exactly_where_it_imports_and_auto_always():
    from affectkit_plugins.renderer_kaolin import kaolin_available

    names = registry().names("renderer")
    assert "auto" in names and ("kaolin" in names) == kaolin_available()
    if not kaolin_available():
        with pytest.raises(PluginError, match=r"unknown renderer 'kaolin'; registered: auto, torch"):
            registry().create("renderer", "kaolin")


def test_auto_renders_with_torch_on_cpu():
    mesh = cube_in_front_of_sphere()
    auto = registry().create("renderer", "auto", {"ambient": 0.4}).render([mesh], DEFAULT_VIEWS, 48)
    plain = renderer(ambient=0.4).render([mesh], DEFAULT_VIEWS, 48)
    for name in RenderedViews.MAPS:
        assert torch.equal(getattr(auto, name), getattr(plain, name)), name


def kaolin_skip_reason() -> str | None:
    from affectkit_plugins.renderer_kaolin import kaolin_available

    if not kaolin_available():
        return "Kaolin does not import here (it is not installable from this machine's package index)"
    if not torch.cuda.is_available():
        return "the kaolin renderer needs CUDA, which this machine lacks"
    return None


@pytest.mark.skipif(kaolin_skip_reason() is not None, reason=kaolin_skip_reason() or "")
def test_kaolin_matches_torch():
    from affectkit_plugins.synthetic import SyntheticDataset

    dataset = SyntheticDataset(SyntheticDataset.Options(subjects=1, vertices=20000))
    face = dataset.load(dataset.samples()[0])
    meshes = [cube_in_front_of_sphere(), face, quad(np.full((4, 4, 3), 200, dtype=np.uint8))]
    ours = renderer().render(meshes, DEFAULT_VIEWS, 96, device="cuda")
    kaolin = registry().create("renderer", "kaolin").render(meshes, DEFAULT_VIEWS, 96, device="cuda")
    assert (kaolin.mask != ours.mask).float().mean() < 2e-3  # pixel centres on an edge may go either way
    both = (kaolin.mask * ours.mask).bool().squeeze(2)
    for name, tolerance in (("depth", 1e-4), ("normal", 1e-3), ("rgb", 1e-3)):
        a, b = getattr(ours, name).movedim(2, -1)[both], getattr(kaolin, name).movedim(2, -1)[both]
        assert (a - b).abs().mean() < tolerance, name


# ---------------------------------------------------------------------------------------
# Render cache
# ---------------------------------------------------------------------------------------


def make_cache(root: Path | None, views=DEFAULT_VIEWS, size: int = 32) -> RenderCache:
    # Built directly, not through the registry, so spawned workers import only this plugin.
    r = renderer_torch.TorchRenderer(renderer_torch.TorchRenderer.Options())
    return RenderCache(r, renderer_id(r, "torch"), views, size, root)


def test_second_pass_renders_nothing_and_returns_the_same_images(tmp_path):
    meshes = [patched_sphere(axis=0), cube_in_front_of_sphere(), patched_sphere(axis=0)]
    first = make_cache(tmp_path)
    cold = first.render(meshes)
    assert (first.misses, first.hits) == (2, 1)  # the duplicate is rendered once
    second = make_cache(tmp_path)
    warm = second.render(meshes)
    assert (second.misses, second.hits) == (0, 3)
    for name in RenderedViews.MAPS:
        assert torch.equal(getattr(cold, name), getattr(warm, name)), name
    # Stored compactly, but within quantisation of what the renderer made.
    direct = renderer().render(meshes, DEFAULT_VIEWS, 32)
    assert (warm.rgb - direct.rgb).abs().max() <= 0.5 / 255 + 1e-6
    assert (warm.depth - direct.depth).abs().max() < 1e-3
    assert torch.equal(warm.mask, direct.mask)
    assert (warm.normal - direct.normal).abs().max() <= 1 / 255 + 1e-6
    assert torch.equal(make_cache(None).render(meshes).rgb, warm.rgb)  # no disk, same encoding
    assert not list(tmp_path.rglob("*.tmp"))


def test_other_views_size_or_options_miss(tmp_path):
    mesh = patched_sphere(axis=0)
    make_cache(tmp_path).render([mesh])
    for cache in (
        make_cache(tmp_path, views=[FRONT]),
        make_cache(tmp_path, size=48),
        RenderCache(renderer(ambient=0.5), renderer_id(renderer(ambient=0.5), "torch"), DEFAULT_VIEWS, 32, tmp_path),
    ):
        out = cache.render([mesh])
        assert (cache.misses, cache.hits) == (1, 0)
        assert out.rgb.shape == (1, len(cache.views), 3, cache.size, cache.size)
    disabled = make_cache(None)
    disabled.render([mesh])
    disabled.render([mesh])
    assert (disabled.misses, disabled.hits) == (2, 0) and disabled.path(mesh) is None
    assert disabled.render([]).normal.shape == (0, 3, 3, 32, 32)


def test_a_damaged_entry_is_rendered_again(tmp_path):
    mesh = patched_sphere(axis=0)
    cache = make_cache(tmp_path)
    good = cache.render([mesh])
    path = cache.path(mesh)
    path.write_bytes(path.read_bytes()[:100])
    again = make_cache(tmp_path)
    with pytest.warns(UserWarning, match="unreadable; rendered again"):
        assert torch.equal(again.render([mesh]).rgb, good.rgb) and (again.misses, again.rejected) == (1, 1)
    assert make_cache(tmp_path).render([mesh]) is not None and path.stat().st_size > 100


def test_an_entry_altered_but_still_readable_is_refused_and_rendered_again(tmp_path):
    from safetensors import safe_open
    from safetensors.torch import save_file

    mesh = patched_sphere(axis=0)
    good = make_cache(tmp_path).render([mesh])
    path = make_cache(tmp_path).path(mesh)
    with safe_open(str(path), framework="pt") as handle:
        metadata, tensors = handle.metadata(), {name: handle.get_tensor(name) for name in handle.keys()}
    tensors["normal"] = torch.full_like(tensors["normal"], 128)  # flat normals: another expression entirely
    save_file(tensors, str(path), metadata=metadata)  # the old digest kept: a careless or hostile edit
    again = make_cache(tmp_path)
    with pytest.warns(UserWarning, match="altered"):
        assert torch.equal(again.render([mesh]).normal, good.normal)
    assert again.rejected == 1 and make_cache(tmp_path).render([mesh]) is not None


def test_a_folder_where_an_entry_belongs_is_rendered_around(tmp_path):
    mesh = patched_sphere(axis=0)
    cache = make_cache(tmp_path)
    cache.path(mesh).mkdir(parents=True)
    with pytest.warns(UserWarning, match="unreadable"):
        assert torch.equal(cache.render([mesh]).rgb, make_cache(None).render([mesh]).rgb)
    assert cache.path(mesh).is_dir()  # left alone: affectkit deletes nothing it did not write


def test_concurrent_writers_leave_a_readable_entry(tmp_path):
    mesh = patched_sphere(axis=0)
    cache = make_cache(tmp_path)
    # Each worker unpickles the cache (importing only affectkit) and renders the same mesh:
    # both miss and write the same key at about the same time.
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=cache.render, args=([mesh],)) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    assert [worker.exitcode for worker in workers] == [0, 0]
    out = cache.render([mesh])
    assert (cache.hits, cache.misses) == (1, 0)
    assert torch.equal(out.rgb, make_cache(None).render([mesh]).rgb)
    assert not list(tmp_path.rglob("*.tmp"))


def test_a_failed_write_leaves_no_file_behind(tmp_path, monkeypatch):
    import affectkit.render.render_cache as render_cache

    def half_then_fail(tensors, filename, metadata=None):
        Path(filename).write_bytes(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(render_cache, "save_file", half_then_fail)
    cache = make_cache(tmp_path)
    with pytest.raises(OSError, match="disk full"):
        cache.render([patched_sphere(axis=0)])
    assert not cache.path(patched_sphere(axis=0)).exists()
    assert not list(tmp_path.rglob("*.tmp"))


# ---------------------------------------------------------------------------------------
# PNG output
# ---------------------------------------------------------------------------------------


def test_view_pngs_and_grid(tmp_path):
    out = renderer().render([cube_in_front_of_sphere()], DEFAULT_VIEWS, 32)
    written = write_view_pngs(out, DEFAULT_VIEWS, tmp_path)
    assert sorted(p.name for p in written) == sorted(f"{v.name}_{m}.png" for v in DEFAULT_VIEWS for m in RenderedViews.MAPS)
    depth = np.asarray(Image.open(tmp_path / "front_depth.png"))
    mask = np.asarray(Image.open(tmp_path / "front_mask.png"))[..., 0] > 0
    assert depth.shape == (32, 32, 3) and (depth[~mask] == 0).all() and depth[mask].min() > 0
    row, column = pixel(32, 0.0, 0.0)  # the cube, nearest: brightest
    assert depth[row, column, 0] == depth[mask].max() == 255

    grid = save_grid(out.rgb[0], tmp_path / "grid.png", columns=2, labels=["a", "b", "c"], padding=2)
    assert Image.open(grid).size == (2 * 34 + 2, 2 * (32 + 14 + 2) + 2)


def test_a_head_is_placed_by_its_face_not_by_what_the_scanner_kept():
    """The same head, whole (neck, ears, back) or cropped to the face, in millimetres or in
    metres, renders the face at the same pixels: placement is by the nose tip and the
    head's real size, not by a bounding box that a crop changes."""
    from affectkit.registry import create

    facekit = create("dataset", "facekit", {"subjects": 1, "intensities": [4], "realism": False})
    head = facekit.load(facekit.samples()[0])
    tip = head.vertices[head.vertices[:, 2].argmax()]
    keep = (head.vertices[:, 1] > tip[1] - 80) & (head.vertices[:, 2] > tip[2] - 70)
    kept_faces = head.faces[keep[head.faces].all(axis=1)]
    index = np.cumsum(keep) - 1
    cropped = Mesh(head.vertices[keep], index[kept_faces])
    metres = Mesh(head.vertices / 1000.0, head.faces)
    whole_box = np.linalg.norm(np.ptp(head.vertices, axis=0)) / np.linalg.norm(np.ptp(cropped.vertices, axis=0))
    assert whole_box > 1.3  # the crop changes the bounding box a lot
    out = renderer().render([Mesh(head.vertices, head.faces), cropped, metres], DEFAULT_VIEWS, 64)
    face = (out.mask[1] > 0).squeeze(1)  # what the cropped scan covers
    for other in (0, 2):
        assert (out.mask[other].squeeze(1)[face] > 0).float().mean() > 0.99
        # within a millimetre (the frame's half side is 100 mm) and the same surface normals
        assert (out.depth[other] - out.depth[1]).squeeze(1)[face].abs().median() < 0.01
        assert (out.normal[other] - out.normal[1]).movedim(1, -1)[face].norm(dim=-1).median() < 0.02


def test_a_mesh_of_no_heads_size_fills_the_frame():
    """A ball and a box 2.1 units tall are no head in millimetres or metres: their bounding
    box is centred and its half-diagonal scaled to 1."""
    placed = normalise(torch.from_numpy(cube_in_front_of_sphere().vertices))
    lo, hi = placed.amin(dim=0), placed.amax(dim=0)
    assert torch.allclose((lo + hi) / 2, torch.zeros(3), atol=1e-6)
    assert float((hi - lo).norm()) / 2 == pytest.approx(1.0)
