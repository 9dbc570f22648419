"""Recipes: one YAML file that says everything a run does, validated by pydantic.

``load_recipe`` reads the file, applies ``--set a.b=c`` overrides, validates every section
and checks every component name and its options against the registry, so a typo fails
before anything starts, naming the file, the key path, the bad value and what is allowed.
The fully resolved recipe (:func:`dump_recipe`) is saved beside every run's outputs.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from affectkit.data.action_units import AU_TEMPLATES
from affectkit.data.face_frame import Units
from affectkit.errors import AffectkitError, RecipeError, shorten


class Section(BaseModel):
    """A recipe section: unknown keys are errors, and so are infinite and NaN numbers."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=(), allow_inf_nan=False)


class ComponentRef(Section):
    """A registered component by name, with its options (a bare string means no options)."""

    name: str
    options: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _from_name(cls, value: Any) -> Any:
        return {"name": value} if isinstance(value, str) else value


class EncoderRef(ComponentRef):
    """An encoder plus how much of it trains: ``freeze`` stops all of it, then parameters
    whose names match a ``trainable`` glob pattern (e.g. ``"*layer.5.*"``) train again."""

    freeze: bool = False
    trainable: list[str] = Field(default_factory=list)


class LossTerm(ComponentRef):
    weight: float = 1.0


class SubjectSelection(Section):
    """Which of a dataset's subjects a run uses: all, those of a list file, a seeded draw."""

    file: Path | None = Field(None, description="a text file of subject ids, one per line (`#` comments): only these subjects")
    count: int | None = Field(None, ge=2, description="a random draw of this many subjects (seeded by `seed`; a new draw per `cv --repeats` repeat)")
    stratify: list[str] = Field(
        default_factory=lambda: ["sex", "ethnicity"], description="subject attributes the draw keeps in proportion (those a dataset lacks are ignored)"
    )


#: yaw, pitch and roll in degrees
Angles = tuple[Annotated[float, Field(ge=0.0, le=45.0)], Annotated[float, Field(ge=0.0, le=45.0)], Annotated[float, Field(ge=0.0, le=45.0)]]


def action_unit_codes(value: list[int | str] | None) -> list[int] | None:
    """``[AU12, "AU6", 4]`` -> ``[4, 6, 12]``: action units by number or name, each once."""
    if value is None:
        return None
    from affectkit.data.action_units import au_code

    codes = [au_code(item) for item in value]
    if len(set(codes)) != len(codes) or not codes:
        raise ValueError(f"list each action unit once, at least one, got {value}")
    return sorted(codes)


#: action units by number (12) or name (AU12)
ActionUnitList = Annotated[list[int | str] | None, AfterValidator(action_unit_codes)]


class FrameSampling(Section):
    """Which frames of a 4D sequence the model sees: the recipe's ``data`` and a model's input share these."""

    frames: int = Field(1, ge=1, description="frames sampled from each 4D sequence")
    frame_sampler: Literal["uniform", "apex"] = Field("apex", description="4D frames: around the middle frame, where posed sequences (onset, apex, offset) peak; or evenly spread")


class DataConfig(FrameSampling):
    """Which scans to learn from, and how they are split and sampled."""

    dataset: ComponentRef = Field(ComponentRef(name="facekit"), description="a registered dataset and its options (`affectkit plugins`)")
    subjects: SubjectSelection = Field(SubjectSelection(), description="all subjects, a list file's, or a stratified random draw")
    val_fraction: float = Field(0.25, gt=0.0, lt=1.0, description="fraction of subjects held out")
    skip_bad_files: bool = Field(False, description="leave unreadable files out (listed in the run's report) instead of stopping")
    units: Units | None = Field(None, description="this dataset's length unit, where its size would mislead (default: render.frame.units)")
    action_units: ActionUnitList = Field(
        None,
        description="the action units a model learns where a loss term learns AUs (`action_units`), by number or name (AU12); "
        "default: every AU present in the training data's AU labels (docs/action_units.md)",
    )
    pose_spread: Angles = Field(
        (0.0, 0.0, 0.0),
        description="training scans only: yaw, pitch and roll (degrees, one standard deviation) of a turn each scan is given once it is "
        "upright, so the model learns what the aligner leaves over (docs/concepts.md)",
    )


