"""Sim-to-real stand-in: train on one face generator, test on another, as JSON.

affectkit ships no real scans, so cross-generator transfer is how we estimate what a model
does on a real one. Each row trains one variant (one Ray Train worker, views rendered once
into a shared cache) on 120 people and scores the exported model:

* ``facekit -> synthetic``: trained on the recipe's ``facekit`` data, tested on a
  ``synthetic`` population (procedural faces: another face model entirely);
* ``synthetic -> facekit``: the reverse, trained on a ``synthetic`` population of the same
  size as the recipe's;
* ``facekit -> facekit``: tested on ``facekit`` subjects of another population seed
  (no face shared with training): the in-distribution reference.

The variants are rows of benchmarks/ablations.py (``--variants``, by name): by default the
plain CNN baseline, AffectVLM from random init, and the shipped recipe. The shipped
recipe's encoder (``affectkit-faces``) was pretrained on both generators (other people,
population seed 2026), so for it ``facekit -> synthetic`` is a new-people test, not a
new-face-model one; the random-init rows keep that meaning. Small-data quality (5-fold on
20 people) is benchmarks/ablations.py's.

Test sets have 20 subjects, intensities 3 and 4, six emotions (240 scans), like BU-3DFE's
protocol, and their own population seeds; ``--test-performances emfacs`` makes their people
perform EMFACS variants (docs/datasets.md) instead of one prototype per emotion, as real
people do. Rows give mean ± std over training seeds, per-class recall and the confusion
pairs (a true class read as another in at least 10% of its scans, mean over seeds); chance
is 1/6 beside every row::

    .venv/bin/python benchmarks/transfer.py [--variants NAME,NAME] [--seeds 0,1] [--set KEY=VALUE ...] > benchmarks/results/transfer.json

``--out FILE`` also writes the JSON there after every training run, so a stopped run keeps
what it measured; rows already in it for other variants or generators are kept, so a
variant can be added to the table without training the others again. ``--keep DIR`` keeps
the exported model of each run there (``DIR/<variant>/<generator>-seed<seed>``).
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

from ablations import ROWS as VARIANTS
from ablations import mean_std

from affectkit.checkpoint import load_checkpoint
from affectkit.evaluation import evaluate
from affectkit.factory import build_dataset, build_render_cache
from affectkit.pipeline import render_samples
from affectkit.recipe import ComponentRef, load_recipe
from affectkit.runner import run


DEFAULT_VARIANTS = ("plain CNN + cross-entropy (random init)", "AffectVLM (random init)", "AffectVLM (shipped recipe)")
TEST_SEED = 1000  # population seed of every test set: no face shared with training (seeds < 1000)
TEST_SET = {"subjects": 20, "intensities": [3, 4], "seed": TEST_SEED}
CHANCE = 1 / 6


CONFUSED = 0.1  # a confusion pair: this share of a true class read as another


def score(model_dir: Path, tests: dict[str, ComponentRef], cache_dir: Path) -> dict[str, dict]:
    """Accuracy, macro-F1, per-class recall and the row-normalised confusion matrix of an
    exported model on every sample of each test set."""
    model, meta = load_checkpoint(model_dir)
    cache = build_render_cache(meta.inference.input, cache_dir)
    scores = {}
    for name, test in tests.items():
        dataset = build_dataset(test)
        views = render_samples(meta.inference.input, dataset, dataset.samples(), cache, labels=meta.labels)
        report = evaluate(model, views, meta.labels, meta.class_prompts, None, meta.inference.action_units, meta.inference.au_prompts)
        scores[name] = {
            "accuracy": round(report.accuracy, 4),
            "macro_f1": round(report.macro_f1, 4),
            "recall": {row["label"]: round(row["recall"], 4) for row in report.per_class},
            "confusion": report.confusion_normalised,
        }
        if report.action_units:
            scores[name]["au_mean_f1"] = round(report.action_units["mean_f1"], 4)
    return scores


def confusion_pairs(labels: list[str], matrices: list[list[list[float]]]) -> list[dict]:
    """``true -> predicted`` shares of at least :data:`CONFUSED`, mean over ``matrices``, largest first."""
    pairs = []
    for i, true in enumerate(labels):
        for j, predicted in enumerate(labels):
            share = sum(m[i][j] for m in matrices) / len(matrices)
            if i != j and share >= CONFUSED:
                pairs.append({"true": true, "predicted": predicted, "share": round(share, 4)})
    return sorted(pairs, key=lambda p: -p["share"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", default=",".join(DEFAULT_VARIANTS), help="rows of benchmarks/ablations.py to train")
    parser.add_argument("--seeds", default="0,1", help="training seeds (population and model) of every row")
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON here after every row")
    parser.add_argument("--rows", default="facekit,synthetic", help="training generators of the transfer rows")
    parser.add_argument("--set", dest="sets", nargs="*", default=[], help="recipe overrides for every run")
    parser.add_argument("--keep", type=Path, default=None, help="copy every run's exported model under this folder")
    parser.add_argument("--test-performances", choices=["prototypes", "emfacs"], default="prototypes", help="how the test people perform")
    args = parser.parse_args()
    started = time.perf_counter()
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        parser.error(f"unknown variants {unknown}; choose from {list(VARIANTS)}")
    test_set = {**TEST_SET, "performances": args.test_performances}
    tests = {name: ComponentRef(name=name, options=test_set) for name in ("facekit", "synthetic")}
    earlier = json.loads(args.out.read_text()) if args.out is not None and args.out.exists() else {}
    if earlier and {"performances": "prototypes", **earlier["test_sets"]} != test_set:
        parser.error(f"{args.out} holds rows measured on other test sets ({earlier['test_sets']}); write these to another --out")
    training = {(v, g) for v in variants for g in args.rows.split(",")}
    rows: list[dict] = [row for row in earlier.get("rows", []) if (row["variant"], row["trained_on"]) not in training]
    result = {
        "variants": {**earlier.get("variants", {}), **{v: {"recipe": VARIANTS[v][0], "overrides": VARIANTS[v][1]} for v in variants}},
        "overrides": args.sets,
        "test_sets": test_set,
        "chance": round(CHANCE, 4),
        "rows": rows,
        "machine": platform.machine(),
    }

    def save() -> None:
        result["wall_seconds"] = round(time.perf_counter() - started, 1)
        if args.out is not None:
            args.out.write_text(json.dumps(result, indent=2) + "\n")

    with tempfile.TemporaryDirectory() as tmp:
        common = [*args.sets, f"render.cache_dir={tmp}/cache", f"output.dir={tmp}/runs"]
        for variant in variants:
            recipe_file, variant_sets = VARIANTS[variant]
            base = load_recipe(Path(recipe_file), [*variant_sets, *args.sets])
            if base.data.dataset.name != "facekit":
                parser.error(f"{recipe_file}: the transfer benchmark trains on facekit data; its dataset is {base.data.dataset.name!r}")
            result.setdefault("train_data", base.data.dataset.model_dump())
            for trained_on in args.rows.split(","):
                runs = []
                for seed in (int(s) for s in args.seeds.split(",")):
                    shared = base.data.dataset.options if trained_on == "facekit" else {
                        k: v for k, v in base.data.dataset.options.items() if k in ("subjects", "intensities", "include_neutral", "performances")
                    }
                    data = {**shared, "seed": seed}
                    overrides = [*variant_sets, *common, f"seed={seed}", f"data.dataset={json.dumps({'name': trained_on, 'options': data})}"]
                    trained = run(load_recipe(Path(recipe_file), overrides), verbose=False)
                    scores = score(trained.checkpoint, tests, Path(tmp) / "cache")
                    if args.keep is not None:
                        shutil.copytree(trained.checkpoint, args.keep / variant.replace(" ", "_") / f"{trained_on}-seed{seed}", dirs_exist_ok=True)
                    runs.append({"seed": seed, "held_out_accuracy": round(trained.report.accuracy, 4), "test": scores})
                    print(f"{variant}, trained on {trained_on}, seed {seed}: {json.dumps(scores)}", flush=True, file=sys.stderr)
                    rows[:] = [row for row in rows if (row["variant"], row["trained_on"]) != (variant, trained_on)]
                    for name in tests:
                        rows.append(
                            {
                                "row": f"{trained_on} -> {name}",
                                "variant": variant,
                                "trained_on": trained_on,
                                "tested_on": name,
                                "accuracy": mean_std([r["test"][name]["accuracy"] for r in runs]),
                                "macro_f1": mean_std([r["test"][name]["macro_f1"] for r in runs]),
                                "recall": {label: mean_std([r["test"][name]["recall"][label] for r in runs]) for label in runs[0]["test"][name]["recall"]},
                                "confusion_pairs": confusion_pairs(list(runs[0]["test"][name]["recall"]), [r["test"][name]["confusion"] for r in runs]),
                                **(
                                    {"au_mean_f1": mean_std([r["test"][name]["au_mean_f1"] for r in runs])}
                                    if all("au_mean_f1" in r["test"][name] for r in runs)
                                    else {}
                                ),
                                "runs": runs,
                            }
                        )
                    save()
    save()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
