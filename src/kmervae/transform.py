"""Per-group CLR with a Jeffreys pseudocount: the only definition, used everywhere.

For each k-group of width n: ``x <- log(x + 0.5 / n)``, then ``x <- x - mean(x over the
group)``, in float32. :func:`clr` computes it with NumPy (baselines, evaluation; no PyTorch
needed); the model's own layer, :class:`kmervae.model.vae.CLRTransform`, computes the same
on the model's device from the same :func:`pseudocounts`.
"""

from __future__ import annotations

import numpy as np

from kmervae.kmers.layout import FeatureLayout

PSEUDOCOUNT = 0.5  # Jeffreys prior: 0.5 / n added to every frequency of an n-column group


def pseudocounts(layout: FeatureLayout) -> np.ndarray:
    """The pseudocount of every column, 0.5 / (width of its group): float32 (F,)."""
    groups = np.repeat(np.arange(len(layout.ks)), layout.widths)
    widths = np.asarray(layout.widths, dtype=np.float64)
    return (PSEUDOCOUNT / widths[groups]).astype(np.float32)


def clr(x: np.ndarray, layout: FeatureLayout) -> np.ndarray:
    """Per-group CLR of frequency profiles: float (n x F) -> float32 (n x F)."""
    y = np.log(np.asarray(x, dtype=np.float32) + pseudocounts(layout))
    start = 0
    for width in layout.widths:
        group = y[:, start : start + width]
        group -= group.mean(axis=1, keepdims=True, dtype=np.float32)
        start += width
    return y