CACHE_ENV = "$AFFECTKIT_CACHE_DIR"


def expand_cache_dir(path: Path | None) -> Path | None:
    """``$AFFECTKIT_CACHE_DIR`` (that variable, else the platform's user cache folder) and ``~``
    expanded, so the default cache is the same from any working folder."""
    if path is None:
        return None
    text = str(path)
    if text.startswith(CACHE_ENV):
        import platformdirs

        text = (os.environ.get(CACHE_ENV[1:]) or platformdirs.user_cache_dir("affectkit")) + text[len(CACHE_ENV) :]
    return Path(text).expanduser()


#: more views than any multiview model uses; every view costs a render and an encoder pass
MAX_VIEWS = 32


def known_views(views: list[str | float]) -> list[str | float]:
    """Views :func:`affectkit.render.cameras.parse_views` accepts, checked when a recipe or a
    checkpoint's config is read rather than when rendering starts."""
    from affectkit.render.cameras import parse_views

    try:
        parse_views(views)
    except AffectkitError as exc:
        raise ValueError(str(exc)) from None
    return views


#: view names, yaws or ``yaw:pitch[:roll]`` specs, at least one and at most MAX_VIEWS
ViewList = Annotated[list[str | float], Field(min_length=1, max_length=MAX_VIEWS), AfterValidator(known_views)]


class FrameConfig(Section):
    """How each scan is brought into the canonical face frame before it is rendered."""

    align: bool = Field(True, description="find each scan's up axis, facing and head pose and turn it upright; false: take scans as +y up, facing +z, upright")
    units: Units = Field("auto", description="the scans' length unit: found from each face's size, or this one")


#: test-time augmentations (affectkit.serve.test_time)
TestTime = Literal["mirror"]


class ViewRendering(Section):
    """How each scan becomes images: renderer, views, size, maps, face frame and test-time
    augmentation; the recipe's ``render`` and a model's input share these."""

    renderer: ComponentRef = Field(ComponentRef(name="torch"), description="`torch` (CPU and CUDA), `kaolin` (CUDA, where Kaolin imports) or `auto`")
    views: ViewList = Field(
        default_factory=lambda: ["front", "left", "right"], description="view names (front, left, right, up, down), yaws in degrees, or yaw:pitch[:roll]"
    )
    size: int = Field(224, ge=16, le=1024, description="image width and height in pixels")
    maps: list[Literal["rgb", "depth", "normal", "mask"]] = Field(
        default_factory=lambda: ["rgb"], min_length=1, description="maps stacked as the image encoder's input channels"
    )
    frame: FrameConfig = Field(FrameConfig(), description="the canonical face frame: units, up axis and head pose found from each scan")
    test_time: list[TestTime] = Field(
        default_factory=list,
        description="test-time augmentation wherever the model scores: mirror (each scan also scored mirrored, the probabilities averaged; "
        "needs each view's mirror view, as front, left, right)",
    )

    @model_validator(mode="after")
    def _mirrorable(self) -> ViewRendering:
        from affectkit.render.cameras import parse_views
        from affectkit.serve.test_time import mirror_partners

        if "mirror" in self.test_time and mirror_partners(parse_views(self.views)) is None:
            raise ValueError(f"test_time: mirror needs each view's mirror view (yaw and roll negated) among the views; {self.views} lack one")
        return self


class RenderConfig(ViewRendering):
    """How each scan becomes images, and where they are kept between runs."""

    cache_dir: Annotated[Path | None, AfterValidator(expand_cache_dir)] = Field(
        Path(f"{CACHE_ENV}/renders"),
        validate_default=True,
        description=f"where rendered views are kept between runs; {CACHE_ENV} is that environment variable, else the user cache folder "
        "(~/.cache/affectkit on Linux); null renders every time",
    )


