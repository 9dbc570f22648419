"""The ``affectkit`` command line. Errors caused by input print one line, no traceback:
exit status 2 for a wrong command line (click's usage errors), 1 for anything that fails
while running (a bad recipe or file, a model that does not load, ...)."""

from __future__ import annotations

import json
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from affectkit.errors import AffectkitError

if TYPE_CHECKING:
    from affectkit.data.mesh import Mesh, MeshSequence


def _overrides(sets: Sequence[str], extra: Sequence[str]) -> list[str]:
    """``--set a=b c=d``: values after ``--set`` that contain ``=`` are overrides too."""
    stray = [e for e in extra if "=" not in e]
    if stray:
        raise click.UsageError(f"unexpected arguments {stray}; overrides look like key.path=value")
    return [*sets, *extra]


RUNTIME_ERROR = 1


class AffectkitGroup(click.Group):
    """The command line: the built-in commands, then those plugins add (``register_commands``),
    looked up only when a name is not built in or the commands are listed, so running a
    built-in command loads no plugin."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except AffectkitError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(RUNTIME_ERROR)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.plugin_commands()})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        return super().get_command(ctx, name) or self.plugin_commands().get(name)

    def plugin_commands(self) -> dict[str, click.Command]:
        """The plugins' commands, found once per set of loaded plugins; each one skipped is
        said once, as a warning line."""
        from affectkit.registry import plugin_manager, registry

        loaded = tuple(name for name, _ in plugin_manager().list_name_plugin())
        if getattr(self, "_plugin_commands", (None,))[0] != loaded:
            commands, skipped = registry().commands(self.commands)
            for line in skipped:
                click.echo(f"warning: {line}", err=True)
            self._plugin_commands = (loaded, commands)
        return self._plugin_commands[1]


def _device(value: str | None) -> str:
    """A torch device this machine has (``cpu``, ``cuda``, ``cuda:1``, ``mps``), or one clear error."""
    import torch

    name = value or "cpu"
    try:
        device = torch.device(name)
    except RuntimeError:
        raise click.BadParameter(f"{name!r} is not a torch device; e.g. cpu, cuda, cuda:1, mps", param_hint="--device") from None
    available = {
        "cpu": True,
        "cuda": torch.cuda.is_available() and (device.index or 0) < torch.cuda.device_count(),
        "mps": torch.backends.mps.is_available(),
    }.get(device.type, False)
    if not available:
        raise click.BadParameter(f"{name!r} is not available on this machine (CUDA available: {torch.cuda.is_available()})", param_hint="--device")
    return name


def trust_option(function: Any) -> Any:
    """``--trust-unverified``: load a model whose weights carry no SHA-256 digest."""
    return click.option("--trust-unverified", is_flag=True, help="Load a model whose checkpoint.json holds no digest of its weights.")(function)


#: ``--test-time`` -> the test-time augmentations to load a model with (None: its own)
TEST_TIME = {"model": None, "mirror": ["mirror"], "none": []}


def test_time_option(function: Any) -> Any:
    """``--test-time``: score with the model's own test-time augmentation, mirror or none."""
    return click.option(
        "--test-time", "test_time", type=click.Choice(list(TEST_TIME)), default="model", show_default=True,
        help="Test-time augmentation: the model's own, mirror (each scan also scored mirrored, probabilities averaged) or none.",
    )(function)  # fmt: skip


def units_option(function: Any) -> Any:
    """``--units``: a scan's length unit, where its size would mislead."""
    return click.option(
        "--units",
        type=click.Choice(["auto", "mm", "cm", "inch", "m"]),
        default="auto",
        show_default=True,
        help="The scans' length unit; auto: found from each face's size.",
    )(function)


def frame_record(frame: Any) -> dict[str, Any]:
    """The JSON of a :class:`affectkit.data.face_frame.FaceFrame` that people read: what was found."""
    return {key: getattr(frame, key) for key in ("units", "up", "facing", "yaw", "pitch", "roll", "method", "fit_mm")}


def device_option(function: Any) -> Any:
    """``--device``, checked when the command line is parsed (before any model loads)."""
    return click.option(
        "--device", default="cpu", show_default=True, callback=lambda ctx, param, value: _device(value), help="Where the model runs: cpu, cuda, cuda:N or mps."
    )(function)


