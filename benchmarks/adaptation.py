"""Adapting to a face model none of the training saw, without labels (``affectkit adapt``), as JSON.

Scores the models that ``benchmarks/transfer.py --keep DIR`` kept (``DIR/<variant>/<training
set>-seed<seed>``) on the transfer benchmark's test sets, as they are and with their image
encoder's normalisation statistics re-estimated (:func:`affectkit.model.adaptation.adapt_normalisation`)
on unlabelled scans of the test face model:

* ``other people``: 20 other people of the test face model (population seed 2000, which no
  training, pretraining or test population uses), intensities 3 and 4, their labels unread;
* ``neutral scans``: one neutral scan of each of those 20 people (20 scans): what a user has
  who scanned a few people at rest;
* ``the test scans``: the test set itself (transductive: each prediction then depends on
  the other test scans; a figure to report as such);
* ``own neutral scan``: nothing adapted, but each test scan read against its person's
  neutral scan (:mod:`affectkit.model.neutral_reference`), the model calibrated on the
  neutral scans of its own training people (``affectkit neutral``): what a user has who
  scanned each person at rest too, as BU-3DFE and Bosphorus do.

Test people perform one prototype per emotion, or (``emfacs``) each their own EMFACS
variants, as in the transfer benchmark, or (``4d``, on the face model the model was not trained on) the prototypes as 4D sequences,
scored at their apex and, with a neutral reference, against their first frame (BU-4DFE holds
no neutral scan). The face model the model was not trained on is the
one that matters; its own face model (new people) shows what adapting costs where there is
no gap. Rows give accuracy,
per-class recall and confusion pairs, mean over the seeds kept::

    .venv/bin/python benchmarks/adaptation.py DIR [DIR ...] [--cache-dir DIR] > benchmarks/results/adaptation.json
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import sys
import tempfile
import time
from pathlib import Path

from ablations import mean_std
from transfer import CHANCE, GENERATORS, TEST_SET, TRAINING_SETS, confusion_pairs

from affectkit.evaluate.reports import evaluate
from affectkit.factory import build_dataset, build_render_cache
from affectkit.model.adaptation import adapt_normalisation
from affectkit.model.checkpoint import load_checkpoint
from affectkit.model.neutral_reference import calibrate, neutral_scans
from affectkit.recipe import ComponentRef
from affectkit.render.pipeline import render_samples

ADAPT_SEED = 2000  # no training (seeds < 1000), test (1000) or pretraining (2026) population
ADAPT_PEOPLE = {"subjects": 20, "intensities": [3, 4], "seed": ADAPT_SEED}
ADAPTATIONS = ("as trained", "other people", "neutral scans", "the test scans", "own neutral scan")
#: the test sets of each face model: its people performing prototypes, their EMFACS variants, or
#: 4D sequences of the prototypes (BU-4DFE's protocol: no neutral scan, each sequence starts at rest)
TEST_KINDS: dict[str, dict] = {"prototypes": {}, "emfacs": {"performances": "emfacs"}, "4d": {"sequences": True}}
KEPT = re.compile(r"(?P<set>.+)-seed(?P<seed>\d+)")


def kept_models(folders: list[Path]) -> list[tuple[str, str, int, Path]]:
    """(variant, training set, seed, model folder) of every model under ``folders``."""
    found = []
    for folder in folders:
        for model in sorted(p.parent for p in folder.glob("*/*/checkpoint.json")):
            match = KEPT.fullmatch(model.name)
            if match is None or match["set"] not in TRAINING_SETS:
                sys.exit(f"{model}: not a folder transfer.py --keep wrote (<variant>/<training set>-seed<seed>)")
            found.append((model.parent.name.replace("_", " "), match["set"], int(match["seed"]), model))
    if not found:
        sys.exit(f"no kept model under {', '.join(map(str, folders))}")
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folders", nargs="+", type=Path, help="folders transfer.py --keep wrote")
    parser.add_argument("--cache-dir", type=Path, default=None, help="keep the rendered views here")
    args = parser.parse_args()
    t0 = time.perf_counter()
    runs: dict[tuple[str, str, str, str], list[dict]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        cache_dir = args.cache_dir or Path(tmp)
        for variant, training_set, seed, folder in kept_models(args.folders):
            trained_on = TRAINING_SETS[training_set][0]
            model, meta = load_checkpoint(folder)
            cache = build_render_cache(meta.inference.input, cache_dir)
            state = {k: v.clone() for k, v in model.state_dict().items()}
            # the neutral scans of the people it was trained on: calibrates its neutral reference
            trained = build_dataset(ComponentRef(name=trained_on, options={**meta.provenance["dataset"]["options"], "include_neutral": True}))
            training_neutral = render_samples(meta.inference.input, trained, list(neutral_scans(trained.samples()).values()), cache).views
            for generator in GENERATORS:
                people = build_dataset(ComponentRef(name=generator, options={**ADAPT_PEOPLE, "include_neutral": True}))
                emotional = [s for s in people.samples() if s.label != "neutral"]
                neutral = [s for s in people.samples() if s.label == "neutral"]
                other_people = render_samples(meta.inference.input, people, emotional, cache).views
                test_neutral_views = render_samples(meta.inference.input, people, neutral, cache).views
                for kind, options in TEST_KINDS.items():
                    if kind == "4d" and generator == trained_on:  # 4D only where the gap is (a facekit sequence takes seconds to make)
                        continue
                    tested_on = generator + ("" if kind == "prototypes" else f" {kind}")
                    test_data = build_dataset(ComponentRef(name=generator, options={**TEST_SET, **options}))
                    test = render_samples(meta.inference.input, test_data, test_data.samples(), cache, labels=meta.labels)
                    # each person's neutral scan; a sequence is read against its own first frame
                    with_neutral = build_dataset(ComponentRef(name=generator, options={**TEST_SET, **options, "include_neutral": kind != "4d"}))
                    referenced = render_samples(meta.inference.input, with_neutral, with_neutral.samples(), cache, labels=meta.labels, neutral_reference=True)
                    sources = {"as trained": None, "other people": other_people, "neutral scans": test_neutral_views, "the test scans": test.views}
                    for adaptation in ADAPTATIONS:
                        model.neutral_features = state["neutral_features"].clone() if "neutral_features" in state else None  # as kept
                        model.load_state_dict(state)
                        if adaptation == "own neutral scan":
                            calibrate(model, training_neutral)
                            report = evaluate(model, referenced, meta.labels, meta.class_prompts)
                        else:
                            if sources[adaptation] is not None:
                                adapt_normalisation(model, sources[adaptation])
                            report = evaluate(model, test, meta.labels, meta.class_prompts)
                        runs.setdefault((variant, trained_on, tested_on, adaptation), []).append({
                            "seed": seed,
                            "accuracy": round(report.accuracy, 4),
                            "recall": {row["label"]: round(row["recall"], 4) for row in report.per_class},
                            "confusion": report.confusion_normalised,
                        })  # fmt: skip
                        print(f"{variant}, {training_set} seed {seed} -> {tested_on}, {adaptation}: {report.accuracy:.3f}", file=sys.stderr, flush=True)
    rows = []
    # per model: the face model it never saw first, then its own; each as trained, then adapted
    order = {(variant, trained_on, tested_on): i for i, (variant, trained_on, tested_on, _) in enumerate(runs)}
    for (variant, trained_on, tested_on, adaptation), done in sorted(
        runs.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2].split()[0] == kv[0][1], order[kv[0][:3]], ADAPTATIONS.index(kv[0][3]))
    ):
        labels = list(done[0]["recall"])
        rows.append({
            "variant": variant, "trained_on": trained_on, "tested_on": tested_on, "adaptation": adaptation,
            "accuracy": mean_std([r["accuracy"] for r in done]),
            "recall": {label: round(sum(r["recall"][label] for r in done) / len(done), 4) for label in labels},
            "confusion_pairs": confusion_pairs(labels, [r["confusion"] for r in done]),
            "runs": done,
        })  # fmt: skip
    json.dump(
        {
            "benchmark": "adaptation", "machine": platform.machine(), "test_sets": TEST_SET, "adaptation_people": ADAPT_PEOPLE,
            "chance": CHANCE, "rows": rows, "wall_seconds": round(time.perf_counter() - t0, 1),
        },
        sys.stdout, indent=1,
    )  # fmt: skip
    print()


if __name__ == "__main__":
    main()
