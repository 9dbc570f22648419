"""Distributed contrastive learning: 2 processes with batch B give the loss and gradients
of 1 process with batch 2B, for every registered loss (the action-unit term too, with AU
scores and partly unlabelled AU targets) and for a third-party loss that does nothing about
distribution itself: the core objective gathers the batch (gloo on loopback, no Ray)."""

from __future__ import annotations

import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from cli_runs import free_port

from affectkit import hookimpl
from affectkit.interfaces import Loss, LossInputs
from affectkit.model.objective import Objective
from affectkit.recipe import LossTerm
from affectkit.registry import plugin_manager, registry

THIRD_PARTY = "third-party-spread"
LOSSES = [*registry().names("loss"), THIRD_PARTY]


class Spread(Loss):
    """A third-party loss written for one process: the spread of the joint embeddings
    around their batch mean (which depends on every sample of the batch) less their
    agreement with the prompts, plus the batch size (to see which batch it got)."""

    def forward(self, inputs: LossInputs) -> torch.Tensor:
        spread = (inputs.joint - inputs.joint.mean(0)).pow(2).sum(-1).mean()
        return spread - (inputs.joint * inputs.text).sum(-1).mean() + inputs.labels.numel()


class SpreadPlugin:
    @hookimpl
    def register_losses(self, register):
        register(THIRD_PARTY, Spread)


def objective_of(name: str) -> Objective:
    """The objective of one loss term; the third-party loss is registered only while it is built."""
    plugin = SpreadPlugin()
    plugin_manager().register(plugin, name="affectkit-spread")
    try:
        return Objective([LossTerm(name=name)])
    finally:
        plugin_manager().unregister(plugin)
WORLD, B, V, D, IN = 2, 6, 3, 8, 5


def batch() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    views = torch.randn(WORLD * B, V, IN, generator=generator)
    prompts = torch.randn(WORLD * B, IN, generator=generator)
    labels = torch.tensor([0, 1, 2, 0, 1, 2, 0, 0, 1, 3, 3, 2])
    aus = torch.rand(WORLD * B, 3, generator=generator).round()  # 3 AUs, present or absent ...
    aus[torch.rand(WORLD * B, 3, generator=generator) < 0.3] = float("nan")  # ... or not coded
    return views, prompts, labels, aus


def class_features() -> torch.Tensor:
    """The four classes' prompt features: the same on every worker, as in training."""
    return torch.randn(4, IN, generator=torch.Generator().manual_seed(2))


def step(name: str, views: torch.Tensor, prompts: torch.Tensor, labels: torch.Tensor, aus: torch.Tensor) -> tuple[float, list[torch.Tensor]]:
    """One loss evaluation of a tiny shared 'model' (two projections); returns the loss and
    the gradients of the model and of the loss's own parameters."""
    torch.manual_seed(1)
    image_proj = torch.nn.Linear(IN, D)
    text_proj = torch.nn.Linear(IN, D)
    loss_fn = objective_of(name)
    view_embeddings = F.normalize(image_proj(views), dim=-1)
    joint = F.normalize(view_embeddings.mean(1), dim=-1)
    text = F.normalize(text_proj(prompts), dim=-1)
    classes = F.normalize(text_proj(class_features()), dim=-1)
    au_logits = 10.0 * joint @ classes[:3].T - 2.0  # the model's AU scores: similarity to AU prompts
    loss, _ = loss_fn(LossInputs(view_embeddings, joint, text, labels, torch.tensor(10.0), classes, au_logits, aus))
    loss.backward()
    model_grads = [p.grad for p in (*image_proj.parameters(), *text_proj.parameters())]
    if dist.is_initialized():  # what DistributedDataParallel does to the model's gradients
        for grad in model_grads:
            dist.all_reduce(grad)
            grad /= dist.get_world_size()
    return loss.item(), [*model_grads, *(p.grad for p in loss_fn.parameters())]


def worker(rank: int, name: str, port: int, results: dict) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    try:
        views, prompts, labels, aus = batch()
        local = slice(rank * B, (rank + 1) * B)
        results[rank] = step(name, views[local], prompts[local], labels[local], aus[local])
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def distributed_results():
    manager = mp.get_context("spawn").Manager()
    out = {}
    for name in LOSSES:
        results = manager.dict()
        mp.start_processes(worker, args=(name, free_port(), results), nprocs=WORLD, start_method="spawn", join=True)
        out[name] = dict(results)
    return out


@pytest.mark.parametrize("name", LOSSES)
def test_two_workers_equal_one_worker_with_the_whole_batch(name, distributed_results):
    single_loss, single_grads = step(name, *batch())
    for rank in range(WORLD):
        loss, grads = distributed_results[name][rank]
        assert loss == pytest.approx(single_loss, rel=1e-5, abs=1e-6)
        assert len(grads) == len(single_grads)
        for got, expected in zip(grads, single_grads, strict=True):
            assert torch.allclose(got, expected, rtol=1e-4, atol=1e-6)
    if name == THIRD_PARTY:  # it saw all 2B samples on each worker, without calling anything
        assert round(single_loss) == round(distributed_results[name][0][0]) and abs(single_loss - WORLD * B) < 2
