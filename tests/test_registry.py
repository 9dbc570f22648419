"""The plugin registry: built-ins, third-party plugins, name and option errors."""

from __future__ import annotations

import json
from contextlib import contextmanager

import pluggy
import pytest
from cli_runs import ROOT, command, plugin_distribution
from pydantic import Field

from affectkit import hookimpl, hookspecs
from affectkit.data.mesh_formats import save_mesh
from affectkit.errors import PluginError
from affectkit.factory import build_dataset
from affectkit.interfaces import Loss, Options
from affectkit.recipe import ComponentRef
from affectkit.registry import BUILTIN, KINDS, Registry, plugin_manager, registry

EXPECTED_BUILTINS = {
    "renderer": {"torch", "auto"},
    "dataset": {"synthetic", "bosphorus", "bp4d", "folder"},
    "view_augmentation": {"mixed", "viewmix", "regionmask"},
    "prompt_augmenter": {"templates", "attributes", "file"},
    "image_encoder": {"timm", "clip"},
    "text_encoder": {"minilm", "hf", "clip"},
    "loss": {"affectvlm", "clip", "siglip", "supcon"},
    "logger": {"tensorboard", "mlflow"},
    "callback": {"early_stopping"},
}


class MarginLoss(Loss):
    """A test loss."""

    class Options(Options):
        margin: float = Field(0.2, ge=0.0)

    def forward(self, inputs):  # pragma: no cover - never trained
        return inputs.joint.sum() * 0


@contextmanager
def plugin_registered(plugin: object, origin: str):
    """``plugin`` on the process-wide manager for the block's duration."""
    pm = plugin_manager()
    pm.register(plugin, name=origin)
    try:
        yield pm
    finally:
        pm.unregister(plugin)


def loss_plugin(name: str, component: type, origin: str):
    """A plugin registering one loss, for the block's duration."""

    class Plugin:
        @hookimpl
        def register_losses(self, register):
            register(name, component)

    return plugin_registered(Plugin(), origin)


@pytest.fixture
def registered():
    with loss_plugin("test-margin", MarginLoss, "affectkit-test-plugin"):
        yield


def test_every_kind_has_its_builtins():
    reg = registry()
    for kind, names in EXPECTED_BUILTINS.items():
        assert names <= set(reg.names(kind)), kind
    assert set(EXPECTED_BUILTINS) == set(KINDS)
    assert all(info.origin == BUILTIN and info.description for info in reg.all())


def test_third_party_plugin_registers_through_the_same_hooks(registered):
    info = registry().get("loss", "test-margin")
    assert info.origin == "affectkit-test-plugin"
    assert info.description == "A test loss."
    loss = registry().create("loss", "test-margin", {"margin": 0.5})
    assert loss.options.margin == 0.5


def test_unknown_name_lists_registered_names():
    with pytest.raises(PluginError, match=r"unknown loss 'nope'; registered: action_units, affectvlm, clip, cross_entropy, siglip, supcon"):
        registry().get("loss", "nope")


def test_unknown_kind():
    with pytest.raises(PluginError, match="unknown component kind 'widget'"):
        registry().names("widget")


def test_bad_options_name_the_field_and_allowed_fields(registered):
    with pytest.raises(PluginError, match=r"invalid options for loss 'test-margin': margin: .*greater than or equal to 0.*allowed fields: margin"):
        registry().create("loss", "test-margin", {"margin": -1})
    with pytest.raises(PluginError, match=r"colour: Extra inputs are not permitted"):
        registry().create("loss", "test-margin", {"colour": "red"})


def test_duplicate_names_fail_naming_both_origins():
    with loss_plugin("clip", MarginLoss, "clashing-package") as pm:
        with pytest.raises(PluginError, match=r"loss 'clip' is registered twice: by built-in .* and by clashing-package"):
            Registry(pm)


def test_registering_a_non_component_fails():
    with loss_plugin("wrong", dict, "wrong-package") as pm:
        with pytest.raises(PluginError, match=r"wrong-package registered loss 'wrong' .* not a Loss subclass"):
            Registry(pm)


def test_importing_the_mesh_types_loads_no_plugin():
    """affectkit.data.mesh is the bottom of the import graph: no registry, no plugin, no cycle."""
    import subprocess
    import sys

    code = "import sys, affectkit.data.mesh; print(sorted(m for m in sys.modules if m.startswith(('affectkit_plugins', 'affectkit.registry', 'affectkit.interfaces'))))"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "[]"


