"""The ``torch`` renderer against Open3D's ``RaycastingScene`` (Embree), as JSON.

Both render the same normalised mesh from the same orthographic cameras (the conventions
of :mod:`affectkit.render.cameras`: a ray per pixel centre, leaving the plane ``z = +1`` of each
view along ``-z``), so Open3D's hit distance is our depth. Per new mesh, the torch time
is one ``render`` call (normalisation, vertex normals, shading included); the Open3D time
is normalisation, the BVH build and one ray cast per view, with the rays of every pixel
made once beforehand (they depend only on the cameras). Both run with the same number of
threads. Reported: the headline mesh (~40k vertices, 3 views of 224 x 224) at 1 thread and
at every core, the silhouette IoU and depth error between the two images, curves over mesh
size and image size, and the torch renderer's CUDA throughput where a GPU is present::

    .venv/bin/python benchmarks/render.py [--runs 20] > benchmarks/results/render.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence

import numpy as np
import torch

from affectkit.data.mesh import Mesh
from affectkit.registry import create
from affectkit.render.cameras import View, normalise, parse_views

VIEWS = parse_views("front,left,right")
MESH_SIZES = (5_000, 10_000, 20_000, 40_000, 80_000, 160_000)
IMAGE_SIZES = (64, 128, 224, 448)


def synthetic_face(vertices: int, subject: int = 0, label: int = 0) -> Mesh:
    dataset = create("dataset", "synthetic", {"subjects": subject + 1, "vertices": vertices, "intensities": [4]})
    return dataset.load(dataset.samples()[subject * len(dataset.labels) + label])


def seconds(calls: dict[str, Callable[[], object]], runs: int, blocks: int = 5) -> dict[str, dict[str, float]]:
    """Median and best wall time of each call over ``runs`` calls.

    The calls take turns in ``blocks`` blocks of ``runs / blocks`` calls, each after a
    warm-up call: a slow spell of the machine falls on all of them, and no call runs right
    after another library's, whose worker threads still spin for a while after it returns.
    """
    times: dict[str, list[float]] = {name: [] for name in calls}
    per_block = max(1, runs // blocks)
    for _ in range(blocks):
        for name, call in calls.items():
            call()
            for _ in range(per_block):
                started = time.perf_counter()
                call()
                times[name].append(time.perf_counter() - started)
    return {
        name: {"median_ms": round(1000 * statistics.median(t), 2), "best_ms": round(1000 * min(t), 2)}
        for name, t in times.items()
    }


class Open3DRaycaster:
    """Depth images from Open3D's Embree ray caster, cameras as :mod:`affectkit.render.cameras`."""

    def __init__(self, views: Sequence[View], size: int, threads: int) -> None:
        import open3d

        self.o3d, self.threads = open3d, threads
        centres = (np.arange(size) + 0.5) / size * 2.0 - 1.0
        x, y = np.meshgrid(centres, -centres)  # row 0 is the top
        origins_cam = np.stack([x, y, np.ones_like(x)], axis=-1)
        self.rays = []
        for view in views:
            rotation = view.rotation(torch.float64).numpy()  # world-to-camera: world = R^T cam
            origins = origins_cam @ rotation
            direction = np.broadcast_to(np.array([0.0, 0.0, -1.0]) @ rotation, origins.shape)
            self.rays.append(open3d.core.Tensor(np.concatenate([origins, direction], -1).astype(np.float32)))

    def build(self, mesh: Mesh) -> object:
        o3d = self.o3d
        landmarks = None if mesh.landmarks is None else torch.from_numpy(mesh.landmarks).float()
        vertices = normalise(torch.from_numpy(mesh.vertices).float(), landmarks).numpy()
        scene = o3d.t.geometry.RaycastingScene(nthreads=self.threads)
        scene.add_triangles(o3d.core.Tensor(vertices), o3d.core.Tensor(mesh.faces.astype(np.uint32)))
        return scene

    def cast(self, scene: object) -> np.ndarray:
        """``[V, H, W]`` depth, 0 where no surface is hit (as the torch renderer's)."""
        hits = np.stack([scene.cast_rays(rays, nthreads=self.threads)["t_hit"].numpy() for rays in self.rays])
        return np.where(np.isfinite(hits), hits, 0.0)

    def render(self, mesh: Mesh) -> np.ndarray:
        return self.cast(self.build(mesh))


