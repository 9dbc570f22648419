"""How often the predictor's input checks refuse good scans and pass bad ones, as JSON.

:func:`affectkit.serve.inference.check_visible` refuses a mesh that renders blank or that faces
away from the cameras. A model with the canonical face frame (the shipped one) turns every
scan to face the cameras first, so the second check is what guards models that take scans
as they come (``render.frame.align: false``); the scans here are rendered that way. Here it sees scans of people no model was trained on (facekit with
scan realism, population seed 1000; procedural faces, seed 1000), each as it is, turned
90° (a profile: must still pass) and turned 180° about the vertical axis (the back of the
face: must be refused), rendered as the shipped model renders them. Reported per set: how
many were refused, and the range of the front view's
:func:`~affectkit.serve.inference.depth_curvature`::

    .venv/bin/python benchmarks/input_checks.py > benchmarks/results/input_checks.json
"""

from __future__ import annotations

import argparse
import json
import platform

import torch

from affectkit.data.mesh import Mesh
from affectkit.errors import MeshError
from affectkit.factory import build_render_cache
from affectkit.recipe import FrameConfig
from affectkit.registry import create
from affectkit.render.cameras import View
from affectkit.serve.inference import Predictor, check_visible, depth_curvature, frontal_view


def turned(mesh: Mesh, degrees: float) -> Mesh:
    """``mesh`` turned ``degrees`` about the vertical (y) axis: what a camera at yaw
    ``-degrees`` sees (:meth:`affectkit.render.cameras.View.rotation`)."""
    rotation = View("turned", -degrees).rotation(torch.float64).numpy()
    return Mesh(mesh.vertices @ rotation.T, mesh.faces, colors=mesh.colors)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subjects", type=int, default=20)
    args = parser.parse_args()
    predictor = Predictor.from_pretrained()
    cache = build_render_cache(predictor.inputs.model_copy(update={"frame": FrameConfig(align=False)}))
    populations = {
        "facekit (scan realism)": create("dataset", "facekit", {"subjects": args.subjects, "seed": 1000, "intensities": [1, 4], "include_neutral": True}),
        "procedural": create("dataset", "synthetic", {"subjects": args.subjects, "seed": 1000, "intensities": [1, 4], "include_neutral": True}),
    }
    frontal = frontal_view(predictor.views)
    results = {}
    for name, dataset in populations.items():
        for degrees in (0, 90, 180):
            refused, curvature = 0, []
            for sample in dataset.samples():
                rendered = cache.render([turned(dataset.load(sample), degrees)])
                curvature.append(float(depth_curvature(rendered, frontal)))
                try:
                    check_visible(rendered, predictor.views, sample.key)
                except MeshError:
                    refused += 1
            results[f"{name}, turned {degrees}°"] = {
                "scans": len(curvature),
                "refused": refused,
                "frontal_view_curvature": {"min": round(min(curvature), 3), "max": round(max(curvature), 3)},
            }
    print(
        json.dumps(
            {
                "model_inputs": predictor.inputs.model_dump(mode="json"),
                "expected": "0° and 90° pass (refused 0); 180° is refused (refused = scans)",
                "results": results,
                "python": platform.python_version(),
            },
            indent=2,
            ensure_ascii=False,
        )
    )


if __name__ == "__main__":
    main()