@click.group(cls=AffectkitGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="affectkit")
def main() -> None:
    """affectkit: 3D/4D facial expression recognition with a vision-language model.

    Shell completion: eval "$(_AFFECTKIT_COMPLETE=bash_source affectkit)" in ~/.bashrc
    (zsh_source, fish_source for those shells)."""
    warnings.formatwarning = _one_line_warning


def _one_line_warning(message: Warning | str, category: type[Warning], *_: Any) -> str:
    """A warning as the command line prints it: one line, no source location."""
    return f"warning: {message}\n"


@main.command()
@click.option("--options", "options_of", metavar="NAME", default=None, help="Print the options of the component(s) called NAME (or KIND:NAME).")
@click.option("--reference", is_flag=True, help="Print the component reference page (docs/components.md) as Markdown.")
@click.option("--json", "as_json", is_flag=True, help="Every component as JSON: kind, name, origin, description, options.")
def plugins(options_of: str | None, reference: bool, as_json: bool) -> None:
    """List every registered component by kind, with its origin and description."""
    from affectkit.recipe_reference import component_reference, option_rows
    from affectkit.registry import KINDS, STANDARD_MESH_SUFFIXES, failed_plugins, registry

    reg = registry()
    if reference:
        click.echo(component_reference(), nl=False)
        return
    infos = reg.all()
    if options_of is not None:
        kind, _, name = options_of.rpartition(":")
        chosen = [i for i in infos if i.name == name and kind in ("", i.kind)]
        if not chosen:
            raise AffectkitError(f"no component called {options_of!r}; registered: {', '.join(sorted({i.name for i in infos}))}")
        infos = chosen
    if as_json:
        records = [
            {"kind": i.kind, "name": i.name, "origin": i.origin, "description": i.description,
             "options": [dict(zip(("name", "type", "default", "description"), row, strict=True)) for row in option_rows(i.cls.Options)]}
            for i in infos
        ]  # fmt: skip
        click.echo(json.dumps(records, indent=1))
        return
    if options_of is not None:
        for info in infos:
            click.echo(f"{info.kind} {info.name} [{info.origin}]: {info.description.replace('``', '`')}")
            for key, kind, default, description in option_rows(info.cls.Options) or [("(no options)", "", "", "")]:
                click.echo(f"  {key:<18} {kind:<28} default {default:<12} {description}" if kind else f"  {key}")
        return
    for kind in KINDS:
        click.echo(f"{kind}:")
        for info in (i for i in infos if i.kind == kind):
            click.echo(f"  {info.name:<14} [{info.origin}]  {info.description.replace('``', '`')}")
    click.echo("mesh_format:")
    click.echo(f"  {' '.join(STANDARD_MESH_SUFFIXES)} [built-in]  read by trimesh")
    for suffix, found in reg.mesh_formats().items():
        click.echo(f"  {suffix:<14} [{found.origin}]  {'read and written' if found.writer else 'read'}")
    for failure in failed_plugins():
        click.echo(f"skipped: {failure.describe()}")
    click.echo("options of a component: affectkit plugins --options NAME")


@main.command()
def env() -> None:
    """What a bug report needs: versions, devices, plugins."""
    from affectkit.train.environment import environment_report

    click.echo(environment_report())


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
    from affectkit.data.mesh_formats import load_mesh
    from affectkit.registry import create
    from affectkit.render.cameras import parse_views
    from affectkit.render.view_pngs import write_view_pngs

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
@click.option("--performances", default="prototypes", show_default=True,
              help="prototypes (one per emotion) or emfacs (each subject its own EMFACS-7 prototype or major variant; docs/datasets.md).")
