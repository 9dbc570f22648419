"""Training cost of the image encoders the transfer benchmark compares, as JSON.

A larger encoder is a lever for unseen face models only if the shipped recipe can afford
it: ``make run`` trains the shipped model and must stay within 15 minutes on 2 cores. This
trains the model of ``recipes/affectvlm.yaml`` with each encoder on the same rendered views
(benchmarks/overhead.py's hand-written loop: forward, backward, AdamW step; no Ray), in
rounds that take each encoder in turn so that all meet the same machine load, and reports
training samples per second (the second epoch of each round; mean ± std over rounds) and
the time per sample relative to the shipped encoder. Weights start at random: the cost of a
step does not depend on them::

    .venv/bin/python benchmarks/encoders.py [--encoders resnet10t,resnet18] [--rounds 3] > benchmarks/results/encoders.json
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import timm
import torch
from ablations import mean_std
from overhead import bare_loop

from affectkit.recipe import load_recipe

RECIPE = Path("recipes/affectvlm.yaml")
SUBJECTS = 24  # 216 training scans: the cost per sample is what is compared, not accuracy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--encoders", default="resnet10t,resnet18", help="timm models, the shipped one first")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    encoders = args.encoders.split(",")
    torch.set_num_threads(args.threads)
    started = time.time()
    rates: dict[str, list[float]] = {name: [] for name in encoders}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.rounds):
            for name in encoders:
                overrides = [f"model.image_encoder.options.model={name}", "model.image_encoder.options.pretrained=false",
                             f"data.dataset.options.subjects={SUBJECTS}", f"render.cache_dir={tmp}/cache"]  # fmt: skip
                rates[name].append(bare_loop(load_recipe(RECIPE, overrides), epochs=2)[1])
    shipped = mean_std(rates[encoders[0]])["mean"]
    rows = []
    for name in encoders:
        parameters = sum(p.numel() for p in timm.create_model(name, num_classes=0).parameters())
        rate = mean_std(rates[name])
        rows.append({"encoder": name, "parameters_m": round(parameters / 1e6, 1), "train_samples_per_s": rate,
                     "time_per_sample_vs_shipped": round(shipped / rate["mean"], 2)})  # fmt: skip
    report = {"benchmark": "encoders", "recipe": str(RECIPE), "subjects": SUBJECTS, "threads": args.threads, "rounds": args.rounds,
              "rows": rows, "machine": platform.machine(), "wall_seconds": round(time.time() - started, 1)}  # fmt: skip
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
