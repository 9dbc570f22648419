"""Build the model shipped with affectkit from a finished run of ``recipes/affectvlm.yaml``.

    affectkit run recipes/affectvlm.yaml
    python tools/build_default_model.py runs/affectvlm/model [--out affectkit/serve/pretrained/affectvlm-facekit]

exports the run's model in float16 without training state, calibrates it to read scans
against a neutral scan on its training people's neutral scans (as runs do), scores it on the facekit people
its run held out, on 20 facekit people no run of that recipe ever saw (seed 1000) and on 20
procedural faces (``synthetic``, seed 1000), refuses to go on if any of those was seen in
training, and on the procedural faces read against each person's neutral scan, and writes
the model card (README.md) with those figures. The encoder's
pretraining saw other procedural people, so the card adds the recipe's honest figures
across face models, each left out of every stage, from ``benchmarks/results/transfer.json``
(``benchmarks/transfer.py``), and what adapting it to a new face model without labels does, from
``benchmarks/results/adaptation.json`` (``benchmarks/adaptation.py``), and what the neutral
reference does there, from ``benchmarks/results/neutral_reference.json``. The figures also go to
``benchmarks/results/default_model.json``.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path

import torch

from affectkit.evaluate.reports import evaluate_checkpoint
from affectkit.model.checkpoint import export_model
from affectkit.recipe import ComponentRef
from affectkit.serve.adapted_model import calibrate_on_training_people
from affectkit.serve.hub import DEFAULT_MODEL
from affectkit.serve.model_card import CardResult, write_model_card

UNSEEN = {"subjects": 20, "intensities": [3, 4], "seed": 1000}
TEST_SETS = {
    "20 new facekit people (seed 1000)": ComponentRef(name="facekit", options=UNSEEN),
    "20 new facekit people, each their own EMFACS variant (seed 1000)": ComponentRef(name="facekit", options={**UNSEEN, "performances": "emfacs"}),
    "20 procedural faces, a face model its pretraining saw (synthetic, seed 1000)": ComponentRef(name="synthetic", options=UNSEEN),
    "20 procedural faces, each their own EMFACS variant (synthetic, seed 1000)": ComponentRef(
        name="synthetic", options={**UNSEEN, "performances": "emfacs"}
    ),
}
#: scored with each scan read against its person's neutral scan (affectkit.model.neutral_reference)
REFERENCED = {
    "20 procedural faces, each read against their neutral scan (synthetic, seed 1000)": ComponentRef(
        name="synthetic", options={**UNSEEN, "include_neutral": True}
    ),
}

ABOUT = (
    "The embedded `facekit` scans: identities of the ICT-FaceKit morphable model (USC ICT, MIT licence, "
    "https://github.com/ICT-VGL/ICT-FaceKit) posed with FACS-mapped expressions at intensities 3 and 4 and rendered "
    "as a 3D scanner sees them (crop, resolution, noise, holes, pose). No scan of a real person was used, so the "
    "model carries no database's licence; on real scans (BU-3DFE and the like) expect lower figures than below "
    "until it is fine-tuned on them."
)

#: the transfer benchmark's rows of the recipe the shipped model is trained with
TRANSFER_ROW = "AffectVLM (shipped recipe)"
TESTED_ON = {
    "facekit": "new facekit people",
    "facekit emfacs": "new facekit people performing their own EMFACS variants",
    "synthetic": "the procedural faces",
    "synthetic emfacs": "the procedural faces performing their own EMFACS variants",
}


def across_face_models(transfer: Path) -> str:
    """The card's paragraph on a face model no stage saw: the shipped recipe's rows of the
    transfer benchmark, trained and pretrained on facekit people only."""
    rows = [r for r in json.loads(transfer.read_text())["rows"] if (r["variant"], r["trained_on"]) == (TRANSFER_ROW, "facekit")]
    if {r["tested_on"] for r in rows} != set(TESTED_ON):
        raise SystemExit(f"{transfer}: no rows of {TRANSFER_ROW!r} trained on facekit for each of {sorted(TESTED_ON)}; run benchmarks/transfer.py first")
    figures = "; ".join(
        f"{TESTED_ON[r['tested_on']]} {r['accuracy']['mean']:.1%} ± {r['accuracy']['std']:.1%}" for r in sorted(rows, key=lambda r: list(TESTED_ON).index(r["tested_on"]))
    )
    seeds = rows[0]["accuracy"]["n"]
    return (
        "**On a face model no stage saw, expect far less.** Its encoder's pretraining (`affectkit-faces`) saw other people of "
        "the procedural face model, so the procedural rows above are not a new-face-model figure. affectkit's transfer "
        "benchmark (`benchmarks/transfer.py`) trains this recipe with the test face model left out of every stage, pretraining "
        f"included (trained and pretrained on facekit people only, 20 test people, mean ± std over {seeds} seeds): {figures}."
    )


def shipped_recipe_rows(results: Path) -> dict[tuple[str, str], dict]:
    """The accuracy of the shipped recipe trained on facekit, by (test set, adaptation), in
    results of ``benchmarks/adaptation.py``."""
    return {
        (r["tested_on"], r["adaptation"]): r["accuracy"]
        for r in json.loads(results.read_text())["rows"]
        if (r["variant"], r["trained_on"]) == (TRANSFER_ROW, "facekit")
    }


def cell(rows: dict[tuple[str, str], dict], tested_on: str, adaptation: str) -> str:
    """Mean ± std of one of :func:`shipped_recipe_rows`."""
    x = rows[(tested_on, adaptation)]
    return f"{x['mean']:.1%} ± {x['std']:.1%}"


def adapting_note(adaptation: Path) -> str:
    """The card's paragraph on adapting the model to a new face model without labels: the
    shipped recipe's rows of ``benchmarks/adaptation.py`` on the procedural faces."""
    rows = shipped_recipe_rows(adaptation)
    if not {("synthetic", "as trained"), ("synthetic", "other people"), ("facekit", "other people")} <= set(rows):
        raise SystemExit(f"{adaptation}: no rows of {TRANSFER_ROW!r} trained on facekit, adapted on other people; run benchmarks/adaptation.py first")

    return (
        "**Scans of another scanner or face model: adapt the model first.** `affectkit adapt SCANS... --out DIR` re-estimates "
        "its normalisation statistics on at least 20 unlabelled scans of the new source (several people and expressions) "
        "and writes an adapted model, every learnt weight unchanged. Measured the same way (`benchmarks/adaptation.py`, "
        f"{rows[('synthetic', 'as trained')]['n']} seeds): the procedural faces {cell(rows, 'synthetic', 'other people')} adapted on 20 "
        f"other people of that face model, against {cell(rows, 'synthetic', 'as trained')} as trained; new facekit people "
        f"{cell(rows, 'facekit', 'other people')} (adapting costs nothing on scans of its own kind)."
    )