@click.option(
    "--layout",
    default="affectkit",
    show_default=True,
    help="the file layout of the dataset that reads it back: affectkit (PLY + manifest.csv, the folder dataset's), "
    "bu3dfe (F0001/F0001_HA04WH_F3D.wrl + .bnd), bu4dfe (F001/Happy/000.wrl; implies --sequences --no-neutral) or a plugin's.",
)
def synth(
    out: Path, name: str, subjects: int, sequences: bool, frames: int, vertices: int | None, intensities: str, neutral: bool, seed: int,
    performances: str, layout: str,
) -> None:
    """Write a generated 3D/4D expression dataset (meshes + manifest.csv, or the BU-3DFE/BU-4DFE layout)."""
    from affectkit.registry import create, dataset_layouts, face_generators, registry, write_generated

    generators = face_generators()
    if name not in generators:
        raise click.BadParameter(f"{name!r} is not a face generator; allowed: {', '.join(generators)}", param_hint="--dataset")
    owners = dataset_layouts()
    if layout not in owners:
        raise click.BadParameter(f"{layout!r} is no dataset's layout; allowed: {', '.join(sorted(owners))}", param_hint="--layout")
    if vertices is not None and "vertices" not in registry().get("dataset", name).cls.Options.model_fields:
        raise click.UsageError(f"--vertices applies to generators with a mesh resolution of their own; {name} faces have the face model's")
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
        "performances": performances,
        **({"vertices": vertices} if vertices is not None else {}),
        **registry().get("dataset", owners[layout]).cls.layout_implies,
    }
    click.echo(write_generated(create("dataset", name, options), name, out, layout=layout))


@main.command()
@click.argument("recipe_file", metavar="RECIPE", type=click.Path(path_type=Path))
@click.option("--set", "sets", multiple=True, help="Override a key: --set train.epochs=3")
@click.option("--resume", is_flag=True, help="Continue the newest run of this recipe.")
@click.argument("extra", nargs=-1)
def run(recipe_file: Path, sets: tuple[str, ...], resume: bool, extra: tuple[str, ...]) -> None:
    """Train a recipe through Ray Train and evaluate it on held-out subjects."""
    from affectkit.recipe import load_recipe
    from affectkit.train.runner import run as run_recipe

    run_recipe(load_recipe(recipe_file, _overrides(sets, extra)), resume=resume)


@main.command()
@click.argument("recipe_file", metavar="RECIPE", type=click.Path(path_type=Path))
@click.option("--folds", default=None, type=click.IntRange(2), help="Folds per repeat. Default: the recipe's eval.folds.")
@click.option("--repeats", default=None, type=click.IntRange(1), help="Repeats, each with a new subject draw and new folds. Default: eval.repeats.")
@click.option("--folds-file", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Use the folds (test subjects per fold, per repeat) of this file, e.g. another run's folds.json.")
@click.option("--set", "sets", multiple=True, help="Override a key: --set train.epochs=3")
@click.argument("extra", nargs=-1)
@click.option("--json", "as_json", is_flag=True, help="Print cv.json (every fold and the summary) instead of the progress and tables.")
def cv(
    recipe_file: Path, folds: int | None, repeats: int | None, folds_file: Path | None, sets: tuple[str, ...], as_json: bool, extra: tuple[str, ...]
) -> None:
    """Subject-independent K-fold cross-validation of a recipe, optionally repeated.

    Writes to the run folder it prints: cv.json (every fold, mean ± std over folds and
    over repeats, pooled figures), folds.json (the folds used: pass it to --folds-file to
    run the same split), pooled/ and one folder per fold with its report and model."""
    from affectkit.recipe import load_recipe
    from affectkit.train.cross_validation import cross_validate

    if folds_file is not None and (folds or repeats):
        raise click.UsageError("--folds-file fixes the folds and repeats; leave out --folds and --repeats")
    summary = cross_validate(load_recipe(recipe_file, _overrides(sets, extra)), folds, repeats, folds_file, verbose=not as_json)
    if as_json:
        click.echo(json.dumps(summary, indent=1))


@main.command("eval")
@click.argument("checkpoint")
@click.option("--data", "data_spec", default=None,
              help="Dataset spec: NAME, NAME:/root, NAME:key=value,key=[a, b] or NAME:{key: value}. Default: the checkpoint's held-out subjects.")
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Write report.json, report.txt and confusion.png here.")
@device_option
@trust_option
@click.option("--json", "as_json", is_flag=True, help="Print the report, leak warnings and notes as one JSON object.")
@units_option
@test_time_option
@click.option("--adapt", is_flag=True,
              help="First adapt the model's normalisation statistics to the scored scans, without their labels (affectkit adapt): a transductive figure.")
@click.option("--neutral-reference", is_flag=True,
              help="Read each scan against its person's neutral scan in the data (include_neutral=true), a sequence against its first frame; "
                   "the model must be calibrated (affectkit neutral).")
def eval_command(
    checkpoint: str, data_spec: str | None, out: Path | None, device: str, trust_unverified: bool, as_json: bool, units: str, test_time: str,
    adapt: bool, neutral_reference: bool,
) -> None:
    """Accuracy, macro-F1, UAR, per-class report and confusion matrix of a model (a model or
    run folder, or a hub id).

    Without --data: the subjects the checkpoint was never trained on (its run's held-out
    subjects, or its cross-validation fold's test subjects). With --data: a loud warning
    when any evaluation subject or scan was seen in training."""
    from dataclasses import asdict

    from affectkit.evaluate.reports import evaluate_checkpoint, format_report, save_report
    from affectkit.render.pipeline import parse_dataset_spec
    from affectkit.serve.hub import resolve_model

    spec = parse_dataset_spec(data_spec) if data_spec is not None else None
    result = evaluate_checkpoint(
        resolve_model(checkpoint), spec, device=device, trust_unverified=trust_unverified, units=None if units == "auto" else units,
        test_time=TEST_TIME[test_time], adapt=adapt, neutral_reference=neutral_reference,
    )  # fmt: skip
    report = result.report
    if as_json:
        click.echo(json.dumps({"report": asdict(report), "warnings": result.warnings, "notes": result.notes}, indent=1))
    else:
        for note in result.notes:
            click.echo(note, err=True)
        for warning in result.warnings:
            click.secho(f"WARNING: not a held-out figure: {warning}", err=True, fg="red", bold=True)
        click.echo(format_report(report))
    if out is not None:
        save_report(report, out, str(checkpoint))


@main.command()
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--model", "-m", "model", default=None,
              help="A model folder, a run folder, or a Hugging Face hub id (owner/name). Default: the model shipped with affectkit.")
