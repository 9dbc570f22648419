"""Tables for the docs from the JSON in benchmarks/results/.

Each table sits in a page of :data:`DOCS` between ``<!-- results:NAME -->`` and
``<!-- /results:NAME -->``; this script rewrites what is between the markers and leaves
the prose around them alone. ``--check`` rewrites nothing and exits 1 when a table differs
from its JSON (the test suite runs it, so the docs cannot drift from the results)::

    .venv/bin/python benchmarks/report.py [--check]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
#: the face frame (``FRAME_VERSION``) from which on scans are placed upright; later versions
#: agree with it within about a degree
UPRIGHT_FRAME = 3
DOCS = (ROOT / "docs" / "benchmarks.md", ROOT / "docs" / "cluster.md", ROOT / "docs" / "reliability.md", ROOT / "docs" / "models.md")


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def ms(timing: dict[str, float]) -> str:
    return f"{timing['median_ms']:.1f} ms"


def render_tables(r: dict[str, Any]) -> str:
    head = table(
        ["threads", "torch", "Open3D (BVH build + cast)", "Open3D cast only", "torch / Open3D", "torch at 1 thread, same blocks"],
        [
            [
                h["threads"],
                ms(h["torch"]),
                ms(h["open3d"]),
                ms(h["open3d_cast"]),
                f"**{h['ratio']:.2f}**",
                ms(h["torch_1_thread"]) if "torch_1_thread" in h else "",
            ]
            for h in r["headline"]
        ],
    )
    a = r["agreement"]
    agreement = (
        f"Same images: silhouette IoU {a['silhouette_iou']:.4f}; depth error mean {a['depth_mae']:.2g}, "
        f"99th percentile {a['depth_p99']:.2g}, max {a['depth_max']:.2g} (units of the normalised face's radius)."
    )
    curve_header = ["vertices", "image", "torch", "Open3D", "ratio"]

    def curve(rows: list[dict[str, Any]]) -> str:
        return table(curve_header, [[f"{x['vertices']:,}", f"{x['size']}²", ms(x["torch"]), ms(x["open3d"]), f"{x['ratio']:.2f}"] for x in rows])

    cuda = r["cuda"]
    if "skipped" in cuda:
        gpu = f"CUDA (batch of 64 faces, 3 views): not measured here ({cuda['skipped']})."
    else:
        gpu = (
            f"CUDA on {cuda['device']}: {cuda['renders_per_s']:,} renders/s "
            f"({cuda['batch']} faces x {cuda['views']} views of {cuda['size']}² in {ms(cuda)})."
        )
    return "\n\n".join(
        [
            head,
            agreement,
            f"Mesh size, {r['by_vertices'][0]['threads']} threads:\n\n" + curve(r["by_vertices"]),
            f"Image size, {r['by_image_size'][0]['threads']} threads:\n\n" + curve(r["by_image_size"]),
            gpu,
        ]
    )


def readers_table(r: dict[str, Any]) -> str:
    names = {
        "read_wrl(wrl_colours)": ("`.wrl`, per-vertex colours (`read_wrl`)", "wrl_colours"),
        "read_wrl(wrl_textured)": ("`.wrl`, texture + `texCoordIndex` (`read_wrl`)", "wrl_textured"),
        "read_wrl(wrl_per_corner_uv)": ("`.wrl`, one texture coordinate per face corner", "wrl_per_corner_uv"),
        "trimesh.load(obj)": ("`.obj` through `trimesh.load`", "obj"),
    }
    rows = [[label, f"{r['file_bytes'][key] / 1e6:.1f} MB", f"{1000 * r['best_seconds'][name]:.0f} ms"] for name, (label, key) in names.items()]
    return table(["file", "size", "best time"], rows) + f"\n\nVRML reader / trimesh OBJ loader: **{r['wrl_vs_obj']:.2f}**."


def inference_table(r: dict[str, Any]) -> str:
    stages = ("read", "render", "encode", "classify", "total")
    rows = [[f"`{name}` ({f['bytes'] / 1e6:.1f} MB)", *(ms(f["stages"][s]) for s in stages)] for name, f in r["files"].items()]
    return table(["file", *stages], rows)


def overhead_table(r: dict[str, Any]) -> str:
    return table(
        ["loop", "samples/s (median, epochs 2+)"],
        [["affectkit (`runner.run`, 1 Ray Train worker)", r["affectkit_samples_per_s"]], ["bare PyTorch loop", r["bare_samples_per_s"]], ["ratio", f"**{r['ratio']:.2f}**"]],
    )


def encoders_table(r: dict[str, Any]) -> str:
    rows = [[f"`{e['encoder']}`", f"{e['parameters_m']}M", f"{e['train_samples_per_s']['mean']:.1f} ± {e['train_samples_per_s']['std']:.1f}",
             f"**{e['time_per_sample_vs_shipped']:.2f}x**"] for e in r["rows"]]  # fmt: skip
    return table(["image encoder", "parameters", "training samples/s", "time per sample"], rows)


def convergence_table(r: dict[str, Any]) -> str:
    seeds = sorted({run["seed"] for run in r["runs"]})
    rows = [
        [f"`{loss}`", s["reached"], s["median_steps"] if s["median_steps"] is not None else "never", *("—" if x is None else x for x in s["steps"]), f"{s['mean_final_accuracy']:.3f}"]
        for loss, s in r["summary"].items()
    ]
    header = ["loss", f"reached {r['target']:.0%}", "median steps", *(f"seed {seed}" for seed in seeds), "final accuracy (mean)"]
    return table(header, rows)


def memory_table(r: dict[str, Any]) -> str:
    rows = [["whole process tree (PSS)", f"{r['peak_tree_pss_mb']:,} MB"]]
    rows += [[f"… {name} at that moment", f"{mb:,} MB"] for name, mb in list(r["at_peak_pss_mb"].items())[:4]]
    rows += [["driver, resident peak", f"{r['peak_driver_rss_mb']:,} MB"], ["Ray Train worker, resident peak", f"{r['peak_worker_rss_mb']:,} MB"]]
    return table(["process", "peak"], rows)


def scaling_table(r: dict[str, Any]) -> str:
    rows = [[f"{x['workers']} x {x['cpus_per_worker']:g}", x["samples_per_s_median"], f"{x['speedup_vs_first']:.2f}"] for x in r["runs"]]
    return table(["workers x CPUs", "samples/s", "ratio"], rows)


def fuzz_table(r: dict[str, Any]) -> str:
    rows = [
        [f"`{name}`", f"{x['inputs']:,}", f"{x['read']:,}", f"{x['rejected_with_affectkit_error']:,}", f"{x['rejections_naming_a_position']:,}", f"**{x['failures']}**", f"{x['seconds']:.0f} s"]
        for name, x in r["readers"].items()
    ]
    table_text = table(["reader", "inputs", "read", "refused, naming the file", "… and a position", "failures", "time"], rows)
    return table_text + f"\n\n{r['total_inputs']:,} inputs, {r['total_failures']} failures (hypothesis seed {r['seed']}, allocation cap {r['allocation_cap_mib']} MiB per input)."


def run_all_table(r: dict[str, Any]) -> str:
    rows = [[f"`{name}`", f"{seconds:.0f} s"] for name, seconds in r["seconds"].items()]
    return table(["benchmark", "wall time"], [*rows, ["**all**", f"**{r['total_seconds'] / 60:.1f} min**"]])


def confused(pairs: list[dict[str, Any]], most: int = 3) -> str:
    """The ``most`` largest confusion pairs, e.g. ``fear as happiness 55%``."""
    return ", ".join(f"{p['true']} as {p['predicted']} {p['share']:.0%}" for p in pairs[:most]) or "–"


def over_seeds(x: dict[str, float]) -> str:
    """A mean ± std over seeds, or the one value of a single seed."""
    return f"{x['mean']:.1%} ± {x['std']:.1%}" if x["n"] > 1 else f"{x['mean']:.1%}"


def transfer_table(r: dict[str, Any]) -> str:
    def seeds(row: dict[str, Any]) -> str:
        n = row["accuracy"]["n"]
        return f"{n} seed{'s' if n != 1 else ''}"

    def framed(row: dict[str, Any]) -> bool:
        return all(run.get("frame_version", 0) >= UPRIGHT_FRAME for run in row["runs"])

    def pretrained(row: dict[str, Any]) -> str:
        sizes = sorted({run["pretrained_px"] for run in row["runs"] if "pretrained_px" in run})
        return ", ".join(row["pretrained_on"]) + "".join(f" at {size} px" for size in sizes) or "–"

    labels = list(r["rows"][0]["recall"]) if r["rows"] else []
    rows = [
        [
            row["variant"] + ("" if framed(row) else " *"), row["row"], pretrained(row), over_seeds(row["accuracy"]),
            *(f"{row['recall'][label]['mean']:.0%}" for label in labels), confused(row["confusion_pairs"]), seeds(row),
        ]
        for row in r["rows"]
    ]
    data = r["train_data"]["options"]
    note = (
        f"Variants are rows of the ablation table or of `transfer.py`{' with ' + ', '.join(f'`{o}`' for o in r['overrides']) if r['overrides'] else ''}; "
        f"trained on {data.get('subjects')} people (intensities {data.get('intensities')}, a held-out fifth for model "
        f"selection); test sets of {r['test_sets']['subjects']} people, intensities {r['test_sets']['intensities']}, "
        f"population seed {r['test_sets']['seed']}, performing prototypes or (`emfacs`) EMFACS variants; "
        f"recall is the mean over seeds; chance {r['chance']:.1%}; {r['wall_seconds'] / 60:.0f} min."
    )
    if not all(framed(row) for row in r["rows"]):
        note += (
            f" Rows marked * were measured with an earlier face frame (before `FRAME_VERSION` {UPRIGHT_FRAME}, which put"
            " the procedural faces up to 15° off upright); compare them with each other."
        )
    head = ["variant", "train -> test", "pretrained on", "accuracy", *(f"{label[:4]}." for label in labels), "most confused", "over"]
    return table(head, rows) + "\n\n" + note


def ablations_table(r: dict[str, Any]) -> str:
    def cell(x: dict[str, float]) -> str:
        return f"{x['mean']:.1%} ± {x['std']:.1%}"

    def curve(epochs: list[float] | None) -> str:
        if not epochs:
            return "–"
        marks = sorted({0, len(epochs) // 4, len(epochs) // 2, len(epochs) - 1})
        return " / ".join(f"{epochs[i]:.0%}" for i in marks)

    rows = [
        [
            row["row"] + ("" if "measured" in row else " *"), cell(row["accuracy"]), cell(row["macro_f1"]), cell(row["au_mean_f1"]) if "au_mean_f1" in row else "–",
            " / ".join(f"{a:.0%}" for a in row["folds"]), curve(row["accuracy_by_epoch"]), f"{row['wall_seconds'] / 60:.1f} min",
        ]
        for row in r["rows"]
    ]
    d = r["data"]
    note = (
        f"Subject-independent {r['folds']}-fold CV on {d['subjects']} `{d['generator']}` people (population seed {d['seed']}, "
        f"intensities {d['intensities']}, scan realism on), written in the BU-3DFE layout and read by the `{d['reader']}` reader; "
        f"chance {r['chance']:.1%}. *Curve*: mean test-fold accuracy after the first epoch, a quarter, half and all of training "
        "(rows measured before `cv` stopped scoring test subjects during training; – where not recorded). *AU F1*: mean F1 over the "
        "action units each test fold shows, for rows that learn AUs. Rows marked * were measured before scans were brought into the "
        "canonical face frame (docs/concepts.md); compare AU rows with the unmarked shipped row."
    )
    scored = [row for row in r["rows"] if "au_pooled" in row]
    per_au = ""
    if scored:
        units = [(unit["au"], unit["name"], unit["support"]) for unit in scored[0]["au_pooled"]["per_au"]]
        f1 = {row["row"]: {unit["au"]: unit["f1"] for unit in row["au_pooled"]["per_au"]} for row in scored}
        au_rows = [[f"{au} {name}", support, *[f"{f1[row['row']].get(au, 0):.2f}" for row in scored]] for au, name, support in units]
        au_rows.append(["**mean**", "", *[f"**{row['au_pooled']['mean_f1']:.2f}**" for row in scored]])
        per_au = "\n\nPer action unit, every test fold pooled (F1 at probability 0.5; *present*: scans showing it):\n\n" + table(
            ["action unit", "present", *[row["row"] for row in scored]], au_rows
        )
    return table(["row", "accuracy", "macro-F1", "AU F1", "folds", "curve", "time"], rows) + "\n\n" + note + per_au


def startup_table(r: dict[str, Any]) -> str:
    s = r["seconds"]

    def cell(x: dict[str, float]) -> str:
        return f"{x['mean']:.2f} s ± {x['std']:.2f}"

    rows = [
        ['`python -c "import torch"`', cell(s["import torch"]), ""],
        [f"`affectkit predict` of a {r['scan_vertices']:,}-vertex PLY scan", cell(s["affectkit predict"]), f"{r['targets']['predict_over_import_torch']:.0f}x import torch"],
        ["`Predictor.from_pretrained()` after `import torch`", cell(s["Predictor load"]), f"{r['targets']['predictor_load_seconds']:.0f} s"],
    ]
    ratio = r["predict_over_import_torch"]
    return table(["cold process", f"wall time (mean ± std, {r['runs']} runs)", "target"], rows) + (
        f"\n\n`affectkit predict` / `import torch`: **{ratio['mean']:.2f}x** ± {ratio['std']:.2f} (model: {r['model']})."
    )


def default_model_table(r: dict[str, Any]) -> str:
    rows = [
        [name, x["samples"], f"{x['accuracy']:.1%}", f"{x['macro_f1']:.1%}", f"{x['au_mean_f1']:.2f}" if "au_mean_f1" in x else "–"]
        for name, x in r["results"].items()
    ]
    return table(["evaluated on", "scans", "accuracy", "macro-F1", "AU F1"], rows) + "\n\nChance is 16.7%. *AU F1*: mean F1 over the action units the scans show."


def input_checks_table(r: dict[str, Any]) -> str:
    rows = [
        [name, x["scans"], f"**{x['refused']}**", f"{x['frontal_view_curvature']['min']:+.2f} to {x['frontal_view_curvature']['max']:+.2f}"]
        for name, x in r["results"].items()
    ]
    return table(["scans of people never trained on", "scans", "refused", "frontal view's depth curvature"], rows) + f"\n\nExpected: {r['expected']}."


def pose_table(r: dict[str, Any]) -> str:
    models = list(r["accuracy"])
    sets = list(r["accuracy"][models[0]])
    variants = [name for name in r["accuracy"][models[0]][sets[0]] if name != "scans"]
    header = ["scan", *[f"{model}: {set_name.split(' ')[0]}" for set_name in sets for model in models]]
    rows = [[variant, *[f"{r['accuracy'][model][set_name][variant]:.1%}" for set_name in sets for model in models]] for variant in variants]
    scans = ", ".join(f"{set_name}: {r['accuracy'][models[0]][set_name]['scans']} scans" for set_name in sets)
    named = ", ".join(f"{model} = {r['models'][model]}" for model in models)
    accuracy = table(header, rows) + f"\n\nModels: {named}. {scans}."
    aligner_rows = [
        [name, which, x["scans"], f"{x['median_deg']:.1f}°", f"{x['p95_deg']:.1f}°", x["over_20_deg"], row["units_right"], f"{1000 * row['seconds_per_scan']:.0f} ms"]
        for name, row in r["aligner"].items()
        for which, x in row.items()
        if isinstance(x, dict) and "scans" in x
    ]
    aligner = table(["scans", "landmarks", "scans", "median error", "95th percentile", "over 20°", "units right", "time per scan"], aligner_rows)
    absolute = [f"{name}: median {row['absolute_upright']['median_deg']:.1f}°, 95th percentile {row['absolute_upright']['p95_deg']:.1f}°" for name, row in r["aligner"].items() if "absolute_upright" in row]
    return accuracy + "\n\n" + aligner + ("\n\nTurn put on an upright face of a new person (generated without pose jitter): " + "; ".join(absolute) + "." if absolute else "")


def probe_table(r: dict[str, Any]) -> str:
    def message(text: str) -> str:
        text = text.removeprefix("error: ").replace("|", "\\|").replace("`", "'")
        return f"`{text[:110]}{'...' if len(text) > 110 else ''}`"

    rows = [[name, x["exit"], "yes" if x["traceback"] else "no", x["labels"], message(x["message"])] for name, x in r["results"].items()]
    summary = f"\n\n{r['cases']} cases: **{r['passed']} passed**, {r['tracebacks']} tracebacks, {r['labels_given']} labels given."
    return table(["case", "exit", "traceback", "labels", "the message (start)"], rows) + summary


def performances_table(r: dict[str, Any]) -> str:
    labels = list(r["rows"][0]["recall"]) if r["rows"] else []
    rows = [
        [row["model"], row["test_time"], row["test"], f"{row['accuracy']:.1%}", *(f"{row['recall'][label]:.0%}" for label in labels), confused(row["confusion_pairs"])]
        for row in r["rows"]
    ]
    note = f"Test sets: {r['test_sets']['subjects']} people each, intensities {r['test_sets']['intensities']}, population seed {r['test_sets']['seed']}."
    head = ["model", "test-time", "test people perform", "accuracy", *(f"{label} recall" for label in labels), "most confused"]
    return table(head, rows) + "\n\n" + note


def adaptation_table(r: dict[str, Any]) -> str:
    labels = list(r["rows"][0]["recall"]) if r["rows"] else []
    rows = [
        [
            row["variant"], f"{row['trained_on']} -> {row['tested_on']}", row["adaptation"], over_seeds(row["accuracy"]),
            *(f"{row['recall'][label]:.0%}" for label in labels), confused(row["confusion_pairs"]),
            " / ".join(f"{run['accuracy']:.1%}" for run in row["runs"]),
        ]
        for row in r["rows"]
    ]
    people = r["adaptation_people"]
    note = (
        f"Test sets: {r['test_sets']['subjects']} people, intensities {r['test_sets']['intensities']}, population seed "
        f"{r['test_sets']['seed']}. Adapted on (labels unread): *other people*, {people['subjects']} people of the test face "
        f"model, intensities {people['intensities']}, population seed {people['seed']}; *neutral scans*, one neutral scan of "
        f"each; *the test scans*, the test set itself (transductive)"
        + (
            "; *own neutral scan*, nothing adapted, each test scan read against its person's neutral scan, the model "
            "calibrated on the neutral scans of its own training people"
            if any(row["adaptation"] == "own neutral scan" for row in r["rows"])
            else ""
        )
        + f". Recall is the mean over seeds; chance {r['chance']:.1%}; {r['wall_seconds'] / 60:.0f} min."
    )
    head = ["variant", "train -> test", "adapted on", "accuracy", *(f"{label[:4]}." for label in labels), "most confused", "seeds"]
    return table(head, rows) + "\n\n" + note


TABLES: dict[str, Callable[[dict[str, Any]], str]] = {
    "startup": startup_table,
    "default_model": default_model_table,
    "render": render_tables,
    "readers": readers_table,
    "inference": inference_table,
    "overhead": overhead_table,
    "encoders": encoders_table,
    "convergence": convergence_table,
    "memory": memory_table,
    "scaling": scaling_table,
    "run_all": run_all_table,
    "fuzz": fuzz_table,
    "input_checks": input_checks_table,
    "pose": pose_table,
    "probe": probe_table,
    "transfer": transfer_table,
    "ablations": ablations_table,
    "performances": performances_table,
    "adaptation": adaptation_table,
    "neutral_reference": adaptation_table,
}


def rewrite(text: str, results: Path) -> str:
    """``text`` with every results block that has a JSON file filled from it."""

    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        path = results / f"{name}.json"
        if name not in TABLES or not path.exists():
            return match.group(0)
        body = TABLES[name](json.loads(path.read_text()))
        return f"<!-- results:{name} -->\n{body}\n<!-- /results:{name} -->"

    return re.sub(r"<!-- results:(\w+) -->.*?<!-- /results:\1 -->", fill, text, flags=re.S)


def stale(results: Path = RESULTS) -> list[Path]:
    """The pages whose tables differ from the JSON in ``results``."""
    return [doc for doc in DOCS if rewrite(doc.read_text(), results) != doc.read_text()]


def write(results: Path = RESULTS) -> None:
    for doc in DOCS:
        doc.write_text(rewrite(doc.read_text(), results))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="exit 1 if a page's tables are stale")
    args = parser.parse_args()
    if args.check:
        pages = stale()
        if pages:
            sys.exit(f"stale tables in {', '.join(str(p.relative_to(ROOT)) for p in pages)}: run benchmarks/report.py")
        return
    write()


if __name__ == "__main__":
    main()