class ActionUnitPromptsConfig(Section):
    """How each action unit is put into words for the text tower."""

    templates: list[str] = Field(
        default_factory=lambda: list(AU_TEMPLATES),
        min_length=1,
        description="templates with one {} for an AU's description; an AU's prompts are every description in every template",
    )
    descriptions: dict[int, list[str]] = Field(
        default_factory=dict, description="AU number -> descriptions, replacing the built-in ones (docs/action_units.md) for that AU"
    )

    @field_validator("templates")
    @classmethod
    def one_slot(cls, value: list[str]) -> list[str]:
        bad = [t for t in value if t.count("{}") != 1 or "{" in t.replace("{}", "")]
        if bad:
            raise ValueError(f"each template needs exactly one {{}} for the AU's description, got {bad}")
        return value


class PromptsConfig(Section):
    """The text side: which prompt augmenters write each class's and each scan's prompts."""

    augmenters: list[ComponentRef] = Field(
        default_factory=lambda: [ComponentRef(name="templates"), ComponentRef(name="attributes")],
        min_length=1,
        description="prompt augmenters; a scan's training prompt is drawn from all their prompts",
    )
    action_units: ActionUnitPromptsConfig = Field(ActionUnitPromptsConfig(), description="the prompts of action units, where a model learns them")


class ModelConfig(Section):
    """The two towers and the joint space."""

    image_encoder: EncoderRef = Field(EncoderRef(name="timm"), description="the view encoder shared by all views; `freeze` and `trainable` globs choose what trains")
    text_encoder: EncoderRef = Field(EncoderRef(name="minilm", freeze=True), description="the prompt encoder (frozen by default: its features are memoised per prompt)")
    embed_dim: int = Field(256, ge=8, le=8192, description="dimension of the joint image-text space")
    fusion: Literal["weighted", "attention"] = Field("weighted", description="learned view weights (the paper), or self-attention across views first")
    init_temperature: float = Field(0.07, gt=0.0, description="initial softmax temperature (learned as logit_scale)")
    classifier: Literal["prompts", "learned"] = Field(
        "prompts",
        description="score classes by similarity to their encoded prompts (zero-shot, prompts can change), or to one learned vector per training label (a plain classifier head: the baseline)",
    )
    action_units: Literal["joint", "readout"] = Field(
        "joint",
        description="with an action_units loss term: score AUs from the joint embedding the emotions use (the AU term then trains the shared encoder too), or through a readout of their own on it that the AU term alone trains (no AU gradient reaches what the emotions use)",
    )


class LossConfig(Section):
    """The training objective: a weighted sum of registered losses."""

    terms: list[LossTerm] = Field(
        default_factory=lambda: [LossTerm(name="affectvlm")], min_length=1, description="losses, each with an optional `weight` (default 1)"
    )


class TrainConfig(Section):
    """Optimisation: AdamW with linear warm-up and cosine decay, per step."""

    epochs: int = Field(10, ge=1)
    min_steps: int = Field(
        0, ge=0,
        description="train at least this many optimisation steps: a small training set (an `affectkit cv` fold of a small dataset) "
        "then runs more epochs than `epochs`; 0: `epochs` exactly",
    )  # fmt: skip
    batch_size: int = Field(32, ge=2, description="scans per step on each worker")
    lr: float = Field(1e-3, gt=0.0, description="peak learning rate")
    weight_decay: float = Field(0.05, ge=0.0)
    warmup_epochs: float = Field(1.0, ge=0.0, description="epochs of linear warm-up before the cosine decay")
    grad_clip: float | None = Field(1.0, gt=0.0, description="gradient norm clipping; null turns it off")
    amp: bool = Field(True, description="bfloat16 autocast on CUDA (ignored on CPU)")
    augmentations: list[ComponentRef] = Field(default_factory=list, description="view augmentations applied to each training batch, in order")
    neutral_reference: float = Field(
        0.0, ge=0.0, le=1.0,
        description="the share of training scans read against their person's neutral scan (affectkit.model.neutral_reference), "
        "drawn anew every step; needs the training people's neutral scans (the generated sets, BU-3DFE, Bosphorus); 0: none",
    )  # fmt: skip
    weight_averaging: float = Field(
        0.0, ge=0.0, lt=1.0,
        description="average the trainable weights over every optimisation step of this last share of training (SWA) and validate, "
        "checkpoint and export the mean, its batch-norm statistics estimated again on the training scans; 0: the last step's weights",
    )  # fmt: skip
    callbacks: list[ComponentRef] = Field(
        default_factory=list, description="training callbacks told every epoch's scalars, which may stop training early: early_stopping, a plugin's"
    )

    def epochs_for(self, steps_per_epoch: int) -> int:
        """How many epochs a training set of ``steps_per_epoch`` steps runs: ``epochs``, or
        as many more as ``min_steps`` needs."""
        return max(self.epochs, math.ceil(self.min_steps / max(1, steps_per_epoch)))