def format_plugin(suffix, reader, writer=None, origin="affectkit-xyz"):
    """A plugin registering one mesh format, for the block's duration."""

    class Plugin:
        @hookimpl
        def register_mesh_formats(self, register):
            register(suffix, reader, writer)

    return plugin_registered(Plugin(), origin)


def test_a_plugin_mesh_format_is_read_by_load_mesh_and_clashes_are_named(tmp_path):
    import numpy as np

    from affectkit.data.mesh import Mesh
    from affectkit.data.mesh_formats import load_mesh, mesh_suffixes

    def read_xyz(path):
        points = np.loadtxt(path).reshape(-1, 3)
        return Mesh(points, np.array([[0, 1, 2]]), source=str(path))

    (tmp_path / "tri.xyz").write_text("0 0 0\n1 0 0\n0 1 0\n")
    with format_plugin(".xyz", read_xyz):
        assert ".xyz" in mesh_suffixes() and load_mesh(tmp_path / "tri.xyz").vertices.shape == (3, 3)
    with pytest.raises(Exception, match=r"unsupported mesh format '.xyz'; allowed: .bnt, .glb"):
        load_mesh(tmp_path / "tri.xyz")
    with format_plugin(".wrl", read_xyz, origin="affectkit-other-vrml") as pm:
        with pytest.raises(PluginError, match=r"mesh format '.wrl' is registered twice: by built-in and by affectkit-other-vrml"):
            Registry(pm)
    with format_plugin(".ply", read_xyz) as pm:
        with pytest.raises(PluginError, match=r"mesh format '.ply' is registered twice: by trimesh \(built in\) and by affectkit-xyz"):
            Registry(pm)
    with format_plugin("XYZ", read_xyz) as pm:
        with pytest.raises(PluginError, match=r"a suffix is a lower-case string like '.wrl'"):
            Registry(pm)


ENTRY_POINT_PLUGIN = """
from affectkit import hookimpl, hookspecs
from affectkit.interfaces import PromptAugmenter


class Shouting(PromptAugmenter):
    \"\"\"Prompts in capitals.\"\"\"

    def prompts(self, label, attributes):
        return [f"A {label.upper()} FACE"]


@hookimpl
def register_prompt_augmenters(register):
    register("shouting", Shouting)
"""


def affectkit_in(folder, *args: str, allow: str | None = None):
    """``python -m affectkit ARGS`` with the distributions in ``folder`` installed."""
    import os
    import subprocess

    env = {k: v for k, v in os.environ.items() if k != "AFFECTKIT_PLUGINS"}
    env["PYTHONPATH"] = str(folder)
    if allow is not None:
        env["AFFECTKIT_PLUGINS"] = allow
    return subprocess.run(command(*args), env=env, capture_output=True, text=True, timeout=120)


def test_entry_point_plugins_load_and_the_allow_list_restricts_them(tmp_path):
    """A real distribution on sys.path with an ``affectkit`` entry point, in a subprocess;
    the allow-list takes entry-point names and the distribution names people install."""
    plugin_distribution(tmp_path, "affectkit-shouting", "shouting_plugin", ENTRY_POINT_PLUGIN)

    def plugins(allow: str | None) -> str:
        result = affectkit_in(tmp_path, "plugins", allow=allow)
        assert result.returncode == 0, result.stderr
        return result.stdout

    assert "shouting       [affectkit-shouting]  Prompts in capitals." in plugins(None)
    for named in ("shouting", "affectkit-shouting", "Affectkit_Shouting", "someone-else, affectkit-shouting"):
        assert "shouting" in plugins(named), named
    assert "shouting" not in plugins("")
    assert "shouting" not in plugins("someone-else")


MISSPELT_PLUGIN = """
from affectkit import hookimpl, hookspecs
from affectkit.interfaces import ImageEncoder


class Lost(ImageEncoder):
    \"\"\"Never registered: the hook's name is wrong.\"\"\"


@hookimpl
def register_image_encoder(register):
    register("lost", Lost)
"""

BROKEN_PLUGIN = """
import affectkit_nonexistent_dependency
"""


