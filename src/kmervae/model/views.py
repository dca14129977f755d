"""Length-noise views: what a row's profile would look like had its contig been shorter.

A short contig's k-mer profile is a noisy sample of its genome's. A view resamples a row's
counts from its profile at a simulated length L, drawn log-uniform over a range: for each
k-group, the L - k + 1 k-mers of the view are one multinomial draw from the group's
frequencies, and the view's frequencies are those counts over L - k + 1. Training on views
(:func:`noisy_batch`) asks the encoder to see through that noise: the noisy view is
encoded and the clean profile reconstructed (denoising), and optionally the mean of a view
is pulled towards the mean of its clean row (:func:`consistency_term`).

The multinomial draw is exact and runs batch by batch on the model's device, every row with
its own number of draws: a binary tree of binomial splits (:func:`multinomial_counts`),
about log2(width) vectorised steps per k-group.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from kmervae.kmers.layout import FeatureLayout
from kmervae.model.config import TrainConfig


@dataclass(frozen=True)
class LengthNoise:
    """Length-noise training: a random ``fraction`` of each batch's rows is replaced by
    views, each at a length drawn log-uniform in [``min_length``, ``max_length``] bp;
    ``consistency_weight`` > 0 also encodes the clean twin of every view and adds that
    weight x F x :func:`consistency_term` to the loss."""

    fraction: float
    min_length: int
    max_length: int
    consistency_weight: float = 0.0

    @classmethod
    def of(cls, cfg: TrainConfig) -> LengthNoise | None:
        """The length-noise settings of a training recipe, None when off."""
        if cfg.noise_fraction == 0:
            return None
        return cls(
            cfg.noise_fraction, cfg.noise_min_length, cfg.noise_max_length, cfg.consistency_weight
        )


def multinomial_counts(p: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
    """One multinomial draw per row: ``n[i]`` draws over the categories of ``p[i]``.

    ``p`` (rows x width) holds non-negative weights (need not sum to 1); ``n`` (rows,)
    the number of draws of each row. Returns float32 counts (rows x width) whose rows sum
    to ``n`` (a row whose weights are all 0 gets no counts). Exact: the draws are split
    between two halves of the categories by a binomial with the halves' share of the
    weight, then each half likewise, down to single categories. A width that is not a power
    of two is first cut into power-of-two blocks (2080 = 2048 + 32), the draws shared out
    between the blocks the same way.
    """
    p = p.float().clamp_min(0)
    width = p.shape[1]
    sizes = [1 << bit for bit in reversed(range(width.bit_length())) if width >> bit & 1]
    if len(sizes) == 1:
        return _binomial_tree(p, n.float())
    blocks = p.split(sizes, dim=1)
    shares = _binomial_tree(torch.stack([b.sum(dim=1) for b in blocks], dim=1), n.float())
    return torch.cat([_binomial_tree(block, shares[:, j]) for j, block in enumerate(blocks)], dim=1)


def _binomial_tree(p: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
    """:func:`multinomial_counts` by one tree of binomial splits over ``p`` (float32),
    padded to a power of two."""
    rows, width = p.shape
    depth = max(1, math.ceil(math.log2(width)))
    leaves = F.pad(p, (0, 2**depth - width))
    # weight under every node, level by level: level d has 2**d nodes
    levels = [leaves]
    for _ in range(depth):
        levels.append(levels[-1].reshape(rows, levels[-1].shape[1] // 2, 2).sum(dim=2))
    counts = n.reshape(rows, 1) * (levels[-1] > 0)
    for children in reversed(levels[:-1]):
        left, right = children[:, 0::2], children[:, 1::2]
        total = left + right
        share = torch.where(total > 0, left / total.clamp_min(1e-30), torch.zeros_like(total))
        left_counts = torch.binomial(counts, share.clamp(0.0, 1.0))
        counts = torch.stack((left_counts, counts - left_counts), dim=2).flatten(1)
    return counts[:, :width]


def sample_lengths(
    rows: int, min_length: int, max_length: int, device: torch.device
) -> torch.Tensor:
    """``rows`` simulated contig lengths (float32, whole bp), log-uniform in
    [``min_length``, ``max_length``]."""
    low, high = math.log(min_length), math.log(max_length)
    u = torch.rand(rows, device=device)
    return torch.exp(low + u * (high - low)).round().clamp(min_length, max_length)


def length_views(x: torch.Tensor, layout: FeatureLayout, lengths: torch.Tensor) -> torch.Tensor:
    """Views of the frequency profiles ``x`` (rows x F) at contig lengths ``lengths``
    (rows,): per k-group, a multinomial draw of L - k + 1 k-mers from the group's
    frequencies, as frequencies (float32, rows x F)."""
    parts = []
    for k, group in zip(layout.ks, x.split(list(layout.widths), dim=1), strict=True):
        draws = (lengths - k + 1).clamp_min(1)
        parts.append(multinomial_counts(group, draws) / draws.reshape(-1, 1))
    return torch.cat(parts, dim=1)


def noisy_batch(
    x: torch.Tensor, layout: FeatureLayout, noise: LengthNoise
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """What the model sees of the batch ``x`` under length noise (PyTorch's global RNG).

    Returns ``(clean, seen, twins)``: the profiles whose CLR is the reconstruction target,
    the profiles the encoder reads, row for row, and the rows of ``clean`` whose view was
    appended at the end (for the consistency term; empty when its weight is 0). Without a
    consistency term the chosen rows are replaced by their views; with one, the views are
    appended, so every view has its clean twin in the same batch.
    """
    rows = x.shape[0]
    # a fixed number of views per batch: the same shapes every step (compiled models, CUDA
    # graphs) and no wait for the device to say how many
    chosen = torch.randperm(rows, device=x.device)[: round(noise.fraction * rows)].sort().values
    lengths = sample_lengths(chosen.numel(), noise.min_length, noise.max_length, x.device)
    views = length_views(x[chosen], layout, lengths).to(x.dtype)
    if noise.consistency_weight > 0:
        return torch.cat((x, x[chosen])), torch.cat((x, views)), chosen
    seen = x.clone()
    seen[chosen] = views
    return x, seen, chosen[:0]


def consistency_term(mu_views: torch.Tensor, mu_clean: torch.Tensor) -> torch.Tensor:
    """How far the means of views are from the means of their clean rows (held fixed),
    relative to the spread of the clean means: mean ||mu_v - mu_c||² over the pairs,
    divided by the mean squared distance of the clean means from their centre. Scale-free,
    like the distance term; 0 for no pairs."""
    if mu_views.shape[0] == 0:
        return mu_views.sum() * 0.0
    target = mu_clean.detach().float()
    spread = ((target - target.mean(dim=0)) ** 2).sum(dim=1).mean().clamp_min(1e-12)
    return ((mu_views.float() - target) ** 2).sum(dim=1).mean() / spread