class ScalingConfig(Section):
    """Ray Train: how many workers, on what, and where."""

    num_workers: int = Field(1, ge=1, description="Ray Train workers (DDP processes)")
    use_gpu: bool = Field(False, description="one GPU per worker")
    cpus_per_worker: float = Field(1.0, gt=0.0, description="CPUs reserved per worker (torch uses that many threads)")
    address: str | None = Field(None, description="Ray cluster to join (else RAY_ADDRESS, else a local one)")
    storage_path: str | None = Field(None, description="checkpoint storage every node reaches (a shared folder or a URI such as s3://bucket/path); required on multi-node clusters")
    max_failures: int = Field(0, ge=-1, description="worker-group restarts from the last checkpoint before giving up (-1: no limit)")


class EvalConfig(Section):
    """Evaluation: cross-validation folds and which checkpoint a run exports."""

    folds: int = Field(5, ge=2, description="folds of `affectkit cv` (subject-independent)")
    repeats: int = Field(1, ge=1, description="`affectkit cv` repeats: each a new subject draw (when `data.subjects.count` is set) and new folds")
    cv_validation: bool = Field(
        False,
        description="`affectkit cv`: hold out `data.val_fraction` of each fold's training subjects to validate every epoch (needed by `select: best`); "
        "off, each fold trains on all its training subjects and its test subjects are scored once, after training",
    )
    select: Literal["last", "best"] = Field(
        "last",
        description="the checkpoint a run exports and reports: the final epoch (an unbiased held-out "
        "figure) or the epoch with the best validation accuracy (chosen on the held-out subjects themselves)",
    )


class OutputConfig(Section):
    """Where runs are written."""

    dir: Path = Field(Path("runs"), description="runs go to DIR/NAME/TIMESTAMP/, the exported model to DIR/NAME/model/")


class LoggingConfig(Section):
    """Live logs of a run, written after every epoch (docs/concepts.md, "Watching a run")."""

    loggers: list[ComponentRef] = Field(
        default_factory=lambda: [ComponentRef(name="tensorboard")],
        description="registered loggers that receive every epoch's scalars: tensorboard (RUN/tensorboard/), mlflow (an MLflow run), a plugin's; [] for train.log only",
    )
    mlflow_uri: str | None = Field(None, description="the mlflow logger's tracking URI; default: a local SQLite store, sqlite:///OUTPUT_DIR/mlflow.db")
    mlflow_experiment: str | None = Field(None, description="the mlflow logger's experiment; default: the recipe's name")


