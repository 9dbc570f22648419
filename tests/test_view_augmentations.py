"""View augmentations: a contract every registered one keeps, then ``mixed``, ``viewmix`` and ``regionmask``."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from affectkit.errors import PluginError
from affectkit.registry import create, registry
from affectkit.testing import check_view_augmentation
from affectkit_plugins.view_augmentations import affine_grid, random_affine_matrices

AUGMENTATIONS = registry().names("view_augmentation")
B, V, S = 8, 3, 32
LABELS = torch.tensor([0, 1, 0, 1, 2, 2, 0, 3])


def generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def random_views(channels: int = 3, seed: int = 0, dtype=torch.float32) -> torch.Tensor:
    return torch.rand(B, V, channels, S, S, generator=generator(seed)).to(dtype)


# ---------------------------------------------------------------------------------------
# Contract: every registered view augmentation
# ---------------------------------------------------------------------------------------


def test_builtin_augmentations_registered():
    assert {"mixed", "viewmix", "regionmask"} <= set(AUGMENTATIONS)


@pytest.mark.parametrize("channels", [1, 3, 8])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
@pytest.mark.parametrize("name", AUGMENTATIONS)
def test_augmentation_keeps_shape_dtype_and_input_and_follows_its_seed(name, channels, dtype):
    check_view_augmentation(create("view_augmentation", name), channels, dtype)


@pytest.mark.parametrize("name", AUGMENTATIONS)
def test_augmentation_rejects_unknown_options(name):
    assert registry().get("view_augmentation", name).description
    with pytest.raises(PluginError, match="no_such_option"):
        create("view_augmentation", name, {"no_such_option": 1})


# ---------------------------------------------------------------------------------------
# mixed
# ---------------------------------------------------------------------------------------


def asymmetric_views(channels: int = 3) -> torch.Tensor:
    """The same asymmetric picture (a bright off-centre block) in every view and channel."""
    image = torch.zeros(S, S)
    image[4:14, 6:24] = 1.0
    image[20:28, 2:8] = 0.5
    return image.expand(B, V, channels, S, S).clone()


def test_mixed_transforms_each_view_independently():
    out = create("view_augmentation", "mixed")(asymmetric_views(), LABELS, generator())
    for i in range(B):
        for a in range(V):
            for b in range(a + 1, V):
                assert not torch.allclose(out[i, a], out[i, b], atol=1e-3), f"views {a} and {b} of sample {i} match"
    assert not torch.allclose(out[0], out[1], atol=1e-3)


def test_mixed_moves_all_channels_alike():
    out = create("view_augmentation", "mixed")(asymmetric_views(channels=8), LABELS, generator())
    torch.testing.assert_close(out, out[:, :, :1].expand_as(out))


def test_mixed_with_zero_strength_is_identity():
    neutral = {"flip_p": 0.0, "degrees": 0.0, "scale": (1.0, 1.0), "translate": 0.0}
    views = random_views()
    out = create("view_augmentation", "mixed", neutral)(views, LABELS, generator())
    torch.testing.assert_close(out, views, atol=1e-5, rtol=0)


def test_mixed_flip_only_is_a_horizontal_flip():
    flip = {"flip_p": 1.0, "degrees": 0.0, "scale": (1.0, 1.0), "translate": 0.0}
    views = random_views()
    out = create("view_augmentation", "mixed", flip)(views, LABELS, generator())
    torch.testing.assert_close(out, views.flip(-1), atol=1e-5, rtol=0)


def test_mixed_rotation_keeps_the_centre_and_turns_the_corners_out():
    options = {"flip_p": 0.0, "degrees": 45.0, "scale": (1.0, 1.0), "translate": 0.0}
    views = torch.ones(B, V, 1, S + 1, S + 1)
    out = create("view_augmentation", "mixed", options)(views, LABELS, generator())
    centre = S // 2
    assert torch.allclose(out[..., centre, centre], torch.ones(()), atol=1e-5)
    assert (out[..., 0, 0] < 0.5).float().mean() > 0.5  # most rotations push a corner outside


def test_affine_grid_matches_torch():
    theta = random_affine_matrices(
        6, 20, 28, flip_p=0.5, degrees=30.0, scale=(0.8, 1.2), translate=0.1, generator=generator()
    )
    torch.testing.assert_close(affine_grid(theta, 20, 28), F.affine_grid(theta, [6, 1, 20, 28], align_corners=False))


@pytest.mark.parametrize(
    "options", [{"flip_p": 1.5}, {"degrees": -1.0}, {"scale": (1.2, 0.8)}, {"scale": (0.0, 1.0)}, {"translate": 0.9}]
)
def test_mixed_rejects_out_of_range_options(options):
    with pytest.raises(PluginError):
        create("view_augmentation", "mixed", options)


# ---------------------------------------------------------------------------------------
# viewmix
# ---------------------------------------------------------------------------------------


def tagged_views(labels: torch.Tensor) -> torch.Tensor:
    """Channel 0 holds the sample index, 1 its label, 2 the view index."""
    batch = len(labels)
    views = torch.zeros(batch, V, 3, 4, 4)
    views[:, :, 0] = torch.arange(batch, dtype=torch.float32)[:, None, None, None]
    views[:, :, 1] = labels.float()[:, None, None, None]
    views[:, :, 2] = torch.arange(V, dtype=torch.float32)[None, :, None, None]
    return views


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("p", [0.5, 1.0])
def test_viewmix_swaps_only_within_a_label_and_view(p, seed):
    out = create("view_augmentation", "viewmix", {"p": p})(tagged_views(LABELS), LABELS, generator(seed))
    source = out[:, :, 0, 0, 0].long()
    assert torch.equal(out[:, :, 1, 0, 0], LABELS.float()[:, None].expand(B, V)), "a view changed label"
    assert torch.equal(out[:, :, 2, 0, 0], torch.arange(V).float().expand(B, V)), "a view changed position"
    assert torch.equal(LABELS[source], LABELS[:, None].expand(B, V))
    alone = torch.tensor([(LABELS == y).sum() == 1 for y in LABELS])
    assert torch.equal(source[alone], torch.arange(B)[alone, None].expand(-1, V)), "a unique-label sample changed"
    if p == 1.0:
        assert (source[~alone] != torch.arange(B)[~alone, None]).all(), "p=1 left a view in place"
    else:
        assert (source != torch.arange(B)[:, None]).any()


def test_viewmix_p_zero_is_identity():
    views = tagged_views(LABELS)
    out = create("view_augmentation", "viewmix", {"p": 0.0})(views, LABELS, generator())
    assert torch.equal(out, views)


def test_viewmix_leaves_all_distinct_labels_alone():
    labels = torch.arange(B)
    views = random_views()
    out = create("view_augmentation", "viewmix", {"p": 1.0})(views, labels, generator())
    assert torch.equal(out, views)


def test_viewmix_draws_every_partner():
    labels = torch.tensor([0, 0, 0, 0, 1])
    augmentation = create("view_augmentation", "viewmix", {"p": 1.0})
    seen = set()
    for seed in range(30):
        seen |= set(augmentation.sources(labels, V, generator(seed))[0].tolist())
    assert seen == {1, 2, 3}


# ---------------------------------------------------------------------------------------
# regionmask
# ---------------------------------------------------------------------------------------


def test_regionmask_hides_one_half_of_every_view_of_a_sample():
    halves = []
    for seed in range(3):
        views = random_views(seed=seed) + 0.1  # nothing is 0 before
        out = create("view_augmentation", "regionmask", {"p": 1.0, "split": 0.5})(views, LABELS, generator(seed))
        for sample in out:
            top, bottom = sample[..., : S // 2, :], sample[..., S // 2 :, :]
            assert (top == 0).all() != (bottom == 0).all(), "exactly one half hidden, in every view"
            assert ((bottom if (top == 0).all() else top) > 0).all()
            halves.append(bool((top == 0).all()))
    assert set(halves) == {True, False}  # upper and lower, among 24 samples


def test_regionmask_p_zero_is_identity_and_p_decides_how_many():
    views = random_views()
    assert torch.equal(create("view_augmentation", "regionmask", {"p": 0.0})(views, LABELS, generator()), views)
    many = random_views(seed=1).repeat(8, 1, 1, 1, 1) + 0.1
    out = create("view_augmentation", "regionmask", {"p": 0.3})(many, torch.zeros(64, dtype=torch.long), generator(2))
    hidden = (out == 0).flatten(1).any(dim=1).float().mean()
    assert 0.1 < hidden < 0.5


def test_regionmask_splits_a_rendered_face_at_its_nose_tip():
    """The default split is the row where the canonical frame puts the nose tip (the
    nearest point of a frontal face) in every view."""
    from affectkit.render.cameras import parse_views
    from affectkit_plugins.view_augmentations import NOSE_TIP_ROW

    dataset = create("dataset", "facekit", {"subjects": 2, "intensities": [4]})
    mesh = dataset.load(next(iter(dataset.samples())))
    size = 64
    views = registry().create("renderer", "torch").render([mesh], parse_views("front"), size)
    depth, mask = views.depth[0, 0, 0], views.mask[0, 0, 0].bool()  # depth: distance from the near plane
    row = int(depth.masked_fill(~mask, float("inf")).argmin()) // size
    assert abs(row / size - NOSE_TIP_ROW) < 0.06, (row, NOSE_TIP_ROW * size)
