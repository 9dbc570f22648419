"""Checkpoints: weights in safetensors, everything else in JSON, nothing ever unpickled.

A checkpoint directory holds ``model.safetensors`` (the model, less a frozen text tower,
which is rebuilt from its pretrained source), ``text_features.safetensors`` (a frozen text
tower's features of the class prompts, so that loading need not run it), ``checkpoint.json``
and, for resuming, ``training.safetensors`` (optimizer and schedule state, flattened).
``checkpoint.json`` holds the :class:`~affectkit.model.inference_config.InferenceConfig` (all that
loading reads), beside it the resolved training recipe (a record), and the epoch, metrics,
the data's provenance and the SHA-256 of every weights file. Format 1 (no inference config)
still loads. An exported model (:func:`export_model`) is a checkpoint without training state.
"""

from __future__ import annotations

import json
import os
import tempfile
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from pydantic import ValidationError
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor

from affectkit.errors import CheckpointError, PluginError, one_line
from affectkit.factory import build_model
from affectkit.model.affectvlm import AffectVLM
from affectkit.model.digests import file_sha256
from affectkit.model.inference_config import InferenceConfig, InputConfig
from affectkit.recipe import Recipe, TestTime
from affectkit.registry import registry
from affectkit.render.cameras import parse_views
from affectkit.serve.test_time import MirroredViews
from affectkit.train.environment import installed_versions

FORMAT_VERSION = 2
READABLE_FORMATS = (1, 2)
MODEL_FILE = "model.safetensors"
TRAINING_FILE = "training.safetensors"
TEXT_FEATURES_FILE = "text_features.safetensors"
META_FILE = "checkpoint.json"
WEIGHT_FILES = (MODEL_FILE, TEXT_FEATURES_FILE, TRAINING_FILE)


@dataclass
class CheckpointMeta:
    inference: InferenceConfig
    #: the training recipe, a record of the run; ``None`` when it no longer validates
    #: (the schema changed since), which does not stop the model from loading
    recipe: Recipe | None
    epoch: int
    metrics: dict[str, Any]
    history: list[dict[str, Any]]
    #: the data it was trained on (:func:`affectkit.render.pipeline.provenance`); empty in
    #: checkpoints written before affectkit recorded it
    provenance: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def for_recipe(
        cls,
        recipe: Recipe,
        labels: list[str],
        class_prompts: list[list[str]],
        num_views: int,
        in_channels: int,
        epoch: int,
        metrics: dict[str, Any],
        history: list[dict[str, Any]],
        provenance: dict[str, Any] | None = None,
        action_units: list[int] | None = None,
        au_prompts: list[list[str]] | None = None,
    ) -> CheckpointMeta:
        """The metadata of a model a recipe trained (its inference config derived from it)."""
        inference = InferenceConfig.from_recipe(recipe, labels, class_prompts, num_views, in_channels, action_units, au_prompts)
        return cls(inference, recipe, epoch, metrics, history, provenance or {})

    @property
    def labels(self) -> list[str]:
        return self.inference.labels

    @property
    def class_prompts(self) -> list[list[str]]:
        return self.inference.class_prompts

    @property
    def num_views(self) -> int:
        return self.inference.num_views

    @property
    def in_channels(self) -> int:
        return self.inference.in_channels


def model_state(model: AffectVLM, dtype: torch.dtype | None = None) -> dict[str, Tensor]:
    """The weights worth saving: all but a frozen text tower; floating-point ones in
    ``dtype`` when given (float16 halves an exported model, and loading casts back)."""
    skip = "text_encoder." if not model.text_trainable else None
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items() if not (skip and k.startswith(skip))}
    return {k: v.to(dtype) if dtype is not None and v.is_floating_point() else v for k, v in state.items()}


def _class_prompt_list(meta: CheckpointMeta) -> list[str]:
    """Every prompt the model scores by: its class prompts and its AU prompts."""
    return list(dict.fromkeys(p for prompts in (*meta.class_prompts, *meta.inference.au_prompts) for p in prompts))


TrainingState = tuple[dict[str, Tensor], dict[str, Any]]


def training_state(optimizer: torch.optim.Optimizer, scheduler: Any, objective: torch.nn.Module) -> TrainingState:
    """Flatten what resuming needs into tensors (safetensors) and plain values (JSON):
    optimizer moments, the schedule, and the loss terms' own parameters (e.g. margins)."""
    state = optimizer.state_dict()
    tensors: dict[str, Tensor] = {f"objective.{k}": v.detach().contiguous().cpu() for k, v in objective.state_dict().items()}
    for param_id, values in state["state"].items():
        for key, value in values.items():
            tensors[f"optimizer.{param_id}.{key}"] = torch.as_tensor(value).contiguous().cpu()
    return tensors, {"param_groups": state["param_groups"], "scheduler": scheduler.state_dict()}