class Recipe(Section):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", description="the run's name: letters, digits, `_`, `.`, `-`")
    seed: int = Field(0, description="fixes the subject split, the initial weights and the sampling")
    data: DataConfig = DataConfig()
    render: RenderConfig = RenderConfig()
    prompts: PromptsConfig = PromptsConfig()
    model: ModelConfig = ModelConfig()
    loss: LossConfig = LossConfig()
    train: TrainConfig = TrainConfig()
    scaling: ScalingConfig = ScalingConfig()
    eval: EvalConfig = EvalConfig()
    output: OutputConfig = OutputConfig()
    logging: LoggingConfig = LoggingConfig()

    def components(self) -> Iterable[tuple[str, str, ComponentRef]]:
        """Every component the recipe names: (key path, kind, reference)."""
        yield "data.dataset", "dataset", self.data.dataset
        yield "render.renderer", "renderer", self.render.renderer
        for i, ref in enumerate(self.prompts.augmenters):
            yield f"prompts.augmenters.{i}", "prompt_augmenter", ref
        yield "model.image_encoder", "image_encoder", self.model.image_encoder
        yield "model.text_encoder", "text_encoder", self.model.text_encoder
        for i, ref in enumerate(self.loss.terms):
            yield f"loss.terms.{i}", "loss", ref
        for i, ref in enumerate(self.train.augmentations):
            yield f"train.augmentations.{i}", "view_augmentation", ref
        for i, ref in enumerate(self.train.callbacks):
            yield f"train.callbacks.{i}", "callback", ref
        for i, ref in enumerate(self.logging.loggers):
            yield f"logging.loggers.{i}", "logger", ref


