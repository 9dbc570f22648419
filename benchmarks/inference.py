"""Upload to probabilities, by stage, for a ~35,000-vertex scan: what the app does per file.

Writes one synthetic face at BU-4DFE size as ``.ply`` and as BU-3DFE's ``.wrl``, then, for
each, times the app's path ``--runs`` times: ``read_upload`` on the file's bytes (read),
then :meth:`Predictor.predict` (render, encode, classify). The model is the one a recipe
builds (random weights: speed does not depend on them) or ``--checkpoint``. Prints JSON::

    .venv/bin/python benchmarks/inference.py [--recipe recipes/affectvlm.yaml] [--threads 2] > benchmarks/results/inference.json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch
from affectkit_apps.uploads import UploadLimits, read_upload

from affectkit.data.mesh import save_mesh
from affectkit.factory import build_model
from affectkit.interfaces import RenderedViews
from affectkit.model.checkpoint import CheckpointMeta, save_checkpoint
from affectkit.recipe import load_recipe
from affectkit.serve.inference import Predictor
from affectkit_plugins.synthetic import SyntheticDataset
from affectkit_plugins.vrml import write_wrl

STAGES = ("read", "render", "encode", "classify")


def recipe_checkpoint(recipe_path: Path, folder: Path) -> Path:
    """A checkpoint of the recipe's model with fresh weights and the recipe's prompts."""
    from affectkit.factory import build_dataset, build_prompt_bank

    recipe = load_recipe(recipe_path, ["render.cache_dir=null"])
    labels = list(build_dataset(recipe.data.dataset).labels)
    in_channels = RenderedViews.channels(recipe.render.maps)
    model = build_model(recipe.model, num_views=len(recipe.render.views), in_channels=in_channels)
    prompts = build_prompt_bank(recipe.prompts).class_prompts(labels)
    meta = CheckpointMeta.for_recipe(recipe, labels, prompts, len(recipe.render.views), in_channels, 0, {}, [])
    return save_checkpoint(folder / "model", model, meta)


def time_stages(predictor: Predictor, name: str, data: bytes, runs: int) -> dict[str, object]:
    limits = UploadLimits()
    predictor.predict(read_upload(name, data, limits))  # warm-up: first-call allocations
    rows = []
    for _ in range(runs):
        started = time.perf_counter()
        item = read_upload(name, data, limits)
        read = time.perf_counter() - started
        prediction = predictor.predict(item)
        rows.append({"read": read, **prediction.timings, "total": time.perf_counter() - started})
    summary = {key: {"median_ms": round(1000 * statistics.median(r[key] for r in rows), 1), "best_ms": round(1000 * min(r[key] for r in rows), 1)} for key in (*STAGES, "total")}
    return {"bytes": len(data), "vertices": len(item.vertices), "faces": len(item.faces), "stages": summary}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--recipe", type=Path, default=Path("recipes/affectvlm.yaml"))
    parser.add_argument("--checkpoint", type=Path, help="time this model instead of the recipe's")
    parser.add_argument("--vertices", type=int, default=35000)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        checkpoint = args.checkpoint or recipe_checkpoint(args.recipe, folder)
        predictor = Predictor.from_checkpoint(checkpoint)
        dataset = SyntheticDataset(SyntheticDataset.Options(subjects=1, vertices=args.vertices, intensities=[4]))
        face = dataset.load(dataset.samples()[0])
        files = {"face.ply": save_mesh(face, folder / "face.ply"), "face.wrl": write_wrl(face, folder / "face.wrl")}
        results = {name: time_stages(predictor, name, path.read_bytes(), args.runs) for name, path in files.items()}
    inference = predictor.meta.inference
    print(
        json.dumps(
            {
                "model": str(args.checkpoint or args.recipe),
                "render": {"size": inference.input.size, "views": inference.input.views, "maps": inference.input.maps},
                "image_encoder": inference.architecture.image_encoder.model_dump(mode="json"),
                "threads": args.threads,
                "runs": args.runs,
                "files": results,
                "torch": torch.__version__,
                "machine": platform.machine(),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
