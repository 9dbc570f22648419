"""Model cards: the ``README.md`` of an exported model folder, as the Hugging Face Hub reads it.

YAML metadata (library, tags, datasets, metrics, a ``model-index`` of the measured
results) and a page that says what the model is, what it was trained on, how well it did on
data it never saw (overall, per class, per attribute group), how to use it, the recipe, and
that a model inherits the licence terms of the scans it was trained on.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import NamedTuple

import yaml

from affectkit.data.action_units import au_title
from affectkit.evaluate.reports import EvalReport
from affectkit.model.checkpoint import CheckpointMeta, read_meta
from affectkit.recipe import dump_recipe

CARD_FILE = "README.md"

class CardResult(NamedTuple):
    """One evaluation a card reports: on what (``what``, in words), which dataset plugin."""

    what: str
    dataset: str
    report: EvalReport


LICENCE_NOTE = (
    "A model inherits the terms of the data it was trained on. Models trained on BU-3DFE, BU-4DFE, "
    "Bosphorus or BP4D fall under those databases' licence agreements (typically non-commercial research "
    "use, no redistribution of the data): check them before you publish or deploy such a model."
)


def model_card(meta: CheckpointMeta, results: list[CardResult], name: str = "", about: str = "", notes: str = "") -> str:
    """The card of a model with this metadata; ``results``: its evaluations (the first is
    the headline, usually its held-out subjects); ``about``: a paragraph on its data;
    ``notes``: one after its results, e.g. what to expect on data unlike any it was scored on."""
    inference, provenance = meta.inference, meta.provenance
    dataset = (provenance.get("dataset") or {}).get("name") or (meta.recipe.data.dataset.name if meta.recipe else "unknown")
    title = name or (meta.recipe.name if meta.recipe else "affectkit model")
    metadata = {
        "library_name": "affectkit",
        "tags": ["affectkit", "facial-expression-recognition", "3d", "affectvlm", "vision-language"],
        "datasets": [dataset],
        "metrics": ["accuracy", "f1", "uar"],
        "model-index": [
            {
                "name": title,
                "results": [
                    {
                        "task": {"type": "facial-expression-recognition", "name": "3D facial expression recognition"},
                        "dataset": {"name": r.what, "type": r.dataset},
                        "metrics": [
                            {"type": "accuracy", "value": round(r.report.accuracy, 4)},
                            {"type": "f1", "name": "macro-F1", "value": round(r.report.macro_f1, 4)},
                            {"type": "uar", "name": "unweighted average recall", "value": round(r.report.uar, 4)},
                        ],
                    }
                    for r in results
                ],
            }
        ],
    }
    arch, inputs = inference.architecture, inference.input
    lines = [
        "---",
        yaml.safe_dump(metadata, sort_keys=False).rstrip(),
        "---",
        "",
        f"# {title}",
        "",
        "An affectkit model (AffectVLM, Behzad & Zhao, arXiv:2504.19739): 3D face scans and 4D sequences are "
        + (
            "brought into the canonical face frame (units, up axis and head pose found from the geometry, then turned upright) and "
            if inputs.frame.align
            else "taken as they come (+y up, facing +z, upright; units found from the size) and "
        )
        + f"rendered to "
        f"{len(inputs.views)} views ({', '.join(map(str, inputs.views))}; {', '.join(inputs.maps)} maps at {inputs.size} px), "
        f"embedded by a shared `{arch.image_encoder.name}` image encoder ({_options(arch.image_encoder.options)}), fused with learned "
        f"view weights, and classified by similarity to the class prompts' `{arch.text_encoder.name}` text embeddings.",
        "",
        f"Classes: {', '.join(inference.labels)}.",
        "",
        (
            f"Action units it scores (the probability of each being present, `Prediction.action_units`): {', '.join(au_title(code) for code in inference.action_units)}."
            if inference.action_units
            else "Action units: none (trained without an action-unit term)."
        ),
        "",
        "## Training data",
        "",
        *([about, ""] if about else []),
        *_training_data(meta),
        "",
        "## Results",
        "",
        *_results(results),
        *([notes, ""] if notes else []),
        "## Use",
        "",
        "```python",
        "from affectkit.serve.inference import Predictor",
        "from affectkit.data.mesh_formats import load_mesh",
        "",
        'predictor = Predictor.from_pretrained("OWNER/NAME")  # a hub id or a local folder',
        'prediction = predictor.predict(load_mesh("face.ply"))',
        "print(prediction.label, prediction.probabilities)",
        "```",
        "",
        "or `affectkit predict --model OWNER/NAME face.ply`. Classes can be reworded or added at inference (zero-shot): "
        "see affectkit's docs, *Use a model*.",
        "",
        "## Licence",
        "",
        LICENCE_NOTE,
        "",
    ]
    if meta.recipe is not None:
        lines += ["## Recipe", "", "```yaml", dump_recipe(meta.recipe).rstrip(), "```", ""]
    return "\n".join(lines)


def _options(options: Mapping[str, object]) -> str:
    return ", ".join(f"{k}: {v}" for k, v in options.items()) or "default options"


def _training_data(meta: CheckpointMeta) -> list[str]:
    provenance = meta.provenance
    if not provenance:
        return ["Not recorded (an older affectkit wrote this model)."]
    dataset = provenance.get("dataset", {})
    options = _options(dataset.get("options", {}))
    train, val, test = (provenance.get(k, []) for k in ("train_subjects", "validation_subjects", "test_subjects"))
    if sorted(val) == sorted(test):
        split = f"{len(train)} training subjects; {len(test)} held-out subjects, never trained on (also its validation set)"
    else:
        split = f"{len(train)} training subjects, {len(val)} validation subjects, {len(test)} held-out test subjects never trained on"
    return [f"- dataset `{dataset.get('name')}` ({options})", f"- {split}", f"- epoch {meta.epoch + 1} kept"]


def _results(results: list[CardResult]) -> list[str]:
    if not results:
        return ["No evaluation recorded.", ""]
    def au_f1(report: EvalReport) -> str:
        mean = report.action_units.get("mean_f1")
        return "–" if mean is None else f"{mean:.3f}"

    lines = ["| evaluated on | scans | accuracy | macro-F1 | UAR | AU F1 |", "|---|---:|---:|---:|---:|---:|"]
    lines += [f"| {what} | {r.samples} | {r.accuracy:.3f} | {r.macro_f1:.3f} | {r.uar:.3f} | {au_f1(r)} |" for what, _, r in results]
    what, _, headline = results[0]
    lines += ["", f"Per class, on {what}:", "", "| class | precision | recall | F1 | scans |", "|---|---:|---:|---:|---:|"]
    lines += [f"| {row['label']} | {row['precision']:.3f} | {row['recall']:.3f} | {row['f1']:.3f} | {row['support']} |" for row in headline.per_class]
    if headline.by_attribute:
        lines += ["", f"By attribute, on {what} (accuracy, scans):", "", "| attribute | groups | largest gap |", "|---|---|---:|"]
        for key, info in headline.by_attribute.items():
            groups = ", ".join(f"{value}: {g['accuracy']:.3f} ({g['samples']})" for value, g in info["groups"].items())
            lines.append(f"| {key} | {groups} | {info['largest_gap']:.3f} |")
    if headline.action_units:
        lines += ["", f"Per action unit, on {what} (F1 at probability 0.5; scans showing it):", "", "| action unit | F1 | precision | recall | present |", "|---|---:|---:|---:|---:|"]
        lines += [f"| {row['au']} {row['name']} | {row['f1']:.3f} | {row['precision']:.3f} | {row['recall']:.3f} | {row['support']} |" for row in headline.action_units["per_au"]]
    return [*lines, ""]


def write_model_card(model_dir: Path, results: list[CardResult], name: str = "", about: str = "", notes: str = "") -> Path:
    """Write ``README.md`` into an exported model folder."""
    meta, _ = read_meta(model_dir)
    path = Path(model_dir) / CARD_FILE
    path.write_text(model_card(meta, results, name, about, notes))
    return path