@click.option("--revision", default=None, help="The hub revision (branch, tag or commit) of --model.")
@device_option
@trust_option
@click.option("--json", "as_json", is_flag=True, help="One JSON object per input (with an error key for an input that failed).")
@click.option("--frames", is_flag=True, help="For sequences, also predict every frame (a timeline).")
@units_option
@test_time_option
@click.option("--neutral", "neutral_file", type=click.Path(path_type=Path), default=None,
              help="The neutral scan of the person the INPUTS show: each is read against it (a model calibrated by affectkit neutral).")
@click.option("--first-frame-neutral", is_flag=True,
              help="Read each sequence folder against its own first frame (sequences that start at rest, as BU-4DFE's; a calibrated model).")
def predict(
    inputs: tuple[Path, ...], model: str | None, revision: str | None, device: str, trust_unverified: bool, as_json: bool, frames: bool, units: str,
    test_time: str, neutral_file: Path | None, first_frame_neutral: bool,
) -> None:
    """Class probabilities for meshes or sequence folders, with the per-view weights and
    how each scan was placed: its units, up axis and head pose, found from its geometry.

    INPUTS are mesh files or folders of frames. A model folder given first (the older
    form `affectkit predict MODEL INPUT...`) is taken as --model. An input that cannot be
    read is reported and the others are still predicted; the exit status is then 1."""
    from affectkit.data.action_units import au_title
    from affectkit.data.mesh import MeshSequence
    from affectkit.data.mesh_formats import load_input
    from affectkit.serve.hub import is_model_folder
    from affectkit.serve.inference import Predictor

    if model is None and is_model_folder(inputs[0]):
        model, inputs = str(inputs[0]), inputs[1:]
        if not inputs:
            raise click.UsageError("name at least one mesh file or folder of frames after the model")
    predictor = Predictor.from_pretrained(model, revision, device=device, trust_unverified=trust_unverified, test_time=TEST_TIME[test_time])
    chosen = None if units == "auto" else units
    if neutral_file is not None and first_frame_neutral:
        raise click.UsageError("give --neutral FILE or --first-frame-neutral, not both")
    if first_frame_neutral:
        predictor.model.calibrated_neutral()  # an uncalibrated model fails here, once
    neutral = None
    if neutral_file is not None:
        neutral = load_input(neutral_file)
        if isinstance(neutral, MeshSequence):
            raise AffectkitError(f"--neutral {neutral_file}: a folder of frames; give one neutral scan (for a sequence, its first frame's file)")
        predictor.neutral_views(neutral, chosen)  # an uncalibrated model or an unusable scan fails here, once
    failed = 0
    for path in inputs:
        try:
            started = time.perf_counter()
            item = load_input(path)
            read = time.perf_counter() - started
            reference = first_frame(item, path) if first_frame_neutral else neutral
            p = predictor.predict(item, units=chosen, neutral=reference)
            p.timings = {"read": read, **p.timings}
            timeline = predictor.predict_frames(item, units=chosen, neutral=reference) if frames and isinstance(item, MeshSequence) else []
        except AffectkitError as exc:
            failed += 1
            click.echo(json.dumps({"input": str(path), "error": str(exc)}) if as_json else f"error: {exc}", err=not as_json)
            continue
        if as_json:
            record = {"input": str(path), "label": p.label, "probabilities": p.probabilities, "view_weights": p.view_weights, "timings": p.timings}
            record["test_time"] = predictor.meta.inference.input.test_time
            if p.action_units:
                record["action_units"] = p.action_units
            record["frame"] = None if p.frame is None else frame_record(p.frame)
            record["warnings"] = p.warnings
            if timeline:
                record["frames"] = timeline
            click.echo(json.dumps(record))
            continue
        click.echo(f"{path}: {p.label}")
        for label, prob in sorted(p.probabilities.items(), key=lambda t: -t[1]):
            click.echo(f"  {label:<12} {prob:6.3f} {'#' * round(prob * 30)}")
        if p.action_units:
            top = p.top_action_units()
            shown = ", ".join(f"{au_title(name)} {score:.2f}" for name, score in top)
            strongest = max(p.action_units.items(), key=lambda t: t[1])
            click.echo(f"  action units: {shown}" if top else f"  action units: none likely present (strongest {strongest[0]} {strongest[1]:.2f})")
        click.echo("  view weights: " + ", ".join(f"{k} {v:.3f}" for k, v in p.view_weights.items()))
        if p.frame is not None:
            click.echo(f"  face frame: {p.frame.describe()}")
        for warning in p.warnings:
            click.secho(f"warning: {path}: {warning}", err=True, fg="yellow")
        for i, frame in enumerate(timeline):
            top = max(frame, key=frame.get)
            click.echo(f"  frame {i:>3}: {top:<12} {frame[top]:.3f}")
    if failed:
        click.echo(f"error: {failed} of {len(inputs)} inputs could not be predicted", err=True)
        sys.exit(RUNTIME_ERROR)


