"""Built-in training losses: ``affectvlm``, ``clip``, ``siglip``, ``supcon``, ``cross_entropy``
and ``action_units``.

Every loss reads one :class:`~affectkit.interfaces.LossInputs` (L2-normalised embeddings,
labels and the model's exponentiated ``logit_scale``) and returns a scalar.

The mathematics of each loss lives in a module-level function that takes plain tensors;
each module's ``forward`` picks its tensors from the inputs. In multi-process training the
core objective (:mod:`affectkit.model.objective`) has already gathered every worker's batch, so
the losses run unchanged on the whole batch.

``cross_entropy`` is the plain classifier objective, the baseline every other loss is
measured against. Only ``affectvlm``, ``supcon`` and ``cross_entropy`` know about labels by default: ``clip`` and ``siglip``
treat every other sample of a batch as a negative, including samples of the same emotion
(with 6 or 7 classes, most of a batch), which is what their parity with open_clip requires.

``action_units`` is the multi-label AU term: each scan's AU logits (similarity to the AU
prompts, :meth:`affectkit.model.affectvlm.AffectVLM.au_logits`) against its AU strengths with binary
cross-entropy, AUs its label does not code left out.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field, model_validator
from torch import Tensor, nn

from affectkit import hookimpl
from affectkit.interfaces import Loss, LossInputs
from affectkit.interfaces import Options as BaseOptions

__all__ = [
    "AffectVLMLoss",
    "ClipLoss",
    "SigLipLoss",
    "SupConLoss",
    "CrossEntropyLoss",
    "ActionUnitLoss",
    "action_unit_bce",
    "masked_mean",
    "soft_target_contrastive",
    "multiview_contrastive",
    "multiview_triplet",
    "label_aware_alignment",
    "clip_loss",
    "siglip_loss",
    "supcon_loss",
]


# ---------------------------------------------------------------------------------------
# Shared pieces
# ---------------------------------------------------------------------------------------


def masked_mean(values: Tensor, mask: Tensor) -> Tensor:
    """Mean of ``values`` where ``mask`` is true; 0 (still attached to the graph) where
    nothing is selected, so an empty set of pairs gives neither NaN nor a missing gradient."""
    mask = mask.to(values.dtype)
    return (values * mask).sum() / mask.sum().clamp(min=1.0)


def soft_target_contrastive(logits: Tensor, positives: Tensor, valid: Tensor | None = None) -> Tensor:
    """Per-row cross-entropy against a uniform target over each row's positives.

    ``loss_i = -(1/|P_i|) sum_{j in P_i} log( exp(l_ij) / sum_{k in V_i} exp(l_ik) )``
    where ``P_i`` is row ``i`` of ``positives`` and ``V_i`` of ``valid`` (all columns when
    ``None``). This is SupCon's L_out (Khosla et al. 2020) and UniCL's target; with one
    positive per row it is the ordinary InfoNCE cross-entropy. Returns ``[rows]`` losses
    and a ``[rows]`` mask of rows that have a positive (rows without one are 0).
    """
    if valid is not None:
        positives = positives & valid
        logits = logits.masked_fill(~valid, torch.finfo(logits.dtype).min)
    log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    count = positives.sum(dim=1)
    # torch.where (not a product) so that masked -inf/min entries never meet a 0 weight.
    summed = torch.where(positives, log_prob, torch.zeros_like(log_prob)).sum(dim=1)
    return -summed / count.clamp(min=1).to(log_prob.dtype), count > 0


# ---------------------------------------------------------------------------------------
# affectvlm: the gradient-friendly multiview loss
# ---------------------------------------------------------------------------------------


def multiview_contrastive(embeddings: Tensor, labels: Tensor, margin: Tensor) -> Tensor:
    """``L_mc`` over every ordered pair ``n != m`` of ``embeddings`` ``[N, D]`` (unit norm).

    ``mean_{y_n = y_m} (1 - s_nm) + mean_{y_n != y_m} max(0, s_nm - margin)``, ``s`` the
    cosine similarity; each mean is 0 when its set of pairs is empty.
    """
    sim = embeddings @ embeddings.T
    same = labels[:, None] == labels[None, :]
    not_self = ~torch.eye(len(labels), dtype=torch.bool, device=labels.device)
    positive = masked_mean(1.0 - sim, same & not_self)
    negative = masked_mean(F.relu(sim - margin), ~same)
    return positive + negative


def multiview_triplet(embeddings: Tensor, labels: Tensor, margin: Tensor, mining: str = "hard") -> Tensor:
    """``L_mt`` with squared euclidean distances ``d_nm = |z_n - z_m|^2 = 2 - 2 s_nm``.

    ``mining="hard"`` (batch-hard, Hermans et al. 2017): for every anchor that has both a
    positive and a negative, ``max(0, max_pos d - min_neg d + margin)``, averaged over those
    anchors; O(N^2) memory. ``mining="all"``: ``max(0, d_ap - d_an + margin)`` averaged
    over every valid (anchor, positive, negative) triplet; O(N^3) memory.
    """
    sim = embeddings @ embeddings.T
    dist = 2.0 - 2.0 * sim
    same = labels[:, None] == labels[None, :]
    not_self = ~torch.eye(len(labels), dtype=torch.bool, device=labels.device)
    positive = same & not_self
    negative = ~same
    if mining == "hard":
        # Finite sentinels (distances lie in [0, 4]) keep NaN out of the backward pass.
        hardest_positive = dist.masked_fill(~positive, -1.0).amax(dim=1)
        hardest_negative = dist.masked_fill(~negative, 5.0).amin(dim=1)
        anchors = positive.any(dim=1) & negative.any(dim=1)
        return masked_mean(F.relu(hardest_positive - hardest_negative + margin), anchors)
    if mining == "all":
        triplets = positive[:, :, None] & negative[:, None, :]
        return masked_mean(F.relu(dist[:, :, None] - dist[:, None, :] + margin), triplets)
    raise ValueError(f"unknown triplet mining {mining!r}; use 'hard' or 'all'")


def label_aware_alignment(image: Tensor, text: Tensor, labels: Tensor, logit_scale: Tensor) -> Tensor:
    """Image-text InfoNCE in both directions where every same-label text is a positive.

    ``L = 1/2 [ mean_i CE(t * x_i . T, u_i) + mean_j CE(t * t_j . X, u_j) ]`` with ``u_i``
    uniform over ``{j : y_j = y_i}``. With all-distinct labels this equals :func:`clip_loss`.
    """
    same = labels[:, None] == labels[None, :]
    per_image, _ = soft_target_contrastive(logit_scale * image @ text.T, same)
    per_text, _ = soft_target_contrastive(logit_scale * text @ image.T, same.T)
    return (per_image.mean() + per_text.mean()) / 2


class AffectVLMLoss(Loss):
    """The AffectVLM gradient-friendly multiview loss plus label-aware image-text alignment.

    Behzad & Zhao, "Contrastive Language-Image Learning with Augmented Textual Prompts for
    3D/4D FER Using Vision-Language Model" (AffectVLM), arXiv:2504.19739. The paper gives
    ``L_AffectVLM = L_mc + L_mt`` with ``L_mc = sum_{same} 1 - Theta(Z_i, Z_j) +
    sum_{different} max(0, Theta(Z_k, Z_l) - alpha)`` and ``L_mt = max(0, |Z_a - Z_p|^2 -
    |Z_a - Z_n|^2 + alpha)``, ``Theta`` a similarity and ``alpha`` a learnable margin.
    Implemented exactly as follows; lines marked [ours] are our reading where the paper
    does not pin the detail down.

    Embeddings ``Z = {z_1..z_N}``: the ``B*V`` view embeddings of the batch, plus the ``B``
    joint embeddings when ``include_joint`` [ours; default off, as in the paper's Z_i =
    f(V_i)], each with its sample's emotion label ``y_n``. ``s_nm = z_n . z_m`` (cosine,
    the embeddings are unit vectors) [ours: Theta = cosine], ``d_nm = |z_n - z_m|^2 =
    2 - 2 s_nm``. ``P = {(n, m) : n != m, y_n = y_m}`` (same emotion, across views and
    samples, including the other views of the same sample), ``Q = {(n, m) : y_n != y_m}``.

        alpha  = alpha_min + (alpha_max - alpha_min) * sigmoid(rho)      rho learnable [ours]
        L_mc   = mean_{(n,m) in P} (1 - s_nm) + mean_{(n,m) in Q} max(0, s_nm - alpha)
                 [ours: means over each set of pairs instead of sums, so the scale does not
                 grow with the batch; a mean over an empty set is 0]
        L_mt   = mean_{n in A} max(0, max_{m:(n,m) in P} d_nm - min_{m:(n,m) in Q} d_nm + alpha)
                 A = anchors with at least one positive and one negative
                 [ours: batch-hard mining (Hermans et al. 2017); triplet_mining="all" instead
                 averages max(0, d_nm - d_nk + alpha) over every (n,m) in P, (n,k) in Q]
        L_align = 1/2 [ mean_i -(1/|P_i|) sum_{j in P_i} log softmax_j(tau x_i . t_j)
                      + mean_j -(1/|P_j|) sum_{i in P_j} log softmax_i(tau t_j . x_i) ]
                 x = joint embeddings, t = text embeddings, tau = logit_scale,
                 P_i = {j : y_j = y_i}  [ours: the paper pairs images with prompts through a
                 CLIP-style objective; every same-label prompt counts as a positive so that
                 same-emotion prompts in a batch are not false negatives]
        L      = w_mc L_mc + w_mt L_mt + w_align L_align

    The same ``alpha`` serves both terms, as in the paper. It is learned by this loss:
    ``L_mc`` pulls it up (a larger margin forgives more negatives) and ``L_mt`` pulls it
    down (a smaller margin asks less of the triplets); the sigmoid keeps it strictly inside
    ``(alpha_min, alpha_max)`` whatever the balance [ours]. With ``learn_margin=False`` it
    stays at ``margin``.
    """

    class Options(BaseOptions):
        margin: float = Field(0.3, description="initial value of the margin alpha")
        margin_min: float = Field(0.0, ge=-1.0, le=2.0, description="lower bound of alpha")
        margin_max: float = Field(1.0, ge=-1.0, le=2.0, description="upper bound of alpha")
        learn_margin: bool = True
        include_joint: bool = Field(False, description="add the joint embeddings to the views in L_mc and L_mt")
        triplet_mining: Literal["hard", "all"] = "hard"
        contrastive_weight: float = Field(1.0, ge=0.0)
        triplet_weight: float = Field(1.0, ge=0.0)
        alignment_weight: float = Field(1.0, ge=0.0)

        @model_validator(mode="after")
        def _margin_inside_bounds(self) -> AffectVLMLoss.Options:
            if not self.margin_min < self.margin < self.margin_max:
                raise ValueError(
                    f"margin must lie strictly between margin_min and margin_max "
                    f"(got {self.margin_min} < {self.margin} < {self.margin_max})"
                )
            return self

    options: Options

    def __init__(self, options: Options) -> None:
        super().__init__(options)
        fraction = (options.margin - options.margin_min) / (options.margin_max - options.margin_min)
        raw = torch.tensor(math.log(fraction / (1.0 - fraction)))
        if options.learn_margin:
            self.margin_logit = nn.Parameter(raw)
        else:
            self.register_buffer("margin_logit", raw)

    @property
    def margin(self) -> Tensor:
        """The current margin alpha (a differentiable function of ``margin_logit``)."""
        low, high = self.options.margin_min, self.options.margin_max
        return low + (high - low) * torch.sigmoid(self.margin_logit)

    def diagnostics(self) -> dict[str, float]:
        return {"margin": self.margin.item()}

    def terms(self, inputs: LossInputs) -> dict[str, Tensor]:
        """The unweighted terms ``contrastive``, ``triplet``, ``alignment`` and ``margin``."""
        batch, views, dim = inputs.view_embeddings.shape
        embeddings = inputs.view_embeddings.reshape(batch * views, dim)
        labels = inputs.labels.repeat_interleave(views)
        if self.options.include_joint:
            embeddings = torch.cat([embeddings, inputs.joint])
            labels = torch.cat([labels, inputs.labels])
        margin = self.margin
        return {
            "contrastive": multiview_contrastive(embeddings, labels, margin),
            "triplet": multiview_triplet(embeddings, labels, margin, self.options.triplet_mining),
            "alignment": label_aware_alignment(inputs.joint, inputs.text, inputs.labels, inputs.logit_scale),
            "margin": margin,
        }

    def forward(self, inputs: LossInputs) -> Tensor:
        terms = self.terms(inputs)
        o = self.options
        return (
            o.contrastive_weight * terms["contrastive"]
            + o.triplet_weight * terms["triplet"]
            + o.alignment_weight * terms["alignment"]
        )


# ---------------------------------------------------------------------------------------
# clip and siglip: parity with open_clip
# ---------------------------------------------------------------------------------------


def clip_loss(image: Tensor, text: Tensor, logit_scale: Tensor) -> Tensor:
    """Symmetric InfoNCE, computed as open_clip's ``ClipLoss`` computes it (single process)."""
    logits_per_image = logit_scale * image @ text.T
    logits_per_text = logit_scale * text @ image.T
    targets = torch.arange(image.shape[0], device=image.device, dtype=torch.long)
    return (F.cross_entropy(logits_per_image, targets) + F.cross_entropy(logits_per_text, targets)) / 2


