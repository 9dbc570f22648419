"""The whole plugin contract of affectkit.

Every hook is a ``register_*`` hook in the style of simonw/llm: the host passes a
``register`` callable and the plugin calls it once per component it provides::

    @affectkit.hookimpl
    def register_image_encoders(register):
        register("my-encoder", MyEncoder)

(``register_commands`` hands the plugin the command-line group instead, to add commands to.)

A component is a class with a nested pydantic ``Options`` model (``extra="forbid"``), an
``__init__(self, options)`` taking an instance of it (image encoders:
``__init__(self, options, in_channels)``), and a docstring whose first line describes it.
Encoders set ``out_dim``, their embedding size, in ``__init__``; building one that does not
is an error. The base classes in :mod:`affectkit.interfaces` say what each kind must do.
Built-in plugins (``affectkit_plugins``) and third-party packages (entry-point group
``affectkit``) register through exactly these hooks; a plugin that implements any other
``register_*`` function (a misspelt hook) is refused when plugins load.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import pluggy

if TYPE_CHECKING:
    import click

    from affectkit.data.mesh import Mesh

hookspec = pluggy.HookspecMarker("affectkit")
hookimpl = pluggy.HookimplMarker("affectkit")


class Register(Protocol):
    """The callable handed to every component hook (all but ``register_mesh_formats``)."""

    def __call__(self, name: str, component: type) -> None: ...


class RegisterMeshFormat(Protocol):
    """The callable handed to ``register_mesh_formats``: a file suffix (``".wrl"``), its
    reader, and its writer where the plugin has one."""

    def __call__(self, suffix: str, reader: Callable[[Path], Mesh], writer: Callable[[Mesh, Path], Path] | None = None) -> None: ...


# ---------------------------------------------------------------------------------------
# Files and geometry to pixels
# ---------------------------------------------------------------------------------------


@hookspec
def register_mesh_formats(register: RegisterMeshFormat) -> None:
    """Register mesh file formats beyond the standard ones (OBJ, PLY, OFF, STL, glTF/GLB,
    read by trimesh): a suffix, a reader ``path -> Mesh`` raising
    :class:`affectkit.errors.MeshError` for a bad file, and optionally a writer
    ``(mesh, path) -> path``. :func:`affectkit.data.mesh_formats.load_mesh` reads them."""


@hookspec
def register_renderers(register: Register) -> None:
    """Register view renderers: subclasses of :class:`affectkit.interfaces.Renderer`
    that turn a batch of meshes into multiview RGB, depth, normal and mask images."""


@hookspec
def register_datasets(register: Register) -> None:
    """Register datasets: subclasses of :class:`affectkit.interfaces.Dataset` that list
    labelled 3D scans or 4D sequences with subject and attribute metadata."""


@hookspec
def register_view_augmentations(register: Register) -> None:
    """Register view augmentations: subclasses of
    :class:`affectkit.interfaces.ViewAugmentation` applied to rendered views in training."""


# ---------------------------------------------------------------------------------------
# Language
# ---------------------------------------------------------------------------------------


@hookspec
def register_prompt_augmenters(register: Register) -> None:
    """Register prompt augmenters: subclasses of
    :class:`affectkit.interfaces.PromptAugmenter` that write text prompts for a class,
    optionally using a sample's attributes (sex, age group, intensity)."""


# ---------------------------------------------------------------------------------------
# Model
# ---------------------------------------------------------------------------------------


@hookspec
def register_image_encoders(register: Register) -> None:
    """Register image encoders: subclasses of :class:`affectkit.interfaces.ImageEncoder`
    that embed one rendered view (shared across views)."""


@hookspec
def register_text_encoders(register: Register) -> None:
    """Register text encoders: subclasses of :class:`affectkit.interfaces.TextEncoder`
    that embed prompt strings."""


@hookspec
def register_losses(register: Register) -> None:
    """Register training losses: subclasses of :class:`affectkit.interfaces.Loss`."""


# ---------------------------------------------------------------------------------------
# Behaviour
# ---------------------------------------------------------------------------------------


@hookspec
def register_loggers(register: Register) -> None:
    """Register run loggers: subclasses of :class:`affectkit.interfaces.Logger` that receive
    a run's scalars after every epoch (``logging.loggers``: TensorBoard, MLflow, ...)."""


@hookspec
def register_callbacks(register: Register) -> None:
    """Register training callbacks: subclasses of :class:`affectkit.interfaces.TrainingCallback`
    told every epoch's scalars, which may stop training early (``train.callbacks``)."""


@hookspec
def register_commands(cli: click.Group) -> None:
    """Add subcommands to the ``affectkit`` command line, as simonw/llm's plugins do:
    ``@cli.command()`` on a click function. A command named like a built-in one or like an
    earlier plugin's is skipped with a warning naming both; the built-ins always work."""
