"""Losses: a contract every registered loss keeps, then what each built-in one promises."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from affectkit.errors import PluginError
from affectkit.interfaces import LossInputs
from affectkit.registry import create, registry
from affectkit.testing import check_loss, loss_inputs
from affectkit_plugins.losses import clip_loss, label_aware_alignment

LOSSES = registry().names("loss")
B, V, D = 8, 3, 16
K = B  # classes the model scores (every label below lies in 0..K-1)
REPEATED = [0, 0, 1, 1, 2, 2, 3, 0]

#: non-default options worth the same contract (loss name -> options)
VARIANTS = [
    ("affectvlm", {"include_joint": True}),
    ("affectvlm", {"triplet_mining": "all"}),
    ("affectvlm", {"learn_margin": False, "margin": 0.5}),
    ("siglip", {"label_aware": True}),
    ("supcon", {"include_views": True}),
    ("supcon", {"temperature": 0.1}),
]


# ---------------------------------------------------------------------------------------
# Contract: every registered loss
# ---------------------------------------------------------------------------------------


def test_builtin_losses_registered():
    assert {"affectvlm", "clip", "siglip", "supcon"} <= set(LOSSES)


@pytest.mark.parametrize("name", LOSSES)
def test_loss_contract(name):
    check_loss(create("loss", name), loss_inputs(REPEATED))


@pytest.mark.parametrize("name,options", VARIANTS, ids=[f"{n}-{'-'.join(o)}" for n, o in VARIANTS])
def test_loss_variant_contract(name, options):
    check_loss(create("loss", name, options), loss_inputs(REPEATED))


@pytest.mark.parametrize(
    "labels",
    [[2] * B, list(range(B)), [5], [1, 4]],
    ids=["all-equal", "all-distinct", "single-sample", "two-distinct"],
)
@pytest.mark.parametrize("name", LOSSES)
def test_loss_degenerate_batches_are_finite(name, labels):
    check_loss(create("loss", name), loss_inputs(labels))


@pytest.mark.parametrize("name", LOSSES)
def test_loss_has_documented_options(name):
    info = registry().get("loss", name)
    assert info.description
    with pytest.raises(PluginError, match="no_such_option"):
        create("loss", name, {"no_such_option": 1})


# ---------------------------------------------------------------------------------------
# clip and siglip: parity with open_clip
# ---------------------------------------------------------------------------------------


def _parity_features(seed: int = 3):
    g = torch.Generator().manual_seed(seed)
    image = F.normalize(torch.randn(B, D, generator=g, dtype=torch.float64), dim=-1).float()
    text = F.normalize(torch.randn(B, D, generator=g, dtype=torch.float64), dim=-1).float()
    return image, text


def test_clip_matches_open_clip():
    open_clip_loss = pytest.importorskip("open_clip.loss")
    image, text = _parity_features()
    ours_in = [image.clone().requires_grad_(), text.clone().requires_grad_(), torch.tensor(14.3).requires_grad_()]
    ref_in = [t.detach().clone().requires_grad_() for t in ours_in]

    inputs = LossInputs(torch.zeros(B, V, D), ours_in[0], ours_in[1], torch.tensor(REPEATED), ours_in[2])
    ours = create("loss", "clip")(inputs)
    ref = open_clip_loss.ClipLoss()(*ref_in)
    ours.backward()
    ref.backward()

    torch.testing.assert_close(ours, ref, atol=1e-6, rtol=0)
    for a, b in zip(ours_in, ref_in):
        torch.testing.assert_close(a.grad, b.grad, atol=1e-6, rtol=0)


def test_siglip_matches_open_clip():
    open_clip_loss = pytest.importorskip("open_clip.loss")
    image, text = _parity_features()
    loss = create("loss", "siglip")
    assert loss.logit_bias.item() == -10.0
    with torch.no_grad():
        loss.logit_bias.fill_(-3.7)  # away from the init, so that the loss is not ~0
    ours_in = [image.clone().requires_grad_(), text.clone().requires_grad_(), torch.tensor(11.0).requires_grad_()]
    ref_in = [t.detach().clone().requires_grad_() for t in ours_in]
    ref_bias = loss.logit_bias.detach().clone().requires_grad_()

    ours = loss(LossInputs(torch.zeros(B, V, D), ours_in[0], ours_in[1], torch.tensor(REPEATED), ours_in[2]))
    ref = open_clip_loss.SigLipLoss()(*ref_in, ref_bias)
    ours.backward()
    ref.backward()

    torch.testing.assert_close(ours, ref, atol=1e-6, rtol=1e-6)
    for a, b in zip(ours_in, ref_in):
        torch.testing.assert_close(a.grad, b.grad, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(loss.logit_bias.grad, ref_bias.grad, atol=1e-6, rtol=1e-6)


# ---------------------------------------------------------------------------------------
# affectvlm
# ---------------------------------------------------------------------------------------


def test_affectvlm_margin_is_learnable_and_bounded():
    loss = create("loss", "affectvlm", {"margin": 0.3, "margin_min": 0.1, "margin_max": 0.6})
    assert loss.margin.item() == pytest.approx(0.3, abs=1e-6)
    assert [name for name, _ in loss.named_parameters()] == ["margin_logit"]
    inputs = loss_inputs(REPEATED)
    loss(inputs).backward()
    assert loss.margin_logit.grad is not None and loss.margin_logit.grad.abs() > 0
    with torch.no_grad():  # however far an optimiser pushes it, alpha stays in its bounds
        loss.margin_logit.fill_(1e4)
        assert loss.margin.item() <= 0.6 + 1e-6
        loss.margin_logit.fill_(-1e4)
        assert loss.margin.item() >= 0.1 - 1e-6


def test_affectvlm_fixed_margin_has_no_parameters():
    loss = create("loss", "affectvlm", {"learn_margin": False, "margin": 0.5})
    assert list(loss.parameters()) == []
    assert loss.margin.item() == pytest.approx(0.5)


@pytest.mark.parametrize("options", [{"margin": 1.5}, {"margin": 0.0}, {"margin_min": 0.5, "margin_max": 0.4}])
def test_affectvlm_rejects_margin_outside_bounds(options):
    with pytest.raises(PluginError, match="margin"):
        create("loss", "affectvlm", options)


def _clustered(labels, noise: float, seed: int = 0):
    """Views, joint and text embeddings scattered by ``noise`` around a prototype per label."""
    g = torch.Generator().manual_seed(seed)
    prototypes = F.normalize(torch.randn(int(labels.max()) + 1, D, generator=g), dim=-1)

    def around(centre):
        return F.normalize(centre + noise * torch.randn(centre.shape, generator=g), dim=-1)

    centre = prototypes[labels]
    return around(centre[:, None, :].expand(-1, V, -1)), around(centre), around(centre)


@pytest.mark.parametrize("options", [{}, {"include_joint": True}, {"triplet_mining": "all"}])
def test_affectvlm_prefers_clustered_embeddings(options):
    labels = torch.tensor([0, 1, 2, 3] * 4)
    views, joint, text = _clustered(labels, noise=0.15)
    shuffled = labels[torch.randperm(len(labels), generator=torch.Generator().manual_seed(1))]
    assert (shuffled != labels).any()
    loss = create("loss", "affectvlm", options)
    scale = torch.tensor(10.0)
    clustered = loss.terms(LossInputs(views, joint, text, labels, scale))
    mismatched = loss.terms(LossInputs(views, joint, text, shuffled, scale))
    for term in ("contrastive", "triplet", "alignment"):
        assert clustered[term] < mismatched[term], term
    assert loss(LossInputs(views, joint, text, labels, scale)) < loss(LossInputs(views, joint, text, shuffled, scale))


def test_affectvlm_alignment_equals_clip_when_labels_are_distinct():
    image, text = _parity_features()
    scale = torch.tensor(20.0)
    torch.testing.assert_close(
        label_aware_alignment(image, text, torch.arange(B), scale), clip_loss(image, text, scale), atol=1e-6, rtol=0
    )


def test_affectvlm_is_zero_for_perfect_separation_without_alignment():
    """Orthogonal class prototypes, identical views within a class: nothing to correct."""
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    basis = torch.eye(D)[labels]
    views = basis[:, None, :].expand(-1, V, -1)
    loss = create("loss", "affectvlm", {"alignment_weight": 0.0, "margin": 0.3})
    # d(pos) = 0, d(neg) = 2 > alpha, s(neg) = 0 < alpha: every hinge is inactive.
    assert loss(LossInputs(views, basis, basis, labels, torch.tensor(10.0))).item() == pytest.approx(0.0, abs=1e-6)


# ---------------------------------------------------------------------------------------
# supcon: same-label pairs are positives, not negatives
# ---------------------------------------------------------------------------------------


def _instance_and_class_configs():
    """Two batches: every sample matched to its own text only (instance), or every sample
    of a class collapsed onto its class prototype (class)."""
    labels = torch.tensor([0, 1, 2, 3] * 3)
    g = torch.Generator().manual_seed(7)
    own = F.normalize(torch.randn(len(labels), D, generator=g), dim=-1)
    prototypes = torch.eye(D)[labels]
    views = lambda x: x[:, None, :].expand(-1, V, -1)  # noqa: E731
    instance = LossInputs(views(own), own, own, labels, torch.tensor(10.0))
    klass = LossInputs(views(prototypes), prototypes, prototypes, labels, torch.tensor(10.0))
    return instance, klass


def test_supcon_rewards_what_clip_penalises():
    instance, klass = _instance_and_class_configs()
    clip, supcon = create("loss", "clip"), create("loss", "supcon")
    # InfoNCE treats same-label samples as negatives: collapsing a class costs it ~log(3).
    assert clip(klass) > clip(instance)
    assert clip(klass).item() == pytest.approx(torch.log(torch.tensor(3.0)).item(), abs=0.01)
    # SupCon counts them as positives: the class-collapsed batch is the better one.
    assert supcon(klass) < supcon(instance)
    # ... and so does affectvlm's label-aware image-text term.
    affectvlm = create("loss", "affectvlm")
    assert affectvlm.terms(klass)["alignment"] < affectvlm.terms(instance)["alignment"]


def test_supcon_does_not_push_same_label_pairs_apart():
    """At a class-collapsed, well-separated batch SupCon has nothing left to correct."""
    _, klass = _instance_and_class_configs()
    joint = klass.joint.clone().requires_grad_()
    text = klass.text.clone().requires_grad_()
    inputs = LossInputs(klass.view_embeddings, joint, text, klass.labels, torch.tensor(30.0))
    create("loss", "supcon")(inputs).backward()
    assert joint.grad.abs().max() < 1e-6 and text.grad.abs().max() < 1e-6


def test_cross_entropy_is_the_models_own_classification_loss():
    """CE of exactly the scores the model predicts with (scale * joint . classes), so the
    baseline trains what it is scored on; the class vectors get the gradient."""
    inputs = loss_inputs(REPEATED)
    loss = create("loss", "cross_entropy", {"label_smoothing": 0.1})
    value = loss(inputs)
    expected = F.cross_entropy(inputs.logit_scale * inputs.joint @ inputs.classes.T, inputs.labels, label_smoothing=0.1)
    assert torch.allclose(value, expected)
    value.backward()
    assert inputs.classes.grad is not None and inputs.text.grad is None


def test_cross_entropy_without_class_embeddings_says_what_is_missing():
    inputs = loss_inputs(REPEATED)
    inputs.classes = None
    with pytest.raises(ValueError, match="class embeddings"):
        create("loss", "cross_entropy")(inputs)