class ClipLoss(Loss):
    """CLIP's symmetric InfoNCE between joint image and text embeddings (open_clip parity).

    ``L = 1/2 [ CE(tau X T^T, I) + CE(tau T X^T, I) ]``: sample ``i``'s own text is its only
    positive, so other samples of the same emotion count as negatives. Numerically equal to
    ``open_clip.loss.ClipLoss()(joint, text, logit_scale)``.
    """

    class Options(BaseOptions):
        pass

    def forward(self, inputs: LossInputs) -> Tensor:
        return clip_loss(inputs.joint, inputs.text, inputs.logit_scale)


def siglip_loss(
    image: Tensor, text: Tensor, logit_scale: Tensor, logit_bias: Tensor, labels: Tensor | None = None
) -> Tensor:
    """Pairwise sigmoid loss as open_clip's ``SigLipLoss`` computes it (single process).

    ``-sum_ij log sigmoid(z_ij (tau x_i . t_j + b)) / B`` with ``z_ij = +1`` on the diagonal
    and -1 elsewhere; given ``labels``, ``z_ij = +1`` wherever ``y_i = y_j``.
    """
    logits = logit_scale * image @ text.T + logit_bias
    if labels is None:
        n = image.shape[0]
        # open_clip's construction, kept literally for bit-level parity.
        eye = torch.eye(n, device=image.device, dtype=image.dtype)
        signs = 2 * eye - torch.ones((n, n), device=image.device, dtype=image.dtype)
    else:
        signs = 2 * (labels[:, None] == labels[None, :]).to(image.dtype) - 1
    return -F.logsigmoid(signs * logits).sum() / image.shape[0]


