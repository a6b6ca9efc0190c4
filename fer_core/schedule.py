"""Learning-rate schedules: one object the training loop steps per batch and per epoch.

onecycle: warmup, then cosine down to lr / 25,000 (torch's OneCycleLR, as the shipped weights
were trained); cosine: linear warmup, then cosine to zero; plateau: the peak lr from the start,
multiplied by `factor` each time val accuracy has not improved for `patience` epochs.
Every variant keeps its whole state in `state_dict()`, so `--resume` continues it exactly.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

SCHEDULES = ("onecycle", "cosine", "plateau")  # read by the CLI too, which must not import torch


class Schedule:
    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        kind: str,
        lr: float,
        epochs: int,
        steps_per_epoch: int,
        warmup: float = 0.15,
        factor: float = 0.75,
        patience: int = 5,
    ) -> None:
        import torch

        self.kind = kind
        total = epochs * steps_per_epoch
        groups = len(optimizer.param_groups)
        if kind == "onecycle":
            self.per_batch = torch.optim.lr_scheduler.OneCycleLR(
                optimizer,
                max_lr=[lr] * groups,
                total_steps=total,
                pct_start=warmup,
                anneal_strategy="cos",
                div_factor=25.0,
                final_div_factor=1e3,
            )
            self.per_epoch = None
        elif kind == "cosine":
            rise = max(1, int(warmup * total))

            def factor_at(step: int) -> float:
                if step < rise:
                    return (step + 1) / rise
                return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - rise) / max(1, total - rise))))

            for g in optimizer.param_groups:
                g["lr"] = lr
            self.per_batch = torch.optim.lr_scheduler.LambdaLR(optimizer, factor_at)
            self.per_epoch = None
        elif kind == "plateau":
            for g in optimizer.param_groups:
                g["lr"] = lr
            self.per_batch = None
            self.per_epoch = torch.optim.lr_scheduler.ReduceLROnPlateau(
                optimizer, mode="max", factor=factor, patience=patience
            )
        else:
            raise ValueError(f"unknown schedule {kind!r}; choose one of {', '.join(SCHEDULES)}")

    def step_batch(self) -> None:
        if self.per_batch is not None:
            self.per_batch.step()

    def step_epoch(self, val_acc: float) -> None:
        if self.per_epoch is not None:
            self.per_epoch.step(val_acc)

    def state_dict(self) -> dict:
        active = self.per_batch if self.per_batch is not None else self.per_epoch
        return {"kind": self.kind, **active.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        state = dict(state)
        kind = state.pop("kind", "onecycle")  # checkpoints from before this option were one-cycle
        if kind != self.kind:
            raise ValueError(f"the checkpoint's schedule is {kind}, this run's {self.kind}")
        (self.per_batch if self.per_batch is not None else self.per_epoch).load_state_dict(state)
