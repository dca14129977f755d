"""The distance-preserving loss term against a pair-by-pair twin."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from kmervae.errors import KmervaeError
from kmervae.model.config import VAEConfig
from kmervae.model.vae import distance_term, vae_loss


def naive_distance_term(mu: np.ndarray, target: np.ndarray, locality: float) -> float:
    n = len(mu)
    pairs = [(i, j) for i in range(n) for j in range(n) if i != j]
    dz = np.array([math.dist(mu[i], mu[j]) for i, j in pairs])
    dx = np.array([math.dist(target[i], target[j]) for i, j in pairs])
    dz, dx = dz / dz.mean(), dx / dx.mean()
    w = np.exp(-dx / locality)
    w /= w.mean()
    return float(np.mean(w * (dz - dx) ** 2))


@pytest.mark.parametrize("locality", [0.1, 1.0])
def test_matches_the_pairwise_twin(locality):
    rng = np.random.default_rng(0)
    mu = rng.normal(size=(9, 5))
    target = rng.normal(size=(9, 12))
    got = distance_term(torch.tensor(mu), torch.tensor(target), locality).item()
    assert got == pytest.approx(naive_distance_term(mu, target, locality), rel=1e-5)


def test_far_pairs_do_not_underflow():
    rng = np.random.default_rng(3)
    target = rng.normal(size=(12, 40)) * 1e3
    target[0] = target[1] + 1.0  # one close pair among far ones
    got = distance_term(torch.tensor(rng.normal(size=(12, 4))), torch.tensor(target), 0.001)
    assert np.isfinite(got.item()) and got.item() > 0


def test_zero_for_distances_in_proportion():
    rng = np.random.default_rng(1)
    target = rng.normal(size=(16, 8))
    rotation, _ = np.linalg.qr(rng.normal(size=(8, 8)))
    mu = 3.0 * target @ rotation + 5.0  # rotated, scaled and shifted: distances in proportion
    assert distance_term(torch.tensor(mu), torch.tensor(target)).item() < 1e-10
    shuffled = mu[rng.permutation(16)]
    assert distance_term(torch.tensor(shuffled), torch.tensor(target)).item() > 0.05


def test_weight_zero_is_the_reference_loss():
    rng = np.random.default_rng(2)
    recon, target = (torch.tensor(rng.normal(size=(6, 10)), dtype=torch.float32) for _ in "ab")
    mu = torch.tensor(rng.normal(size=(6, 3)), dtype=torch.float32)
    logvar = torch.zeros(6, 3)
    plain = vae_loss(recon, target, mu, logvar, beta=0.05, kl_weight=1.0)
    with_term = vae_loss(recon, target, mu, logvar, beta=0.05, kl_weight=1.0, distance_weight=0.5)
    expected = plain["loss"] + 0.5 * 10 * distance_term(mu, target, 0.1)
    assert with_term["loss"].item() == pytest.approx(expected.item(), rel=1e-6)
    assert with_term["recon"].item() == plain["recon"].item()
    with pytest.raises(KmervaeError, match="distance weight"):
        VAEConfig(distance_weight=-1)
    with pytest.raises(KmervaeError, match="distance locality"):
        VAEConfig(distance_locality=0)
