"""Time the torch renderer on a ~40k-vertex mesh at 3 views of 224 x 224 (CPU), as JSON.

    .venv/bin/python benchmarks/render.py [--runs 7] [--threads 1] > benchmarks/results/render.json
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import torch
import trimesh

from affectkit.mesh import Mesh
from affectkit.registry import create
from affectkit.views import parse_views


def best_times(render, runs: int) -> tuple[float, float]:
    """(best CPU seconds, best wall seconds) after one warm-up call."""
    render()
    cpu, wall = [], []
    for _ in range(runs):
        t, c = time.perf_counter(), time.process_time()
        render()
        wall.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    return min(cpu), min(wall)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    renderer = create("renderer", "torch")
    views = parse_views("front,left,right")
    sphere = trimesh.creation.icosphere(subdivisions=6)
    dataset = create("dataset", "synthetic", {"subjects": 1, "vertices": 40000, "intensities": [4]})
    meshes = {"icosphere": Mesh(sphere.vertices, sphere.faces), "synthetic_face": dataset.load(dataset.samples()[0])}
    results = {}
    for name, mesh in meshes.items():
        cpu, wall = best_times(lambda m=mesh: renderer.render([m], views, 224), args.runs)
        results[name] = {"vertices": len(mesh.vertices), "faces": len(mesh.faces), "best_cpu_s": round(cpu, 4), "best_wall_s": round(wall, 4)}
    print(json.dumps({"views": 3, "size": 224, "threads": args.threads, "runs": args.runs, "meshes": results, "torch": torch.__version__, "machine": platform.machine()}, indent=2))


if __name__ == "__main__":
    main()
