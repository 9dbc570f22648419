"""Distributed contrastive learning: 2 processes with batch B give the loss and gradients
of 1 process with batch 2B, for every registered loss (gloo on loopback, no Ray)."""

from __future__ import annotations

import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F

from affectkit.interfaces import LossInputs
from affectkit.registry import registry
from cli_runs import free_port

LOSSES = registry().names("loss")
WORLD, B, V, D, IN = 2, 6, 3, 8, 5


def batch() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    views = torch.randn(WORLD * B, V, IN, generator=generator)
    prompts = torch.randn(WORLD * B, IN, generator=generator)
    labels = torch.tensor([0, 1, 2, 0, 1, 2, 0, 0, 1, 3, 3, 2])
    return views, prompts, labels


def class_features() -> torch.Tensor:
    """The four classes' prompt features: the same on every worker, as in training."""
    return torch.randn(4, IN, generator=torch.Generator().manual_seed(2))


def step(name: str, views: torch.Tensor, prompts: torch.Tensor, labels: torch.Tensor) -> tuple[float, list[torch.Tensor]]:
    """One loss evaluation of a tiny shared 'model' (two projections); returns the loss and
    the gradients of the model and of the loss's own parameters."""
    torch.manual_seed(1)
    image_proj = torch.nn.Linear(IN, D)
    text_proj = torch.nn.Linear(IN, D)
    loss_fn = registry().create("loss", name)
    view_embeddings = F.normalize(image_proj(views), dim=-1)
    joint = F.normalize(view_embeddings.mean(1), dim=-1)
    text = F.normalize(text_proj(prompts), dim=-1)
    classes = F.normalize(text_proj(class_features()), dim=-1)
    loss = loss_fn(LossInputs(view_embeddings, joint, text, labels, torch.tensor(10.0), classes))
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
        views, prompts, labels = batch()
        local = slice(rank * B, (rank + 1) * B)
        results[rank] = step(name, views[local], prompts[local], labels[local])
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
