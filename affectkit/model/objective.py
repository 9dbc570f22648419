"""The training objective: the recipe's weighted loss terms, on the whole batch.

:class:`Objective` gathers every worker's batch once (:func:`gather`) before any loss term
runs, so a loss plugin always computes on the global batch of a distributed run without
doing anything itself: one worker with batch 2B and two with batch B give the same loss
and gradients.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn

from affectkit.interfaces import LossInputs
from affectkit.recipe import LossTerm
from affectkit.registry import registry

#: torch 2.14 renamed all_gather_into_tensor (and deprecated the old name); older torch has only that
ALL_GATHER = getattr(dist, "all_gather_single", None) or dist.all_gather_into_tensor


class GatherWithGrad(torch.autograd.Function):
    """All ranks' ``[B, ...]`` tensors as one ``[world * B, ...]`` in rank order; backward
    sums every rank's gradient and hands each rank its own slice. Written here because
    ``torch.distributed.nn.functional.all_gather`` is deprecated; all-reduce in backward
    works on every backend (gloo has no reduce-scatter)."""

    @staticmethod
    def forward(ctx: Any, tensor: Tensor) -> Tensor:
        world = dist.get_world_size()
        gathered = tensor.new_empty((world * tensor.shape[0], *tensor.shape[1:]))
        ALL_GATHER(gathered, tensor.contiguous())
        ctx.rank, ctx.size = dist.get_rank(), tensor.shape[0]
        return gathered

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:
        grad = grad.clone(memory_format=torch.contiguous_format)  # reduced in place: not autograd's own tensor
        dist.all_reduce(grad)
        return grad[ctx.rank * ctx.size : (ctx.rank + 1) * ctx.size]


def gather(inputs: LossInputs) -> LossInputs:
    """The batch every loss term computes on: every worker's samples, in rank order.

    Single process: ``inputs`` unchanged. With several processes (``torch.distributed``
    initialised, equal batch sizes per rank, as ``drop_last`` gives), every embedding is
    all-gathered by :class:`GatherWithGrad`, whose backward sums each rank's gradient into
    the slice that rank owns (open_clip's ``gather_features`` with ``gather_with_grad``). Every rank then computes the same full-batch loss, and after
    DistributedDataParallel averages the model's gradients they equal those of one process
    on the whole batch; parameters a loss owns (a margin, a bias) get the same full-batch
    gradient on every rank, so they stay in step without being wrapped.
    """
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return inputs
    labels = [torch.empty_like(inputs.labels) for _ in range(dist.get_world_size())]
    dist.all_gather(labels, inputs.labels.contiguous())
    return LossInputs(
        view_embeddings=GatherWithGrad.apply(inputs.view_embeddings),
        joint=GatherWithGrad.apply(inputs.joint),
        text=GatherWithGrad.apply(inputs.text),
        labels=torch.cat(labels),
        logit_scale=inputs.logit_scale,
        classes=inputs.classes,
        au_logits=None if inputs.au_logits is None else GatherWithGrad.apply(inputs.au_logits),
        au_targets=None if inputs.au_targets is None else GatherWithGrad.apply(inputs.au_targets),
    )


class Objective(nn.Module):
    """A weighted sum of registered loss terms (losses may own parameters, e.g. a margin)."""

    def __init__(self, terms: Sequence[LossTerm]) -> None:
        super().__init__()
        reg = registry()
        self.terms = nn.ModuleList(reg.create("loss", t.name, t.options, where=f"loss.terms.{i}") for i, t in enumerate(terms))
        self.names = [t.name for t in terms]
        self.weights = [t.weight for t in terms]

    @property
    def uses_action_units(self) -> bool:
        """Whether a term learns action units (:attr:`affectkit.interfaces.Loss.uses_action_units`)."""
        return any(term.uses_action_units for term in self.terms)

    def diagnostics(self) -> dict[str, float]:
        """Each term's own scalars (e.g. a learned margin), as ``name.key``."""
        return {f"{name}.{key}": value for name, term in zip(self.names, self.terms, strict=True) for key, value in term.diagnostics().items()}

    def forward(self, inputs: LossInputs) -> tuple[Tensor, dict[str, float]]:
        """(the weighted total, each term's value as ``loss_<name>``) on the gathered batch."""
        inputs = gather(inputs)
        parts = {name: term(inputs) for name, term in zip(self.names, self.terms, strict=True)}
        total = sum(w * v for w, v in zip(self.weights, parts.values(), strict=True))
        return total, {f"loss_{k}": v.item() for k, v in parts.items()}
