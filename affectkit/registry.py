"""The component registry: pluggy hooks in, named components out.

Built-in plugins (the ``affectkit`` distribution's own entry points, modules of
:data:`BUILTIN_PACKAGE`) and third-party packages load through the same entry-point group,
``affectkit``, onto one plugin manager. Built-ins always load; ``AFFECTKIT_PLUGINS``
restricts which third-party plugins do: unset loads all, a comma-separated list loads those named (by
entry-point name or by the distribution name one installs, e.g. ``affectkit-tinycnn``), an
empty string loads none (what the test suite uses to stay hermetic).

A third-party plugin that cannot be loaded (it fails to import, or implements a hook
affectkit does not have) is skipped with a warning and recorded (:func:`failed_plugins`),
so one broken package never takes every command down with it; asking for a component it
would have provided names it.
"""

from __future__ import annotations

import difflib
import os
import re
import warnings
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pluggy
from pydantic import ValidationError

from affectkit import hookspecs
from affectkit.errors import DatasetError, PluginError, one_line
from affectkit.interfaces import (
    Dataset,
    ImageEncoder,
    Logger,
    Loss,
    PromptAugmenter,
    Renderer,
    TextEncoder,
    TrainingCallback,
    ViewAugmentation,
)

ENTRY_POINT_GROUP = "affectkit"
#: the distribution whose entry points in that group are the built-in plugins
BUILTIN_DISTRIBUTION = "affectkit"
ALLOW_LIST_VARIABLE = "AFFECTKIT_PLUGINS"
BUILTIN = "built-in"

#: the package of the built-in plugins, which the ``affectkit`` distribution declares as its
#: own entry points in the ``affectkit`` group (pyproject.toml), as a third-party package does
BUILTIN_PACKAGE = "affectkit_plugins"

#: kinds whose components must say their embedding size (``out_dim``) once built
ENCODER_KINDS = ("image_encoder", "text_encoder")

#: kind -> (hook name, base class every implementation must subclass)
KINDS: dict[str, tuple[str, type]] = {
    "renderer": ("register_renderers", Renderer),
    "dataset": ("register_datasets", Dataset),
    "view_augmentation": ("register_view_augmentations", ViewAugmentation),
    "prompt_augmenter": ("register_prompt_augmenters", PromptAugmenter),
    "image_encoder": ("register_image_encoders", ImageEncoder),
    "text_encoder": ("register_text_encoders", TextEncoder),
    "loss": ("register_losses", Loss),
    "logger": ("register_loggers", Logger),
    "callback": ("register_callbacks", TrainingCallback),
}


#: read by trimesh, without any plugin (:func:`affectkit.data.mesh.read_standard_mesh`)
STANDARD_MESH_SUFFIXES = (".obj", ".ply", ".off", ".stl", ".glb", ".gltf")
MESH_FORMAT_HOOK = "register_mesh_formats"
COMMAND_HOOK = "register_commands"


@dataclass(frozen=True)
class MeshFormat:
    """A mesh file format a plugin registered: its suffix, reader, writer (or ``None``)."""

    suffix: str
    reader: Callable[[Path], Any]
    writer: Callable[[Any, Path], Path] | None
    origin: str


@dataclass(frozen=True)
class ComponentInfo:
    """A registered component: what it is, where it came from, and its class."""

    kind: str
    name: str
    cls: type
    origin: str
    #: the version of the distribution that provides it (``None`` for built-ins)
    version: str | None = None

    @property
    def description(self) -> str:
        doc = (self.cls.__doc__ or "").strip()
        return doc.splitlines()[0] if doc else ""


@dataclass(frozen=True)
class PluginFailure:
    """A third-party plugin that was skipped because it could not be loaded."""

    entry_point: str
    distribution: str
    reason: str

    def describe(self) -> str:
        return f"{self.distribution} (entry point {self.entry_point!r}) {self.reason}"


def distribution_key(name: str) -> str:
    """A distribution name as pip compares them (PEP 503: case and ``-_.`` runs do not matter)."""
    return re.sub(r"[-_.]+", "-", name).lower()