class SigLipLoss(Loss):
    """SigLIP's pairwise sigmoid loss with a learnable bias (open_clip parity).

    Uses ``inputs.logit_scale`` and owns ``logit_bias`` (initialised to ``logit_bias``,
    -10 as in SigLIP). With ``label_aware`` every same-label pair is a positive instead of
    only the diagonal; off (the default) it equals
    ``open_clip.loss.SigLipLoss()(joint, text, logit_scale, logit_bias)``.
    """

    class Options(BaseOptions):
        logit_bias: float = Field(-10.0, description="initial value of the learnable bias")
        learn_bias: bool = True
        label_aware: bool = False

    options: Options

    def __init__(self, options: Options) -> None:
        super().__init__(options)
        bias = torch.tensor(float(options.logit_bias))
        if options.learn_bias:
            self.logit_bias = nn.Parameter(bias)
        else:
            self.register_buffer("logit_bias", bias)

    def forward(self, inputs: LossInputs) -> Tensor:
        labels = inputs.labels if self.options.label_aware else None
        return siglip_loss(inputs.joint, inputs.text, inputs.logit_scale, self.logit_bias, labels)


# ---------------------------------------------------------------------------------------
# supcon: label-aware multi-positive contrastive
# ---------------------------------------------------------------------------------------


