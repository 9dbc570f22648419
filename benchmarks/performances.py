"""Does a model know the emotions, or one prototype of each? As JSON.

Scores models on unseen people of both generators (population seed 1000, 20 people,
intensities 3 and 4: 240 scans a set) twice: performing one prototype per emotion, and
each performing their own EMFACS-7 prototype or major variant (``performances: emfacs``,
docs/datasets.md), as real people do. A model that learnt one prototype per emotion and
keys on its strongest cue loses on the second; per-class recall and the confusion pairs
say where. Models are the shipped one (``shipped``) or exported model folders, each scored
with the test-time augmentations of ``--test-time`` (``model``: its own; ``mirror``;
``none``)::

    .venv/bin/python benchmarks/performances.py [--models shipped,NAME=runs/x/model ...] [--test-time model,mirror] [--cache-dir DIR] > benchmarks/results/performances.json

The facekit rows are the same face model as the shipped model's training data (new
people, new performances); the synthetic rows are another face model, which the shipped
encoder's pretraining (``affectkit-faces``) saw, performing prototypes only.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

from transfer import TEST_SET, confusion_pairs, score

from affectkit.recipe import ComponentRef
from affectkit.serve.hub import DEFAULT_MODEL


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="shipped", help="comma-separated: shipped, or NAME=FOLDER of an exported model")
    parser.add_argument("--test-time", default="model", help="comma-separated: model (its own), mirror, none")
    parser.add_argument("--cache-dir", type=Path, default=None, help="keep the rendered views here, e.g. transfer.py's, which renders the same test sets (default: a temporary folder)")
    args = parser.parse_args()
    choices = {"model": None, "mirror": ["mirror"], "none": []}
    test_times = [t.strip() for t in args.test_time.split(",") if t.strip()]
    if unknown := [t for t in test_times if t not in choices]:
        parser.error(f"--test-time {unknown}: choose from {list(choices)}")
    started = time.perf_counter()
    models = {}
    for item in (m.strip() for m in args.models.split(",") if m.strip()):
        name, _, folder = item.partition("=")
        models[name] = DEFAULT_MODEL if name == "shipped" and not folder else Path(folder)
    tests = {
        f"{generator} {performances}": ComponentRef(name=generator, options={**TEST_SET, "performances": performances})
        for generator in ("facekit", "synthetic")
        for performances in ("prototypes", "emfacs")
    }
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        cache = args.cache_dir or Path(tmp)
        for (name, folder), test_time in ((m, t) for m in models.items() for t in test_times):
            for test, scores in score(folder, tests, cache, choices[test_time]).items():
                labels = list(scores["recall"])
                rows.append(
                    {
                        "model": name,
                        "test_time": test_time,
                        "test": test,
                        "accuracy": scores["accuracy"],
                        "macro_f1": scores["macro_f1"],
                        "recall": scores["recall"],
                        "confusion_pairs": confusion_pairs(labels, [scores["confusion"]]),
                    }
                )
                print(f"{name} ({test_time}) on {test}: {scores['accuracy']:.4f}", file=sys.stderr, flush=True)
    result = {
        "models": {name: folder.name for name, folder in models.items()},
        "test_sets": TEST_SET,
        "rows": rows,
        "machine": platform.machine(),
        "wall_seconds": round(time.perf_counter() - started, 1),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
