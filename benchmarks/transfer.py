"""Sim-to-real stand-in: train on one face model, test on another it never saw, as JSON.

affectkit ships no real scans, so cross-face-model transfer is how we estimate what a model
does on a real one. Each row trains one variant (one Ray Train worker, views rendered once
into a shared cache) on 120 people and scores the exported model:

* ``facekit -> synthetic``: trained on the recipe's ``facekit`` data, tested on a
  ``synthetic`` population (procedural faces: another face model entirely);
* ``synthetic -> facekit``: the reverse, trained on a ``synthetic`` population of the same
  size as the recipe's;
* ``facekit -> facekit``: tested on ``facekit`` people of another population seed (no face
  shared with training): the in-distribution reference;
* ``synthetic (12 face models) -> ...``: trained on ``synthetic`` people spread over twelve
  procedural face models, each shaping the action units its own way (the ``face_models``
  option): does training on many face models carry further to one none of them is?
* ``synthetic (scan noise) -> ...``: the procedural faces with facekit's scan noise and
  holes on average: is what a model trained on clean faces misreads on scans their surface
  detail?

**The test face model is left out of every stage.** A variant whose encoder starts from
``affectkit-faces`` starts instead from weights pretrained as ``recipes/pretrain-faces.yaml``
does, on the same number of people, but only of the training row's face model (the others
left out of the mixture); they are made once and kept in ``--pretraining-dir``
(``affectkit-faces-only-<model>[-<encoder>]-<size>px.safetensors`` with its card, named by
the views' size and any encoder other than the shipped one), so later runs reuse them. A
variant of :data:`PRETRAINING_VARIANTS` pretrains otherwise (views at 64 px, as
``affectkit-faces`` was until 2026-12-07; a larger encoder, resnet18).

The variants are rows of benchmarks/ablations.py (``--variants``, by name): by default the
plain CNN baseline, the shipped recipe and the shipped recipe trained on people who each
perform their own EMFACS variants. Every model is scored on test people performing one
prototype per emotion (``synthetic``) and performing EMFACS variants
(``synthetic emfacs``, docs/datasets.md), as real people do. Test sets have 20 people,
intensities 3 and 4, six emotions (240 scans), like BU-3DFE's protocol, population seed
1000. Rows give mean ± std over training seeds, per-class recall and the confusion pairs (a
true class read as another in at least 10% of its scans, mean over seeds); chance is 1/6::

    .venv/bin/python benchmarks/transfer.py [--variants NAME,NAME] [--seeds 0,1] [--set KEY=VALUE ...] > benchmarks/results/transfer.json

``--out FILE`` also writes the JSON there after every training run, so a stopped run keeps
what it measured, and a run with the same file goes on from there: the rows in it are
kept and the (variant, generator, seed) runs they hold are not trained again, so a seed or
a variant can be added to the table without training the others again. ``--keep DIR`` keeps
the exported model of each run there (``DIR/<variant>/<generator>-seed<seed>``);
``--cache-dir DIR`` keeps the rendered views, so that a stopped run does not render again.
Small-data quality (5-fold on 20 people) is benchmarks/ablations.py's.
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

from ablations import ROWS, mean_std

from affectkit.data.face_frame import FRAME_VERSION
from affectkit.evaluate.reports import evaluate
from affectkit.factory import build_dataset, build_render_cache
from affectkit.model.checkpoint import load_checkpoint
from affectkit.recipe import ComponentRef, load_recipe
from affectkit.render.pipeline import render_samples
from affectkit.train.runner import run
from affectkit_plugins.face_pretraining import export_run

DEFAULT_VARIANTS = ("plain CNN + cross-entropy (random init)", "AffectVLM (shipped recipe)", "+ EMFACS variants in training")
#: the larger encoder lever: about twice resnet10t's parameters (11.7M against 5.4M)
RESNET18 = "model.image_encoder.options.model=resnet18"
#: the ablation rows, and levers of the training data (which 5-fold on one fixed set cannot show)
VARIANTS: dict[str, tuple[str, list[str]]] = {
    **ROWS,
    "+ EMFACS variants in training": ("recipes/affectvlm.yaml", ["data.dataset.options.performances=emfacs"]),
    "+ identity warps in training": ("recipes/affectvlm.yaml", ["data.dataset.options.warp=6"]),
    "+ strength jitter in training": ("recipes/affectvlm.yaml", ["data.dataset.options.strength_jitter=0.3"]),
    "+ varied expression rigs in training": ("recipes/affectvlm.yaml", ["data.dataset.options.rig=1"]),
    # surface detail as no cue: up to 8 smoothing passes (2) and 0.6 mm of noise (0.3) per scan
    "+ wider scanner range in training": ("recipes/affectvlm.yaml", ["data.dataset.options.smoothing=8", "data.dataset.options.noise=0.6"]),
    # channel statistics of the encoder's inner stages perturbed (affectkit_plugins/feature_styles.py)
    "+ style mixing in training": ("recipes/affectvlm.yaml", ["model.image_encoder.options.style=mix"]),
    "+ style noise in training": ("recipes/affectvlm.yaml", ["model.image_encoder.options.style=noise"]),
    # half the training scans read against their person's neutral scan (affectkit.model.neutral_reference)
    "+ neutral reference in training": ("recipes/affectvlm.yaml", ["train.neutral_reference=0.5"]),
    "+ mirror test-time augmentation": ("recipes/affectvlm.yaml", ["render.test_time=[mirror]"]),
    "12 epochs at 96 px": ("recipes/affectvlm.yaml", ["train.epochs=12"]),
    "AffectVLM at 64 px, 12 epochs (shipped before)": ("recipes/affectvlm.yaml", ["render.size=64", "train.epochs=12"]),
    "pretrained at 64 px (shipped before)": ("recipes/affectvlm.yaml", []),
    "larger encoder (resnet18)": ("recipes/affectvlm.yaml", [RESNET18]),
    # finer views than the pretraining's (96 px): does the step from 64 to 96 px go on?
    "views at 128 px": ("recipes/affectvlm.yaml", ["render.size=128"]),
    # the mean of the weights over the second half of training (SWA; a flatter minimum)
    "+ weight averaging (last half)": ("recipes/affectvlm.yaml", ["train.weight_averaging=0.5"]),
    # twice the identities at the same number of training steps
    "240 people in 4 epochs": ("recipes/affectvlm.yaml", ["data.dataset.options.subjects=240", "train.epochs=4"]),
}
#: variants whose encoder starts from a pretraining made otherwise than affectkit-faces: its overrides
PRETRAINING_VARIANTS: dict[str, list[str]] = {
    "pretrained at 64 px (shipped before)": ["render.size=64"],
    "larger encoder (resnet18)": [RESNET18],
}
GENERATORS = ("facekit", "synthetic")
#: training sets of the rows (``--rows``), by name: a generator and the options they add to the recipe's
TRAINING_SETS: dict[str, tuple[str, dict]] = {
    "facekit": ("facekit", {}),
    "synthetic": ("synthetic", {}),
    "synthetic (12 face models)": ("synthetic", {"face_models": 12}),
    # facekit's scanner on average: noise up to 0.3 mm along the normal, holes up to 2%
    "synthetic (scan noise)": ("synthetic", {"noise": 0.15, "holes": 0.02}),
}
PRETRAINING = Path("recipes/pretrain-faces.yaml")
SHIPPED_PRETRAINING = "affectkit-faces"
TEST_SEED = 1000  # population seed of every test set: no face shared with training (seeds < 1000)
TEST_SET = {"subjects": 20, "intensities": [3, 4], "seed": TEST_SEED}
CHANCE = 1 / 6


CONFUSED = 0.1  # a confusion pair: this share of a true class read as another


def score(model_dir: Path, tests: dict[str, ComponentRef], cache_dir: Path, test_time: list[str] | None = None) -> dict[str, dict]:
    """Accuracy, macro-F1, per-class recall and the row-normalised confusion matrix of an
    exported model on every sample of each test set (``test_time``: test-time augmentations
    instead of the model's own)."""
    model, meta = load_checkpoint(model_dir, test_time=test_time)
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


def pretrained_only_on(training_set: str, folder: Path, work: Path, cache: Path, variant: str) -> tuple[Path, int]:
    """The weights file of ``affectkit-faces`` pretrained as shipped (or as
    :data:`PRETRAINING_VARIANTS` says for ``variant``) but on people of ``training_set``
    (:data:`TRAINING_SETS`) only, as many as the shipped mixture has in all, and the size of
    its views: made once, then reused."""
    generator, extra = TRAINING_SETS[training_set]
    parts = load_recipe(PRETRAINING).data.dataset.options["parts"]
    people = sum(part["options"]["subjects"] for part in parts)
    kept = next(part for part in parts if part["name"] == generator)
    data = {"name": generator, "options": {**kept["options"], **extra, "subjects": people}}
    overrides = [*PRETRAINING_VARIANTS.get(variant, []), f"data.dataset={json.dumps(data)}"]
    recipe = load_recipe(PRETRAINING, overrides)
    size, encoder = recipe.render.size, recipe.model.image_encoder.options["model"]
    name = "-".join("".join(c if c.isalnum() else " " for c in training_set).split())
    if encoder != load_recipe(PRETRAINING).model.image_encoder.options["model"]:
        name = f"{name}-{encoder}"
    path = folder / f"{SHIPPED_PRETRAINING}-only-{name}-{size}px.safetensors"
    if path.is_file():
        return path, size
    print(f"pretraining {SHIPPED_PRETRAINING} on {people} people of {training_set} only, at {size} px", flush=True, file=sys.stderr)
    trained = run(load_recipe(PRETRAINING, [*overrides, f"output.dir={work}/pretraining", f"render.cache_dir={cache}"]), verbose=False)
    return export_run(trained.checkpoint, path.stem, " ".join([f"{PRETRAINING} --set", *overrides]), folder), size


def confusion_pairs(labels: list[str], matrices: list[list[list[float]]]) -> list[dict]:
    """``true -> predicted`` shares of at least :data:`CONFUSED`, mean over ``matrices``, largest first."""
    pairs = []
    for i, true in enumerate(labels):
        for j, predicted in enumerate(labels):
            share = sum(m[i][j] for m in matrices) / len(matrices)
            if i != j and share >= CONFUSED:
                pairs.append({"true": true, "predicted": predicted, "share": round(share, 4)})
    return sorted(pairs, key=lambda p: -p["share"])


def transfer_row(variant: str, trained_on: str, tested_on: str, pretrained_on: list[str], runs: list[dict]) -> dict:
    """One row of the table: ``variant`` trained on ``trained_on``, scored on ``tested_on``,
    mean ± std over ``runs`` (one per training seed)."""
    tests = [r["test"][tested_on] for r in runs]
    labels = list(tests[0]["recall"])
    return {
        "row": f"{trained_on} -> {tested_on}",
        "variant": variant,
        "trained_on": trained_on,
        "tested_on": tested_on,
        "pretrained_on": pretrained_on,
        "accuracy": mean_std([t["accuracy"] for t in tests]),
        "macro_f1": mean_std([t["macro_f1"] for t in tests]),
        "recall": {label: mean_std([t["recall"][label] for t in tests]) for label in labels},
        "confusion_pairs": confusion_pairs(labels, [t["confusion"] for t in tests]),
        **({"au_mean_f1": mean_std([t["au_mean_f1"] for t in tests])} if all("au_mean_f1" in t for t in tests) else {}),
        "runs": runs,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", default=",".join(DEFAULT_VARIANTS), help="variants to train: rows of benchmarks/ablations.py, or VARIANTS here")
    parser.add_argument("--seeds", default="0,1", help="training seeds (population and model) of every row")
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON here after every row")
    parser.add_argument("--rows", default="facekit,synthetic", help=f"training sets of the transfer rows, of {list(TRAINING_SETS)}")
    parser.add_argument("--set", dest="sets", nargs="*", default=[], help="recipe overrides for every run")
    parser.add_argument("--keep", type=Path, default=None, help="copy every run's exported model under this folder")
    parser.add_argument("--cache-dir", type=Path, default=None, help="keep the rendered views here, for a stopped run to go on from (default: a temporary folder)")
    parser.add_argument("--pretraining-dir", type=Path, default=Path("runs/transfer-pretraining"), help="where pretrainings that leave a face model out are kept")
    args = parser.parse_args()
    started = time.perf_counter()
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        parser.error(f"unknown variants {unknown}; choose from {list(VARIANTS)}")
    training_sets = [r.strip() for r in args.rows.split(",") if r.strip()]
    unknown = [r for r in training_sets if r not in TRAINING_SETS]
    if unknown:
        parser.error(f"unknown training sets {unknown} in --rows; choose from {list(TRAINING_SETS)}")
    tests = {
        name + ("" if performances == "prototypes" else f" {performances}"): ComponentRef(name=name, options={**TEST_SET, "performances": performances})
        for name in GENERATORS
        for performances in ("prototypes", "emfacs")
    }
    earlier = json.loads(args.out.read_text()) if args.out is not None and args.out.exists() else {}
    if earlier and (earlier["test_sets"], earlier["overrides"]) != (TEST_SET, args.sets):
        parser.error(
            f"{args.out} holds rows measured on other test sets or overrides ({earlier['test_sets']}, {earlier['overrides']}); "
            "write these to another --out"
        )
    rows: list[dict] = list(earlier.get("rows", []))
    # the training runs already measured, by (variant, generator): their seeds are skipped
    runs: dict[tuple[str, str], list[dict]] = {(row["variant"], row["trained_on"]): row["runs"] for row in rows}
    result = {
        "variants": {**earlier.get("variants", {}), **{v: {"recipe": VARIANTS[v][0], "overrides": VARIANTS[v][1]} for v in variants}},
        "overrides": args.sets,
        "test_sets": TEST_SET,
        "test_performances": ["prototypes", "emfacs"],
        "chance": round(CHANCE, 4),
        "rows": rows,
        "machine": platform.machine(),
    }

    def save() -> None:
        result["wall_seconds"] = round(time.perf_counter() - started, 1)
        if args.out is not None:
            args.out.write_text(json.dumps(result, indent=2) + "\n")

    with tempfile.TemporaryDirectory() as tmp:
        cache = (args.cache_dir or Path(tmp) / "cache").resolve()
        common = [*args.sets, f"render.cache_dir={cache}", f"output.dir={tmp}/runs"]
        bases = {variant: load_recipe(Path(VARIANTS[variant][0]), [*VARIANTS[variant][1], *args.sets]) for variant in variants}
        for variant, base in bases.items():
            if base.data.dataset.name != "facekit":
                parser.error(f"{VARIANTS[variant][0]}: the transfer benchmark trains on facekit data; its dataset is {base.data.dataset.name!r}")
        result.setdefault("train_data", bases[variants[0]].data.dataset.model_dump())
        # seeds outermost: a stopped run leaves every variant measured on the same seeds
        for seed in (int(s) for s in args.seeds.split(",")):
            for variant, base in bases.items():
                recipe_file, variant_sets = VARIANTS[variant]
                shipped_start = base.model.image_encoder.options.get("pretrained") == SHIPPED_PRETRAINING
                for trained_on in training_sets:
                    if any(r["seed"] == seed for r in runs.get((variant, trained_on), [])):
                        continue
                    start, pretraining = [], {}
                    if shipped_start:
                        weights, size = pretrained_only_on(trained_on, args.pretraining_dir.resolve(), Path(tmp), cache, variant)
                        start, pretraining = [f"model.image_encoder.options.pretrained={weights}"], {"pretrained_px": size}
                    generator, extra = TRAINING_SETS[trained_on]
                    shared = base.data.dataset.options if generator == "facekit" else {
                        k: v for k, v in base.data.dataset.options.items() if k in ("subjects", "intensities", "include_neutral", "performances")
                    }
                    data = {**shared, **extra, "seed": seed}
                    overrides = [*variant_sets, *start, *common, f"seed={seed}", f"data.dataset={json.dumps({'name': generator, 'options': data})}"]
                    trained = run(load_recipe(Path(recipe_file), overrides), verbose=False)
                    scores = score(trained.checkpoint, tests, cache)
                    if args.keep is not None:
                        shutil.copytree(trained.checkpoint, args.keep / variant.replace(" ", "_") / f"{trained_on}-seed{seed}", dirs_exist_ok=True)
                    done = runs.setdefault((variant, trained_on), [])
                    done.append({"seed": seed, "frame_version": FRAME_VERSION, **pretraining, "held_out_accuracy": round(trained.report.accuracy, 4), "test": scores})
                    print(f"{variant}, trained on {trained_on}, seed {seed}: {json.dumps(scores)}", flush=True, file=sys.stderr)
                    rows[:] = [row for row in rows if (row["variant"], row["trained_on"]) != (variant, trained_on)]
                    rows.extend(transfer_row(variant, trained_on, name, [trained_on] if shipped_start else [], done) for name in tests)
                    save()
    save()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
