"""What the Streamlit app (``apps/affectkit_app.py``) needs besides Streamlit.

Plain functions, tested without a browser: the app's settings, finding the newest
checkpoint, the prompt editor's text format, generated faces from the app's controls and
training the quick recipe with progress reports. Inference itself is
:class:`affectkit.serve.inference.Predictor`, the same code ``affectkit predict`` runs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from affectkit_apps.uploads import UploadLimits
from pydantic import ValidationError

from affectkit.data.mesh import Mesh, MeshSequence
from affectkit.errors import AffectkitError
from affectkit.recipe import ComponentRef, Recipe, read_yaml, shipped_recipes

#: ``affectkit app`` hands its settings to the Streamlit process in this variable (JSON)
CONFIG_ENV = "AFFECTKIT_APP_CONFIG"


class AppConfig(UploadLimits):
    """The app's settings: which model, where runs live, and the upload limits."""

    checkpoint: Path | None = None
    runs_dir: Path = Path("runs")
    train_recipe: Path | None = None
    device: str = "cpu"

    @classmethod
    def from_env(cls) -> AppConfig:
        raw = os.environ.get(CONFIG_ENV)
        if not raw:
            return cls()
        try:
            return cls.model_validate_json(raw)
        except ValidationError as exc:
            raise AffectkitError(f"{CONFIG_ENV}: {_describe(exc)}") from None


def load_app_config(path: Path | None, **overrides: object) -> AppConfig:
    """Settings from a YAML file (keys as in :class:`AppConfig`), then the given overrides."""
    data: dict[str, object] = {}
    if path is not None:
        data = read_yaml(Path(path), "app settings") or {}
        if not isinstance(data, dict):
            raise AffectkitError(f"{path}: an app config is a mapping of settings; allowed keys: {', '.join(AppConfig.model_fields)}")
    data.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return AppConfig.model_validate(data)
    except ValidationError as exc:
        raise AffectkitError(f"{path or 'app settings'}: {_describe(exc)}") from None


def _describe(exc: ValidationError) -> str:
    allowed = ", ".join(AppConfig.model_fields)
    return "; ".join(f"{'.'.join(map(str, e['loc'])) or 'settings'}: {e['msg']}" for e in exc.errors()) + f" (allowed keys: {allowed})"


def find_checkpoint(runs_dir: Path) -> Path | None:
    """The newest exported or per-run checkpoint under ``runs_dir``, if there is one."""
    runs_dir = Path(runs_dir)
    found = [*runs_dir.glob("*/model/checkpoint.json"), *runs_dir.glob("*/*/model/checkpoint.json")]
    return max(found, key=lambda p: p.stat().st_mtime).parent if found else None


def format_class_prompts(class_prompts: Mapping[str, Sequence[str]]) -> str:
    """One class a line: ``label: prompt | prompt | ...``."""
    return "\n".join(f"{label}: {' | '.join(prompts)}" for label, prompts in class_prompts.items())


def parse_class_prompts(text: str) -> dict[str, list[str]]:
    """The inverse of :func:`format_class_prompts`; errors name the line."""
    classes: dict[str, list[str]] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        label, colon, rest = line.partition(":")
        prompts = [p.strip() for p in rest.split("|") if p.strip()]
        if not colon or not label.strip() or not prompts:
            raise AffectkitError(f"class prompts, line {number}: {line.strip()!r} should read 'label: a prompt | another prompt'")
        if label.strip() in classes:
            raise AffectkitError(f"class prompts, line {number}: class {label.strip()!r} appears twice")
        classes[label.strip()] = prompts
    if len(classes) < 2:
        raise AffectkitError("class prompts: give at least two classes, one a line, as 'label: a prompt | another prompt'")
    return classes


#: options that the controls set; a generator's other options follow the training recipe
CONTROLLED = ("subjects", "intensities", "include_neutral", "sequences", "frames")


def generated_face(
    trained_on: ComponentRef | None, generator: str, subject: int, label: str, intensity: int, sequence: bool, frames: int = 25
) -> Mesh | MeshSequence:
    """Subject ``subject`` of ``generator`` showing ``label``, from the app's controls; drawn
    like the checkpoint's training data (``trained_on``) when that came from the same
    generator (its population seed and scan settings)."""
    from affectkit.registry import create

    options: dict[str, object] = {}
    if trained_on is not None and trained_on.name == generator:
        options = {k: v for k, v in trained_on.options.items() if k not in CONTROLLED}
    options.update(subjects=subject, intensities=[intensity], include_neutral=True, sequences=sequence, frames=frames)
    return create("dataset", generator, options).face(subject, label, intensity)


def default_train_recipe() -> Path:
    """``recipes/quick.yaml`` of the working directory, else the shipped one."""
    local = Path("recipes/quick.yaml")
    return local if local.is_file() else shipped_recipes()["quick"]


def train_recipe(recipe_path: Path, runs_dir: Path, progress: Callable[[int, int], None], overrides: Sequence[str] = ()) -> Path:
    """Run ``affectkit run`` on a recipe in a child process, reporting (epochs done, epochs)
    as Ray Train stores its epoch checkpoints; returns the exported checkpoint."""
    from affectkit.recipe import load_recipe

    sets = [f"output.dir={Path(runs_dir).resolve()}", *overrides]
    recipe = load_recipe(recipe_path, sets)
    before = set(Path(runs_dir).glob(f"{recipe.name}/*"))
    log = Path(runs_dir) / f".train-{recipe.name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as out:
        child = subprocess.Popen([sys.executable, "-m", "affectkit", "run", str(recipe_path), "--set", *sets], stdout=out, stderr=subprocess.STDOUT)
        done, total = 0, recipe.train.epochs
        while child.poll() is None:
            time.sleep(1.0)
            done, total = _epochs_done(runs_dir, recipe, before)
            progress(done, total)
    if child.returncode != 0:
        raise AffectkitError(f"training {recipe_path} failed (exit {child.returncode}); the end of {log}:\n{log.read_text()[-1500:]}")
    progress(total, total)
    return Path(runs_dir) / recipe.name / "model"


def _epochs_done(runs_dir: Path, recipe: Recipe, before: set[Path]) -> tuple[int, int]:
    """(1 + the newest epoch among the new run's stored checkpoints, the epochs the run
    trains: the recipe's, or more where its ``min_steps`` asks; files still being copied
    are skipped)."""
    done, total = 0, recipe.train.epochs
    for run in set(Path(runs_dir).glob(f"{recipe.name}/*")) - before:
        for path in run.glob("ray/*/checkpoint_*/checkpoint.json"):
            try:
                meta = json.loads(path.read_text())
                epoch, steps = int(meta["epoch"]) + 1, int(meta["metrics"]["steps"])
            except (OSError, ValueError, KeyError, TypeError):
                continue
            if epoch > done:
                done, total = epoch, recipe.train.epochs_for(steps // epoch)
    return done, total