@lru_cache(maxsize=1)
def _loaded() -> tuple[pluggy.PluginManager, tuple[PluginFailure, ...]]:
    pm = pluggy.PluginManager("affectkit")
    pm.add_hookspecs(hookspecs)
    declared = entry_points(group=ENTRY_POINT_GROUP)
    builtins = [ep for ep in declared if ep.dist is not None and distribution_key(ep.dist.name) == BUILTIN_DISTRIBUTION]
    if not builtins:
        raise PluginError(
            "affectkit's built-in plugins are not installed (the affectkit distribution declares no 'affectkit' entry points here): "
            "install affectkit with pip (pip install -e . in a checkout)"
        )
    for ep in builtins:
        pm.register(ep.load(), name=ep.value)
    problem = unknown_hooks(pm)
    if problem is not None:  # a built-in with a wrong hook is affectkit's own bug
        raise PluginError(f"plugin {_origin(pm, problem[0])[0]!r} {problem[1]}")
    allowed = os.environ.get(ALLOW_LIST_VARIABLE)
    allow = None if allowed is None else {distribution_key(n.strip()) for n in allowed.split(",") if n.strip()}
    failures: list[PluginFailure] = []
    for ep in declared:
        if ep in builtins:
            continue
        distribution = ep.dist.name if ep.dist is not None else ep.value
        if allow is not None and not {distribution_key(ep.name), distribution_key(distribution)} & allow:
            continue
        try:  # pluggy loads it and records its distribution (list_plugin_distinfo)
            pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP, name=ep.name)
            problem = unknown_hooks(pm)
            reason = None if problem is None else problem[1]
        except Exception as exc:  # whatever a plugin's import raises, the others still load
            reason = f"failed to import ({ep.value}): {exc}"
        if reason is not None:
            plugin = pm.get_plugin(ep.name)
            if plugin is not None:
                pm.unregister(plugin)
            failures.append(PluginFailure(ep.name, distribution, reason))
            warnings.warn(
                f"plugin {failures[-1].describe()}: skipped, affectkit works without it "
                f"(reinstall or fix it, or leave it out with {ALLOW_LIST_VARIABLE})",
                stacklevel=3,
            )
    return pm, tuple(failures)


def plugin_manager() -> pluggy.PluginManager:
    """The process-wide plugin manager with built-in and allowed third-party plugins."""
    return _loaded()[0]


def failed_plugins() -> tuple[PluginFailure, ...]:
    """The third-party plugins that were skipped because they could not be loaded."""
    return _loaded()[1]


def unknown_hooks(pm: pluggy.PluginManager) -> tuple[object, str] | None:
    """(plugin, what is wrong) for a plugin that implements a hook affectkit does not have (a
    misspelt ``register_image_encoder`` would otherwise load and silently contribute nothing)."""
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        hooks = [name for name in dir(hookspecs) if name.startswith("register_")]
        unknown = [name for name in dir(exc.plugin) if name.startswith("register_") and name not in hooks]
        close = difflib.get_close_matches(unknown[0], hooks, n=1) if unknown else []
        hint = f"; did you mean {close[0]}?" if close else ""
        return exc.plugin, f"implements {', '.join(unknown) or 'a hook'}, which is not an affectkit hook{hint} (hooks: {', '.join(hooks)})"
    return None


def _origin(pm: pluggy.PluginManager, plugin: object) -> tuple[str, str | None]:
    """(``built-in``, the providing distribution's name, or the name a plugin was registered
    under; the distribution's version, ``None`` for the others)."""
    name = pm.get_name(plugin) or repr(plugin)
    if name.startswith(f"{BUILTIN_PACKAGE}."):
        return BUILTIN, None
    return next(((dist.project_name, dist.version) for loaded, dist in pm.list_plugin_distinfo() if loaded is plugin), (name, None))


