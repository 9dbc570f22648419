"""Weight averaging over the end of training (``train.weight_averaging``): the mean it keeps,
the batch-norm statistics it estimates again, and what it gives back for training to go on."""

import torch
from torch import nn

from affectkit.train.weight_averaging import WeightAverage, restore


def small_model() -> nn.Sequential:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))
    model[2].weight.requires_grad_(False)  # frozen, as the text encoder is
    return model


def test_the_mean_is_over_the_steps_from_start_on_and_frozen_weights_are_left_out():
    model, average = small_model(), WeightAverage(start=3)
    taken = []
    for step in range(1, 6):
        with torch.no_grad():
            model[0].weight.add_(float(step))
        if step >= 3:
            taken.append(model[0].weight.detach().clone())
        average.update(model, step)
    assert average.steps == 3
    torch.testing.assert_close(average.mean["0.weight"], torch.stack(taken).mean(0))
    assert "2.weight" not in average.mean and "2.bias" in average.mean


def test_swap_in_puts_the_mean_in_estimates_the_norm_statistics_again_and_restore_gives_the_trained_model_back():
    model, average = small_model(), WeightAverage(start=1)
    for step in (1, 2):
        with torch.no_grad():
            model[0].weight.mul_(2.0)
        average.update(model, step)
    trained = {k: v.clone() for k, v in model.state_dict().items()}
    model.eval()
    batches = [torch.randn(8, 3, generator=torch.Generator().manual_seed(i)) for i in range(3)]

    replaced = average.swap_in(model, batches, model)

    torch.testing.assert_close(model[0].weight, average.mean["0.weight"])
    with torch.no_grad():  # a cumulative mean over the batches of each batch's statistics
        hidden = [model[0](b) for b in batches]
        torch.testing.assert_close(model[1].running_mean, torch.stack([h.mean(0) for h in hidden]).mean(0))
        torch.testing.assert_close(model[1].running_var, torch.stack([h.var(0) for h in hidden]).mean(0))
    assert not model.training  # its mode is kept
    restore(model, replaced)
    for name, value in model.state_dict().items():
        torch.testing.assert_close(value, trained[name], msg=name)


def test_a_resumed_average_goes_on_where_it_stopped():
    model, average = small_model(), WeightAverage(start=1)
    average.update(model, 1)
    resumed = WeightAverage(start=1)
    resumed.load(average.state(), torch.device("cpu"))
    with torch.no_grad():
        model[0].weight.add_(1.0)
    average.update(model, 2)
    resumed.update(model, 2)
    assert resumed.steps == average.steps == 2
    for name, value in average.mean.items():
        torch.testing.assert_close(resumed.mean[name], value)