def first_frame(item: Mesh | MeshSequence, path: Path) -> Mesh:
    """A sequence's first frame, its person at rest (``predict --first-frame-neutral``)."""
    from affectkit.data.mesh import MeshSequence

    if not isinstance(item, MeshSequence):
        raise AffectkitError(f"{path}: one scan, with no first frame to read it against; give its person's neutral scan with --neutral")
    return item.frames[0]


@main.command()
@click.argument("inputs", nargs=-1, type=click.Path(path_type=Path))
@click.option("--model", "-m", "model", default=None,
              help="A model folder, a run folder, or a Hugging Face hub id (owner/name). Default: the model shipped with affectkit.")
@click.option("--data", "data_spec", default=None, help="Or a dataset spec (as eval's --data) whose scans to adapt on; their labels are not read.")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="The adapted model's folder (new, or empty).")
@device_option
@trust_option
@units_option
def adapt(inputs: tuple[Path, ...], model: str | None, data_spec: str | None, out: Path, device: str, trust_unverified: bool, units: str) -> None:
    """Adapt a model to another scanner or face model without labels: its image encoder's
    normalisation statistics are re-estimated on unlabelled scans of the new source
    (INPUTS: mesh files or folders of frames, at least 20, of several people and
    expressions; or --data) and written, every learnt weight unchanged, as a new model
    folder for predict, eval and the app."""
    from affectkit.render.pipeline import parse_dataset_spec
    from affectkit.serve.adapted_model import adapt_model
    from affectkit.serve.hub import resolve_model

    spec = parse_dataset_spec(data_spec) if data_spec is not None else None
    done = adapt_model(
        resolve_model(model), out, spec, list(inputs), device=device, trust_unverified=trust_unverified, units=None if units == "auto" else units
    )  # fmt: skip
    click.echo(f"adapted {done.layers} normalisation layers on {done.scans} scans of {done.source}; wrote {done.model}")