def supcon_loss(features: Tensor, labels: Tensor, scale: Tensor | float) -> Tensor:
    """Khosla et al.'s SupCon (L_out) over one set of unit ``features`` ``[N, D]``.

    ``L = mean_{i in A} -(1/|P_i|) sum_{p in P_i} log( exp(s z_i.z_p) / sum_{a != i} exp(s z_i.z_a) )``
    with ``P_i = {p != i : y_p = y_i}`` and ``A`` the anchors with a positive (0 if none).
    """
    not_self = ~torch.eye(len(labels), dtype=torch.bool, device=labels.device)
    same = labels[:, None] == labels[None, :]
    per_anchor, has_positive = soft_target_contrastive(scale * features @ features.T, same, valid=not_self)
    return masked_mean(per_anchor, has_positive)


class SupConLoss(Loss):
    """Supervised contrastive loss (SupCon) over joint image and text embeddings.

    Khosla et al., "Supervised Contrastive Learning", NeurIPS 2020, L_out: the anchors are
    the ``B`` joint embeddings and the ``B`` text embeddings (plus the ``B*V`` view
    embeddings with ``include_views``), pooled into one set; every other member with the
    same emotion label is a positive, whatever its modality, and every member other than
    the anchor itself is in the denominator:

        L = mean_i -(1/|P_i|) sum_{p in P_i} log( exp(s z_i.z_p) / sum_{a != i} exp(s z_i.z_a) )

    ``s`` is ``1 / temperature`` when ``temperature`` is set, else the model's
    ``logit_scale``. Unlike ``clip``, same-emotion samples are never pushed apart. Each
    sample's own text is always a positive of its joint embedding, so every anchor has one.
    """

    class Options(BaseOptions):
        temperature: float | None = Field(
            None, gt=0.0, description="fixed temperature; None uses the model's logit_scale"
        )
        include_views: bool = Field(False, description="add the view embeddings to the pooled set")

    options: Options

    def forward(self, inputs: LossInputs) -> Tensor:
        features = [inputs.joint, inputs.text]
        labels = [inputs.labels, inputs.labels]
        if self.options.include_views:
            batch, views, dim = inputs.view_embeddings.shape
            features.append(inputs.view_embeddings.reshape(batch * views, dim))
            labels.append(inputs.labels.repeat_interleave(views))
        scale = inputs.logit_scale if self.options.temperature is None else 1.0 / self.options.temperature
        return supcon_loss(torch.cat(features), torch.cat(labels), scale)


