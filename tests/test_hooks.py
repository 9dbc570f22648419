"""One test per plugin hook (``test_hook_<hook name>``, checked by tests/test_meta.py).

Each registers a small component of its kind from a plugin module of its own, on a plugin
manager that has nothing else, and uses it through the registry as a recipe would.
"""

from __future__ import annotations

import types

import pluggy
import torch
import trimesh
from pydantic import Field

from affectkit import hookimpl, hookspecs
from affectkit.data.mesh import Mesh
from affectkit.interfaces import (
    Dataset,
    ImageEncoder,
    Logger,
    Loss,
    LossInputs,
    Options,
    PromptAugmenter,
    Sample,
    TextEncoder,
    TrainingCallback,
    ViewAugmentation,
)
from affectkit.registry import Registry
from affectkit.render.cameras import parse_views
from affectkit.testing import check_callback, check_logger, check_mesh_format
from affectkit_plugins.renderer_torch import TorchRenderer


def registry_with(hook: str, name: str, component: type) -> Registry:
    """A registry whose only plugin registers ``component`` as ``name`` through ``hook``."""
    plugin = types.ModuleType("affectkit_hook_test_plugin")

    def implementation(register) -> None:
        register(name, component)

    setattr(plugin, hook, hookimpl(implementation))
    pm = pluggy.PluginManager("affectkit")
    pm.add_hookspecs(hookspecs)
    pm.register(plugin, name="affectkit-hook-test")
    registry = Registry(pm)
    assert registry.get(registry_kind(hook), name).origin == "affectkit-hook-test"
    return registry


def registry_kind(hook: str) -> str:
    from affectkit.registry import KINDS

    return next(kind for kind, (hook_name, _) in KINDS.items() if hook_name == hook)


def sphere(label: str = "round") -> Mesh:
    s = trimesh.creation.icosphere(subdivisions=3)
    return Mesh(s.vertices, s.faces, metadata={"label": label})


class FlatRenderer(TorchRenderer):
    """The torch renderer without the light: albedo only."""

    def __init__(self, options: TorchRenderer.Options) -> None:
        super().__init__(options.model_copy(update={"ambient": 1.0}))


def test_hook_register_renderers():
    renderer = registry_with("register_renderers", "flat", FlatRenderer).create("renderer", "flat")
    out = renderer.render([sphere()], parse_views("front,left"), 32)
    inside = out.mask[0, :, 0].bool()
    assert inside.any() and torch.allclose(out.rgb[0, :, 1][inside], torch.tensor(0.7))


class Spheres(Dataset):
    """Spheres of two sizes, one per subject and label."""

    class Options(Options):
        subjects: int = Field(2, ge=1)

    @property
    def labels(self) -> tuple[str, ...]:
        return ("small", "large")

    def samples(self) -> list[Sample]:
        return [Sample(f"{s}-{label}", label, f"S{s}") for s in range(self.options.subjects) for label in self.labels]

    def load(self, sample: Sample) -> Mesh:
        s = trimesh.creation.icosphere(subdivisions=2, radius=1.0 if sample.label == "small" else 2.0)
        return Mesh(s.vertices, s.faces, source=sample.key)


def test_hook_register_datasets():
    dataset = registry_with("register_datasets", "spheres", Spheres).create("dataset", "spheres", {"subjects": 3})
    samples = dataset.samples()
    assert len(samples) == 6 and {s.label for s in samples} == set(dataset.labels)
    large = dataset.load(samples[1])
    assert samples[1].label == "large" and abs(large.vertices).max() > 1.5