class Registry:
    """A snapshot of everything registered on a plugin manager, by kind and name."""

    def __init__(self, pm: pluggy.PluginManager | None = None) -> None:
        pm = pm or plugin_manager()
        self._pm = pm
        self._components: dict[str, dict[str, ComponentInfo]] = {kind: {} for kind in KINDS}
        for kind, (hook_name, base) in KINDS.items():
            for impl in getattr(pm.hook, hook_name).get_hookimpls():
                origin, version = _origin(pm, impl.plugin)

                def register(name: str, component: type, *, _kind=kind, _base=base, _origin=origin, _version=version) -> None:
                    self._add(_kind, _base, name, component, _origin, _version)

                impl.function(register=register)
        self._formats: dict[str, MeshFormat] = {}
        for impl in getattr(pm.hook, MESH_FORMAT_HOOK).get_hookimpls():
            origin, _ = _origin(pm, impl.plugin)

            def register_format(suffix: str, reader: Callable, writer: Callable | None = None, *, _origin: str = origin) -> None:
                self._add_format(MeshFormat(suffix, reader, writer, _origin))

            impl.function(register=register_format)

    def _add_format(self, found: MeshFormat) -> None:
        if not (isinstance(found.suffix, str) and found.suffix.startswith(".") and found.suffix == found.suffix.lower() and len(found.suffix) > 1):
            raise PluginError(f"{found.origin} registered the mesh format {found.suffix!r}: a suffix is a lower-case string like '.wrl'")
        if not callable(found.reader) or not (found.writer is None or callable(found.writer)):
            raise PluginError(f"{found.origin} registered the mesh format {found.suffix!r} with a reader or writer that is not callable")
        existing = self._formats.get(found.suffix)
        if found.suffix in STANDARD_MESH_SUFFIXES or existing is not None:
            by = "trimesh (built in)" if existing is None else existing.origin
            raise PluginError(f"mesh format {found.suffix!r} is registered twice: by {by} and by {found.origin}")
        self._formats[found.suffix] = found

    def commands(self, taken: Collection[str]) -> tuple[dict[str, Any], list[str]]:
        """The click commands plugins add to the command line, by name, and a line about each
        one skipped: its name is ``taken`` (a built-in command) or an earlier plugin's, or the
        plugin's ``register_commands`` failed. Asked for only when a command line needs them."""
        import click

        found: dict[str, tuple[Any, str]] = {}
        skipped: list[str] = []
        for impl in getattr(self._pm.hook, COMMAND_HOOK).get_hookimpls():
            origin, _ = _origin(self._pm, impl.plugin)
            group = click.Group()
            try:
                impl.function(cli=group)
            except Exception as exc:  # one plugin's mistake leaves the other commands working
                skipped.append(f"plugin {origin}: its commands are skipped: register_commands raised {type(exc).__name__}: {exc}")
                continue
            for name, command in group.commands.items():
                by = "affectkit" if name in taken else found[name][1] if name in found else None
                if by is not None:
                    skipped.append(f"plugin {origin}: its command {name!r} is skipped: {by} has a command of that name")
                    continue
                found[name] = (command, origin)
        return {name: command for name, (command, _) in found.items()}, skipped

    def mesh_formats(self) -> dict[str, MeshFormat]:
        """The mesh formats plugins registered, by suffix (the standard ones are not here)."""
        return dict(sorted(self._formats.items()))

    def _add(self, kind: str, base: type, name: str, component: type, origin: str, version: str | None) -> None:
        if not (isinstance(component, type) and issubclass(component, base)):
            raise PluginError(f"{origin} registered {kind} {name!r} as {component!r}, which is not a {base.__name__} subclass")
        existing = self._components[kind].get(name)
        if existing is not None:
            raise PluginError(
                f"{kind} {name!r} is registered twice: by {existing.origin} "
                f"({existing.cls.__module__}.{existing.cls.__qualname__}) and by {origin} "
                f"({component.__module__}.{component.__qualname__})"
            )
        self._components[kind][name] = ComponentInfo(kind, name, component, origin, version)

    def names(self, kind: str) -> list[str]:
        return sorted(self._kind(kind))

    def all(self) -> list[ComponentInfo]:
        return [info for kind in KINDS for info in sorted(self._components[kind].values(), key=lambda i: i.name)]

    def get(self, kind: str, name: str) -> ComponentInfo:
        components = self._kind(kind)
        if name not in components:
            allowed = ", ".join(sorted(components)) or "none"
            skipped = "".join(f"; skipped, and may have provided it: {failure.describe()}" for failure in failed_plugins())
            raise PluginError(f"unknown {kind} {name!r}; registered: {allowed}{skipped}")
        return components[name]

    def options(self, kind: str, name: str, options: Mapping[str, Any] | None = None, where: str = "") -> Any:
        """Validate ``options`` against the component's ``Options`` model."""
        info = self.get(kind, name)
        try:
            return info.cls.Options.model_validate(dict(options or {}))
        except ValidationError as exc:
            fields = ", ".join(info.cls.Options.model_fields) or "none"
            problems = one_line(exc, top="<options>")
            prefix = f"{where}: " if where else ""
            raise PluginError(f"{prefix}invalid options for {kind} {name!r}: {problems}; allowed fields: {fields}") from None

    def create(self, kind: str, name: str, options: Mapping[str, Any] | None = None, *, where: str = "", **kwargs: Any) -> Any:
        """Build a component by name; ``kwargs`` are passed to its constructor."""
        validated = self.options(kind, name, options, where)
        info = self.get(kind, name)
        component = info.cls(validated, **kwargs)
        if not isinstance(getattr(component, "options", None), info.cls.Options):
            raise PluginError(
                f"{info.origin} {kind} {name!r} did not keep its options: its __init__ must call super().__init__ with its options "
                f"(the base class stores them as self.options)"
            )
        out_dim = getattr(component, "out_dim", None) if kind in ENCODER_KINDS else 1
        if not (isinstance(out_dim, int) and out_dim > 0):
            raise PluginError(f"{info.origin} {kind} {name!r} set out_dim to {out_dim!r}; an encoder must set it to its embedding size (a positive int)")
        return component

    def packages(self, components: Iterable[tuple[str, str]]) -> dict[str, str]:
        """{distribution: version} of the third-party plugins that provide ``components``
        ((kind, name) pairs; built-in and unknown ones add nothing): what a model made with
        them needs installed."""
        found = (self._components.get(kind, {}).get(name) for kind, name in components)
        return {info.origin: info.version for info in found if info is not None and info.version is not None}

    def _kind(self, kind: str) -> dict[str, ComponentInfo]:
        if kind not in self._components:
            raise PluginError(f"unknown component kind {kind!r}; kinds: {', '.join(KINDS)}")
        return self._components[kind]


