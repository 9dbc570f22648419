"""Contract checks for plugin components: what affectkit's own tests assert of every built-in
component, as functions a third-party plugin calls in its own tests.

Each ``check_*`` takes a built component (``affectkit.registry.create(kind, name, options)``,
so its registration and options are checked too) and raises ``AssertionError`` saying what
the component does wrong; it needs no test runner::

    from affectkit.registry import create
    from affectkit.testing import check_image_encoder

    def test_tinycnn_honours_the_image_encoder_contract():
        check_image_encoder(create("image_encoder", "tinycnn", {"width": 8}, in_channels=3), in_channels=3)

Pass the component built with the options your users will use; run each check over every
option that changes what the component computes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from affectkit.data.mesh import Mesh, MeshSequence
from affectkit.interfaces import (
    Dataset,
    ImageEncoder,
    Logger,
    Loss,
    LossInputs,
    PromptAugmenter,
    RenderedViews,
    Renderer,
    RunInfo,
    Sample,
    TextEncoder,
    TrainingCallback,
    ViewAugmentation,
)
from affectkit.render.cameras import parse_views

#: the six basic emotions, the labels every check that needs classes uses
LABELS = ("anger", "disgust", "fear", "happiness", "sadness", "surprise")


def sphere() -> Mesh:
    """A unit icosphere (2,562 vertices): a mesh whose every rendering is known."""
    import trimesh

    s = trimesh.creation.icosphere(subdivisions=4)
    return Mesh(s.vertices, s.faces, source="sphere")


def check_renderer(renderer: Renderer, device: str = "cpu") -> None:
    """Two spheres from three views at 48 px: every map has its shape and is finite, the
    sphere covers the share of the image it should (normalised to a bounding-box
    half-diagonal of 1 its radius is 1/sqrt(3)), depth is 0 off the face and not negative
    on it, and the normal at the image centre faces the camera."""
    rendered = renderer.render([sphere(), sphere()], parse_views("front,left,right"), 48, device=device)
    out = RenderedViews(**{key: getattr(rendered, key).cpu() for key in RenderedViews.MAPS})
    for key, channels in RenderedViews.MAPS.items():
        tensor = getattr(out, key)
        assert tensor.shape == (2, 3, channels, 48, 48), f"{key} map shaped {tuple(tensor.shape)}, not (2, 3, {channels}, 48, 48)"
        assert torch.isfinite(tensor).all(), f"{key} map has non-finite values"
    coverage = out.mask.mean().item()
    assert abs(coverage - math.pi / 12) < 0.02, f"the sphere covers {coverage:.3f} of the image, not pi/12 = {math.pi / 12:.3f}"
    assert (out.depth[out.mask.bool()] >= 0).all() and (out.depth[~out.mask.bool()] == 0).all(), "depth is negative on the face or not 0 off it"
    assert out.normal[0, 0, 2, 24, 24] > 0.95, "the normal at the image centre of the front view does not face the camera"


def check_dataset(dataset: Dataset) -> None:
    """Samples of unique keys, of the dataset's labels and of at least two subjects; the
    first loads as a mesh (or a sequence of meshes) with faces and finite vertices."""
    samples = dataset.samples()
    assert samples, "the dataset lists no sample"
    assert all(isinstance(s, Sample) for s in samples), "samples() returns something other than Sample objects"
    assert len({s.key for s in samples}) == len(samples), "two samples share a key"
    assert {s.label for s in samples} <= set(dataset.labels), f"labels {sorted({s.label for s in samples} - set(dataset.labels))} are not among dataset.labels"
    assert len({s.subject for s in samples}) >= 2, "one subject only: give the check a dataset of at least two (subject-independent splits need them)"
    item = dataset.load(samples[0])
    meshes = item.frames if isinstance(item, MeshSequence) else [item]
    for mesh in meshes:
        assert isinstance(mesh, Mesh) and len(mesh.faces) > 0, f"{samples[0].key} loads as no mesh with faces"
        assert np.isfinite(mesh.vertices).all(), f"{samples[0].key} has non-finite vertices"


def check_image_encoder(encoder: ImageEncoder, in_channels: int, size: int = 64) -> None:
    """Two ``size`` px images of ``in_channels`` embed to ``[2, out_dim]`` finite features,
    and a loss on them sends finite gradients to its trainable parameters."""
    assert isinstance(encoder, ImageEncoder) and isinstance(encoder.out_dim, int) and encoder.out_dim > 0, "out_dim is not a positive int"
    encoder.train()
    out = encoder(torch.rand(2, in_channels, size, size, generator=torch.Generator().manual_seed(0)))
    assert out.shape == (2, encoder.out_dim), f"embeddings shaped {tuple(out.shape)}, not (2, out_dim={encoder.out_dim})"
    assert torch.isfinite(out).all(), "non-finite embeddings"
    out.square().mean().backward()
    grads = [p.grad for p in encoder.parameters() if p.requires_grad]
    assert any(g is not None and g.abs().sum() > 0 for g in grads), "no gradient reaches the parameters"
    assert all(torch.isfinite(g).all() for g in grads if g is not None), "non-finite gradients"


def check_text_encoder(encoder: TextEncoder) -> None:
    """Three prompts embed to ``[3, out_dim]`` finite, distinct features on the encoder's
    device, and an embedding does not depend on the batch it is in (padding is masked)."""
    assert isinstance(encoder, TextEncoder) and isinstance(encoder.out_dim, int) and encoder.out_dim > 0, "out_dim is not a positive int"
    texts = ["a 3D scan of a happy face", "an angry person", "a face showing surprise"]
    out = encoder(texts)
    assert out.shape == (3, encoder.out_dim), f"embeddings shaped {tuple(out.shape)}, not (3, out_dim={encoder.out_dim})"
    assert out.device == next(encoder.parameters()).device, "embeddings are not on the encoder's device"
    assert torch.isfinite(out).all(), "non-finite embeddings"
    assert not torch.allclose(out[0], out[1]), "two different prompts embed the same"
    torch.testing.assert_close(encoder.eval()(texts[1:2])[0], encoder(texts)[1], atol=1e-5, rtol=1e-4, msg="a prompt embeds differently alone and in a batch")


def loss_inputs(labels: Sequence[int] = (0, 0, 1, 1, 2, 2, 3, 0), views: int = 3, dim: int = 16, classes: int = 8, seed: int = 0) -> LossInputs:
    """A training batch as the model hands it to the losses, every tensor a leaf that
    records its gradient: per-view and joint image embeddings, text embeddings, the
    embeddings of ``classes`` class prompts (``labels`` index them), the logit scale and
    three AU scores per scan (the second not coded for the first scan)."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.as_tensor(labels)
    batch = len(labels)

    def unit(*shape: int) -> torch.Tensor:
        return F.normalize(torch.randn(*shape, generator=g), dim=-1).requires_grad_()

    joint = unit(batch, dim)
    class_embeddings = unit(classes, dim)
    aus = torch.rand(batch, 3, generator=g).round()
    aus[0, 1] = float("nan")
    return LossInputs(
        view_embeddings=unit(batch, views, dim),
        joint=joint,
        text=unit(batch, dim),
        labels=labels,
        logit_scale=torch.tensor(1 / 0.07).requires_grad_(),
        classes=class_embeddings,
        au_logits=10.0 * joint @ class_embeddings[:3].T - 2.0,  # as the model scores AUs: similarity to their prompts
        au_targets=aus,
    )


