"""Local-distance fidelity: do latent neighbours have similar CLR profiles?

The protocol (docs/evaluate.md): from a pool of held-out rows, pick random
queries (seeded), take their nearest neighbours in the representation (Euclidean by
default), and correlate the distance to each neighbour with the mean squared difference of
the CLR-transformed profiles (CLR-MSE), over all (query, neighbour) pairs: Spearman and
Pearson, the mean CLR-MSE of the top 1/5/10/20/50 neighbours, the same for random pairs as a
baseline, and bootstrap confidence intervals over queries. The score depends strongly on the
pool size, which travels with every score.

:func:`local_distance_fidelity` is the maths on arrays (the training loop calls it on its
validation pool); :func:`evaluate_fidelity` reads the pool from a dataset and runs it for
any :class:`~kmervae.evaluate.representations.Representation`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import stats

from kmervae.errors import InputError
from kmervae.io.dataset import ProfileDataset
from kmervae.neighbours import check_metric, k_smallest, pairwise_distances

#: neighbour counts whose mean CLR-MSE is reported
TOP_N = (1, 5, 10, 20, 50)


def _correlations(dist: np.ndarray, mse: np.ndarray) -> tuple[float, float]:
    if np.ptp(dist) == 0 or np.ptp(mse) == 0:
        return float("nan"), float("nan")
    return (
        float(stats.spearmanr(dist, mse).statistic),
        float(stats.pearsonr(dist, mse).statistic),
    )


def local_distance_fidelity(
    latent: np.ndarray,
    clr_profiles: np.ndarray,
    *,
    n_queries: int = 100,
    k: int = 50,
    seed: int = 42,
    metric: str = "euclidean",
    n_bootstrap: int = 0,
    confidence: float = 0.95,
) -> dict[str, Any]:
    """Correlation of latent distance with CLR mean squared difference among neighbours.

    Parameters
    ----------
    latent : float (pool x d), the representation of the pool rows.
    clr_profiles : float (pool x F), the CLR-transformed profiles of the same rows.
    n_queries : queries drawn from the pool without replacement (seeded); at most the pool.
    k : neighbours per query (the query itself excluded); at most pool - 1.
    seed : seeds the queries, the random pairs and the bootstrap.
    metric : ``euclidean`` or ``cosine`` distance in the representation.
    n_bootstrap : resamples of the queries for confidence intervals (0: none).
    confidence : width of the percentile intervals.

    Returns
    -------
    dict with ``spearman``, ``pearson`` (over all query-neighbour pairs), ``pool``,
    ``queries``, ``k``, ``metric``, ``mean_clr_mse_top`` ({n: mean CLR-MSE of the n
    nearest}), ``random`` (the same for ``k`` random pool rows per query: ``spearman``,
    ``pearson``, ``mean_clr_mse``) and, with ``n_bootstrap``, ``ci`` ({"spearman": [lo, hi],
    "pearson": [lo, hi], "mean_clr_mse_top": {n: [lo, hi]}, "random_mean_clr_mse": [lo, hi]}).
    """
    latent = np.asarray(latent, np.float64)
    clr_profiles = np.asarray(clr_profiles, np.float64)
    pool = latent.shape[0]
    if pool != clr_profiles.shape[0]:
        raise ValueError("latent and CLR profiles must have the same rows")
    k = min(k, pool - 1)
    n_queries = min(n_queries, pool)
    if k < 2:
        raise ValueError(f"a pool of {pool} rows is too small for neighbour fidelity")
    rng = np.random.default_rng(seed)
    queries = rng.choice(pool, n_queries, replace=False)
    dist = pairwise_distances(latent[queries], latent, metric)
    dist[np.arange(n_queries), queries] = np.inf
    nearest, near_dist = k_smallest(dist, k)
    near_mse = _clr_mse(clr_profiles, queries, nearest)

    # random pairs: k other pool rows per query, without replacement
    others = np.stack([rng.choice(pool - 1, k, replace=False) for _ in range(n_queries)])
    others += others >= queries[:, None]  # skip the query itself
    rand_dist = np.take_along_axis(dist, others, axis=1)
    rand_mse = _clr_mse(clr_profiles, queries, others)

    spearman, pearson = _correlations(near_dist.ravel(), near_mse.ravel())
    r_spearman, r_pearson = _correlations(rand_dist.ravel(), rand_mse.ravel())
    tops = [n for n in TOP_N if n <= k]
    result: dict[str, Any] = {
        "spearman": spearman,
        "pearson": pearson,
        "pool": pool,
        "queries": int(n_queries),
        "k": int(k),
        "metric": metric,
        "mean_clr_mse_top": {n: float(near_mse[:, :n].mean()) for n in tops},
        "random": {
            "spearman": r_spearman,
            "pearson": r_pearson,
            "mean_clr_mse": float(rand_mse.mean()),
        },
    }
    if n_bootstrap > 0:
        result["ci"] = _bootstrap(near_dist, near_mse, rand_mse, tops, n_bootstrap, confidence, rng)
        result["ci"]["confidence"] = confidence
        result["ci"]["resamples"] = n_bootstrap
    return result


def _clr_mse(clr_profiles: np.ndarray, queries: np.ndarray, others: np.ndarray) -> np.ndarray:
    """float64 (q x k): mean over features of (clr[other] - clr[query])²."""
    out = np.empty(others.shape, np.float64)
    for i, q in enumerate(queries):
        out[i] = np.mean((clr_profiles[others[i]] - clr_profiles[q]) ** 2, axis=1)
    return out


def _bootstrap(
    near_dist: np.ndarray,
    near_mse: np.ndarray,
    rand_mse: np.ndarray,
    tops: list[int],
    n_bootstrap: int,
    confidence: float,
    rng: np.random.Generator,
) -> dict[str, Any]:
    """Percentile intervals from resampling whole queries (with replacement)."""
    n_queries = near_dist.shape[0]
    spear, pear = np.empty(n_bootstrap), np.empty(n_bootstrap)
    top = np.empty((n_bootstrap, len(tops)))
    rand = np.empty(n_bootstrap)
    for b in range(n_bootstrap):
        pick = rng.integers(0, n_queries, n_queries)
        spear[b], pear[b] = _correlations(near_dist[pick].ravel(), near_mse[pick].ravel())
        top[b] = [near_mse[pick, :n].mean() for n in tops]
        rand[b] = rand_mse[pick].mean()
    lo, hi = 100 * (1 - confidence) / 2, 100 * (1 + confidence) / 2

    def interval(values: np.ndarray) -> list[float]:
        return [float(v) for v in np.nanpercentile(values, [lo, hi])]

    return {
        "spearman": interval(spear),
        "pearson": interval(pear),
        "mean_clr_mse_top": {n: interval(top[:, i]) for i, n in enumerate(tops)},
        "random_mean_clr_mse": interval(rand),
    }


def check_fidelity_request(n_available: int, pool_size: int, n_queries: int, k: int) -> None:
    """Clear errors for a pool larger than the data, or too few rows for the request.

    Raises
    ------
    InputError
        ``pool_size`` exceeds ``n_available``, ``k`` is not below the pool, or
        ``n_queries`` exceeds the pool.
    """
    if pool_size < 1 or n_queries < 1 or k < 1:
        raise InputError("pool size, queries and neighbours must each be at least 1")
    if pool_size > n_available:
        raise InputError(
            f"a pool of {pool_size} rows was asked for, but only {n_available} held-out rows "
            f"are available; use a pool_size of {n_available} or less"
        )
    if k >= pool_size:
        raise InputError(
            f"{k} neighbours per query need a pool of at least {k + 1} rows; the pool has "
            f"{pool_size} (lower k or raise pool_size)"
        )
    if n_queries > pool_size:
        raise InputError(
            f"{n_queries} queries cannot be drawn from a pool of {pool_size} rows (lower n_queries)"
        )


def evaluate_fidelity(
    rep: Any,
    dataset: ProfileDataset,
    rows: np.ndarray,
    *,
    pool_size: int | None = 50_000,
    n_queries: int = 100,
    k: int = 50,
    metric: str = "euclidean",
    seed: int = 42,
    n_bootstrap: int = 1000,
) -> dict[str, Any]:
    """The fidelity protocol for one representation on held-out ``rows`` of ``dataset``.

    Parameters
    ----------
    rep : a :class:`~kmervae.evaluate.representations.Representation`.
    rows : int64 (n,), the held-out rows the pool is drawn from (sorted).
    pool_size : rows in the pool, a seeded sample of ``rows``; None: all of ``rows``.
    n_queries, k, metric, seed, n_bootstrap : see :func:`local_distance_fidelity`.

    The CLR-MSE is measured on all k-groups of the dataset, whatever the representation
    reads, so every representation is scored against the same target.

    Raises
    ------
    InputError
        A pool larger than the rows, k not below the pool, a layout mismatch.
    """
    from kmervae.evaluate.representations import clr_rows, represent_rows

    check_metric(metric)
    size = len(rows) if pool_size is None else pool_size
    check_fidelity_request(len(rows), size, n_queries, k)
    rng = np.random.default_rng(seed)
    pool_rows = np.sort(rng.choice(rows, size, replace=False)) if size < len(rows) else rows
    latent = represent_rows(rep, dataset, pool_rows)
    target = clr_rows(dataset, pool_rows)
    result = local_distance_fidelity(
        latent,
        target,
        n_queries=n_queries,
        k=k,
        seed=seed,
        metric=metric,
        n_bootstrap=n_bootstrap,
    )
    result["target_ks"] = list(dataset.layout.ks)
    result["seed"] = seed
    return result