def restore_training(optimizer: torch.optim.Optimizer, scheduler: Any, objective: torch.nn.Module, state: TrainingState) -> None:
    tensors, plain = state
    moments: dict[int, dict[str, Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith("optimizer."):
            param_id, name = key[len("optimizer.") :].split(".", 1)
            moments.setdefault(int(param_id), {})[name] = value
    objective.load_state_dict({k[len("objective.") :]: v for k, v in tensors.items() if k.startswith("objective.")})
    optimizer.load_state_dict({"state": moments, "param_groups": plain["param_groups"]})
    scheduler.load_state_dict(plain["scheduler"])


def save_checkpoint(
    directory: Path,
    model: AffectVLM,
    meta: CheckpointMeta,
    training: TrainingState | None = None,
    dtype: torch.dtype | None = None,
) -> Path:
    """Write a checkpoint atomically: files go to a temporary sibling, then are renamed.
    ``dtype``: store floating-point weights in it (e.g. ``torch.float16``)."""
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".tmp-", dir=directory.parent))
    save_file(model_state(model, dtype), str(staging / MODEL_FILE))
    document: dict[str, Any] = {
        "format": FORMAT_VERSION,
        "inference": meta.inference.model_dump(mode="json"),
        "recipe": None if meta.recipe is None else meta.recipe.model_dump(mode="json"),
        "epoch": meta.epoch,
        "metrics": meta.metrics,
        "history": meta.history,
        "provenance": meta.provenance,
        "text_encoder_saved": model.text_trainable,
    }
    if not model.text_trainable:
        prompts = _class_prompt_list(meta)
        with torch.no_grad():
            save_file({"features": model.text_features(prompts).float().contiguous().cpu()}, str(staging / TEXT_FEATURES_FILE))
        document["text_features"] = prompts
    if training is not None:
        save_file(training[0], str(staging / TRAINING_FILE))
        document["training"] = training[1]
    document["sha256"] = {name: file_sha256(staging / name) for name in WEIGHT_FILES if (staging / name).exists()}
    (staging / META_FILE).write_text(json.dumps(document, indent=1))
    for path in (staging, *staging.iterdir()):  # a model to share: readable like any other file
        path.chmod(0o755 if path.is_dir() else 0o644)
    if directory.exists():
        retired = directory.with_name(f".old-{directory.name}-{os.getpid()}")
        os.replace(directory, retired)
        os.replace(staging, directory)
        _remove_tree(retired)
    else:
        os.replace(staging, directory)
    return directory


def _remove_tree(path: Path) -> None:
    for child in path.iterdir():
        child.unlink()
    path.rmdir()


def read_meta(directory: Path, trust_unverified: bool = False) -> tuple[CheckpointMeta, dict[str, Any]]:
    """Parse and verify ``checkpoint.json`` and the weights files' digests. A checkpoint
    without a digest of its weights is refused unless ``trust_unverified``: deleting the
    digests must not be a way around the check."""
    directory = Path(directory)
    meta_path = directory / META_FILE
    if not meta_path.is_file():
        raise CheckpointError(f"{directory}: not a checkpoint (no {META_FILE}); expected a directory written by affectkit run")
    try:
        document = json.loads(meta_path.read_text())
        if document.get("format") not in READABLE_FORMATS:
            raise CheckpointError(
                f"{meta_path}: checkpoint format {document.get('format')!r}, this affectkit reads formats {', '.join(map(str, READABLE_FORMATS))}"
            )
        meta = CheckpointMeta(
            inference=InferenceConfig.from_document(document, str(meta_path)),
            recipe=_recorded_recipe(document.get("recipe"), meta_path),
            epoch=int(document["epoch"]),
            metrics=dict(document.get("metrics", {})),
            history=list(document.get("history", [])),
            provenance=dict(document.get("provenance") or {}),
        )
    except ValidationError as exc:
        raise CheckpointError(f"{meta_path}: damaged checkpoint metadata: {one_line(exc)}") from None
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise CheckpointError(f"{meta_path}: damaged checkpoint metadata ({type(exc).__name__}: {str(exc)[:300]})") from None
    digests = document.get("sha256")
    if not isinstance(digests, dict) or MODEL_FILE not in digests:
        if not trust_unverified:
            raise CheckpointError(
                f"{meta_path}: no SHA-256 digest of {MODEL_FILE}, so its weights cannot be verified; "
                "if you trust where it came from, pass --trust-unverified (trust_unverified=True)"
            )
        digests = {}
    for name, expected in digests.items():
        path = directory / name
        if not path.is_file():
            raise CheckpointError(f"{path}: missing from the checkpoint")
        if file_sha256(path) != expected:
            raise CheckpointError(f"{path}: contents do not match the digest in {META_FILE} (truncated or altered)")
    return meta, document


def _recorded_recipe(data: Any, meta_path: Path) -> Recipe | None:
    """The training recipe a checkpoint records, or ``None`` (with a warning) when this
    affectkit's recipe schema no longer accepts it."""
    if data is None:
        return None
    try:
        return Recipe.model_validate(data)
    except ValidationError as exc:
        warnings.warn(f"{meta_path}: the recorded training recipe does not validate any more ({exc.error_count()} error(s)); the model loads without it", stacklevel=3)
        return None