def check_loss(loss: Loss, inputs: LossInputs | None = None) -> None:
    """A finite scalar on :func:`loss_inputs` (or ``inputs``) whose gradient reaches the
    image embeddings, finite everywhere, and every parameter of the loss itself."""
    inputs = inputs or loss_inputs()
    value = loss(inputs)
    assert value.shape == (), f"the loss is shaped {tuple(value.shape)}, not a scalar"
    assert torch.isfinite(value), "the loss is not finite"
    value.backward()
    grads = {name: getattr(inputs, name).grad for name in ("view_embeddings", "joint", "text", "logit_scale", "classes")}
    assert grads["joint"] is not None or grads["view_embeddings"] is not None, "no gradient reaches the images"
    for name, grad in grads.items():
        assert grad is None or torch.isfinite(grad).all(), f"non-finite gradient for {name}"
    for name, parameter in loss.named_parameters():
        assert parameter.grad is not None, f"parameter {name} gets no gradient"
        assert torch.isfinite(parameter.grad).all(), f"non-finite gradient for parameter {name}"


def check_prompt_augmenter(augmenter: PromptAugmenter, attributes: Mapping[str, Any] | None = None, labels: Sequence[str] = LABELS) -> None:
    """For every label, with ``attributes`` (a sample's) or none (the per-class prompts
    classification uses): prompts that are non-empty, stripped, distinct, and never a
    prompt of another label."""
    seen: dict[str, str] = {}
    for label in labels:
        prompts = augmenter.prompts(label, dict(attributes or {}))
        assert prompts and all(isinstance(p, str) and p and p.strip() == p for p in prompts), f"{label}: empty or unstripped prompts {prompts}"
        assert len(set(prompts)) == len(prompts), f"duplicate prompts for {label}"
        for prompt in prompts:
            assert seen.setdefault(prompt, label) == label, f"{prompt!r} is a prompt of {seen[prompt]} and {label}"