def agreement(ours: np.ndarray, reference: np.ndarray) -> dict[str, float]:
    """Silhouette IoU and depth error (in units of the normalised face's radius)."""
    a, b = ours > 0, reference > 0
    both = a & b
    error = np.abs(ours[both] - reference[both])
    return {
        "silhouette_iou": round(float((a & b).sum() / max(1, (a | b).sum())), 5),
        "depth_mae": float(f"{error.mean():.3g}"),
        "depth_p99": float(f"{np.quantile(error, 0.99):.3g}"),
        "depth_max": float(f"{error.max():.3g}"),
    }


def compare(renderer: object, mesh: Mesh, size: int, threads: int, runs: int, one_thread_too: bool = False) -> dict[str, object]:
    """Time both renderers on one mesh with ``threads`` threads each.

    ``open3d_cast`` re-casts a scene built before: Open3D builds its BVH lazily, at a new
    scene's first cast, so ``open3d`` minus ``open3d_cast`` is the build. With
    ``one_thread_too``, ``torch_1_thread`` times the torch renderer at 1 thread in the same
    blocks: on a VM whose second core is starved by the host for a while, PyTorch's static
    split of each operation between threads waits for it, which that comparison shows.
    """
    torch.set_num_threads(threads)
    raycaster = Open3DRaycaster(VIEWS, size, threads)
    scene = raycaster.build(mesh)
    calls = {
        "torch": lambda: renderer.render([mesh], VIEWS, size),
        "open3d": lambda: raycaster.render(mesh),
        "open3d_cast": lambda: raycaster.cast(scene),
    }
    if one_thread_too:

        def torch_1_thread() -> None:
            torch.set_num_threads(1)
            try:
                renderer.render([mesh], VIEWS, size)
            finally:
                torch.set_num_threads(threads)

        calls["torch_1_thread"] = torch_1_thread
    timings = seconds(calls, runs)
    return {
        "vertices": len(mesh.vertices),
        "faces": len(mesh.faces),
        "size": size,
        "threads": threads,
        **timings,
        "ratio": round(timings["torch"]["median_ms"] / timings["open3d"]["median_ms"], 3),
    }


def cuda_throughput(renderer: object, batch: int, size: int, runs: int) -> dict[str, object]:
    """Renders (mesh x view images) per second for a batch of distinct faces on the GPU."""
    if not torch.cuda.is_available():
        return {"skipped": "no CUDA device on this machine"}
    meshes = [synthetic_face(40_000, subject=i // 6, label=i % 6) for i in range(batch)]

    def render() -> None:
        renderer.render(meshes, VIEWS, size, device="cuda")
        torch.cuda.synchronize()

    timing = seconds({"render": render}, runs)["render"]
    return {
        "device": torch.cuda.get_device_name(),
        "batch": batch,
        "views": len(VIEWS),
        "size": size,
        "vertices": len(meshes[0].vertices),
        **timing,
        "renders_per_s": round(batch * len(VIEWS) / (timing["median_ms"] / 1000), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--vertices", type=int, default=40_000, help="headline mesh size")
    parser.add_argument("--size", type=int, default=224, help="headline image size")
    parser.add_argument("--mesh-sizes", default=",".join(map(str, MESH_SIZES)))
    parser.add_argument("--image-sizes", default=",".join(map(str, IMAGE_SIZES)))
    parser.add_argument("--cuda-batch", type=int, default=64)
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    renderer = create("renderer", "torch")
    mesh = synthetic_face(args.vertices)

    torch.set_num_threads(cores)
    ours = renderer.render([mesh], VIEWS, args.size).depth[0, :, 0].numpy()
    theirs = Open3DRaycaster(VIEWS, args.size, cores).render(mesh)
    headline = [compare(renderer, mesh, args.size, threads, args.runs, one_thread_too=threads > 1) for threads in sorted({1, cores})]
    by_vertices = [compare(renderer, synthetic_face(int(n)), args.size, cores, args.runs) for n in args.mesh_sizes.split(",")]
    by_size = [compare(renderer, mesh, int(s), cores, args.runs) for s in args.image_sizes.split(",")]
    result = {
        "views": [v.name for v in VIEWS],
        "runs": args.runs,
        "headline": headline,
        "agreement": agreement(ours, theirs),
        "by_vertices": by_vertices,
        "by_image_size": by_size,
        "cuda": cuda_throughput(renderer, args.cuda_batch, args.size, args.runs),
        "cpus": cores,
        "torch": torch.__version__,
        "open3d": __import__("open3d").__version__,
        "machine": platform.machine(),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