def _load_tensors(path: Path) -> dict[str, Tensor]:
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: cannot read weights: {exc}") from None


def load_weights(model: AffectVLM, directory: Path, document: dict[str, Any]) -> None:
    """Load a checkpoint's weights into a model built from its recipe; ``document`` is
    the verified ``checkpoint.json`` from :func:`read_meta`."""
    state = _load_tensors(directory / MODEL_FILE)
    broken = sorted(k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all())
    if broken:
        raise CheckpointError(f"{directory / MODEL_FILE}: NaN or infinite weights in {', '.join(broken[:5])}; this model cannot predict")
    if "neutral_features" in state:  # a calibrated neutral reference (affectkit.model.neutral_reference)
        model.neutral_features = torch.empty_like(state["neutral_features"])
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # a tensor of another shape than the config's architecture
        raise CheckpointError(f"{directory / MODEL_FILE}: weights do not fit the model its inference config describes ({str(exc).splitlines()[-1].strip()[:300]})") from None
    allowed_missing = {k for k in missing if k.startswith("text_encoder.") and not document.get("text_encoder_saved")}
    if unexpected or set(missing) - allowed_missing:
        raise CheckpointError(
            f"{directory / MODEL_FILE}: weights do not fit the model its inference config describes "
            f"(missing {sorted(set(missing) - allowed_missing)[:5]}, unexpected {sorted(unexpected)[:5]})"
        )


def load_checkpoint(
    directory: str | Path, device: str | torch.device = "cpu", trust_unverified: bool = False, test_time: list[TestTime] | None = None
) -> tuple[AffectVLM, CheckpointMeta]:
    """Rebuild the model a checkpoint describes and load its weights. With stored class
    prompt features the frozen text tower is only built if a new prompt needs it.
    ``test_time`` replaces the test-time augmentations the model was saved with (``[]``:
    none; :mod:`affectkit.serve.test_time`), and the returned meta says so."""
    directory = Path(directory)
    meta, document = read_meta(directory, trust_unverified)
    features = _stored_text_features(directory, document)
    text_dim = None if features is None else features.shape[1]
    try:
        renderer = meta.inference.input.renderer  # checked here rather than when the first scan renders
        registry().options("renderer", renderer.name, renderer.options)
        model = build_model(
            meta.inference.architecture, meta.num_views, meta.in_channels, len(meta.labels), text_dim=text_dim, weights_follow=True,
            action_units=len(meta.inference.action_units),
        )
    except PluginError as exc:  # an edited component name or option, or a plugin not installed here
        installed = installed_versions(meta.inference.plugins)
        missing = [f"{name}=={version}" for name, version in meta.inference.plugins.items() if installed[name] is None]
        hint = f"; it was made with plugins not installed here: pip install {' '.join(missing)}" if missing else ""
        raise CheckpointError(f"{directory / META_FILE}: the model it describes cannot be set up: {exc}{hint}") from None
    load_weights(model, directory, document)
    if features is not None:
        model.remember_text_features(document["text_features"], features)
    if test_time is not None:
        try:
            inputs = InputConfig.model_validate({**meta.inference.input.model_dump(), "test_time": test_time})
            meta = replace(meta, inference=InferenceConfig.model_validate({**meta.inference.model_dump(), "input": inputs.model_dump()}))
        except ValidationError as exc:
            raise CheckpointError(f"{directory}: test-time augmentation {test_time}: {one_line(exc)}") from None
    inputs = meta.inference.input
    if "mirror" in inputs.test_time:
        model.test_time = MirroredViews(parse_views(inputs.views), inputs.maps)
    return model.to(device).eval(), meta


def _stored_text_features(directory: Path, document: dict[str, Any]) -> Tensor | None:
    if document.get("text_encoder_saved") or "text_features" not in document or not (directory / TEXT_FEATURES_FILE).is_file():
        return None
    path = directory / TEXT_FEATURES_FILE
    features = _load_tensors(path).get("features")
    prompts = document["text_features"]
    if features is None or features.ndim != 2 or not isinstance(prompts, list) or len(prompts) != len(features):
        raise CheckpointError(f"{path}: the stored text features do not match the {len(prompts)} prompts listed in {META_FILE}")
    return features


def load_training_state(directory: Path, document: dict[str, Any]) -> TrainingState | None:
    """Optimizer, schedule and loss state for resuming, if the checkpoint holds them."""
    path = Path(directory) / TRAINING_FILE
    if "training" not in document or not path.is_file():
        return None
    return _load_tensors(path), document["training"]


def export_model(source: Path, target: Path, dtype: torch.dtype | None = None) -> Path:
    """A checkpoint as a model to use and share: weights, inference config, class prompt
    features, the record of its training (recipe, metrics, data provenance), and no
    training state (optimizer moments, the schedule: about two thirds of a checkpoint)."""
    model, meta = load_checkpoint(source)
    return save_checkpoint(Path(target), model, meta, dtype=dtype)
