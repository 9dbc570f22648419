"""Base classes for every kind of component a plugin can register.

Each base fixes the one method the rest of affectkit calls, so any registered
implementation can stand in for the built-in one. Components are built by
:func:`affectkit.registry.create` from a validated ``Options`` instance.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ClassVar

import torch
from pydantic import AfterValidator, BaseModel, ConfigDict
from torch import Tensor, nn

from affectkit.data.mesh import Mesh, MeshSequence
from affectkit.render.cameras import View

if TYPE_CHECKING:
    from affectkit.data.face_frame import FaceFrame


class Options(BaseModel):
    """Base of every component's options: unknown keys are errors, not silently ignored, and
    so are infinite and NaN numbers."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=(), allow_inf_nan=False)


def _resolve(path: Path) -> Path:
    return path.expanduser().resolve()


#: The type of a component option that is a file or folder. A relative path in a recipe file
#: is taken relative to the recipe's folder, one given on the command line relative to where
#: the command runs, and the recipe records it absolute (``~`` expanded) when it is read, so
#: that Ray workers, which run in other folders, find it.
ResolvedPath = Annotated[Path, AfterValidator(_resolve)]


class Component:
    """Mixin giving a component its ``Options`` model and the validated ``options``."""

    Options: ClassVar[type[Options]] = Options
    options: Options


# ---------------------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------------------


@dataclass
class RenderedViews:
    """Multiview images of a batch of meshes, all shaped ``[B, V, C, H, W]``.

    ``rgb`` is Lambertian-shaded colour in [0, 1]; ``depth`` is the distance along the
    view axis from the near plane, in units of the normalised face (0 on background);
    ``normal`` holds camera-space unit normals (x right, y up, z toward the camera);
    ``mask`` is 1 where a surface is visible. ``frames`` says, per mesh, how it was placed in
    the canonical face frame, where a render cache placed it (:mod:`affectkit.data.face_frame`).
    """

    rgb: Tensor
    depth: Tensor
    normal: Tensor
    mask: Tensor
    frames: list[FaceFrame | None] | None = None

    MAPS: ClassVar[dict[str, int]] = {"rgb": 3, "depth": 1, "normal": 3, "mask": 1}

    def stack(self, maps: Sequence[str]) -> Tensor:
        """Concatenate the chosen maps along the channel axis: ``[B, V, sum(C), H, W]``."""
        return torch.cat([getattr(self, name) for name in maps], dim=2)

    @classmethod
    def channels(cls, maps: Sequence[str]) -> int:
        return sum(cls.MAPS[name] for name in maps)

    @classmethod
    def concat(cls, parts: Sequence[RenderedViews]) -> RenderedViews:
        """The batches ``parts`` end to end (their frames too, where every part has them)."""
        frames = None if any(p.frames is None for p in parts) else [frame for p in parts for frame in p.frames]  # type: ignore[union-attr]
        return cls(**{name: torch.cat([getattr(p, name) for p in parts]) for name in cls.MAPS}, frames=frames)


class Renderer(Component):
    """Turns meshes into images seen from several views."""

    def __init__(self, options: Options) -> None:
        self.options = options

    def render(
        self,
        meshes: Sequence[Mesh],
        views: Sequence[View],
        size: int,
        device: torch.device | str = "cpu",
    ) -> RenderedViews:
        """Render every mesh from every view at ``size`` x ``size`` pixels.

        Implementations normalise each mesh with :func:`affectkit.render.cameras.normalise` so that
        all renderers see the same face in the same place.
        """
        raise NotImplementedError