def apply_overrides(data: dict[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """Set ``a.b.c=value`` paths (values parsed as YAML; list items by index)."""
    for override in overrides:
        path, sep, raw = override.partition("=")
        if not sep or not path.strip():
            raise RecipeError(f"override {override!r} is not of the form key.path=value")
        keys = path.strip().split(".")
        node: Any = data
        for depth, key in enumerate(keys):
            where = ".".join(keys[: depth + 1])
            if isinstance(node, list):
                if not key.isdigit() or int(key) >= len(node):
                    raise RecipeError(f"override {override!r}: {where} is not an item of a list of {len(node)} (use an index 0..{len(node) - 1})")
                key = int(key)
            if depth == len(keys) - 1:
                break
            child = node[key] if isinstance(node, list) else node.get(key)
            if child is None:
                child = node[key] = {}
            if not isinstance(child, dict | list):
                raise RecipeError(f"override {override!r}: {where} is a value, not a section")
            node = child
        try:
            value = yaml.safe_load(raw)
        except (yaml.YAMLError, ValueError) as exc:  # ValueError: an integer of thousands of digits
            raise RecipeError(f"override {shorten(override)}: the value is not valid YAML ({str(exc).splitlines()[0][:200]})") from None
        node[key] = value
    return data


def parse_recipe(data: Mapping[str, Any], source: str = "<recipe>") -> Recipe:
    """Validate recipe data and its component names and options."""
    if not isinstance(data, Mapping):
        raise RecipeError(f"{source}: a recipe must be a YAML mapping of sections, got {type(data).__name__}")
    try:
        recipe = Recipe.model_validate(dict(data))
    except ValidationError as exc:
        raise RecipeError(f"{source}: " + "; ".join(_describe(err) for err in exc.errors())) from None
    check_components(recipe, source)
    return recipe


def _describe(err: Mapping[str, Any]) -> str:
    path = ".".join(str(p) for p in err["loc"]) or "<top level>"
    if err["type"] == "extra_forbidden":
        parent = _model_at(err["loc"][:-1])
        allowed = ", ".join(parent.model_fields) if parent else "see docs/recipes.md"
        return f"{path}: unknown key; allowed keys here: {allowed}"
    if err["type"] == "missing":
        return f"{path}: required key is missing"
    if err["type"] == "model_type":
        section = _model_at(err["loc"])
        keys = f" ({', '.join(section.model_fields)})" if section else ""
        return f"{path}: should be a section, a mapping of keys{keys}; got {err['input']!r}"
    return f"{path}: {err['msg'].removeprefix('Value error, ')} (got {shorten(err['input'])})"


def _model_at(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    model: type[BaseModel] = Recipe
    for key in loc:
        if isinstance(key, int):
            continue
        field = model.model_fields.get(str(key))
        if field is None:
            return None
        annotation = field.annotation
        candidates = [annotation, *getattr(annotation, "__args__", ())]
        nested = next((c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None)
        if nested is None:
            args = [a for c in candidates for a in getattr(c, "__args__", ())]
            nested = next((a for a in args if isinstance(a, type) and issubclass(a, BaseModel)), None)
        if nested is None:
            return None
        model = nested
    return model


def check_components(recipe: Recipe, source: str = "<recipe>") -> None:
    """Fail on unknown component names or bad component options, naming the key path; record
    path options as validated (absolute, for a :data:`~affectkit.interfaces.ResolvedPath`)."""
    from affectkit.registry import registry

    reg = registry()
    for path, kind, ref in recipe.components():
        try:
            validated = reg.options(kind, ref.name, ref.options)
        except AffectkitError as exc:
            raise RecipeError(f"{source}: {path}: {exc}") from None
        for key, value in list(_paths_given(ref, validated)):
            ref.options[key] = str(value)  # absolute (ResolvedPath) from here on: workers in other folders find it


def shipped_recipes() -> dict[str, Path]:
    """The recipes installed with affectkit (the repository's ``recipes/``), by name."""
    from importlib.resources import files

    folder = Path(str(files("affectkit_recipes")))
    return {p.stem: p for p in sorted(folder.glob("*.yaml"))}


def recipe_path(name: str | Path) -> Path:
    """``name`` if it is a file; else the shipped recipe of that name (``quick`` or
    ``quick.yaml``), so recipes run from any folder: ``affectkit run quick``."""
    path = Path(name)
    if path.exists() or len(path.parts) > 1:
        return path
    shipped = shipped_recipes()
    stem = path.name.removesuffix(".yaml")
    if stem in shipped:
        return shipped[stem]
    raise RecipeError(f"{name}: no such recipe file, and no shipped recipe of that name; shipped: {', '.join(shipped)}")


def anchor_paths(data: Any, folder: Path) -> Any:
    """Recipe data whose relative paths (``data.subjects.file``, and every component option
    declared a :data:`~affectkit.interfaces.ResolvedPath`, such as a dataset's ``root`` or
    an encoder's weights file) are taken relative to ``folder``, the recipe file's own: a
    recipe then means the same from any working folder. Overrides given on the command
    line are not anchored: they stay relative to where the command runs."""

    def anchored(value: Any) -> Any:
        return os.path.normpath(folder / value) if isinstance(value, str) and value and not Path(value).expanduser().is_absolute() and not value.startswith("~") else value

    section = data.get("data") if isinstance(data, dict) else None
    subjects = section.get("subjects") if isinstance(section, dict) else None
    if isinstance(subjects, dict) and "file" in subjects:
        subjects["file"] = anchored(subjects["file"])
    try:
        recipe = Recipe.model_validate(data)
    except ValidationError:
        return data  # parse_recipe reports the file's own errors
    for ref, key, _ in _path_options(recipe):
        ref.options[key] = anchored(ref.options[key])
    return recipe.model_dump(mode="json")


def _path_options(recipe: Recipe) -> Iterator[tuple[ComponentRef, str, Path]]:
    """(component, option, its validated value) of every option the recipe gives that is a
    path (unknown components and invalid options are left to :func:`check_components`)."""
    from affectkit.registry import registry

    for _, kind, ref in recipe.components():
        try:
            validated = registry().options(kind, ref.name, ref.options)
        except AffectkitError:
            continue
        yield from ((ref, key, value) for key, value in _paths_given(ref, validated))


def _paths_given(ref: ComponentRef, validated: Any) -> Iterator[tuple[str, Path]]:
    """(option, validated value) of each option ``ref`` gives whose value is a path."""
    for key in ref.options:
        if isinstance(value := getattr(validated, key, None), Path):
            yield key, value


#: a recipe is a few kilobytes; these bound what a hostile or broken file can cost to read
MAX_YAML_BYTES = 1 << 20
MAX_YAML_ALIASES = 100
MAX_YAML_DEPTH = 50
MAX_YAML_NODES = 100_000


def _expanded_size(node: Any, sizes: dict[int, int]) -> int:
    """How many values ``node`` stands for once every alias is expanded (linear in the
    document: an aliased node is counted once and its size reused)."""
    if node is None:
        return 0
    if id(node) not in sizes:
        if isinstance(node, yaml.SequenceNode):
            sizes[id(node)] = 1 + sum(_expanded_size(child, sizes) for child in node.value)
        elif isinstance(node, yaml.MappingNode):
            sizes[id(node)] = 1 + sum(_expanded_size(k, sizes) + _expanded_size(v, sizes) for k, v in node.value)
        else:
            sizes[id(node)] = 1
    return sizes[id(node)]


def read_yaml(path: Path, what: str) -> Any:
    """A small YAML file's data, or one :class:`RecipeError` naming the file: not a file, too
    large, not UTF-8, not YAML, nested deeper than any recipe or full of aliases (a few
    hundred bytes of nested aliases can stand for gigabytes)."""
    if path.is_dir():
        raise RecipeError(f"{path}: a folder, not a {what} file")
    try:
        if path.stat().st_size > MAX_YAML_BYTES:
            raise RecipeError(f"{path}: {path.stat().st_size:,} bytes; a {what} file is at most {MAX_YAML_BYTES:,}")
        text = path.read_text()
    except FileNotFoundError:
        raise RecipeError(f"{path}: no such {what} file") from None
    except UnicodeDecodeError as exc:
        raise RecipeError(f"{path}: not UTF-8 text (byte {exc.start}); a {what} is a YAML file") from None
    except OSError as exc:
        raise RecipeError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    try:
        aliases, depth, deepest = 0, 0, 0
        for token in yaml.scan(text):
            aliases += isinstance(token, yaml.AliasToken)
            depth += isinstance(token, yaml.BlockMappingStartToken | yaml.BlockSequenceStartToken | yaml.FlowMappingStartToken | yaml.FlowSequenceStartToken)
            depth -= isinstance(token, yaml.BlockEndToken | yaml.FlowMappingEndToken | yaml.FlowSequenceEndToken)
            deepest = max(deepest, depth)
        if aliases > MAX_YAML_ALIASES or deepest > MAX_YAML_DEPTH:
            raise RecipeError(f"{path}: {aliases} aliases and {deepest} levels of nesting; a {what} may have {MAX_YAML_ALIASES} and {MAX_YAML_DEPTH}")
        loader = yaml.SafeLoader(text)
        try:
            node = loader.get_single_node()  # composed once: measured, then built from the same nodes
            size = _expanded_size(node, {})
            if size > MAX_YAML_NODES:
                raise RecipeError(f"{path}: its aliases expand to {size:,} values; a {what} may hold {MAX_YAML_NODES:,}")
            return None if node is None else loader.construct_document(node)
        finally:
            loader.dispose()
    except (yaml.YAMLError, ValueError) as exc:  # ValueError: an integer of thousands of digits
        raise RecipeError(f"{path}: not valid YAML: {str(exc)[:500]}") from None


def load_recipe(path: str | Path, overrides: Iterable[str] = ()) -> Recipe:
    """Read, override and validate a recipe file (or a shipped recipe, by name); relative
    paths in the file are relative to its folder (:func:`anchor_paths`)."""
    path = recipe_path(path)
    data = read_yaml(path, "recipe")
    data = anchor_paths({} if data is None else data, path.parent.resolve())
    overrides = list(overrides)
    if isinstance(data, dict) and overrides:
        try:  # override on top of the resolved recipe, so a nested key keeps its siblings' defaults
            data = Recipe.model_validate(data).model_dump(mode="json")
        except ValidationError:
            pass  # parse_recipe below reports the file's own errors
        data = apply_overrides(data, overrides)
    return parse_recipe(data, str(path))


def dump_recipe(recipe: Recipe) -> str:
    """The fully resolved recipe as YAML (every default written out)."""
    return yaml.safe_dump(recipe.model_dump(mode="json"), sort_keys=False)
