"""Weight averaging over the end of training (``train.weight_averaging``): the running mean of
the trainable weights over every optimisation step of the last share of training, which the
run validates, checkpoints and exports, its batch-norm statistics estimated again on the
training scans (stochastic weight averaging, Izmailov et al., UAI 2018, averaged every step
as SWAD, Cha et al., NeurIPS 2021, does). The mean of the weights along the end of training
lies in a flatter region of the loss than its last step, and flat minima are what carried
further to unseen domains in those papers; docs/benchmarks.md says what it does here."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
import torch.distributed as dist
from torch import Tensor, nn

#: keys of the average in a checkpoint's training state
MEAN, TRAINED = "average.mean.", "average.trained."


class WeightAverage:
    """The running mean of a model's trainable weights from optimisation step ``start`` on."""

    def __init__(self, start: int) -> None:
        self.start = start
        self.steps = 0
        self.mean: dict[str, Tensor] = {}

    def update(self, model: nn.Module, step: int) -> None:
        """Take the weights after optimisation step ``step`` (counted from 1) into the mean."""
        if step < self.start:
            return
        self.steps += 1
        for name, param in trainable(model):
            if name in self.mean:
                self.mean[name].lerp_(param.detach(), 1.0 / self.steps)
            else:
                self.mean[name] = param.detach().clone()

    @torch.no_grad()
    def swap_in(self, model: nn.Module, batches: Iterable[Tensor], forward: Callable[[Tensor], object]) -> dict[str, Tensor]:
        """Put the mean into ``model`` and estimate its batch-norm statistics again by running
        ``forward`` on ``batches`` (averaged over every worker); returns the trained weights
        and statistics it replaced, for :func:`restore`."""
        named_norms = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
        norms = [m for _, m in named_norms]
        params = dict(model.named_parameters())
        replaced = {name: params[name].detach().clone() for name in self.mean}
        replaced.update({f"{n}.{b}": value.clone() for n, m in named_norms for b, value in m.named_buffers(recurse=False)})
        for name, value in self.mean.items():
            params[name].copy_(value)
        momenta = [m.momentum for m in norms]
        was_training = model.training
        for norm in norms:
            norm.reset_running_stats()
            norm.momentum = None  # a cumulative mean over the batches
        model.train()
        for views in batches:
            forward(views)
        for norm, momentum in zip(norms, momenta, strict=True):
            norm.momentum = momentum
            if dist.is_available() and dist.is_initialized():
                for buffer in (norm.running_mean, norm.running_var):
                    dist.all_reduce(buffer)
                    buffer /= dist.get_world_size()
        model.train(was_training)
        return replaced

    def state(self) -> dict[str, Tensor]:
        """The mean and its step count as tensors, for a checkpoint's training state."""
        return {**{MEAN + name: value.cpu() for name, value in self.mean.items()}, MEAN + "steps": torch.tensor(self.steps)}

    def load(self, tensors: dict[str, Tensor], device: torch.device) -> None:
        """Continue from :meth:`state` (a resumed run)."""
        self.steps = int(tensors.get(MEAN + "steps", torch.tensor(0)))
        self.mean = {k[len(MEAN) :]: v.to(device) for k, v in tensors.items() if k.startswith(MEAN) and k != MEAN + "steps"}


def restore(model: nn.Module, replaced: dict[str, Tensor]) -> None:
    """Put back the trained weights and statistics :meth:`WeightAverage.swap_in` replaced."""
    model.load_state_dict(replaced, strict=False)


def trainable(model: nn.Module) -> Iterable[tuple[str, nn.Parameter]]:
    """The parameters training changes (a frozen text encoder's are left out)."""
    return ((name, param) for name, param in model.named_parameters() if param.requires_grad)
