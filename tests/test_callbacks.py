"""The built-in training callback: ``early_stopping`` decides from the history alone."""

from __future__ import annotations

import pytest

from affectkit.errors import AffectkitError
from affectkit.registry import registry


def told(callback, values: list[float], key: str = "val/accuracy") -> list[bool]:
    """The callback's answer after each epoch of a run whose ``key`` took ``values``."""
    history = [{"train/loss": 1.0, key: v} for v in values]
    return [callback.epoch_end(history[: n + 1]) for n in range(len(history))]


def test_early_stopping_stops_once_the_scalar_has_not_improved_for_patience_epochs():
    callback = registry().create("callback", "early_stopping", {"patience": 2})
    assert told(callback, [0.5, 0.6, 0.6, 0.55]) == [False, False, False, True]
    assert told(callback, [0.5, 0.6, 0.6, 0.7, 0.65]) == [False, False, False, False, False]  # a new best starts the count again


def test_early_stopping_watches_a_loss_going_down_with_a_least_change():
    callback = registry().create("callback", "early_stopping", {"monitor": "val/loss", "mode": "min", "patience": 1, "min_delta": 0.05})
    assert told(callback, [1.0, 0.9, 0.88], key="val/loss") == [False, False, True]  # 0.02 lower is not lower enough


def test_early_stopping_names_what_it_watches_when_the_run_does_not_report_it():
    callback = registry().create("callback", "early_stopping")
    with pytest.raises(AffectkitError, match=r"early_stopping monitors 'val/accuracy', which this run does not report .*it reports train/loss"):
        callback.epoch_end([{"train/loss": 1.0}])
