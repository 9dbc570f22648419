"""The ``affectkit`` command line. Errors caused by input print one line, no traceback."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path

import click

from affectkit.errors import AffectkitError


def _overrides(sets: Sequence[str], extra: Sequence[str]) -> list[str]:
    """``--set a=b c=d``: values after ``--set`` that contain ``=`` are overrides too."""
    stray = [e for e in extra if "=" not in e]
    if stray:
        raise click.UsageError(f"unexpected arguments {stray}; overrides look like key.path=value")
    return [*sets, *extra]


class AffectkitGroup(click.Group):
    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except AffectkitError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)


@click.group(cls=AffectkitGroup)
@click.version_option(package_name="affectkit")
def main() -> None:
    """affectkit: 3D/4D facial expression recognition with a vision-language model."""


@main.command()
def plugins() -> None:
    """List every registered component by kind, with its origin and description."""
    from affectkit.registry import KINDS, STANDARD_MESH_SUFFIXES, registry

    reg = registry()
    for kind in KINDS:
        click.echo(f"{kind}:")
        for info in (i for i in reg.all() if i.kind == kind):
            click.echo(f"  {info.name:<14} [{info.origin}]  {info.description}")
    click.echo("mesh_format:")
    click.echo(f"  {' '.join(STANDARD_MESH_SUFFIXES)} [built-in]  read by trimesh")
    for suffix, found in reg.mesh_formats().items():
        click.echo(f"  {suffix:<14} [{found.origin}]  {'read and written' if found.writer else 'read'}")


@main.group()
def recipe() -> None:
    """Validate and show recipes."""


@recipe.command("validate")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--set", "sets", multiple=True, help="Override a key: --set train.epochs=3")
@click.argument("extra", nargs=-1)
def recipe_validate(file: Path, sets: tuple[str, ...], extra: tuple[str, ...]) -> None:
    """Check a recipe and every component it names."""
    from affectkit.recipe import load_recipe

    loaded = load_recipe(file, _overrides(sets, extra))
    click.echo(f"{file}: valid recipe {loaded.name!r}")


@recipe.command("reference")
def recipe_reference() -> None:
    """Print every recipe key with its type, default and description (docs/recipes.md)."""
    from affectkit.recipe_reference import recipe_reference as reference

    click.echo(reference(), nl=False)


@recipe.command("show")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--set", "sets", multiple=True, help="Override a key: --set train.epochs=3")
@click.argument("extra", nargs=-1)
def recipe_show(file: Path, sets: tuple[str, ...], extra: tuple[str, ...]) -> None:
    """Print the fully resolved recipe (defaults and overrides applied)."""
    from affectkit.recipe import dump_recipe, load_recipe

    click.echo(dump_recipe(load_recipe(file, _overrides(sets, extra))), nl=False)


@main.command()
@click.argument("mesh", type=click.Path(path_type=Path))
@click.option("--views", default="front,left,right", show_default=True, help="Names, yaws or yaw:pitch[:roll], comma-separated.")
@click.option("--size", default=224, show_default=True, type=click.IntRange(16, 2048))
@click.option("--maps", default="rgb,depth,normal,mask", show_default=True)
@click.option("--renderer", default="torch", show_default=True)
@click.option("--out", type=click.Path(path_type=Path), required=True)
def render(mesh: Path, views: str, size: int, maps: str, renderer: str, out: Path) -> None:
    """Render a mesh to one PNG per view and map."""
    from affectkit.cameras import parse_views
    from affectkit.mesh_formats import load_mesh
    from affectkit.registry import create
    from affectkit.view_pngs import write_view_pngs

    chosen = parse_views(views)
    names = [m.strip() for m in maps.split(",") if m.strip()]
    rendered = create("renderer", renderer).render([load_mesh(mesh)], chosen, size)
    for path in write_view_pngs(rendered, chosen, out, maps=names):
        click.echo(path)


@main.command()
@click.option("--out", type=click.Path(path_type=Path), required=True)
@click.option("--dataset", "name", default="facekit", show_default=True,
              help="A face generator: facekit (ICT-FaceKit identities as a scanner sees them) or synthetic (procedural faces).")
@click.option("--subjects", default=10, show_default=True, type=click.IntRange(1))
@click.option("--sequences", is_flag=True, help="Write 4D sequences instead of static scans.")
@click.option("--frames", default=25, show_default=True, type=click.IntRange(2))
@click.option("--vertices", default=None, type=int, help="synthetic only: approximate vertices per mesh [default: 5000].")
@click.option("--intensities", default="1,2,3,4", show_default=True)
@click.option("--neutral/--no-neutral", default=True, show_default=True)
@click.option("--seed", default=0, show_default=True, type=int)
@click.option(
    "--layout",
    type=click.Choice(["affectkit", "bu3dfe", "bu4dfe"]),
    default="affectkit",
    show_default=True,
    help="affectkit: PLY + manifest.csv; bu3dfe: F0001/F0001_HA04WH_F3D.wrl + .bnd; "
    "bu4dfe: F001/Happy/000.wrl (implies --sequences --no-neutral).",
)
def synth(
    out: Path, name: str, subjects: int, sequences: bool, frames: int, vertices: int | None, intensities: str, neutral: bool, seed: int,
    layout: str,
) -> None:
    """Write a generated 3D/4D expression dataset (meshes + manifest.csv, or the BU-3DFE/BU-4DFE layout)."""
    from affectkit.dataset_writer import write_dataset
    from affectkit.registry import create, face_generators

    generators = face_generators()
    if name not in generators:
        raise click.BadParameter(f"{name!r} is not a face generator; allowed: {', '.join(generators)}", param_hint="--dataset")
    if layout == "bu4dfe":
        sequences, neutral = True, False
    if vertices is not None and name != "synthetic":
        raise click.UsageError(f"--vertices applies to --dataset synthetic only; {name} faces have the face model's resolution")
    levels = [i.strip() for i in intensities.split(",") if i.strip()]
    if not all(level.isdigit() for level in levels):
        raise click.BadParameter(f"{intensities!r}: give intensities as numbers 1..4 separated by commas, e.g. 3,4", param_hint="--intensities")
    options = {
        "subjects": subjects,
        "sequences": sequences,
        "frames": frames,
        "intensities": [int(level) for level in levels],
        "include_neutral": neutral,
        "seed": seed,
        **({"vertices": vertices} if vertices is not None else {}),
    }
    click.echo(write_dataset(create("dataset", name, options), name, out, layout=layout))


@main.command()
@click.argument("recipe_file", metavar="RECIPE", type=click.Path(path_type=Path))
@click.option("--set", "sets", multiple=True, help="Override a key: --set train.epochs=3")
@click.option("--resume", is_flag=True, help="Continue the newest run of this recipe.")
@click.argument("extra", nargs=-1)
def run(recipe_file: Path, sets: tuple[str, ...], resume: bool, extra: tuple[str, ...]) -> None:
    """Train a recipe through Ray Train and evaluate it on held-out subjects."""
    from affectkit.recipe import load_recipe
    from affectkit.runner import run as run_recipe

    run_recipe(load_recipe(recipe_file, _overrides(sets, extra)), resume=resume)


@main.command()
@click.argument("recipe_file", metavar="RECIPE", type=click.Path(path_type=Path))
@click.option("--folds", default=None, type=click.IntRange(2), help="Folds per repeat. Default: the recipe's eval.folds.")
@click.option("--repeats", default=None, type=click.IntRange(1), help="Repeats, each with a new subject draw and new folds. Default: eval.repeats.")
@click.option("--folds-file", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Use the folds (test subjects per fold, per repeat) of this file, e.g. another run's folds.json.")
@click.option("--set", "sets", multiple=True, help="Override a key: --set train.epochs=3")
@click.argument("extra", nargs=-1)
def cv(recipe_file: Path, folds: int | None, repeats: int | None, folds_file: Path | None, sets: tuple[str, ...], extra: tuple[str, ...]) -> None:
    """Subject-independent K-fold cross-validation of a recipe, optionally repeated.

    Writes to the run folder it prints: cv.json (every fold, mean ± std over folds and
    over repeats, pooled figures), folds.json (the folds used: pass it to --folds-file to
    run the same split), pooled/ and one folder per fold with its report and model."""
    from affectkit.cross_validation import cross_validate
    from affectkit.recipe import load_recipe

    if folds_file is not None and (folds or repeats):
        raise click.UsageError("--folds-file fixes the folds and repeats; leave out --folds and --repeats")
    cross_validate(load_recipe(recipe_file, _overrides(sets, extra)), folds, repeats, folds_file)


@main.command("eval")
@click.argument("checkpoint")
@click.option("--data", "data_spec", default=None,
              help="Dataset spec: NAME, NAME:/root, NAME:key=value,key=[a, b] or NAME:{key: value}. Default: the checkpoint's held-out subjects.")
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Write report.json, report.txt and confusion.png here.")
def eval_command(checkpoint: str, data_spec: str | None, out: Path | None) -> None:
    """Accuracy, macro-F1, UAR, per-class report and confusion matrix of a model (a model or
    run folder, or a hub id).

    Without --data: the subjects the checkpoint was never trained on (its run's held-out
    subjects, or its cross-validation fold's test subjects). With --data: a loud warning
    when any evaluation subject or scan was seen in training."""
    from affectkit.evaluation import evaluate_checkpoint, format_report, save_report
    from affectkit.hub import resolve_model
    from affectkit.pipeline import parse_dataset_spec

    spec = parse_dataset_spec(data_spec) if data_spec is not None else None
    result = evaluate_checkpoint(resolve_model(checkpoint), spec)
    for note in result.notes:
        click.echo(note, err=True)
    for warning in result.warnings:
        click.secho(f"WARNING: not a held-out figure: {warning}", err=True, fg="red", bold=True)
    report = result.report
    click.echo(format_report(report))
    if out is not None:
        save_report(report, out, str(checkpoint))


@main.command()
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--model", "-m", "model", default=None,
              help="A model folder, a run folder, or a Hugging Face hub id (owner/name). Default: the model shipped with affectkit.")
@click.option("--revision", default=None, help="The hub revision (branch, tag or commit) of --model.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per input.")
@click.option("--frames", is_flag=True, help="For sequences, also predict every frame (a timeline).")
def predict(inputs: tuple[Path, ...], model: str | None, revision: str | None, as_json: bool, frames: bool) -> None:
    """Class probabilities for meshes or sequence folders, with the per-view weights.

    INPUTS are mesh files or folders of frames. A model folder given first (the older
    form `affectkit predict MODEL INPUT...`) is taken as --model."""
    from affectkit.hub import is_model_folder
    from affectkit.inference import Predictor, load_input
    from affectkit.mesh import MeshSequence

    if model is None and is_model_folder(inputs[0]):
        model, inputs = str(inputs[0]), inputs[1:]
        if not inputs:
            raise click.UsageError("name at least one mesh file or folder of frames after the model")
    predictor = Predictor.from_pretrained(model, revision)
    for path in inputs:
        p = predictor.predict_file(path)
        timeline = []
        if frames:
            item = load_input(path)
            if isinstance(item, MeshSequence):
                timeline = predictor.predict_frames(item)
        if as_json:
            record = {"input": str(path), "label": p.label, "probabilities": p.probabilities, "view_weights": p.view_weights, "timings": p.timings}
            if timeline:
                record["frames"] = timeline
            click.echo(json.dumps(record))
            continue
        click.echo(f"{path}: {p.label}")
        for label, prob in sorted(p.probabilities.items(), key=lambda t: -t[1]):
            click.echo(f"  {label:<12} {prob:6.3f} {'#' * round(prob * 30)}")
        click.echo("  view weights: " + ", ".join(f"{k} {v:.3f}" for k, v in p.view_weights.items()))
        for i, frame in enumerate(timeline):
            top = max(frame, key=frame.get)
            click.echo(f"  frame {i:>3}: {top:<12} {frame[top]:.3f}")


@main.command("export")
@click.argument("model", required=False)
@click.option("--format", "fmt", type=click.Choice(["onnx", "torchscript"]), default="onnx", show_default=True)
@click.option("--out", type=click.Path(path_type=Path), default=None, help="The file to write (default: model.onnx or model.pt here); <out>.json describes its input and classes.")
def export_command(model: str | None, fmt: str, out: Path | None) -> None:
    """Export a model (default: the shipped one) for deployment: its image tower, view
    fusion and class embeddings as one graph from rendered views [B, V, C, H, W] to class
    logits [B, K]."""
    from affectkit.export import SUFFIXES, export_model_file
    from affectkit.hub import resolve_model

    written = export_model_file(resolve_model(model), out or Path(f"model{SUFFIXES[fmt]}"), fmt)  # type: ignore[arg-type]
    click.echo(f"wrote {written} and {written}.json")


@main.command()
@click.argument("model")
@click.option("--repo", required=True, help="The hub repository, owner/name (created if missing).")
@click.option("--private", is_flag=True, help="Create the repository private.")
@click.option("--message", default=None, help="The commit message.")
def push(model: str, repo: str, private: bool, message: str | None) -> None:
    """Upload a model or run folder to the Hugging Face Hub: weights, config, class prompt
    features and a model card (README.md, written from the run's held-out report when the
    folder has none). Uses HF_TOKEN or `hf auth login`; HF_ENDPOINT for another hub."""
    import tempfile

    from affectkit.hub import prepare_upload, push_model, resolve_model

    folder = Path(model)
    if not folder.is_dir():
        raise AffectkitError(f"{model}: no such folder; push takes a model folder or a run folder")
    with tempfile.TemporaryDirectory() as staging:
        upload = prepare_upload(resolve_model(folder), Path(staging))
        files = sorted(p.name for p in upload.iterdir())
        url = push_model(upload, repo, private=private, message=message)
    click.echo(f"pushed {', '.join(files)} to {url}")


@main.command()
@click.option("--checkpoint", type=click.Path(path_type=Path), help="Model to serve; default: the newest under --runs-dir.")
@click.option("--port", type=int, default=8501, show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (0.0.0.0 to show it on your network).")
@click.option("--config", "config_file", type=click.Path(path_type=Path), help="YAML app settings: upload and vertex limits, runs_dir, device.")
@click.option("--runs-dir", type=click.Path(path_type=Path), help="Where to look for runs (default runs).")
@click.option("--max-upload-mb", type=float, help="Largest upload in MiB (default 50).")
@click.option("--max-vertices", type=int, help="Most vertices per mesh or frame (default 500,000).")
def app(checkpoint: Path | None, port: int, host: str, config_file: Path | None, runs_dir: Path | None, max_upload_mb: float | None, max_vertices: int | None) -> None:
    """Serve the interactive Streamlit app (real-time inference in the browser)."""
    import importlib.util
    import math
    import os

    from affectkit_apps.settings import CONFIG_ENV, load_app_config

    config = load_app_config(config_file, checkpoint=checkpoint, runs_dir=runs_dir, max_upload_mb=max_upload_mb, max_vertices=max_vertices)
    if config.checkpoint is not None:
        from affectkit.checkpoint import read_meta

        read_meta(config.checkpoint)  # a wrong path fails here, with its reason, not in the page
    script = Path(importlib.util.find_spec("affectkit_apps").origin).parent / "affectkit_app.py"
    command = [
        sys.executable, "-m", "streamlit", "run", str(script),
        "--server.port", str(port), "--server.address", host, "--server.headless", "true",
        "--server.maxUploadSize", str(math.ceil(config.max_upload_mb)), "--browser.gatherUsageStats", "false",
        "--server.fileWatcherType", "none", "--client.toolbarMode", "viewer",
    ]  # fmt: skip
    click.echo(f"affectkit app on http://{host}:{port}", err=True)
    os.execve(sys.executable, command, {**os.environ, CONFIG_ENV: config.model_dump_json()})
