"""Training throughput with 1, 2, ... Ray Train workers on the same recipe, as JSON.

Runs ``affectkit run RECIPE`` once per layout ``WORKERSxCPUS`` (workers, CPUs reserved per
worker: torch uses that many threads in each) and reads the per-epoch samples/s from the
run's ``metrics.jsonl``, leaving out the first epoch (warm-up)::

    .venv/bin/python benchmarks/scaling.py [--layouts 1x1,2x1,1x2] [--epochs 4] > benchmarks/results/scaling.json
    .venv/bin/python benchmarks/scaling.py --layouts 1x4 --set scaling.use_gpu=true   # on a GPU machine
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path


def run_once(recipe: Path, workers: int, cpus: float, epochs: int, sets: list[str], folder: Path) -> dict[str, object]:
    runs = folder / f"{workers}x{cpus:g}"
    overrides = [f"output.dir={runs}", f"scaling.num_workers={workers}", f"scaling.cpus_per_worker={cpus}", f"train.epochs={epochs}", "render.cache_dir=null", *sets]
    subprocess.run([sys.executable, "-m", "affectkit", "run", str(recipe), "--set", *overrides], check=True, stdout=subprocess.DEVNULL)
    (metrics,) = runs.glob("*/2*/metrics.jsonl")
    history = [json.loads(line) for line in metrics.read_text().splitlines()]
    rates = [m["train_samples_per_s"] for m in history[1:]]
    compute = json.loads((metrics.parent / "compute.json").read_text())
    return {
        "workers": workers,
        "cpus_per_worker": cpus,
        "samples_per_s_median": round(statistics.median(rates), 2),
        "samples_per_s_per_epoch": [round(r, 2) for r in rates],
        "epoch_seconds_median": round(statistics.median(m["epoch_seconds"] for m in history[1:]), 2),
        "final_val_accuracy": history[-1]["val_accuracy"],
        "wall_seconds": compute.get("wall_seconds"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--recipe", type=Path, default=Path("recipes/quick.yaml"))
    parser.add_argument("--layouts", default="1x1,2x1,1x2", help="comma-separated WORKERSxCPUS_PER_WORKER")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--set", dest="sets", nargs="*", default=[], help="more recipe overrides")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        layouts = [layout.split("x") for layout in args.layouts.split(",")]
        results = [run_once(args.recipe, int(n), float(cpus), args.epochs, args.sets, Path(tmp)) for n, cpus in layouts]
    base = results[0]["samples_per_s_median"]
    for r in results:
        r["speedup_vs_first"] = round(r["samples_per_s_median"] / base, 2)
    print(json.dumps({"recipe": str(args.recipe), "epochs": args.epochs, "overrides": args.sets, "cpus": os.cpu_count(), "machine": platform.machine(), "runs": results}, indent=2))


if __name__ == "__main__":
    main()
