"""An exponential moving average of a network's weights and BatchNorm statistics.

The average of the last few thousand steps generalises better than the last step's weights
(Polyak averaging; timm's ModelEmaV2 does the same over the whole state_dict), and it costs one
multiply-add per number per step. BatchNorm running statistics are averaged with the weights, so
the averaged network needs no statistics re-estimation pass before it is evaluated.
"""

from __future__ import annotations

import torch
from torch import nn


class WeightEMA:
    """`shadow` holds the average of `model`'s state_dict; `update()` after every optimizer step.

    The decay ramps up as (1 + n) / (10 + n) over the first steps n, so the average is not
    dominated by the random initial weights; it reaches `decay` (e.g. 0.999) after ~9,000 steps.
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"EMA decay must be in (0, 1), got {decay}")
        self.decay = decay
        self.updates = 0
        self.shadow = {k: v.detach().clone() for k, v in model.state_dict().items()}

    def current_decay(self) -> float:
        return min(self.decay, (1 + self.updates) / (10 + self.updates))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        d = self.current_decay()
        self.updates += 1
        avg, new, copy_to, copy_from = [], [], [], []
        for key, value in model.state_dict().items():
            target = self.shadow[key]
            if target.is_floating_point():
                avg.append(target)
                new.append(value.detach())
            else:  # counters (num_batches_tracked): the latest value
                copy_to.append(target)
                copy_from.append(value)
        torch._foreach_lerp_(avg, new, 1.0 - d)
        for t, v in zip(copy_to, copy_from, strict=True):
            t.copy_(v)

    def copy_to(self, model: nn.Module) -> None:
        """Load the averaged weights into `model` (another instance of the same network)."""
        model.load_state_dict(self.shadow)

    def state_dict(self) -> dict:
        """Decay and step count; the average itself is saved once, as the checkpoint's weights."""
        return {"decay": self.decay, "updates": self.updates}

    def load_state_dict(self, state: dict, shadow: dict[str, torch.Tensor]) -> None:
        self.decay = float(state["decay"])
        self.updates = int(state["updates"])
        for key, value in shadow.items():
            self.shadow[key].copy_(value)
