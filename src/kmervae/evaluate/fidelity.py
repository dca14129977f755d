"""Local-distance fidelity: do latent neighbours have similar CLR profiles?

From a pool of held-out rows, pick random queries, take their nearest neighbours in latent
space (Euclidean) and correlate latent distance with the mean squared difference of the
CLR-transformed profiles, over all (query, neighbour) pairs. The score depends strongly on
the pool size, which is reported with it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import stats


def local_distance_fidelity(
    latent: np.ndarray,
    clr_profiles: np.ndarray,
    *,
    n_queries: int = 100,
    k: int = 50,
    seed: int = 42,
) -> dict[str, Any]:
    """Spearman and Pearson correlation of latent distance vs CLR mean squared difference.

    Parameters
    ----------
    latent : float (pool x latent) embeddings of the pool.
    clr_profiles : float (pool x F) CLR-transformed profiles of the same rows.
    n_queries, k : queries drawn from the pool (seeded) and neighbours per query.

    Returns
    -------
    dict with ``spearman``, ``pearson``, ``pool``, ``queries``, ``k`` and
    ``mean_clr_mse_top`` (mean CLR-MSE of the 1st, 5th, … neighbours' sets).
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
    sq_norms = np.einsum("ij,ij->i", latent, latent)
    dist_all, mse_all, ranks = [], [], []
    for q in queries:
        d2 = sq_norms + sq_norms[q] - 2.0 * latent @ latent[q]
        d2[q] = np.inf
        nearest = np.argpartition(d2, k)[:k]
        nearest = nearest[np.argsort(d2[nearest])]
        dist_all.append(np.sqrt(np.maximum(d2[nearest], 0.0)))
        mse_all.append(np.mean((clr_profiles[nearest] - clr_profiles[q]) ** 2, axis=1))
        ranks.append(np.arange(1, k + 1))
    dist = np.concatenate(dist_all)
    mse = np.concatenate(mse_all)
    mse_by_query = np.stack(mse_all)
    top = {n: float(mse_by_query[:, :n].mean()) for n in (1, 5, 10, 20, 50) if n <= k}
    return {
        "spearman": float(stats.spearmanr(dist, mse).statistic),
        "pearson": float(stats.pearsonr(dist, mse).statistic),
        "pool": pool,
        "queries": int(n_queries),
        "k": int(k),
        "mean_clr_mse_top": top,
    }