def neutral_note(neutral: Path) -> str:
    """The card's paragraph on reading scans against the person's neutral scan: the shipped
    recipe's rows of ``benchmarks/adaptation.py`` on the procedural faces (facekit-only training)."""
    rows = shipped_recipe_rows(neutral)
    needed = {(t, a) for t in ("synthetic", "synthetic emfacs", "facekit") for a in ("as trained", "own neutral scan")}
    if not needed <= set(rows):
        raise SystemExit(f"{neutral}: no rows of {TRANSFER_ROW!r} trained on facekit, as trained and read against the own neutral scan")

    return (
        "**Have a neutral scan of each person? Read their scans against it.** `affectkit predict SCANS --neutral NEUTRAL` "
        "(and `eval --neutral-reference` on data with neutral scans, a 4D sequence against its first frame) takes the "
        "person's face at rest out of what the model reads. Measured with the test face model left out of every stage "
        f"(`benchmarks/adaptation.py`, {rows[('synthetic', 'as trained')]['n']} seeds): the procedural faces "
        f"{cell(rows, 'synthetic', 'own neutral scan')} against {cell(rows, 'synthetic', 'as trained')} as trained, people of it "
        f"performing their own EMFACS variants {cell(rows, 'synthetic emfacs', 'own neutral scan')} against "
        f"{cell(rows, 'synthetic emfacs', 'as trained')}; new facekit people {cell(rows, 'facekit', 'own neutral scan')}."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", type=Path, help="the exported model folder of a run of recipes/affectvlm.yaml")
    parser.add_argument("--out", type=Path, default=DEFAULT_MODEL)
    parser.add_argument("--results", type=Path, default=Path("benchmarks/results/default_model.json"))
    parser.add_argument("--transfer", type=Path, default=Path("benchmarks/results/transfer.json"), help="the transfer benchmark's results, for the card")
    parser.add_argument("--adaptation", type=Path, default=Path("benchmarks/results/adaptation.json"), help="the adaptation benchmark's results, for the card")
    parser.add_argument("--neutral", type=Path, default=Path("benchmarks/results/neutral_reference.json"), help="the neutral reference's results, for the card")
    args = parser.parse_args()
    notes = across_face_models(args.transfer) + "\n\n" + adapting_note(args.adaptation) + "\n\n" + neutral_note(args.neutral)
    export_model(args.model, args.out, dtype=torch.float16)
    if not calibrate_on_training_people(args.out, dtype=torch.float16):
        raise SystemExit(f"{args.model}: its training data has no neutral scans to calibrate the neutral reference on")
    results = [CardResult("held-out facekit people of its run", "facekit", evaluate_checkpoint(args.out).report)]
    for name, data in TEST_SETS.items():
        scored = evaluate_checkpoint(args.out, data)
        if scored.warnings:
            raise SystemExit(f"{name}: not held out: {'; '.join(scored.warnings)}")
        results.append(CardResult(name, data.name, scored.report))
    for name, data in REFERENCED.items():
        results.append(CardResult(name, data.name, evaluate_checkpoint(args.out, data, neutral_reference=True).report))
    write_model_card(args.out, results, name=args.out.name, about=ABOUT, notes=notes)
    summary = {
        what: {k: v for k, v in asdict(report).items() if k in ("samples", "accuracy", "macro_f1", "uar", "per_class")}
        | ({"au_mean_f1": report.action_units["mean_f1"]} if report.action_units else {})
        for what, _, report in results
    }
    args.results.write_text(json.dumps({"model": args.out.name, "source": str(args.model), "results": summary}, indent=1))
    for what, _, report in results:
        print(f"{what}: accuracy {report.accuracy:.3f}, macro-F1 {report.macro_f1:.3f} ({report.samples} scans)")


if __name__ == "__main__":
    main()