# ---------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    """One labelled scan or sequence of a dataset, without its geometry.

    ``key`` is unique within the dataset and stable across runs; ``attributes`` holds
    whatever metadata the dataset knows (sex, age_group, ethnicity, intensity, ...);
    ``action_units`` the FACS action units coded for it, ``{AU: (right, left)}`` from 0
    (absent) to 1, ``None`` where it has none (:mod:`affectkit.data.action_units`). The frames of
    a sequence may carry their own in ``Mesh.metadata["action_units"]``, which then count.
    """

    key: str
    label: str
    subject: str
    attributes: Mapping[str, Any] = field(default_factory=dict)
    is_sequence: bool = False
    action_units: Mapping[int, tuple[float, float]] | None = None


class Dataset(Component):
    """Lists samples and loads their geometry on demand, so datasets stream from disk."""

    #: the option holding the dataset's place on disk, where it has one (a folder or a
    #: file): ``--data NAME:/path`` on the command line sets it, and it is the default
    #: :meth:`identity`. Declare it as a :data:`ResolvedPath`
    #: so that it is recorded absolute.
    path_option: ClassVar[str | None] = None
    #: the name of the file layout this dataset reads and :meth:`write_layout` writes
    #: (``affectkit synth --layout NAME``); ``None`` for a dataset that writes none
    layout: ClassVar[str | None] = None
    #: the generator options that layout implies (BU-4DFE holds sequences, none neutral)
    layout_implies: ClassVar[Mapping[str, Any]] = {}

    def __init__(self, options: Options) -> None:
        self.options = options

    @classmethod
    def write_layout(cls, generated: Dataset, name: str, out_dir: Path) -> Path:
        """Write every sample of ``generated`` (a face generator registered as ``name``)
        under ``out_dir`` as this dataset lays out its files, so that it reads them back;
        the folder or file it reads them from. Only a dataset with a :attr:`layout`."""
        raise NotImplementedError

    def identity(self) -> dict[str, Any]:
        """The options that say *which people* the dataset holds, as JSON values: two
        datasets of the same name and identity call the same person by the same subject id,
        whichever subjects or scans each kept. The leak guard of ``eval`` and ``cv`` compares
        them. Default: the path option's value, or every option for a dataset without one."""
        options = self.options.model_dump(mode="json")
        return {self.path_option: options[self.path_option]} if self.path_option is not None else options

    @property
    def labels(self) -> tuple[str, ...]:
        """Class names in label-index order."""
        raise NotImplementedError

    def samples(self) -> list[Sample]:
        raise NotImplementedError

    def load(self, sample: Sample) -> Mesh | MeshSequence:
        raise NotImplementedError


class ViewAugmentation(Component):
    """Transforms a batch of rendered views during training.

    Mixed view augmentation lives here: implementations draw independent random
    parameters per view, and may mix views across samples of the same label.
    """

    def __init__(self, options: Options) -> None:
        self.options = options

    def __call__(self, views: Tensor, labels: Tensor, generator: torch.Generator) -> Tensor:
        """Return augmented ``views`` ``[B, V, C, H, W]``; ``labels`` is ``[B]``."""
        raise NotImplementedError


# ---------------------------------------------------------------------------------------
# Language
# ---------------------------------------------------------------------------------------


class PromptAugmenter(Component):
    """Writes text prompts describing a class, optionally for one sample's attributes."""

    def __init__(self, options: Options) -> None:
        self.options = options

    def prompts(self, label: str, attributes: Mapping[str, Any]) -> list[str]:
        """Candidate prompts for ``label``; ``attributes`` is empty for class prompts."""
        raise NotImplementedError


# ---------------------------------------------------------------------------------------
# Model
# ---------------------------------------------------------------------------------------


class Encoder(Component):
    """What the core needs of an image or a text encoder beyond encoding."""

    @classmethod
    def without_starting_weights(cls, options: dict[str, Any]) -> dict[str, Any]:
        """``options`` with any download or load of starting weights switched off. A model
        loaded from a checkpoint is built this way: the checkpoint's weights replace the
        starting ones, so they need not be at hand. Default: ``options`` as they are."""
        return options


class ImageEncoder(Encoder, nn.Module):
    """Embeds single rendered views; one instance is shared by all views."""

    out_dim: int

    def __init__(self, options: Options, in_channels: int) -> None:
        nn.Module.__init__(self)
        self.options = options
        self.in_channels = in_channels

    def forward(self, images: Tensor) -> Tensor:
        """``[N, in_channels, H, W]`` -> ``[N, out_dim]``."""
        raise NotImplementedError


