"""Feature-style perturbation while training: the channel statistics of a convolutional
backbone's inner stages made to vary, so that the encoder leans less on them.

Another face model or scanner shifts exactly those statistics: re-estimating the batch
normalisation statistics on its scans (``affectkit adapt``) recovers much of what is lost
on it. Two published ways to show a backbone such shifts while it trains, each a forward
hook after every feature stage but the stem and the last (the placement both papers use):

* ``mix``, MixStyle (Zhou et al., "Domain generalization with MixStyle", ICLR 2021): every
  image's channel means and standard deviations become a Beta(0.1, 0.1)-weighted mix of
  its own and another image's of the batch;
* ``noise``, DSU (Li et al., "Uncertainty modeling for out-of-distribution generalization",
  ICLR 2022): they are drawn from a Gaussian around their own, as wide as they vary across
  the batch.

Each stage is perturbed with a given probability per training batch; in eval mode the hooks
do nothing, so inference and exported models are untouched.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import Tensor, nn

from affectkit.errors import PluginError

__all__ = ["FeatureStyle", "perturb_feature_styles"]

FeatureStyle = Literal["off", "mix", "noise"]

#: MixStyle's Beta(alpha, alpha) mixing weights: mostly close to 0 or 1 (the paper's 0.1)
MIX_ALPHA = 0.1
EPS = 1e-6


class _StylePerturbation:
    """The forward hook: with probability ``p`` while training, the features are
    re-standardised to perturbed per-image channel statistics."""

    def __init__(self, style: FeatureStyle, p: float) -> None:
        self.style, self.p = style, p
        self.mixing = torch.distributions.Beta(MIX_ALPHA, MIX_ALPHA)

    def __call__(self, module: nn.Module, inputs: Any, features: Tensor) -> Tensor | None:
        if not module.training or features.shape[0] < 2 or torch.rand(()).item() >= self.p:
            return None
        mean = features.mean(dim=(2, 3), keepdim=True).detach()
        std = (features.var(dim=(2, 3), keepdim=True) + EPS).sqrt().detach()
        if self.style == "mix":
            weight = self.mixing.sample((features.shape[0], 1, 1, 1)).to(features)
            other = torch.randperm(features.shape[0], device=features.device)
            new_mean = weight * mean + (1 - weight) * mean[other]
            new_std = weight * std + (1 - weight) * std[other]
        else:
            new_mean = mean + torch.randn_like(mean) * (mean.var(dim=0, keepdim=True) + EPS).sqrt()
            new_std = std + torch.randn_like(std) * (std.var(dim=0, keepdim=True) + EPS).sqrt()
        return (features - mean) / std * new_std + new_mean


def perturb_feature_styles(model: nn.Module, style: FeatureStyle, p: float, in_channels: int, input_size: tuple[int, int] | None) -> None:
    """Hook ``style`` into a timm backbone's inner feature stages, once a trial forward pass
    (eval mode, ``input_size`` or 64 px) shows that they are feature maps."""
    name = (getattr(model, "pretrained_cfg", None) or {}).get("architecture", type(model).__name__)
    stages = [info["module"] for info in getattr(model, "feature_info", [])][1:-1]
    modules = dict(model.named_modules())
    dims: list[int] = []
    probes = [modules[stage].register_forward_hook(lambda module, inputs, out: dims.append(out.ndim)) for stage in stages]
    was_training = model.training
    with torch.no_grad():
        model.eval()(torch.zeros(1, in_channels, *(input_size or (64, 64))))
    model.train(was_training)
    for probe in probes:
        probe.remove()
    if not stages or set(dims) != {4}:
        found = "no inner feature stages" if not stages else "token sequences, not feature maps"
        raise PluginError(f"style {style!r} needs a convolutional timm backbone; {name!r} has {found}: set style: off, or choose e.g. resnet10t")
    hook = _StylePerturbation(style, p)
    for stage in stages:
        modules[stage].register_forward_hook(hook)