def check_view_augmentation(augmentation: ViewAugmentation, channels: int = 3, dtype: torch.dtype = torch.float32) -> None:
    """On a batch of 8 scans x 3 views of ``channels`` at 32 px: the same shape and dtype
    out, finite, the input left as it was, the same output for the same generator seed and
    another for another seed."""
    views = torch.rand(8, 3, channels, 32, 32, generator=torch.Generator().manual_seed(0)).to(dtype)
    labels = torch.tensor([0, 1, 0, 1, 2, 2, 0, 3])
    before = views.clone()

    def augmented(seed: int) -> torch.Tensor:
        return augmentation(views, labels, torch.Generator().manual_seed(seed))

    out = augmented(5)
    assert out.shape == views.shape and out.dtype == views.dtype, f"shape {tuple(out.shape)} {out.dtype} out for {tuple(views.shape)} {views.dtype} in"
    assert torch.isfinite(out).all(), "non-finite views out"
    assert torch.equal(views, before), "the augmentation changed its input"
    torch.testing.assert_close(augmented(5), out, atol=0, rtol=0, msg="the same seed gave other views")
    assert not torch.equal(augmented(6), out), "another seed gave the same views"


def check_mesh_format(suffix: str, reader: Callable[[Path], Mesh], writer: Callable[[Mesh, Path], Path] | None, folder: Path) -> None:
    """A sphere written to ``folder`` (where there is a writer) reads back as a mesh of as
    many faces around the same centre, naming its file if the reader sets ``source``."""
    assert suffix.startswith(".") and suffix == suffix.lower(), f"{suffix!r} is not a lower-case suffix like '.wrl'"
    if writer is None:
        return
    original = sphere()
    path = writer(original, Path(folder) / f"sphere{suffix}")
    again = reader(path)
    assert isinstance(again, Mesh), "the reader returns no Mesh"
    assert len(again.faces) == len(original.faces), f"{len(again.faces)} faces read back, {len(original.faces)} written"
    assert np.abs(again.vertices.mean(0) - original.vertices.mean(0)).max() < 1e-4, "the mesh read back is moved"


def check_logger(logger: Logger, folder: Path) -> None:
    """A two-epoch run told to the logger, its outputs under ``folder``: ``start``, an
    epoch with a validation confusion matrix, one without, ``finish``; nothing raises."""
    from affectkit.recipe import Recipe

    recipe = Recipe.model_validate({"name": "contract", "output": {"dir": str(folder)}})
    run_dir = Path(folder) / "contract" / "run"
    run_dir.mkdir(parents=True, exist_ok=True)
    logger.start(RunInfo(recipe.name, run_dir, LABELS, recipe.model_dump(mode="json")))
    confusion = [[5 if i == j else 1 for j in range(len(LABELS))] for i in range(len(LABELS))]
    logger.log_epoch(1, {"train/loss": 1.5, "loss/affectvlm": 1.5, "val/accuracy": 0.5, "model/view_weight/front": 0.4}, confusion)
    logger.log_epoch(2, {"train/loss": 1.0, "loss/affectvlm": 1.0}, None)
    logger.finish({"train/loss": 1.0, "loss/affectvlm": 1.0})



def check_callback(callback: TrainingCallback) -> None:
    """Told a three-epoch run's training and validation scalars one epoch at a time, the
    callback answers a plain bool and leaves the history it was given as it was."""
    epochs = [
        {"train/loss": 1.5, "train/lr": 1e-3, "loss/affectvlm": 1.5, "val/accuracy": 0.5, "val/loss": 1.2},
        {"train/loss": 1.2, "train/lr": 8e-4, "loss/affectvlm": 1.2, "val/accuracy": 0.6, "val/loss": 1.0},
        {"train/loss": 1.1, "train/lr": 5e-4, "loss/affectvlm": 1.1, "val/accuracy": 0.6, "val/loss": 1.1},
    ]
    for n in range(1, len(epochs) + 1):
        history = [dict(e) for e in epochs[:n]]
        answer = callback.epoch_end(history)
        assert isinstance(answer, bool), f"epoch_end answered {answer!r}, not True or False"
        assert history == epochs[:n], "epoch_end changed the history it was told"
