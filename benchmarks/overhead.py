"""Training overhead: an affectkit epoch against a bare PyTorch loop, as JSON.

Both train the recipe's model with the recipe's objective and AdamW on the same rendered
views (the render cache is filled first, so neither renders), with the same number of
threads. affectkit's figure is ``train_samples_per_s`` from ``affectkit.train.runner.run``: one
Ray Train worker with ``--cpus`` CPUs, its DataLoader, prompt sampling, LR schedule, gradient
clipping and metric reduction. The bare loop is what one would write by hand: shuffle,
slice the view tensor, pick one of each scan's prompts at random (the frozen text tower's
features are memoised per prompt, so both meet new prompts at the same rate), forward,
backward, step. The first epoch of each is left out (warm-up)::

    .venv/bin/python benchmarks/overhead.py [--epochs 4] > benchmarks/results/overhead.json
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import statistics
import tempfile
import time
from pathlib import Path

import torch

from affectkit.data.splits import subject_split
from affectkit.factory import build_dataset, build_model, build_objective
from affectkit.interfaces import LossInputs
from affectkit.recipe import Recipe, load_recipe
from affectkit.render.pipeline import training_data
from affectkit.train.runner import run


def bare_loop(recipe: Recipe, epochs: int) -> list[float]:
    """Samples per second of each epoch of a hand-written loop on the recipe's views."""
    dataset = build_dataset(recipe.data.dataset)
    train, val = subject_split(dataset.samples(), recipe.data.val_fraction, recipe.seed)
    data = training_data(recipe, dataset, train, val)
    views, labels = data.train.views, data.train.labels
    rng = random.Random(recipe.seed)
    torch.manual_seed(recipe.seed)
    model = build_model(recipe.model, views.shape[2], views.shape[3])
    objective = build_objective(recipe.loss)
    params = [p for p in (*model.parameters(), *objective.parameters()) if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=recipe.train.lr, weight_decay=recipe.train.weight_decay)
    batch = recipe.train.batch_size
    rates = []
    for _ in range(epochs):
        model.train()
        started = time.perf_counter()
        order = torch.randperm(len(labels))
        seen = 0
        for first in range(0, len(order) - batch + 1, batch):
            index = order[first : first + batch]
            prompts = [rng.choice(data.train_prompts[i]) for i in index.tolist()]
            out = model(views[index].float(), prompts, data.class_prompts)
            loss, _ = objective(LossInputs(out.view_embeddings, out.joint, out.text, labels[index], out.scale, out.classes))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            seen += len(index)
        rates.append(seen / (time.perf_counter() - started))
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipe", type=Path, default=Path("recipes/quick.yaml"))
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--cpus", type=int, default=2, help="CPUs of the Ray worker; threads of the bare loop")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        overrides = [f"train.epochs={args.epochs}", f"scaling.cpus_per_worker={args.cpus}", f"render.cache_dir={tmp}/cache", f"output.dir={tmp}/runs"]
        recipe = load_recipe(args.recipe, overrides)
        torch.set_num_threads(args.cpus)
        bare = bare_loop(recipe, args.epochs)
        ours = [m["train_samples_per_s"] for m in run(recipe, verbose=False).history]
    ours_median, bare_median = statistics.median(ours[1:]), statistics.median(bare[1:])
    result = {
        "recipe": str(args.recipe),
        "overrides": overrides[:2],
        "threads": args.cpus,
        "affectkit_samples_per_s": round(ours_median, 2),
        "bare_samples_per_s": round(bare_median, 2),
        "ratio": round(ours_median / bare_median, 3),
        "affectkit_per_epoch": [round(r, 2) for r in ours],
        "bare_per_epoch": [round(r, 2) for r in bare],
        "torch": torch.__version__,
        "machine": platform.machine(),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
