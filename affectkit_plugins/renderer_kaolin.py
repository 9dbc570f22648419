"""The ``kaolin`` renderer (NVIDIA Kaolin on CUDA) and the ``auto`` renderer that picks it.

``kaolin`` rasterises with Kaolin's documented mesh rasterizer,
:func:`kaolin.render.mesh.rasterize` (backend ``cuda``), and shades with the ``torch``
renderer's code, so the two give the same images: the same normalisation, the same
orthographic cameras and pixel centres (Kaolin's kernel puts pixel ``(i, j)`` at
``x = (2j + 1 - W) / W``, ``y = (H - 2i - 1) / H``, as :mod:`affectkit_plugins.renderer_torch`
does), the same lighting. Kaolin keeps the face with the largest camera-space z at each
pixel, so faces go in at ``z - 1`` (the near plane ``z = +1`` at 0, farther below); each
corner carries its one-hot barycentric weight and its depth as features, which Kaolin
interpolates into the barycentrics and depth the shading needs. Its weights do not depend
on winding, so it draws both sides of every face, as ``torch`` does.

Kaolin is imported only here and only when plugins load, and ``kaolin`` is registered only
where it imports: it has no wheels on PyPI for most platforms (install it from NVIDIA's
wheel index for your torch and CUDA versions). ``auto`` is always registered: it renders
with ``kaolin`` on a CUDA device when Kaolin is there, else with ``torch``.
"""

from __future__ import annotations

import functools
import importlib.util
from collections.abc import Sequence

import torch
from torch import Tensor

from affectkit import hookimpl
from affectkit.data.mesh import Mesh
from affectkit.errors import AffectkitError
from affectkit.interfaces import RenderedViews
from affectkit.render.cameras import View
from affectkit_plugins.renderer_torch import Fragments, PackedMeshes, TorchRenderer


@functools.cache
def kaolin_available() -> bool:
    """Whether Kaolin's mesh rasterizer imports (installed, and built for this torch)."""
    if importlib.util.find_spec("kaolin") is None:
        return False
    try:
        import kaolin.ops.mesh  # noqa: F401
        import kaolin.render.mesh  # noqa: F401
    except (ImportError, OSError, RuntimeError):  # e.g. a build for another torch or CUDA
        return False
    return True


class KaolinRenderer(TorchRenderer):
    """The ``torch`` renderer's images, rasterised by Kaolin on CUDA."""

    def render(self, meshes: Sequence[Mesh], views: Sequence[View], size: int, device: torch.device | str = "cuda") -> RenderedViews:
        if torch.device(device).type != "cuda":
            raise AffectkitError(f"renderer 'kaolin' rasterises on CUDA only, not on {device}; use renderer 'torch' or 'auto'")
        return super().render(meshes, views, size, device)

    def rasterize(self, packed: PackedMeshes, rotations: Tensor, size: int) -> Fragments:
        from kaolin.ops.mesh import index_vertices_by_faces
        from kaolin.render.mesh import rasterize

        n_views = rotations.shape[0]
        cam = torch.einsum("vij,nj->vni", rotations, packed.vertices)  # [V, N, 3]
        one_hot = torch.eye(3, dtype=cam.dtype, device=cam.device)
        parts = []
        for mesh, (start, stop) in enumerate(packed.face_ranges):
            corners = index_vertices_by_faces(cam, packed.faces[start:stop])  # [V, F, 3 corners, 3]
            xy = corners[..., :2].contiguous()
            features = torch.cat([one_hot.expand(*corners.shape[:2], 3, 3), 1.0 - corners[..., 2:]], dim=-1)
            image, face_index = rasterize(size, size, corners[..., 2] - 1.0, xy, features, backend="cuda")
            view, row, column = torch.nonzero(face_index >= 0, as_tuple=True)
            face = face_index[view, row, column]
            values = image[view, row, column]
            a, b, c = xy[view, face].unbind(1)
            area2 = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (c[:, 0] - a[:, 0]) * (b[:, 1] - a[:, 1])
            parts.append(
                Fragments(
                    pixels=((mesh * n_views + view) * size + row) * size + column,
                    view=view,
                    face=face + start,
                    bary=values[:, :3].T,
                    depth=values[:, 3],
                    # y points up here: a face counter-clockwise as the camera sees it has area2 > 0
                    facing=torch.where(area2 > 0, 1.0, -1.0).to(cam.dtype),
                )
            )
        return Fragments.cat(parts)


class AutoRenderer(TorchRenderer):
    """``kaolin`` on a CUDA device where Kaolin imports, ``torch`` everywhere else."""

    def render(self, meshes: Sequence[Mesh], views: Sequence[View], size: int, device: torch.device | str = "cpu") -> RenderedViews:
        if torch.device(device).type == "cuda" and kaolin_available():
            return KaolinRenderer(self.options).render(meshes, views, size, device)
        return super().render(meshes, views, size, device)


@hookimpl
def register_renderers(register) -> None:
    register("auto", AutoRenderer)
    if kaolin_available():
        register("kaolin", KaolinRenderer)