# ---------------------------------------------------------------------------------------
# cross_entropy: the plain classifier
# ---------------------------------------------------------------------------------------


class CrossEntropyLoss(Loss):
    """Cross-entropy of the model's class scores: ``CE(tau x_i . C^T, y_i)``.

    ``x`` the joint embeddings, ``C`` the model's class embeddings (``inputs.classes``),
    ``tau`` its logit scale: exactly the scores the model predicts with. With
    ``model.classifier: learned`` ``C`` is a learned head and no text is involved, which
    makes it the plain-classifier baseline (``recipes/baseline-cnn.yaml``); with prompts it
    trains the image tower against the encoded class prompts.
    """

    class Options(BaseOptions):
        label_smoothing: float = Field(0.0, ge=0.0, lt=1.0, description="share of the target spread over all classes")

    options: Options

    def forward(self, inputs: LossInputs) -> Tensor:
        if inputs.classes is None:
            raise ValueError("the cross_entropy loss needs the model's class embeddings (LossInputs.classes)")
        logits = inputs.logit_scale * inputs.joint @ inputs.classes.T
        return F.cross_entropy(logits, inputs.labels, label_smoothing=self.options.label_smoothing)


def action_unit_bce(logits: Tensor, targets: Tensor, balanced: bool = True) -> Tensor:
    """Binary cross-entropy of AU ``logits`` ``[B, A]`` against soft ``targets`` ``[B, A]``
    (strengths 0..1, NaN: not coded, left out). ``balanced``: within each AU, present and
    absent weigh the same in total, so a rare AU is not learnt as always absent. 0, still
    attached to the graph, where nothing is coded."""
    coded = ~torch.isnan(targets)
    target = targets.nan_to_num(0.0)
    losses = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    weights = coded.to(logits.dtype)
    if balanced:
        counts = weights.sum(0).clamp(min=1.0)
        present = ((target * weights).sum(0) / counts).clamp(0.05, 0.95)  # [A]: the share present
        weights = weights * (target * 0.5 / present + (1 - target) * 0.5 / (1 - present))
    return (losses * weights).sum() / weights.sum().clamp(min=1e-12) if coded.any() else logits.sum() * 0.0


class ActionUnitLoss(Loss):
    """Action units as a multi-label term: image-to-AU-prompt similarity with BCE (or a learned
    AU head's scores, with ``model.classifier: learned``); unlabelled AUs are masked."""

    uses_action_units = True

    class Options(BaseOptions):
        balanced: bool = Field(True, description="weigh present and absent equally within each AU (rare AUs are then learnt too)")

    def forward(self, inputs: LossInputs) -> Tensor:
        if inputs.au_logits is None or inputs.au_targets is None:  # data without AU labels: nothing to learn
            return inputs.joint.sum() * 0.0
        return action_unit_bce(inputs.au_logits, inputs.au_targets, self.options.balanced)


@hookimpl
def register_losses(register) -> None:
    register("affectvlm", AffectVLMLoss)
    register("clip", ClipLoss)
    register("siglip", SigLipLoss)
    register("supcon", SupConLoss)
    register("cross_entropy", CrossEntropyLoss)
    register("action_units", ActionUnitLoss)
