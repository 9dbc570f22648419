"""Adapting a trained model to another scanner or face model without labels.

A model's image encoder normalises its features with statistics (batch normalisation's
running means and variances) gathered on its training scans. Scans of another face model
or scanner differ in low-level ways (mesh density, smoothness, the shape of a resting
face) that shift those statistics, and the shift alone costs a facekit-trained model much
of its accuracy on faces of another generator (docs/benchmarks.md, *Adapting to a new
face model*). Re-estimating them on unlabelled scans of the new source (AdaBN, Li et al.
2016) changes no learnt weight, needs no label and no training run, and is undone by
keeping the original model. It needs a population: a single scan's own statistics are
noise, so :data:`MIN_SCANS` at least are asked for. Writing an adapted model folder from
mesh files or a dataset is :mod:`affectkit.serve.adapted_model`.
"""

from __future__ import annotations

import torch
from torch import Tensor

from affectkit.errors import AffectkitError
from affectkit.model.affectvlm import AffectVLM

#: fewer scans than this give statistics too noisy to replace the training ones
MIN_SCANS = 20
#: the provenance key of an adapted model: what it was adapted on
ADAPTATION = "adaptation"


def normalisation_layers(model: AffectVLM) -> list[torch.nn.modules.batchnorm._BatchNorm]:
    """The image encoder's batch normalisation layers (those that keep running statistics)."""
    return [
        m for m in model.image_encoder.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and m.track_running_stats
    ]


@torch.no_grad()
def adapt_normalisation(model: AffectVLM, views: Tensor, source: str = "the scans", batch_size: int = 32) -> int:
    """Replace the image encoder's normalisation statistics by those of ``views``
    (``[N, T, V, C, H, W]``, every view of every scan counted alike; ``source`` names them
    in errors); returns how many layers changed. Every learnt weight stays as it was; the
    model is left in eval mode."""
    if len(views) < MIN_SCANS:
        raise AffectkitError(
            f"adapt: {source} gives {len(views)} scans; statistics of fewer than {MIN_SCANS} are noise, not the new "
            "source's: give more scans of it (several people, the expressions you expect; no labels needed)"
        )
    layers = normalisation_layers(model)
    if not layers:
        raise AffectkitError(
            f"this model's image encoder ({type(model.image_encoder).__name__}) has no batch normalisation layers: "
            "nothing to adapt without labels"
        )
    momenta = [layer.momentum for layer in layers]
    for layer in layers:
        layer.reset_running_stats()
        layer.momentum = None  # a cumulative average over every batch, not a moving one
    model.eval()
    for layer in layers:
        layer.train()
    device = model.logit_scale.device
    try:
        for start in range(0, len(views), batch_size):
            model.encode_views(views[start : start + batch_size].float().to(device))
    finally:
        for layer, momentum in zip(layers, momenta, strict=True):
            layer.momentum = momentum
        model.eval()
    return len(layers)
