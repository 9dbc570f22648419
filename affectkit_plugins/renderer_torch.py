"""The default renderer, ``torch``: a batched z-buffer rasteriser in pure PyTorch.

All meshes of a batch and all views are rasterised together, with the same code on CPU
and CUDA and no compiled extension:

1. every mesh is normalised (:func:`affectkit.render.cameras.normalise`) and its vertices are
   turned into every view at once, giving one *instance* per (view, face);
2. a chunk of instances at a time, those whose screen bounding box holds no pixel centre
   are dropped (at training resolutions, most faces of a scan fall between pixel
   centres) and each remaining instance lists the pixel centres inside its box. The
   lists have different lengths and are laid end to end with ``repeat_interleave``, so
   small faces (nearly all of a scan at training resolutions) cost a few entries and a
   face that fills the image is handled by the same code, chunked to bound memory;
3. candidates inside the triangle compete per pixel with ``scatter_reduce(amin)`` on a
   64-bit key whose high bits are the float32 depth (its bit pattern orders like the
   value for non-negative floats) and whose low bits are the instance id, so the nearest
   surface wins and ties break the same way on every device. A chunk's raster data is
   dropped once drawn: the winners' is recomputed, by the same arithmetic, for step 4;
4. each covered pixel takes the barycentrics and depth of its winning face and
   interpolates per-vertex normals and colour (vertex colours, or a texture sampled
   through per-vertex ``uv``), shaded with one directional light plus ambient. Steps 1-3
   give :class:`Fragments`, all that shading needs, so another rasteriser (the ``kaolin``
   renderer's) shares step 4.

The projection is orthographic over [-1, 1]^2; pixel ``(row i, column j)`` has its centre
at ``x = (j + 0.5) / size * 2 - 1`` and ``y = 1 - (i + 0.5) / size * 2`` (row 0 is the
top). Depth is ``1 - z`` in camera space (the near plane is ``z = +1``, which the unit
sphere of a normalised face never crosses) and 0 on background.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor

from affectkit import hookimpl, interfaces
from affectkit.data.mesh import Mesh
from affectkit.interfaces import RenderedViews, Renderer
from affectkit.render.cameras import View, normalise

#: Albedo of meshes with neither vertex colours nor a texture.
DEFAULT_GREY = 0.7
#: Barycentric tolerance so that pixel centres on a shared edge never fall between faces.
_INSIDE_EPS = 1e-5
#: Twice the smallest screen-space triangle area (in pixels^2) worth rasterising.
_MIN_AREA2 = 1e-10
#: Candidate (instance, pixel) pairs processed at once: bounds peak memory (~150 B each).
_CANDIDATE_BUDGET = 1 << 21
#: (view, face) instances rendered at once: meshes are grouped to stay under it.
_INSTANCE_BUDGET = 1 << 22
#: Faces set up and drawn at once on CPU: the temporaries stay small, in cache and off the
#: page-faulting allocation path that tensors of megabytes take (CUDA does a view at once).
_SETUP_CHUNK = 1 << 17


class TorchRenderer(Renderer):
    """Batched pure-PyTorch z-buffer rasteriser (CPU or CUDA, no compiled extension)."""

    class Options(interfaces.Options):
        light: tuple[float, float, float] = Field(
            (0.0, 0.0, 1.0), description="direction toward the light in camera space (x right, y up, z to the camera)"
        )
        ambient: float = Field(0.3, ge=0.0, le=1.0, description="ambient share of the shading; diffuse gets the rest")
        background: float = Field(0.0, ge=0.0, le=1.0, description="grey level of rgb where no surface is visible")
        supersample: int = Field(
            1, ge=1, le=4, description="render at this many times the size and average down (anti-aliased rgb)"
        )

    options: Options

    def render(
        self,
        meshes: Sequence[Mesh],
        views: Sequence[View],
        size: int,
        device: torch.device | str = "cpu",
    ) -> RenderedViews:
        """Render every mesh from every view at ``size`` x ``size`` pixels on ``device``."""
        if not meshes or not views:
            raise ValueError("render needs at least one mesh and one view")
        if size < 1:
            raise ValueError(f"size must be a positive number of pixels, got {size}")
        device = torch.device(device)
        factor = self.options.supersample
        parts = [
            self._render_group(group, views, size * factor, device) for group in _groups(meshes, len(views))
        ]
        rendered = RenderedViews.concat(parts) if len(parts) > 1 else parts[0]
        return _downsample(rendered, factor) if factor > 1 else rendered

    # -----------------------------------------------------------------------------------

    @torch.no_grad()  # not inference_mode: callers may feed the images to autograd
    def _render_group(self, meshes: Sequence[Mesh], views: Sequence[View], size: int, device: torch.device) -> RenderedViews:
        packed = PackedMeshes(meshes, device)
        rotations = torch.stack([view.rotation() for view in views]).to(device)  # [V, 3, 3]
        fragments = self.rasterize(packed, rotations, size)
        return _shade(fragments, packed, rotations, size, self.options)

    def rasterize(self, packed: PackedMeshes, rotations: Tensor, size: int) -> Fragments:
        """The nearest face at every pixel of every (mesh, view) image: the step another
        rasteriser overrides (the ``kaolin`` renderer), shading and maps staying the same."""
        device = packed.vertices.device
        n_views, n_faces = rotations.shape[0], packed.faces.shape[0]
        cam = torch.einsum("vij,nj->ivn", rotations, packed.vertices)  # [3, V, N]
        scale = size / 2.0
        px = (cam[0] + 1.0) * scale - 0.5  # pixel centres land on integers
        py = (1.0 - cam[1]) * scale - 0.5  # row 0 is the top
        pd = 1.0 - cam[2]  # depth from the near plane z = +1
        faces_t = packed.faces_t
        zbuffer = _ZBuffer(packed.count * n_views, size, n_views * n_faces, device)
        # Instance view * F + face, drawn a chunk of faces at a time (see _SETUP_CHUNK).
        chunk = _SETUP_CHUNK if device.type == "cpu" else max(1, n_faces)
        for view in range(n_views):
            for start in range(0, n_faces, chunk):
                stop = min(start + chunk, n_faces)
                image = packed.face_mesh[start:stop] * n_views + view
                zbuffer.draw(_setup(px[view], py[view], pd[view], faces_t[:, start:stop], image, size), view * n_faces + start)

        pixels, instance = zbuffer.nearest()
        view = torch.div(instance, n_faces, rounding_mode="floor")
        face = instance - view * n_faces
        # Barycentrics and depth of the winning face, with the raster's own arithmetic.
        offset = view * px.shape[1]
        corners = [faces_t[k].index_select(0, face) + offset for k in range(3)]
        x = [px.view(-1).index_select(0, c) for c in corners]
        y = [py.view(-1).index_select(0, c) for c in corners]
        lo_x, lo_y = _first_centre(x, size), _first_centre(y, size)
        local = pixels % (size * size)
        row = torch.div(local, size, rounding_mode="floor")
        coef, area2 = _coefficients(x, y, [pd.view(-1).index_select(0, c) for c in corners], lo_x, lo_y)
        b0, b1, b2, depth = _interpolants(coef, (local - row * size) - lo_x, row - lo_y)
        return Fragments(
            pixels=pixels,
            view=view,
            face=face,
            bary=torch.stack([b0, b1, b2]),
            depth=depth,
            # Pixel y points down, so a counter-clockwise face seen from the camera has area2 < 0.
            facing=torch.where(area2 < 0, 1.0, -1.0).to(px.dtype),
        )


@dataclass
class Fragments:
    """The visible surface: for every covered pixel, which face of which view, and where.

    A rasteriser's whole output; shading (:func:`_shade`) needs nothing else, so another
    rasteriser (the ``kaolin`` renderer's) gives the same images from the same fragments.
    """

    pixels: Tensor  # [P] flat index into [meshes, views, size, size]
    view: Tensor  # [P] view index
    face: Tensor  # [P] index into the packed faces
    bary: Tensor  # [3, P] barycentric weights of the face's corners
    depth: Tensor  # [P] 1 - z in camera space
    facing: Tensor  # [P] +1 where the face's front is seen, -1 for its back

    @staticmethod
    def cat(parts: Sequence[Fragments]) -> Fragments:
        if len(parts) == 1:
            return parts[0]
        return Fragments(**{f: torch.cat([getattr(p, f) for p in parts], dim=-1) for f in Fragments.__dataclass_fields__})


def _shade(fragments: Fragments, packed: PackedMeshes, rotations: Tensor, size: int, opts: TorchRenderer.Options) -> RenderedViews:
    """Interpolate normals and albedo over the fragments, light them, and lay out the maps.

    Per-vertex and per-pixel values are channel-first (``[C, N]``, ``[C, P]``): every
    arithmetic step then runs over contiguous rows.
    """
    n_views, n_vertices = rotations.shape[0], packed.vertices.shape[0]
    bary = fragments.bary
    corners = packed.faces_t.index_select(1, fragments.face)  # [3, P]

    def interpolate(values: Tensor, offset: Tensor | int = 0) -> Tensor:  # [C, N] -> [C, P]
        out = values.index_select(1, corners[0] + offset) * bary[0]
        for k in (1, 2):
            out.addcmul_(values.index_select(1, corners[k] + offset), bary[k])
        return out

    # vertex normals turned into every view's camera, then interpolated per pixel
    view_normals = torch.einsum("vij,jn->ivn", rotations, packed.normals).reshape(3, -1)  # [3, V * N]
    # Two-sided: a face seen from behind shows its other side, facing the camera.
    normal = _unit(interpolate(view_normals, fragments.view * n_vertices) * fragments.facing)

    albedo = interpolate(packed.colors)
    if packed.textured:
        uv = interpolate(packed.uv)
        mesh_of = torch.div(fragments.pixels, n_views * size * size, rounding_mode="floor")
        for index, texture in packed.textures.items():
            rows = torch.nonzero(mesh_of == index).squeeze(1)
            albedo[:, rows] = _sample(texture, uv[:, rows])

    light = F.normalize(torch.tensor(opts.light, dtype=normal.dtype, device=normal.device), dim=0)
    lambert = (light @ normal).clamp_min(0.0)
    shade = albedo * (opts.ambient + (1.0 - opts.ambient) * lambert)
    maps = _Maps(fragments.pixels, packed.count, n_views, size)
    return RenderedViews(
        rgb=maps.lay_out(shade.clamp(0.0, 1.0), opts.background),
        depth=maps.lay_out(fragments.depth.unsqueeze(0)),
        normal=maps.lay_out(normal),
        mask=maps.lay_out(torch.ones_like(fragments.depth).unsqueeze(0)),
    )


def _unit(vectors: Tensor) -> Tensor:
    """``[3, P]`` columns scaled to unit length (zero columns stay zero, as F.normalize)."""
    return vectors / vectors.square().sum(0).sqrt().clamp_min(1e-12)


class _Maps:
    """Scatters per-pixel values into ``[meshes, views, C, size, size]`` images."""

    def __init__(self, pixels: Tensor, count: int, n_views: int, size: int) -> None:
        self.pixels, self.count, self.n_views, self.size, self.area = pixels, count, n_views, size, size * size
        self.image = torch.div(pixels, self.area, rounding_mode="floor")

    def lay_out(self, values: Tensor, background: float = 0.0) -> Tensor:
        """``[C, P]`` values at the fragments' pixels, ``background`` elsewhere."""
        channels = values.shape[0]
        shape = (self.count, self.n_views, channels, self.size, self.size)
        out = torch.full(shape, background, dtype=torch.float32, device=values.device)
        # Pixel p of image i lies at (i * C + c) * size^2 + (p - i * size^2) in channel c.
        first = self.pixels + self.image * ((channels - 1) * self.area)
        for channel in range(channels):
            out.view(-1).index_copy_(0, first + channel * self.area, values[channel].to(torch.float32))
        return out


# ---------------------------------------------------------------------------------------
# Packing meshes
# ---------------------------------------------------------------------------------------


class PackedMeshes:
    """A batch of meshes laid end to end, with face indices into the packed vertices."""

    def __init__(self, meshes: Sequence[Mesh], device: torch.device) -> None:
        vertices, faces, face_mesh, colors, uvs = [], [], [], [], []
        self.count = len(meshes)
        self.face_ranges: list[tuple[int, int]] = []  # each mesh's slice of the packed faces
        self.textures: dict[int, Tensor] = {}
        start = 0
        for index, mesh in enumerate(meshes):
            v = torch.from_numpy(mesh.vertices).to(device)
            marks = None if mesh.landmarks is None else torch.from_numpy(mesh.landmarks).to(device)
            vertices.append(normalise(v, marks))
            faces.append(torch.from_numpy(mesh.faces).to(device) + start)
            face_mesh.append(torch.full((len(mesh.faces),), index, dtype=torch.int64, device=device))
            first_face = self.face_ranges[-1][1] if self.face_ranges else 0
            self.face_ranges.append((first_face, first_face + len(mesh.faces)))
            n = len(mesh.vertices)
            if mesh.colors is not None:
                colors.append(torch.from_numpy(mesh.colors).to(device).T.clamp(0.0, 1.0))
            else:
                colors.append(torch.full((3, n), DEFAULT_GREY, device=device))
            if mesh.uv is not None and mesh.texture is not None:
                uvs.append(torch.from_numpy(mesh.uv).to(device).T)
                self.textures[index] = _texture_tensor(mesh.texture, device)
            else:
                uvs.append(torch.zeros(2, n, device=device))
            start += n
        self.vertices = torch.cat(vertices)  # [N, 3]
        self.faces = torch.cat(faces)  # [F, 3]
        self.faces_t = torch.stack(self.faces.unbind(1))  # [3, F] (faster than a transposing copy)
        self.face_mesh = torch.cat(face_mesh)
        # Per-vertex shading data is channel-first, as _shade uses it.
        self.colors = torch.cat(colors, dim=1)  # [3, N]
        self.uv = torch.cat(uvs, dim=1)  # [2, N]
        self.textured = bool(self.textures)
        self.normals = _vertex_normals(self.vertices, self.faces_t)  # [3, N]


def _vertex_normals(vertices: Tensor, faces_t: Tensor) -> Tensor:
    """``[3, N]`` area-weighted per-vertex normals (zero for vertices on no face)."""
    columns = torch.stack(vertices.unbind(1))
    v0, v1, v2 = (columns.index_select(1, corner) for corner in faces_t)
    face_normals = torch.linalg.cross(v1 - v0, v2 - v0, dim=0)
    normals = torch.zeros_like(columns)
    for corner in faces_t:
        normals.index_add_(1, corner, face_normals)
    return _unit(normals)


def _texture_tensor(texture: np.ndarray, device: torch.device) -> Tensor:
    """``[H, W, C]`` uint8 (or float in [0, 1]) image -> ``[1, 3, H, W]`` float32."""
    image = np.asarray(texture)
    if image.ndim == 2:
        image = image[..., None]
    image = np.repeat(image, 3, axis=2) if image.shape[2] == 1 else image[..., :3]
    scale = 255.0 if image.dtype.kind in "ui" else 1.0
    tensor = torch.from_numpy(np.ascontiguousarray(image)).to(device=device, dtype=torch.float32) / scale
    return tensor.permute(2, 0, 1).unsqueeze(0).contiguous()


def _sample(texture: Tensor, uv: Tensor) -> Tensor:
    """Bilinear ``[3, P]`` texture lookup at ``[2, P]`` ``uv``, v up (row 0 of the image is
    v = 1), as in OBJ."""
    grid = torch.stack([uv[0] * 2.0 - 1.0, 1.0 - uv[1] * 2.0], dim=1).view(1, 1, -1, 2)
    sampled = F.grid_sample(texture, grid, mode="bilinear", padding_mode="border", align_corners=False)
    return sampled.view(3, -1)


def _groups(meshes: Sequence[Mesh], n_views: int) -> list[Sequence[Mesh]]:
    """Consecutive meshes whose (view, face) instances fit one rasterisation."""
    groups, start, load = [], 0, 0
    for end, mesh in enumerate(meshes):
        cost = len(mesh.faces) * n_views
        if end > start and load + cost > _INSTANCE_BUDGET:
            groups.append(meshes[start:end])
            start, load = end, 0
        load += cost
    groups.append(meshes[start:])
    return groups


# ---------------------------------------------------------------------------------------
# Rasterising
# ---------------------------------------------------------------------------------------


@dataclass
class _Setup:
    """Raster data of a chunk of (view, face) instances whose bounding box holds a pixel
    centre (at training resolutions most faces fall between pixel centres): ``kept`` says
    which of the chunk's instances they are. Degenerate ones have ``count`` 0."""

    kept: Tensor  # [I] index into the chunk's instances
    width: Tensor  # [I] bounding box width in pixels (int64)
    count: Tensor  # [I] pixel centres in the bounding box
    base: Tensor  # [I] flat pixel index of the box's top-left corner
    coef: Tensor  # [9, I]: b0, b1, depth = a * dx + b * dy + c, (dx, dy) from the corner


def _setup(px: Tensor, py: Tensor, pd: Tensor, corners: Tensor, image: Tensor, size: int) -> _Setup:
    """Bounding boxes and affine barycentric/depth coefficients of a chunk of instances.

    ``px``, ``py``, ``pd`` hold one view's vertices' pixel x, pixel y and depth; ``corners``
    ``[3, I]`` indexes them per instance corner; ``image`` ``[I]`` is each one's image.
    """
    x = [px.index_select(0, c) for c in corners]
    y = [py.index_select(0, c) for c in corners]
    lo_x, width = _box(x, size)
    lo_y, height = _box(y, size)
    kept = torch.nonzero((width > 0) & (height > 0)).squeeze(1)
    x, y = [t.index_select(0, kept) for t in x], [t.index_select(0, kept) for t in y]
    lo_x, lo_y, width, height = (t.index_select(0, kept) for t in (lo_x, lo_y, width, height))
    depth = [pd.index_select(0, c.index_select(0, kept)) for c in corners]
    coef, area2 = _coefficients(x, y, depth, lo_x, lo_y)
    ox, oy, width = lo_x.to(torch.int64), lo_y.to(torch.int64), width.to(torch.int64)
    return _Setup(
        kept=kept,
        width=width,
        count=width * height.to(torch.int64) * (area2.abs() > _MIN_AREA2),
        base=image.index_select(0, kept) * (size * size) + oy * size + ox,
        coef=coef,
    )


def _first_centre(coords: Sequence[Tensor], size: int) -> Tensor:
    """First pixel centre at or after the corners' least coordinate, clipped to the image."""
    return torch.ceil(torch.minimum(torch.minimum(coords[0], coords[1]), coords[2])).clamp_(0, size - 1)


def _box(coords: Sequence[Tensor], size: int) -> tuple[Tensor, Tensor]:
    """:func:`_first_centre`, and how many pixel centres follow up to the corners' greatest
    coordinate (<= 0 when none lies between), clipped to the image."""
    lo = _first_centre(coords, size)
    hi = torch.floor(torch.maximum(torch.maximum(coords[0], coords[1]), coords[2])).clamp_(0, size - 1)
    return lo, hi - lo + 1.0


def _coefficients(
    x: Sequence[Tensor], y: Sequence[Tensor], depth: Sequence[Tensor], lo_x: Tensor, lo_y: Tensor
) -> tuple[Tensor, Tensor]:
    """``[9, I]`` affine coefficients of b0, b1 and depth in (dx, dy) from ``(lo_x, lo_y)``,
    and twice the signed screen area (0 coefficients where it is too small to draw)."""
    # Corners 0 and 1 relative to corner 2, and corner 2 relative to the box corner: small
    # numbers wherever the face lies, which keeps the edge functions well conditioned.
    u0, u1, v0, v1 = x[0] - x[2], x[1] - x[2], y[0] - y[2], y[1] - y[2]
    sx, sy = x[2] - lo_x, y[2] - lo_y
    area2 = u0 * v1 - u1 * v0
    usable = area2.abs() > _MIN_AREA2
    inv = torch.where(usable, 1.0 / torch.where(usable, area2, 1.0), 0.0)
    # At (qx, qy) = (dx - sx, dy - sy) from corner 2, b0 = (v1 qx - u1 qy) / area2 and
    # b1 = (u0 qy - v0 qx) / area2.
    a0, b1 = v1 * inv, u0 * inv
    inv.neg_()
    b0, a1 = u1 * inv, v0 * inv
    c0 = (a0 * sx).add_(b0 * sy).neg_()
    c1 = (a1 * sx).add_(b1 * sy).neg_()
    d0, d1, d2 = depth
    e0, e1 = d0 - d2, d1 - d2
    coef = torch.stack([a0, b0, c0, a1, b1, c1, a0 * e0 + a1 * e1, b0 * e0 + b1 * e1, d2 + c0 * e0 + c1 * e1])
    return coef, area2


def _interpolants(coef: Tensor, dx: Tensor, dy: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Barycentrics b0, b1, b2 and depth at offsets (dx, dy) from each box corner."""
    dx, dy = dx.to(coef.dtype), dy.to(coef.dtype)
    b0 = coef[0] * dx + coef[1] * dy + coef[2]
    b1 = coef[3] * dx + coef[4] * dy + coef[5]
    depth = coef[6] * dx + coef[7] * dy + coef[8]
    return b0, b1, 1.0 - b0 - b1, depth


class _ZBuffer:
    """The nearest instance per pixel, kept as a 64-bit key: float32 depth bits (which sort
    like the values for non-negative floats) above the instance id."""

    EMPTY = torch.iinfo(torch.int64).max

    def __init__(self, n_images: int, size: int, n_instances: int, device: torch.device) -> None:
        self.id_bits = max(1, int(n_instances - 1).bit_length())
        if self.id_bits > 31:
            raise ValueError(f"too many faces in one batch to rasterise ({n_instances} view-face pairs)")
        self.size = size
        self.keys = torch.full((n_images * size * size,), self.EMPTY, dtype=torch.int64, device=device)

    def draw(self, setup: _Setup, first: int) -> None:
        """Let every pixel centre inside an instance of ``setup`` (chunk starting at
        instance ``first``) compete, ``_CANDIDATE_BUDGET`` candidates at a time."""
        device, size = self.keys.device, self.size
        n_inst = setup.count.shape[0]
        ends = torch.cumsum(setup.count, 0)
        starts = ends - setup.count
        ends_cpu = ends.cpu()
        done = lo = 0
        while lo < n_inst:
            hi = int(torch.searchsorted(ends_cpu, done + _CANDIDATE_BUDGET, right=True))
            hi = min(max(hi, lo + 1), n_inst)
            total = int(ends_cpu[hi - 1]) - done
            if total:
                inst = torch.repeat_interleave(torch.arange(lo, hi, device=device), setup.count[lo:hi], output_size=total)
                # Position of each candidate in its instance's box (inst is sorted: gathers stay local).
                local = torch.arange(done, done + total, device=device) - starts.index_select(0, inst)
                width = setup.width.index_select(0, inst)
                dy = torch.div(local, width, rounding_mode="floor")
                dx = local - dy * width
                b0, b1, b2, depth = _interpolants(setup.coef.index_select(1, inst), dx, dy)
                inside = (b0 >= -_INSIDE_EPS) & (b1 >= -_INSIDE_EPS) & (b2 >= -_INSIDE_EPS)
                key = (depth.clamp_min(0.0).view(torch.int32).to(torch.int64) << self.id_bits) | (
                    setup.kept.index_select(0, inst) + first
                )
                pixel = setup.base.index_select(0, inst) + dy * size + dx
                self.keys.scatter_reduce_(0, pixel, torch.where(inside, key, self.EMPTY), reduce="amin", include_self=True)
            done += total
            lo = hi

    def nearest(self) -> tuple[Tensor, Tensor]:
        """The covered pixels (flat indices) and the instance seen at each."""
        pixels = torch.nonzero(self.keys != self.EMPTY).squeeze(1)
        return pixels, self.keys.index_select(0, pixels) & ((1 << self.id_bits) - 1)


# ---------------------------------------------------------------------------------------
# Batches and supersampling
# ---------------------------------------------------------------------------------------



def _downsample(rendered: RenderedViews, factor: int) -> RenderedViews:
    """Average ``factor`` x ``factor`` blocks: rgb blends edges with the background; depth
    and normals average the covered samples; a pixel is covered if at least half its
    samples are."""

    def pool(x: Tensor) -> Tensor:
        b, v, c, h, w = x.shape
        return F.avg_pool2d(x.reshape(b * v, c, h, w), factor).reshape(b, v, c, h // factor, w // factor)

    coverage = pool(rendered.mask)
    mask = (coverage >= 0.5).to(coverage.dtype)
    weight = mask / coverage.clamp_min(1e-6)
    normal = F.normalize(pool(rendered.normal), dim=2) * mask
    return RenderedViews(rgb=pool(rendered.rgb), depth=pool(rendered.depth) * weight, normal=normal, mask=mask)


@hookimpl
def register_renderers(register) -> None:
    register("torch", TorchRenderer)
