"""Exact k nearest neighbours by brute force, in blocks of queries (torch matmul, CPU).

Enough for evaluation sets of up to some hundred thousand rows; the vector store handles
search at scale.
"""

from __future__ import annotations

import numpy as np
import torch

from kmervae.errors import KmervaeError

METRICS = ("euclidean", "cosine")


def nearest_neighbours(
    queries: np.ndarray,
    base: np.ndarray,
    k: int,
    *,
    metric: str = "euclidean",
    self_index: np.ndarray | None = None,
    query_groups: np.ndarray | None = None,
    base_groups: np.ndarray | None = None,
    block_rows: int = 1024,
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` nearest rows of ``base`` for every row of ``queries``.

    Parameters
    ----------
    queries : float (q x d).
    base : float (n x d).
    k : neighbours per query.
    metric : ``euclidean`` (L2) or ``cosine`` (1 - cosine similarity).
    self_index : int (q,), a base row to skip for each query (itself when queries are
        base rows), -1 for none.
    query_groups, base_groups : int (q,) and int (n,): skip base rows whose group equals
        the query's (e.g. the same genome); -1 in ``query_groups`` skips nothing.
    block_rows : queries per matmul block.

    Returns
    -------
    (indices int64 (q x k), distances float32 (q x k)), nearest first. Where fewer than
    ``k`` rows remain after skipping, the tail holds index -1 and distance inf.
    """
    if metric not in METRICS:
        raise KmervaeError(f"unknown metric {metric!r} (use one of {', '.join(METRICS)})")
    n = base.shape[0]
    kk = min(k, n)
    b = torch.from_numpy(np.ascontiguousarray(base, np.float32))
    if metric == "cosine":
        b = torch.nn.functional.normalize(b, dim=1)
    b_sq = (b * b).sum(dim=1)
    bg = torch.from_numpy(np.asarray(base_groups, np.int64)) if base_groups is not None else None
    q_all = np.asarray(queries, np.float32)
    idx_out = np.full((q_all.shape[0], k), -1, np.int64)
    dist_out = np.full((q_all.shape[0], k), np.inf, np.float32)
    with torch.inference_mode():
        for start in range(0, q_all.shape[0], block_rows):
            q = torch.from_numpy(np.ascontiguousarray(q_all[start : start + block_rows]))
            if metric == "cosine":
                q = torch.nn.functional.normalize(q, dim=1)
                d = 1.0 - q @ b.T
            else:
                d = ((q * q).sum(dim=1)[:, None] + b_sq[None, :] - 2.0 * (q @ b.T)).clamp_(min=0)
                d = d.sqrt_()
            rows = torch.arange(q.shape[0])
            if self_index is not None:
                own = torch.from_numpy(np.asarray(self_index[start : start + q.shape[0]], np.int64))
                ok = own >= 0
                d[rows[ok], own[ok]] = torch.inf
            if bg is not None and query_groups is not None:
                qg = torch.from_numpy(
                    np.asarray(query_groups[start : start + q.shape[0]], np.int64)
                )
                same = (qg[:, None] == bg[None, :]) & (qg[:, None] >= 0)
                d.masked_fill_(same, torch.inf)
            dist, idx = torch.topk(d, kk, dim=1, largest=False, sorted=True)
            idx_np = idx.numpy()
            dist_np = dist.numpy().astype(np.float32)
            idx_np = np.where(np.isinf(dist_np), -1, idx_np)
            idx_out[start : start + q.shape[0], :kk] = idx_np
            dist_out[start : start + q.shape[0], :kk] = dist_np
    return idx_out, dist_out