def registry() -> Registry:
    """The registry of the process-wide plugin manager (rebuilt on each call: cheap)."""
    return Registry(plugin_manager())


def face_generators() -> list[str]:
    """The registered datasets that make their faces (:class:`~affectkit.data.face_generator.FaceGenerator`)."""
    from affectkit.data.face_generator import FaceGenerator

    found = registry()
    return [name for name in found.names("dataset") if issubclass(found.get("dataset", name).cls, FaceGenerator)]


def dataset_layouts() -> dict[str, str]:
    """File layouts ``affectkit synth --layout`` writes -> the registered dataset that owns
    (writes and reads) each (:attr:`~affectkit.interfaces.Dataset.layout`)."""
    found = registry()
    owners = {}
    for name in found.names("dataset"):
        layout = found.get("dataset", name).cls.layout
        if layout is not None:
            owners.setdefault(layout, name)
    return owners


def write_generated(generated: Dataset, name: str, out_dir: Path, layout: str = "affectkit") -> Path:
    """Write every sample of the face generator ``generated`` (registered as ``name``) under
    ``out_dir`` in ``layout``, which the dataset owning it writes
    (:meth:`~affectkit.interfaces.Dataset.write_layout`); the folder or file that dataset
    reads them from."""
    owners = dataset_layouts()
    if layout not in owners:
        raise DatasetError(f"{name}: unknown layout {layout!r}; allowed: {', '.join(sorted(owners))}")
    return registry().get("dataset", owners[layout]).cls.write_layout(generated, name, Path(out_dir))


def create(kind: str, name: str, options: Mapping[str, Any] | None = None, **kwargs: Any) -> Any:
    """Shorthand for ``registry().create(...)``."""
    return registry().create(kind, name, options, **kwargs)