@main.command()
@click.argument("inputs", nargs=-1, type=click.Path(path_type=Path))
@click.option("--model", "-m", "model", default=None,
              help="A model folder, a run folder, or a Hugging Face hub id (owner/name). Default: the model shipped with affectkit.")
@click.option("--data", "data_spec", default=None,
              help="Or a dataset spec (as eval's --data) of people of the training face model; its scans labelled neutral are read.")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="The calibrated model's folder (new, or empty).")
@device_option
@trust_option
@units_option
def neutral(inputs: tuple[Path, ...], model: str | None, data_spec: str | None, out: Path, device: str, trust_unverified: bool, units: str) -> None:
    """Calibrate a model to read scans against their person's neutral scan, which takes out
    the face at rest (its proportions, its resting mouth) where a new face model differs
    most: the mean neutral of its training face model is taken from neutral scans of people
    of that face model (INPUTS: mesh files, or --data) and written, every learnt weight
    unchanged, as a new model folder for predict --neutral and eval --neutral-reference."""
    from affectkit.render.pipeline import parse_dataset_spec
    from affectkit.serve.adapted_model import adapt_model
    from affectkit.serve.hub import resolve_model

    spec = parse_dataset_spec(data_spec) if data_spec is not None else None
    done = adapt_model(
        resolve_model(model), out, spec, list(inputs), device=device, trust_unverified=trust_unverified, units=None if units == "auto" else units, neutral=True
    )  # fmt: skip
    click.echo(f"calibrated the neutral reference on {done.scans} neutral scans of {done.source}; wrote {done.model}")


@main.command("export")
@click.argument("model", required=False)
@click.option("--format", "fmt", type=click.Choice(["onnx", "torchscript"]), default="onnx", show_default=True)
@click.option("--out", type=click.Path(path_type=Path), default=None, help="The file to write (default: model.onnx or model.pt here); <out>.json describes its input and classes.")
def export_command(model: str | None, fmt: str, out: Path | None) -> None:
    """Export a model (default: the shipped one) for deployment: its image tower, view
    fusion and class embeddings as one graph from rendered views [B, V, C, H, W] to class
    logits [B, K]."""
    from affectkit.serve.export import SUFFIXES, export_model_file
    from affectkit.serve.hub import resolve_model

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

    from affectkit.serve.hub import prepare_upload, push_model, resolve_model

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
@click.option("--device", default=None, callback=lambda ctx, param, value: value and _device(value), help="Where the model runs (default: the config's, else cpu).")
def app(
    checkpoint: Path | None, port: int, host: str, config_file: Path | None, runs_dir: Path | None, max_upload_mb: float | None, max_vertices: int | None,
    device: str | None,
) -> None:
    """Serve the interactive Streamlit app (real-time inference in the browser)."""
    import importlib.util
    import math
    import os

    if importlib.util.find_spec("streamlit") is None:
        raise AffectkitError("the app needs Streamlit, which is not installed: pip install 'affectkit[app]' (or make app)")
    from affectkit_apps.settings import CONFIG_ENV, load_app_config

    config = load_app_config(
        config_file, checkpoint=checkpoint, runs_dir=runs_dir, max_upload_mb=max_upload_mb, max_vertices=max_vertices, device=device
    )
    if config.checkpoint is not None:
        from affectkit.model.checkpoint import load_checkpoint

        load_checkpoint(config.checkpoint)  # a wrong path or a broken model fails here, with its reason, not in the page
    script = Path(importlib.util.find_spec("affectkit_apps").origin).parent / "affectkit_app.py"
    command = [
        sys.executable, "-m", "streamlit", "run", str(script),
        "--server.port", str(port), "--server.address", host, "--server.headless", "true",
        "--server.maxUploadSize", str(math.ceil(config.max_upload_mb)), "--browser.gatherUsageStats", "false",
        "--server.fileWatcherType", "none", "--client.toolbarMode", "viewer", "--client.showErrorDetails", "false",
    ]  # fmt: skip
    click.echo(f"affectkit app on http://{host}:{port}", err=True)
    os.execve(sys.executable, command, {**os.environ, CONFIG_ENV: config.model_dump_json()})
