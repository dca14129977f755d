"""Local-distance fidelity against a naive twin; bootstrap, random pairs, bad requests."""

from __future__ import annotations

import numpy as np
import pytest
from embed_factory import random_profiles, write_profiles
from scipy import stats

from kmervae.errors import InputError
from kmervae.evaluate.fidelity import (
    check_fidelity_request,
    evaluate_fidelity,
    local_distance_fidelity,
)
from kmervae.evaluate.representations import CLRBaseline, PCABaseline
from kmervae.io.dataset import open_dataset
from kmervae.kmers.layout import FeatureLayout
from kmervae.transform import clr

LAYOUT = FeatureLayout((3, 2, 1))


def naive_fidelity(latent, target, n_queries, k, seed, metric="euclidean"):
    """One query at a time, one pair at a time: the protocol as written in DESIGN.md."""
    rng = np.random.default_rng(seed)
    queries = rng.choice(len(latent), n_queries, replace=False)
    dists, mses, per_query = [], [], []
    for q in queries:
        pairs = []
        for j in range(len(latent)):
            if j == q:
                continue
            if metric == "euclidean":
                d = float(np.sqrt(np.sum((latent[q] - latent[j]) ** 2)))
            else:
                cos = latent[q] @ latent[j] / np.linalg.norm(latent[q]) / np.linalg.norm(latent[j])
                d = 1.0 - float(cos)
            pairs.append((d, j))
        pairs.sort()
        row = []
        for d, j in pairs[:k]:
            mse = float(np.mean((target[q] - target[j]) ** 2))
            dists.append(d)
            mses.append(mse)
            row.append(mse)
        per_query.append(row)
    per_query = np.asarray(per_query)
    return {
        "spearman": stats.spearmanr(dists, mses).statistic,
        "pearson": stats.pearsonr(dists, mses).statistic,
        "top": {n: per_query[:, :n].mean() for n in (1, 5, 10, 20, 50) if n <= k},
    }


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_fidelity_matches_naive_twin(metric):
    rng = np.random.default_rng(3)
    latent = rng.normal(size=(80, 5))
    target = latent @ rng.normal(size=(5, 12)) + 0.5 * rng.normal(size=(80, 12))
    got = local_distance_fidelity(latent, target, n_queries=15, k=20, seed=7, metric=metric)
    want = naive_fidelity(latent, target, 15, 20, 7, metric)
    # 1 - cos computed two ways differs in the last bits: a tolerance, not equality
    assert got["spearman"] == pytest.approx(want["spearman"], abs=1e-5)
    assert got["pearson"] == pytest.approx(want["pearson"], abs=1e-5)
    assert set(got["mean_clr_mse_top"]) == {1, 5, 10, 20}
    for n, value in want["top"].items():
        assert got["mean_clr_mse_top"][n] == pytest.approx(value, rel=1e-6)
    assert (got["pool"], got["queries"], got["k"], got["metric"]) == (80, 15, 20, metric)


def test_random_pairs_and_bootstrap():
    rng = np.random.default_rng(0)
    centres = rng.normal(scale=5, size=(4, 6))
    latent = np.repeat(centres, 50, axis=0) + rng.normal(size=(200, 6))
    target = latent.copy()
    got = local_distance_fidelity(latent, target, n_queries=40, k=10, seed=1, n_bootstrap=200)
    # neighbours are much closer in profile than random pairs
    assert got["mean_clr_mse_top"][1] < got["random"]["mean_clr_mse"] / 5
    ci = got["ci"]
    assert ci["spearman"][0] <= got["spearman"] <= ci["spearman"][1]
    assert ci["random_mean_clr_mse"][0] <= got["random"]["mean_clr_mse"]
    assert ci["confidence"] == 0.95 and ci["resamples"] == 200
    # the random-pair sample never pairs a query with itself and is seeded
    again = local_distance_fidelity(latent, target, n_queries=40, k=10, seed=1, n_bootstrap=200)
    assert again == got


def test_training_loop_contract_is_kept():
    rng = np.random.default_rng(2)
    result = local_distance_fidelity(rng.normal(size=(30, 4)), rng.normal(size=(30, 8)))
    assert {"spearman", "pearson", "pool"} <= set(result)
    assert result["pool"] == 30 and result["k"] == 29  # clamped to the pool, as before


def test_clr_baseline_is_perfectly_faithful(tmp_path):
    # squared Euclidean distance of CLR rows is F x their CLR-MSE: Spearman 1 exactly
    x = random_profiles(120, LAYOUT, seed=4)
    ds = open_dataset(write_profiles(tmp_path / "ds", x, layout=LAYOUT))
    rows = np.arange(ds.n_rows)
    result = evaluate_fidelity(
        CLRBaseline(LAYOUT.ks), ds, rows, pool_size=100, n_queries=20, k=10, n_bootstrap=50
    )
    assert result["spearman"] == pytest.approx(1.0)
    assert result["pool"] == 100 and result["target_ks"] == [3, 2, 1]
    pca = PCABaseline(3, LAYOUT.ks).fit(ds)
    low = evaluate_fidelity(pca, ds, rows, pool_size=None, n_queries=20, k=10, n_bootstrap=0)
    assert low["pool"] == 120 and low["spearman"] < 0.99  # 3 of 14 dimensions lose detail
    assert "ci" not in low
    np.testing.assert_allclose(clr(x[:3], LAYOUT), CLRBaseline(LAYOUT.ks).transform(x[:3]))


@pytest.mark.parametrize(
    ("available", "pool", "queries", "k", "message"),
    [
        (100, 500, 10, 5, "only 100 held-out rows"),
        (100, 50, 10, 50, "pool of at least 51 rows"),
        (100, 50, 60, 5, "60 queries cannot be drawn"),
    ],
)
def test_bad_requests_are_clear(available, pool, queries, k, message):
    with pytest.raises(InputError, match=message):
        check_fidelity_request(available, pool, queries, k)
