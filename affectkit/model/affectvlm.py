"""AffectVLM: multiview image embedding, learnable view fusion, and a shared text space.

A shared image encoder embeds every rendered view; softmax-normalised learnable view
weights (optionally after self-attention across views) fuse them into one joint
representation; linear heads project image and text features into one L2-normalised
space with a learnable temperature. 4D inputs are pooled over time. Classification is
cosine similarity to per-class text embeddings averaged over each class's prompt
ensemble, so class prompts can change at inference without retraining; with
``classifier="learned"`` the class vectors are parameters instead (a cosine classifier
head, the plain baseline), and the labels are fixed at training time.

A model trained on action units (``action_units`` > 0) scores each AU the same way, by the
joint embedding's similarity to the AU's prompt ensemble (or to a learned AU vector),
through a learned scale and bias into a probability of the AU being present (a sigmoid:
AUs are not exclusive), so AU prompts too can be reworded or added at inference. With an
AU readout (``au_readout``) the joint embedding first passes through a small network of its
own, and no AU gradient reaches the encoder, the projections or the prompts: the AU term
then trains the readout alone, and the emotions learn as without it (they share only the
clipping of the gradient norm, ``train.grad_clip``).

With a neutral reference (:mod:`affectkit.model.neutral_reference`) a scan is read against
its person's neutral scan: its per-view image features less the neutral scan's, placed at
the mean neutral of the face model the model was calibrated on (``neutral_features``).
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Callable, Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from affectkit.errors import AffectkitError
from affectkit.interfaces import ImageEncoder, TextEncoder
from affectkit.recipe import EncoderRef


def apply_freezing(module: nn.Module, ref: EncoderRef) -> None:
    """Freeze a tower when ``ref.freeze``, then unfreeze parameters matching ``ref.trainable``."""
    for name, param in module.named_parameters():
        param.requires_grad = not ref.freeze or any(fnmatch.fnmatch(name, p) for p in ref.trainable)


class Outputs(NamedTuple):
    """What one training forward pass gives: per-view embeddings ``[B, V, D]``, joint
    ``[B, D]``, text ``[B, D]`` (or None), the logit scale, class embeddings ``[K, D]`` (or
    None) and AU logits ``[B, A]`` (or None)."""

    view_embeddings: Tensor
    joint: Tensor
    text: Tensor | None
    scale: Tensor
    classes: Tensor | None
    au_logits: Tensor | None


#: initial scale and bias of the AU scores: sigmoid(10 cos - 2), about 0.12 for an unrelated face
AU_INIT = (math.log(10.0), -2.0)


class AffectVLM(nn.Module):
    def __init__(
        self,
        image_encoder: ImageEncoder,
        text_encoder: TextEncoder,
        num_views: int,
        embed_dim: int = 256,
        fusion: str = "weighted",
        init_temperature: float = 0.07,
        learned_classes: int | None = None,
        action_units: int = 0,
        au_readout: bool = False,
    ) -> None:
        super().__init__()
        self.image_encoder = image_encoder
        self.text_encoder = text_encoder
        self.image_proj = nn.Linear(image_encoder.out_dim, embed_dim)
        self.text_proj = nn.Linear(text_encoder.out_dim, embed_dim)
        self.view_logits = nn.Parameter(torch.zeros(num_views))
        self.view_attention = (
            nn.MultiheadAttention(image_encoder.out_dim, num_heads=_heads(image_encoder.out_dim), batch_first=True)
            if fusion == "attention"
            else None
        )
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1.0 / init_temperature)))
        self.class_vectors = None if learned_classes is None else nn.Parameter(torch.randn(learned_classes, embed_dim) * 0.02)
        self.au_calibration = nn.Parameter(torch.tensor(AU_INIT)) if action_units else None
        self.au_vectors = nn.Parameter(torch.randn(action_units, embed_dim) * 0.02) if action_units and learned_classes is not None else None
        self.au_readout = (
            nn.Sequential(nn.Linear(embed_dim, embed_dim), nn.GELU(), nn.Linear(embed_dim, embed_dim)) if action_units and au_readout else None
        )
        #: ``[V, F]`` mean per-view image features of neutral scans of the training face model,
        #: set by :func:`affectkit.model.neutral_reference.calibrate`; ``None`` until then
        self.register_buffer("neutral_features", None)
        self._text_features: dict[str, Tensor] = {}
        #: views -> the views of the mirrored face, where the model scores with mirror
        #: test-time augmentation (:mod:`affectkit.serve.test_time`; set by load_checkpoint)
        self.test_time: Callable[[Tensor], Tensor] | None = None

    def train(self, mode: bool = True) -> AffectVLM:
        """Frozen towers stay in eval mode: no dropout in cached text features, no drift
        of a frozen encoder's batch-norm statistics."""
        super().train(mode)
        for tower in (self.image_encoder, self.text_encoder):
            if not any(p.requires_grad for p in tower.parameters()):
                tower.eval()
        return self

    def forward(
        self,
        views: Tensor,
        texts: Sequence[str] | None = None,
        class_prompts: Sequence[Sequence[str]] | None = None,
        au_prompts: Sequence[Sequence[str]] | None = None,
        neutral: Tensor | None = None,
        referenced: Tensor | None = None,
    ) -> Outputs:
        """Everything a training step needs in one call, so that DistributedDataParallel sees
        every parameter that gets a gradient (a parameter used outside ``forward`` is marked
        ready twice); ``neutral`` and ``referenced`` as :meth:`encode_views`."""
        view_embeddings, joint = self.encode_views(views, neutral, referenced)
        text = None if texts is None else self.encode_text(texts)
        classes = None if class_prompts is None else self.class_embeddings(class_prompts)
        au_logits = None if au_prompts is None else self.au_logits(joint, self.au_embeddings(au_prompts))
        return Outputs(view_embeddings, joint, text, self.scale(), classes, au_logits)

    # -- images ---------------------------------------------------------------------------

    def view_weights(self) -> Tensor:
        """The learned per-view fusion weights (softmax, sum to 1)."""
        return self.view_logits.softmax(dim=0)

    def view_features(self, views: Tensor) -> Tensor:
        """``[B, T, V, C, H, W]`` -> image features per view ``[B, V, F]`` (pooled over time)."""
        b, t, v = views.shape[:3]
        features = self.image_encoder(views.flatten(0, 2)).reshape(b * t, v, -1)
        if self.view_attention is not None:
            attended, _ = self.view_attention(features, features, features, need_weights=False)
            features = features + attended
        return features.reshape(b, t, v, -1).mean(dim=1)  # pool over time

    def calibrated_neutral(self) -> Tensor:
        """``neutral_features``, or an error saying the model must be calibrated first."""
        if self.neutral_features is None:
            raise AffectkitError("this model is not calibrated to read scans against a neutral scan; calibrate it first: affectkit neutral --help")
        return self.neutral_features

    def encode_views(self, views: Tensor, neutral: Tensor | None = None, referenced: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``[B, T, V, C, H, W]`` -> (per-view embeddings ``[B, V, D]``, joint ``[B, D]``);
        with ``neutral`` (the views ``[B', T', V, C, H, W]`` of each one's person at rest) each
        is read against its neutral scan, or only those the mask ``referenced`` ``[B]`` marks.
        The neutral is placed at ``neutral_features``, in training at this batch's mean neutral."""
        features = self.view_features(views)
        if neutral is not None:
            at_rest = self.view_features(neutral)
            mean = at_rest.detach().mean(0) if self.training else self.calibrated_neutral()
            if referenced is None:
                features = features - at_rest + mean
            else:
                features = features.index_put((referenced,), features[referenced] - at_rest + mean)
        fused = torch.einsum("v,bvf->bf", self.view_weights(), features)
        return F.normalize(self.image_proj(features), dim=-1), F.normalize(self.image_proj(fused), dim=-1)

    # -- text -----------------------------------------------------------------------------

    @property
    def text_trainable(self) -> bool:
        return any(p.requires_grad for p in self.text_encoder.parameters())

    def text_features(self, texts: Sequence[str]) -> Tensor:
        """Raw text-encoder features; memoised per string while the text tower is frozen."""
        if self.text_trainable:
            return self.text_encoder(list(texts))
        missing = [t for t in dict.fromkeys(texts) if t not in self._text_features]
        if missing:
            with torch.no_grad():
                encoded = self.text_encoder(missing)
            self._text_features.update({t: f.detach() for t, f in zip(missing, encoded, strict=True)})
        return torch.stack([self._text_features[t] for t in texts]).to(self.logit_scale.device)

    def remember_text_features(self, texts: Sequence[str], features: Tensor) -> None:
        """Seed the memo of a frozen text tower with features computed before (a checkpoint
        stores its class prompts' features, so loading it need not run the text encoder)."""
        if len(texts) != len(features):
            raise AffectkitError(f"{len(texts)} prompts but {len(features)} text features")
        self._text_features.update({t: f for t, f in zip(texts, features.float(), strict=True)})

    def encode_text(self, texts: Sequence[str]) -> Tensor:
        """``N`` prompts -> ``[N, D]`` normalised embeddings in the joint space."""
        return F.normalize(self.text_proj(self.text_features(texts)), dim=-1)

    @property
    def prompts_can_change(self) -> bool:
        """False for a learned classifier: its classes are the labels it was trained on."""
        return self.class_vectors is None

    def class_embeddings(self, class_prompts: Sequence[Sequence[str]]) -> Tensor:
        """``[K, D]``: each class's prompt embeddings averaged, then re-normalised (or the
        learned class vectors, normalised, for a learned classifier)."""
        return self.ensembles(class_prompts, self.class_vectors, "labels")

    def ensembles(self, prompt_lists: Sequence[Sequence[str]], learned: Tensor | None = None, what: str = "") -> Tensor:
        """``[K, D]``: each list's prompt embeddings averaged, then re-normalised; or, for a
        learned head, its ``learned`` vectors normalised (it scores only the ``what`` it was
        trained on, so their count must match)."""
        if learned is not None:
            if len(prompt_lists) != len(learned):
                raise AffectkitError(
                    f"this model has a learned classifier over its {len(learned)} training {what}; it cannot score "
                    f"{len(prompt_lists)} others (train with model.classifier: prompts for that)"
                )
            return F.normalize(learned, dim=-1)
        embedded = self.encode_text([p for prompts in prompt_lists for p in prompts])
        sizes = [len(prompts) for prompts in prompt_lists]
        return F.normalize(torch.stack([chunk.mean(0) for chunk in embedded.split(sizes)]), dim=-1)

    # -- action units ---------------------------------------------------------------------

    @property
    def knows_action_units(self) -> bool:
        return self.au_calibration is not None

    def au_embeddings(self, au_prompts: Sequence[Sequence[str]]) -> Tensor:
        """``[A, D]``: each AU's prompt ensemble (or its learned vector, for a learned head)."""
        if not self.knows_action_units:
            raise AffectkitError("this model was not trained on action units (train it with an action_units loss term to score them)")
        embeddings = self.ensembles(au_prompts, self.au_vectors, "action units")
        return embeddings.detach() if self.au_readout is not None and self.au_vectors is None else embeddings

    def au_logits(self, joint: Tensor, au_embeddings: Tensor) -> Tensor:
        """``[B, A]`` logits of each AU being present (a sigmoid makes them probabilities)."""
        if self.au_calibration is None:
            raise AffectkitError("this model was not trained on action units (train it with an action_units loss term to score them)")
        if self.au_readout is not None:
            joint = F.normalize(self.au_readout(joint.detach()), dim=-1)
        log_scale, bias = self.au_calibration.unbind()
        return log_scale.clamp(max=math.log(100.0)).exp() * joint @ au_embeddings.T + bias

    def scale(self) -> Tensor:
        return self.logit_scale.clamp(max=math.log(100.0)).exp()

    def logits(self, joint: Tensor, class_embeddings: Tensor) -> Tensor:
        return self.scale() * joint @ class_embeddings.T

    def classify(self, views: Tensor, class_embeddings: Tensor, neutral: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``[B, T, V, C, H, W]`` views -> (joint ``[B, D]``, class logits ``[B, K]``): the one
        scoring path of validation in training, of evaluation and of prediction; ``neutral``:
        as :meth:`encode_views`. With test-time augmentation (not while training) the mirrored
        views are scored too: the logits are then the log of the two probabilities' mean, the
        joint their embeddings' mean."""
        _, joint = self.encode_views(views, neutral)
        if self.test_time is None or self.training:
            return joint, self.logits(joint, class_embeddings)
        _, mirrored = self.encode_views(self.test_time(views), None if neutral is None else self.test_time(neutral))
        probabilities = (self.logits(joint, class_embeddings).softmax(-1) + self.logits(mirrored, class_embeddings).softmax(-1)) / 2
        return F.normalize(joint + mirrored, dim=-1), probabilities.log()


def _heads(width: int) -> int:
    return next(h for h in (8, 4, 2, 1) if width % h == 0)