class Invert(ViewAugmentation):
    """Inverts every map: 1 - x."""

    def __call__(self, views: torch.Tensor, labels: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return 1.0 - views


def test_hook_register_view_augmentations():
    invert = registry_with("register_view_augmentations", "invert", Invert).create("view_augmentation", "invert")
    views = torch.rand(2, 3, 1, 8, 8)
    assert torch.equal(invert(views, torch.tensor([0, 1]), torch.Generator()), 1.0 - views)


class Shouting(PromptAugmenter):
    """Prompts in capitals."""

    def prompts(self, label, attributes):
        return [f"A {label.upper()} FACE"]


def test_hook_register_prompt_augmenters():
    shouting = registry_with("register_prompt_augmenters", "shouting", Shouting).create("prompt_augmenter", "shouting")
    assert shouting.prompts("happiness", {}) == ["A HAPPINESS FACE"]


class MeanPool(ImageEncoder):
    """Each channel's mean, then a linear layer."""

    class Options(Options):
        width: int = Field(8, ge=1)

    def __init__(self, options: Options, in_channels: int) -> None:
        super().__init__(options, in_channels)
        self.out_dim = options.width
        self.linear = torch.nn.Linear(in_channels, options.width)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.linear(images.mean(dim=(2, 3)))


def test_hook_register_image_encoders():
    encoder = registry_with("register_image_encoders", "meanpool", MeanPool).create("image_encoder", "meanpool", {"width": 5}, in_channels=3)
    assert encoder(torch.rand(4, 3, 16, 16)).shape == (4, encoder.out_dim) == (4, 5)


class LetterCounts(TextEncoder):
    """How often each letter a-z occurs."""

    out_dim = 26

    def forward(self, texts):
        counts = torch.zeros(len(texts), 26)
        for row, text in enumerate(texts):
            for char in text.lower():
                if "a" <= char <= "z":
                    counts[row, ord(char) - ord("a")] += 1
        return counts


def test_hook_register_text_encoders():
    encoder = registry_with("register_text_encoders", "letters", LetterCounts).create("text_encoder", "letters")
    features = encoder(["aab", "z"])
    assert features.shape == (2, 26) and features[0, 0] == 2 and features[1, 25] == 1


class JointTextDistance(Loss):
    """Mean squared distance between each joint embedding and its prompt's."""

    def forward(self, inputs: LossInputs) -> torch.Tensor:
        return (inputs.joint - inputs.text).pow(2).sum(1).mean()


def test_hook_register_losses():
    loss = registry_with("register_losses", "distance", JointTextDistance).create("loss", "distance")
    joint = torch.nn.functional.normalize(torch.randn(4, 8), dim=1).requires_grad_()
    text = torch.nn.functional.normalize(torch.randn(4, 8), dim=1)
    value = loss(LossInputs(joint.detach().unsqueeze(1), joint, text, torch.arange(4), torch.tensor(10.0)))
    value.backward()
    assert value.item() > 0 and joint.grad is not None


def read_xyz(path) -> Mesh:
    """A point-triangle format: three ``x y z`` lines per triangle."""
    import numpy as np

    points = np.loadtxt(path, ndmin=2).reshape(-1, 3)
    return Mesh(points, np.arange(len(points)).reshape(-1, 3), source=str(path))


def write_xyz(mesh: Mesh, path):
    import numpy as np

    np.savetxt(path, mesh.vertices[mesh.faces.reshape(-1)])
    return path


def test_hook_register_mesh_formats(tmp_path):
    plugin = types.ModuleType("affectkit_hook_test_plugin")
    plugin.register_mesh_formats = hookimpl(lambda register: register(".xyz", read_xyz, write_xyz))
    pm = pluggy.PluginManager("affectkit")
    pm.add_hookspecs(hookspecs)
    pm.register(plugin, name="affectkit-hook-test")
    found = Registry(pm).mesh_formats()[".xyz"]
    assert found.origin == "affectkit-hook-test"
    check_mesh_format(found.suffix, found.reader, found.writer, tmp_path)


def test_hook_register_commands():
    """A plugin's command runs like a built-in one and is listed with them; one that takes a
    built-in command's name is skipped with a warning, and the built-in still runs."""
    import click
    from click.testing import CliRunner
    from test_registry import plugin_registered

    from affectkit.cli import main

    plugin = types.ModuleType("affectkit_hook_test_plugin")

    def register_commands(cli) -> None:
        @cli.command()
        @click.option("--name", default="you")
        def greet(name: str) -> None:
            """Say hello."""
            click.echo(f"hello {name}")

        @cli.command(name="predict")
        def shadow() -> None:
            click.echo("not the real predict")

    plugin.register_commands = hookimpl(register_commands)
    runner = CliRunner()
    with plugin_registered(plugin, "affectkit-hook-test"):
        greeted = runner.invoke(main, ["greet", "--name", "Ada"])
        assert greeted.exit_code == 0 and greeted.output.strip().endswith("hello Ada")
        assert "warning: plugin affectkit-hook-test: its command 'predict' is skipped: affectkit has a command of that name" in greeted.output
        listing = runner.invoke(main, ["-h"]).output
        assert "greet" in listing and "Say hello." in listing
        assert "not the real predict" not in runner.invoke(main, ["predict", "-h"]).output
    assert runner.invoke(main, ["greet"]).exit_code == 2  # gone with its plugin

    def broken(cli) -> None:
        raise RuntimeError("no config file")

    plugin.register_commands = hookimpl(broken)
    with plugin_registered(plugin, "affectkit-hook-test"):
        listing = runner.invoke(main, ["-h"])
        assert listing.exit_code == 0 and "predict" in listing.output  # the built-ins still work
        assert "its commands are skipped: register_commands raised RuntimeError: no config file" in listing.output


class MemoryLogger(Logger):
    """Keeps every epoch's scalars in memory."""

    def start(self, run) -> None:
        self.epochs: list[tuple[int, dict]] = []

    def log_epoch(self, step, scalars, confusion) -> None:
        self.epochs.append((step, dict(scalars)))


def test_hook_register_loggers(tmp_path):
    logger = registry_with("register_loggers", "memory", MemoryLogger).create("logger", "memory")
    check_logger(logger, tmp_path)
    assert [step for step, _ in logger.epochs] == [1, 2] and logger.epochs[1][1]["train/loss"] == 1.0



class StopAt(TrainingCallback):
    """Stops after a given epoch."""

    class Options(TrainingCallback.Options):
        epoch: int = 2

    def epoch_end(self, history) -> bool:
        return len(history) >= self.options.epoch


def test_hook_register_callbacks():
    callback = registry_with("register_callbacks", "stop_at", StopAt).create("callback", "stop_at", {"epoch": 3}, where="train.callbacks.0")
    check_callback(callback)
    assert [callback.epoch_end([{"train/loss": 1.0}] * n) for n in (1, 2, 3)] == [False, False, True]