def test_a_plugin_that_cannot_load_is_skipped_named_and_the_rest_still_works(tmp_path):
    """One package that fails to import and one with a misspelt hook: every command still
    runs (the shipped model predicts), both are named once on stderr, in ``plugins`` and in
    ``env``, and asking for what they would have provided names them."""
    plugin_distribution(tmp_path, "affectkit-lost", "lost_plugin", MISSPELT_PLUGIN)
    plugin_distribution(tmp_path, "affectkit-broken", "broken_plugin", BROKEN_PLUGIN)
    plugin_distribution(tmp_path, "affectkit-shouting", "shouting_plugin", ENTRY_POINT_PLUGIN)
    listing = affectkit_in(tmp_path, "plugins")
    assert listing.returncode == 0 and "Traceback" not in listing.stderr, listing.stderr
    assert "shouting       [affectkit-shouting]" in listing.stdout
    broken = "affectkit-broken (entry point 'broken') failed to import (broken_plugin): No module named 'affectkit_nonexistent_dependency'"
    lost = "affectkit-lost (entry point 'lost') implements register_image_encoder, which is not an affectkit hook; did you mean register_image_encoders?"
    for reason in (broken, lost):
        assert f"skipped: {reason}" in listing.stdout and listing.stderr.count(reason) == 1, (listing.stdout, listing.stderr)
    assert "affectkit works without it" in listing.stderr
    report = affectkit_in(tmp_path, "env")
    assert report.returncode == 0 and f"plugin skipped: {broken}" in report.stdout and "affectkit-shouting 0.1" in report.stdout
    asked = affectkit_in(tmp_path, "recipe", "validate", str(ROOT / "recipes" / "quick.yaml"), "--set", "model.image_encoder.name=lost")
    assert asked.returncode == 1 and "Traceback" not in asked.stderr
    assert "unknown image_encoder 'lost'" in asked.stderr and f"skipped, and may have provided it: {lost}" in asked.stderr
    people = build_dataset(ComponentRef(name="facekit", options={"subjects": 1, "intensities": [4], "seed": 1000}))
    happy = next(sample for sample in people.samples() if sample.label == "happiness")
    face = save_mesh(people.load(happy), tmp_path / "face.ply")
    predicted = affectkit_in(tmp_path, "predict", str(face), "--json")
    assert predicted.returncode == 0, predicted.stderr
    assert json.loads(predicted.stdout)["label"] == "happiness"


def test_an_encoder_that_does_not_say_its_embedding_size_is_refused_when_built():
    from affectkit.interfaces import TextEncoder

    class Silent(TextEncoder):
        """Forgets out_dim."""

    pm = pluggy.PluginManager("affectkit")
    pm.add_hookspecs(hookspecs)

    class Plugin:
        @hookimpl
        def register_text_encoders(self, register):
            register("silent", Silent)

    pm.register(Plugin(), name="silent-package")
    with pytest.raises(PluginError, match=r"silent-package text_encoder 'silent' set out_dim to None; an encoder must set it"):
        Registry(pm).create("text_encoder", "silent")


def test_a_model_loaded_from_a_checkpoint_is_built_without_the_encoders_starting_weights(tmp_path):
    """The core knows an encoder's starting weights only through ``without_starting_weights``:
    an encoder whose weights file is gone still builds for a checkpoint's weights."""
    from affectkit.factory import build_model
    from affectkit.interfaces import ImageEncoder
    from affectkit.recipe import ModelConfig

    class FileStarted(ImageEncoder):
        """Starts from the weights file its option ``start`` names."""

        class Options(Options):
            start: str | None = None

        @classmethod
        def without_starting_weights(cls, options):
            return {**options, "start": None}

        def __init__(self, options, in_channels):
            super().__init__(options, in_channels)
            if options.start is not None:
                raise PluginError(f"file-started: no weights file {options.start}")
            self.out_dim = 4

    class Plugin:
        @hookimpl
        def register_image_encoders(self, register):
            register("file-started", FileStarted)

    cfg = ModelConfig.model_validate({"image_encoder": {"name": "file-started", "options": {"start": str(tmp_path / "gone.safetensors")}}, "embed_dim": 8})
    with plugin_registered(Plugin(), "affectkit-file-started"):
        with pytest.raises(PluginError, match="no weights file"):
            build_model(cfg, num_views=1, in_channels=3, text_dim=384)
        model = build_model(cfg, num_views=1, in_channels=3, text_dim=384, weights_follow=True)
    assert model.image_encoder.options.start is None and model.image_encoder.out_dim == 4
