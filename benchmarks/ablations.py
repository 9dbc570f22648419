"""Which parts of AffectVLM earn their place on small realistic data, as JSON.

Real 3D FER datasets are small, so the question is what wins with 16 people to learn
from. Every row is subject-independent 5-fold cross-validation (``affectkit cv``'s code
path) on one realistic set: 20 ``facekit`` people of population seed 1000 (no face shared
with any training or pretraining population), intensities 3 and 4, the six emotions,
scan realism on, written in the BU-3DFE layout and read back through the ``bu3dfe``
reader with its landmarks (240 scans, 48 a fold). Rows:

* the plain baseline, ``recipes/baseline-cnn.yaml`` (same views and encoder, a learned
  classifier head, cross-entropy, no text), from random init (30 epochs) and from
  ``affectkit-faces`` (12, as the shipped recipe);
* the shipped ``recipes/affectvlm.yaml``, from random init (30 epochs) and as shipped;
* the shipped recipe with one thing changed: without prompt augmentation (one template,
  no synonyms or attributes), without mixed view augmentation, without viewmix, the front
  view only, another loss (``clip``, ``supcon``, ``cross_entropy`` against the class
  prompts), other maps (depth, normal + depth, rgb), attention fusion, region masking
  (``regionmask``: the upper or lower face hidden in a third of the samples);
* action units: the shipped recipe scoring AUs from the joint embedding (the AU term then
  trains the encoder too) instead of its AU readout, and the plain baseline (from
  ``affectkit-faces``) with a learned AU head; their rows add the mean AU F1 over the AUs
  the test folds show (the set carries its AU labels in side files).

Each row gives accuracy and macro-F1 as mean ± std over the folds, every fold's score and
the mean test-fold accuracy after every epoch (convergence). Views are rendered once into
a cache shared by all rows::

    .venv/bin/python benchmarks/ablations.py --out benchmarks/results/ablations.json

``--out`` is rewritten after every row, and rows already in it are kept and skipped, so a
stopped run resumes where it stopped. ``--rows`` picks rows by name.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

from affectkit.recipe import load_recipe
from affectkit.registry import create, write_generated
from affectkit.train.cross_validation import cross_validate

REALISTIC_SET = {"subjects": 20, "intensities": [3, 4], "seed": 1000}
CHANCE = 1 / 6
# random init gets 30 epochs (the shipped recipe 12): it needs the longer schedule, and the
# comparison should be with its best, not with it cut short
RANDOM_INIT = ["model.image_encoder.options.pretrained=false", "train.epochs=30"]
PRETRAINED = ["model.image_encoder.options.pretrained=affectkit-faces", "train.epochs=12"]

#: the shipped recipe's view augmentations, and the upper or lower face hidden
REGION_MASKING = [{"name": "mixed"}, {"name": "viewmix"}, {"name": "regionmask"}]
#: row name -> (recipe, overrides of that recipe)
ROWS: dict[str, tuple[str, list[str]]] = {
    "plain CNN + cross-entropy (random init)": ("recipes/baseline-cnn.yaml", RANDOM_INIT),
    "plain CNN + cross-entropy (affectkit-faces)": ("recipes/baseline-cnn.yaml", PRETRAINED),
    "AffectVLM (random init)": ("recipes/affectvlm.yaml", RANDOM_INIT),
    "AffectVLM (shipped recipe)": ("recipes/affectvlm.yaml", []),
    "- prompt augmentation": (
        "recipes/affectvlm.yaml",
        ['prompts.augmenters=[{"name": "templates", "options": {"templates": ["a 3D scan of a {adjective} face"], "synonyms": false}}]'],
    ),
    "- mixed view augmentation": ("recipes/affectvlm.yaml", ['train.augmentations=[{"name": "viewmix"}]']),
    "- viewmix": ("recipes/affectvlm.yaml", ['train.augmentations=[{"name": "mixed"}]']),
    "front view only": ("recipes/affectvlm.yaml", ["render.views=[front]"]),
    "loss clip": ("recipes/affectvlm.yaml", ['loss.terms=["clip"]']),
    "loss supcon": ("recipes/affectvlm.yaml", ['loss.terms=["supcon"]']),
    "loss cross_entropy (class prompts)": ("recipes/affectvlm.yaml", ['loss.terms=["cross_entropy"]']),
    "maps depth": ("recipes/affectvlm.yaml", ["render.maps=[depth]"]),
    "maps normal + depth": ("recipes/affectvlm.yaml", ["render.maps=[normal, depth]"]),
    "maps rgb": ("recipes/affectvlm.yaml", ["render.maps=[rgb]"]),
    "fusion attention": ("recipes/affectvlm.yaml", ["model.fusion=attention"]),
    "+ region masking": ("recipes/affectvlm.yaml", [f"train.augmentations={json.dumps(REGION_MASKING)}"]),
    "AU term through the joint embedding": ("recipes/affectvlm.yaml", ["model.action_units=joint"]),
    "plain CNN + cross-entropy + AU head (affectkit-faces)": (
        "recipes/baseline-cnn.yaml",
        [*PRETRAINED, f'loss.terms={json.dumps([{"name": "cross_entropy"}, {"name": "action_units"}])}'],
    ),
}


def realistic_set(root: Path) -> Path:
    """The BU-3DFE-layout realistic set, written once (the writer is deterministic)."""
    out = root / f"facekit-bu3dfe-{REALISTIC_SET['subjects']}-seed{REALISTIC_SET['seed']}-au"  # -au: with AU side files
    if not (out / ".complete").exists():
        write_generated(create("dataset", "facekit", REALISTIC_SET), "facekit", out, layout="bu3dfe")
        (out / ".complete").write_text("")
    return out


def au_pooled(run_dir: Path) -> dict:
    """Per-AU F1, precision and recall over every test fold pooled (rows that score AUs)."""
    aus = json.loads((run_dir / "pooled" / "report.json").read_text()).get("action_units")
    if not aus:
        return {}
    keep = ("au", "name", "f1", "precision", "recall", "support")
    return {"au_pooled": {"mean_f1": aus["mean_f1"], "per_au": [{k: round(v, 4) if isinstance(v, float) else v for k, v in row.items() if k in keep} for row in aus["per_au"]]}}


def mean_std(values: list[float]) -> dict[str, float]:
    return {"mean": round(statistics.mean(values), 4), "std": round(statistics.pstdev(values), 4), "n": len(values)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--rows", default=None, help="comma-separated row names (default: all); see ROWS")
    parser.add_argument("--work", type=Path, default=Path(".cache/affectkit/ablations"), help="data, render cache and runs")
    parser.add_argument("--out", type=Path, default=None, help="write the JSON here after every row; rows in it are skipped")
    parser.add_argument("--set", dest="sets", nargs="*", default=[], help="recipe overrides for every row")
    args = parser.parse_args()
    chosen = list(ROWS) if args.rows is None else [r.strip() for r in args.rows.split(",")]
    unknown = [r for r in chosen if r not in ROWS]
    if unknown:
        parser.error(f"unknown rows {unknown}; rows: {list(ROWS)}")
    result = json.loads(args.out.read_text()) if args.out is not None and args.out.exists() else {"rows": []}
    done = {row["row"] for row in result["rows"]}
    data = realistic_set(args.work)
    result.update(
        {
            "data": {"generator": "facekit", **REALISTIC_SET, "layout": "bu3dfe", "reader": "bu3dfe"},
            "folds": args.folds,
            "chance": round(CHANCE, 4),
            "overrides": args.sets,
            "machine": platform.machine(),
            "cpus": os.cpu_count(),
        }
    )
    common = [
        *args.sets,
        f'data.dataset={json.dumps({"name": "bu3dfe", "options": {"root": str(data)}})}',
        f"render.cache_dir={args.work / 'renders'}",
        f"output.dir={args.work / 'runs'}",
    ]
    for name in chosen:
        if name in done:
            continue
        recipe_file, overrides = ROWS[name]
        started = time.perf_counter()
        cv = cross_validate(load_recipe(Path(recipe_file), [*common, *overrides]), args.folds, verbose=False)
        # cv scores the test subjects once, after training; a curve needs eval.cv_validation
        curves = [f["val_accuracy_by_epoch"] for f in cv["folds"] if "val_accuracy_by_epoch" in f]
        epochs = [statistics.mean(column) for column in zip(*curves, strict=True)] if curves else None
        row = {
            "row": name,
            "recipe": recipe_file,
            "overrides": overrides,
            "accuracy": mean_std([f["accuracy"] for f in cv["folds"]]),
            "macro_f1": mean_std([f["macro_f1"] for f in cv["folds"]]),
            "uar": mean_std([f["uar"] for f in cv["folds"]]),
            **({"au_mean_f1": mean_std([f["au_mean_f1"] for f in cv["folds"]])} if all("au_mean_f1" in f for f in cv["folds"]) else {}),
            "folds": [round(f["accuracy"], 4) for f in cv["folds"]],
            **au_pooled(Path(cv["run_dir"])),
            "accuracy_by_epoch": [round(a, 4) for a in epochs] if epochs else None,
            "wall_seconds": round(time.perf_counter() - started, 1),
            "measured": time.strftime("%Y-%m-%d"),  # rows without this came before the canonical face frame
        }
        result["rows"] = [r for r in result["rows"] if r["row"] != name] + [row]
        print(f"{name}: {row['accuracy']['mean']:.4f} ± {row['accuracy']['std']:.4f} ({row['wall_seconds']:.0f} s)", file=sys.stderr, flush=True)
        if args.out is not None:
            args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