class TextEncoder(Encoder, nn.Module):
    """Embeds prompt strings."""

    out_dim: int

    def __init__(self, options: Options) -> None:
        nn.Module.__init__(self)
        self.options = options

    def forward(self, texts: Sequence[str]) -> Tensor:
        """``N`` strings -> ``[N, out_dim]`` on this module's device."""
        raise NotImplementedError


@dataclass
class LossInputs:
    """What the model hands every loss for one batch.

    All embeddings are L2-normalised in the joint space: ``view_embeddings`` ``[B, V, D]``
    (one per rendered view), ``joint`` ``[B, D]`` (the fused representation), ``text``
    ``[B, D]`` (each sample's own prompt); ``labels`` ``[B]``; ``logit_scale`` is the
    model's learned inverse temperature (already exponentiated); ``classes`` ``[K, D]``
    is what the model scores each label by (its class prompts' embeddings, or learned
    class vectors), the same on every worker. Where the model learns action units,
    ``au_logits`` ``[B, A]`` are its logits of each AU being present and ``au_targets``
    ``[B, A]`` each scan's AU strengths (0..1), NaN where its label does not code an AU.
    """

    view_embeddings: Tensor
    joint: Tensor
    text: Tensor
    labels: Tensor
    logit_scale: Tensor
    classes: Tensor | None = None
    au_logits: Tensor | None = None
    au_targets: Tensor | None = None


class Loss(Component, nn.Module):
    """A training objective; may own learnable parameters (e.g. a margin). A loss that sets
    ``uses_action_units`` makes the model learn AU scores: training then needs data with
    AU labels and hands it ``LossInputs.au_logits`` and ``au_targets``."""

    uses_action_units: ClassVar[bool] = False

    def __init__(self, options: Options) -> None:
        nn.Module.__init__(self)
        self.options = options

    def forward(self, inputs: LossInputs) -> Tensor:
        """Return a scalar loss."""
        raise NotImplementedError

    def diagnostics(self) -> dict[str, float]:
        """Scalars worth logging each epoch (e.g. a learned margin); none by default."""
        return {}


# ---------------------------------------------------------------------------------------
# Watching a run
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunInfo:
    """What a logger is told of the run it follows: the recipe's name, the run's folder, the
    class names (the rows of a confusion matrix) and the resolved recipe as JSON data
    (``settings["logging"]["mlflow_uri"]``), every default written out."""

    name: str
    run_dir: Path
    labels: tuple[str, ...]
    settings: Mapping[str, Any]


class Logger(Component):
    """Receives a run's live logs (``logging.loggers``), on the one worker that writes them:
    ``start`` once, ``log_epoch`` after every epoch, ``finish`` once. It is built where the
    run starts, before any scan renders, so a missing package fails at once: check for it
    in ``__init__`` and start the work in ``start``."""

    def __init__(self, options: Options) -> None:
        self.options = options

    def start(self, run: RunInfo) -> None:
        """The run begins."""

    def log_epoch(self, step: int, scalars: Mapping[str, float], confusion: Sequence[Sequence[int]] | None) -> None:
        """Epoch ``step`` (from 1) ended: namespaced scalars (``train/loss``, ``val/accuracy``,
        ``loss/<term>``, ``model/view_weight/<view>``, ...) and the validation confusion
        counts (rows: true labels), where there is a validation split."""
        raise NotImplementedError

    def finish(self, scalars: Mapping[str, float] | None) -> None:
        """The run ended: the last epoch's scalars (``None`` if no epoch finished)."""



class TrainingCallback(Component):
    """Follows training on every worker (``train.callbacks``) and may end it early: after
    each epoch ``epoch_end`` gets the scalars of every epoch so far, restored ones included,
    so a callback needs no state of its own and a resumed or restarted run decides as the
    first one would. Training stops after an epoch where any worker's callback says so; the
    run then exports that epoch (or the best, with ``eval.select: best``)."""

    def __init__(self, options: Options) -> None:
        self.options = options

    def epoch_end(self, history: Sequence[Mapping[str, float]]) -> bool:
        """Whether to stop now. ``history[-1]`` is the epoch that just ended; the keys are
        those loggers get (``train/loss``, ``val/accuracy``, ``loss/<term>``, ...)."""
        raise NotImplementedError
