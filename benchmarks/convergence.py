"""Convergence: optimizer steps to reach a held-out accuracy, per loss and seed, as JSON.

Trains the recipe once per (loss, seed) with ``affectkit.train.runner.run`` (one Ray Train worker;
the views are rendered once, into a shared cache) and reads each epoch's held-out accuracy
and step count from the run's history. A seed fixes the subject split and the model's
initial weights, so every loss sees the same data and starts from the same model::

    .venv/bin/python benchmarks/convergence.py [--losses affectvlm,clip,supcon] [--seeds 0,1,2] > benchmarks/results/convergence.json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
from pathlib import Path

from affectkit.recipe import load_recipe
from affectkit.train.runner import run


def steps_to(history: list[dict[str, float]], target: float) -> int | None:
    """Steps at the end of the first epoch whose held-out accuracy reaches ``target``."""
    return next((int(m["steps"]) for m in history if m["val_accuracy"] >= target), None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipe", type=Path, default=Path("recipes/quick.yaml"))
    parser.add_argument("--losses", default="affectvlm,clip,supcon")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--target", type=float, default=0.9)
    parser.add_argument("--set", dest="sets", nargs="*", default=["render.size=32", "train.epochs=12"], help="recipe overrides for every run")
    args = parser.parse_args()
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for loss in args.losses.split(","):
            for seed in (int(s) for s in args.seeds.split(",")):
                overrides = [*args.sets, f"loss.terms=[{loss}]", f"seed={seed}", f"render.cache_dir={tmp}/cache", f"output.dir={tmp}/runs"]
                history = run(load_recipe(args.recipe, overrides), verbose=False).history
                runs.append(
                    {
                        "loss": loss,
                        "seed": seed,
                        "steps_to_target": steps_to(history, args.target),
                        "final_val_accuracy": round(history[-1]["val_accuracy"], 4),
                        "val_accuracy_per_epoch": [round(m["val_accuracy"], 4) for m in history],
                        "steps_per_epoch": int(history[0]["steps"]),
                    }
                )
    summary = {}
    for loss in args.losses.split(","):
        mine = [r for r in runs if r["loss"] == loss]
        reached = [r["steps_to_target"] for r in mine if r["steps_to_target"] is not None]
        summary[loss] = {
            "reached": f"{len(reached)}/{len(mine)}",
            "median_steps": statistics.median(reached) if reached else None,
            "steps": [r["steps_to_target"] for r in mine],
            "mean_final_accuracy": round(statistics.mean(r["final_val_accuracy"] for r in mine), 4),
        }
    result = {"recipe": str(args.recipe), "overrides": args.sets, "target": args.target, "summary": summary, "runs": runs, "machine": platform.machine()}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
