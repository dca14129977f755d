"""Learning-rate and KL schedules: pure functions of the epoch and a small state."""

from __future__ import annotations

import math
from dataclasses import dataclass


def kl_weight(epoch: int, warmup_epochs: int) -> float:
    """KL weight at 0-based ``epoch``: ramps linearly from 0 to 1 over ``warmup_epochs``."""
    if warmup_epochs <= 0:
        return 1.0
    return min(1.0, epoch / warmup_epochs)


def cosine_lr(epoch: int, *, lr: float, min_lr: float, epochs: int, warmup_epochs: int) -> float:
    """Linear warm-up to ``lr`` over ``warmup_epochs``, then cosine decay to ``min_lr`` at the
    last epoch. It cannot stall: the rate depends on the epoch alone."""
    if epoch < warmup_epochs:
        return lr * (epoch + 1) / (warmup_epochs + 1)
    span = max(1, epochs - warmup_epochs - 1)
    progress = min(1.0, (epoch - warmup_epochs) / span)
    return min_lr + 0.5 * (lr - min_lr) * (1.0 + math.cos(math.pi * progress))


@dataclass(frozen=True)
class PlateauState:
    """Reduce-on-plateau state: current rate, best validation loss, epochs without gain."""

    lr: float
    best: float = math.inf
    bad_epochs: int = 0

    def to_json(self) -> dict[str, float]:
        return {"lr": self.lr, "best": self.best, "bad_epochs": self.bad_epochs}

    @classmethod
    def from_json(cls, data: dict[str, float]) -> PlateauState:
        return cls(float(data["lr"]), float(data["best"]), int(data["bad_epochs"]))


def plateau_step(
    state: PlateauState,
    val_loss: float,
    epoch: int,
    *,
    ignore_before: int,
    patience: int,
    factor: float,
    min_lr: float,
    threshold: float = 1e-4,
) -> PlateauState:
    """Next plateau state after an epoch with ``val_loss``.

    Epochs before ``ignore_before`` (the KL warm-up, whose loss is artificially low) neither
    set the best value nor count as bad. After ``patience`` epochs without a relative
    improvement of ``threshold``, the rate is multiplied by ``factor`` (not below ``min_lr``).
    """
    if epoch < ignore_before or not math.isfinite(val_loss):
        return state
    if val_loss < state.best * (1.0 - threshold):
        return PlateauState(state.lr, val_loss, 0)
    bad = state.bad_epochs + 1
    if bad > patience:
        return PlateauState(max(min_lr, state.lr * factor), state.best, 0)
    return PlateauState(state.lr, state.best, bad)
