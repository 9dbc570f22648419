"""Training callbacks: ``early_stopping``, which ends a run once a monitored scalar has stopped
improving, so that a recipe can ask for more epochs than it needs without paying for them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

from pydantic import Field

from affectkit import hookimpl
from affectkit.errors import AffectkitError
from affectkit.interfaces import TrainingCallback


class EarlyStopping(TrainingCallback):
    """Stop once the monitored scalar (val/accuracy by default) has not improved for `patience` epochs."""

    class Options(TrainingCallback.Options):
        monitor: str = Field("val/accuracy", min_length=1, description="the scalar to watch (val/... needs a validation split)")
        mode: Literal["max", "min"] = Field("max", description="max: higher is better (accuracy); min: lower is better (a loss)")
        patience: int = Field(3, ge=1, description="epochs without improvement before training stops")
        min_delta: float = Field(0.0, ge=0.0, description="the smallest change that counts as an improvement")

    options: Options

    def epoch_end(self, history: Sequence[Mapping[str, float]]) -> bool:
        monitor = self.options.monitor
        if monitor not in history[-1]:
            raise AffectkitError(
                f"train.callbacks: early_stopping monitors {monitor!r}, which this run does not report "
                f"(val/... scalars need a validation split); it reports {', '.join(sorted(history[-1]))}"
            )
        sign = 1.0 if self.options.mode == "max" else -1.0
        best, since_best = sign * history[0][monitor], 0
        for scalars in history[1:]:
            value = sign * scalars[monitor]
            if value > best + self.options.min_delta:
                best, since_best = value, 0
            else:
                since_best += 1
        return since_best >= self.options.patience


@hookimpl
def register_callbacks(register) -> None:
    register("early_stopping", EarlyStopping)
