"""Exact nearest neighbours by brute force: the only definition of the distances and of the
choice of the k nearest, for the exact store, the k-NN graph's recall estimate and the
evaluation protocols. NumPy (BLAS products) and one numba kernel; no PyTorch.

Distances: ``euclidean`` is the L2 distance, from ``(|q|^2 + |b|^2) - 2 q.b`` (clamped at 0);
``cosine`` is 1 - cosine similarity (a zero row counts as orthogonal to everything). The k
nearest of a query are its k smallest (distance, row) pairs: ties go to the lower row, and
NaN distances come after all others (as in NumPy's sort).
"""

from __future__ import annotations

from collections.abc import Iterable

import numba
import numpy as np

from kmervae.errors import KmervaeError

METRICS = ("euclidean", "cosine")
#: queries compared per block in :func:`nearest_neighbours` (float32 1024 x N temporaries)
QUERY_BLOCK_ROWS = 1024
_NONE = np.empty(0, np.int64)


def check_metric(metric: str) -> None:
    """Raise a KmervaeError for a metric not in :data:`METRICS`."""
    if metric not in METRICS:
        raise KmervaeError(f"unknown metric {metric!r} (use one of {', '.join(METRICS)})")


def _prepared(x: np.ndarray, metric: str, dtype: type) -> tuple[np.ndarray, np.ndarray]:
    """Rows in ``dtype`` (unit rows for cosine) and their squared norms (euclidean)."""
    x = np.asarray(x, dtype)
    if metric == "cosine":
        norms = np.linalg.norm(x, axis=1, keepdims=True)
        return x / np.where(norms > 0, norms, 1), _NONE
    return x, (x * x).sum(1)


def _distances(
    q: np.ndarray, q_sq: np.ndarray, b: np.ndarray, b_sq: np.ndarray, metric: str, squared: bool
) -> np.ndarray:
    """(q x n) distances of prepared rows (see :func:`_prepared`), in their dtype."""
    d = q @ b.T
    if metric == "cosine":
        return np.subtract(1.0, d, out=d)
    d *= -2.0
    d += np.add.outer(q_sq, b_sq)  # (|q|^2 + |b|^2) - 2 q.b: d(a, b) is exactly d(b, a)
    np.maximum(d, 0.0, out=d)
    return d if squared else np.sqrt(d, out=d)


def pairwise_distances(
    queries: np.ndarray,
    base: np.ndarray,
    metric: str = "euclidean",
    *,
    squared: bool = False,
    dtype: type = np.float64,
) -> np.ndarray:
    """Distances between every row of ``queries`` (q x d) and of ``base`` (n x d).

    Parameters
    ----------
    metric : ``euclidean`` or ``cosine``.
    squared : squared Euclidean distances (``euclidean`` only).
    dtype : the precision of the arithmetic (float64: near-ties keep their order).

    Returns
    -------
    ``dtype`` (q x n).
    """
    check_metric(metric)
    q, q_sq = _prepared(queries, metric, dtype)
    b, b_sq = _prepared(base, metric, dtype)
    return _distances(q, q_sq, b, b_sq, metric, squared and metric == "euclidean")


@numba.njit(cache=True, nogil=True, inline="always")
def _before(d: float, r: int, slot_d: float, slot_r: int) -> bool:  # pragma: no cover
    """Whether (distance ``d``, row ``r``) comes before a slot of a k-best list: an empty
    slot (row -1) comes after everything, NaN after every number, then the lower row."""
    if slot_r < 0:
        return True
    if d != d:
        return slot_d != slot_d and r < slot_r
    if slot_d != slot_d:
        return True
    return d < slot_d or (d == slot_d and r < slot_r)


@numba.njit(cache=True, nogil=True)
def fold_nearest(
    dist: np.ndarray,
    rows: np.ndarray,
    skip_rows: np.ndarray,
    query_groups: np.ndarray,
    row_groups: np.ndarray,
    best_rows: np.ndarray,
    best_dist: np.ndarray,
) -> None:  # pragma: no cover - compiled
    """Fold a block of candidates into each query's running k best, in place.

    Parameters
    ----------
    dist : float (q, m), distance of query i to candidate j; +inf: not a candidate.
    rows : int64 (m,), the row of each candidate (a row is offered to a query once).
    skip_rows : int64 (q,), a row that is no candidate of query i (-1: none); or empty.
    query_groups, row_groups : int64 (q,) and (m,): candidates of the query's group are
        none of its candidates (-1 in ``query_groups``: no group); or both empty.
    best_rows : int64 (q, k), rows sorted nearest first, -1 in empty slots.
    best_dist : (q, k), their distances (dtype of ``dist``), +inf in empty slots.
    """
    q, m = dist.shape
    k = best_rows.shape[1]
    if k == 0:
        return
    skipping = skip_rows.size > 0
    grouped = query_groups.size > 0
    for i in range(q):
        skip = skip_rows[i] if skipping else -1
        group = query_groups[i] if grouped else -1
        worst_d = best_dist[i, k - 1]
        worst_r = best_rows[i, k - 1]
        for j in range(m):
            d = dist[i, j]
            r = rows[j]
            if d == np.inf or not _before(d, r, worst_d, worst_r) or r == skip:
                continue
            if group >= 0 and row_groups[j] == group:
                continue
            pos = k - 1
            while pos > 0 and _before(d, r, best_dist[i, pos - 1], best_rows[i, pos - 1]):
                best_dist[i, pos] = best_dist[i, pos - 1]
                best_rows[i, pos] = best_rows[i, pos - 1]
                pos -= 1
            best_dist[i, pos] = d
            best_rows[i, pos] = r
            worst_d = best_dist[i, k - 1]
            worst_r = best_rows[i, k - 1]


def k_smallest(dist: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` smallest entries of every row of ``dist`` (q x n), ties to the lower column.

    Returns
    -------
    (columns int64 (q x k), values (q x k), dtype of ``dist``), smallest first; -1 and +inf
    where a row has fewer than ``k`` entries below +inf.
    """
    dist = np.ascontiguousarray(dist)
    cols = np.full((dist.shape[0], k), -1, np.int64)
    values = np.full((dist.shape[0], k), np.inf, dist.dtype)
    columns = np.arange(dist.shape[1], dtype=np.int64)
    fold_nearest(dist, columns, _NONE, _NONE, _NONE, cols, values)
    return cols, values


def nearest_rows(
    queries: np.ndarray,
    blocks: Iterable[tuple[np.ndarray, np.ndarray]],
    k: int,
    *,
    metric: str = "euclidean",
    dtype: type = np.float64,
    skip_rows: np.ndarray | None = None,
    query_groups: np.ndarray | None = None,
    row_groups: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` nearest rows of ``queries`` among rows given block by block.

    Parameters
    ----------
    queries : float (q, d).
    blocks : (rows int64 (m,), vectors float (m, d)) pairs; every row once in all.
    k : neighbours per query.
    metric : ``euclidean`` or ``cosine``.
    dtype : the precision of the distance arithmetic; the distances are then compared in
        float32 (Euclidean: squared), the precision of the result.
    skip_rows : int64 (q,), a row that is no neighbour of each query (itself), -1 for none.
    query_groups : int64 (q,), with ``row_groups`` int64 (all rows): skip the rows of the
        query's group (e.g. the same genome); -1 in ``query_groups`` skips nothing.

    Returns
    -------
    (rows int64 (q, k), distances float32 (q, k)), nearest first, ties to the lower row;
    -1 and +inf where fewer than ``k`` rows remain.
    """
    check_metric(metric)
    squared = metric == "euclidean"
    q, q_sq = _prepared(queries, metric, dtype)
    skip = _NONE if skip_rows is None else np.ascontiguousarray(skip_rows, np.int64)
    grouped = query_groups is not None and row_groups is not None
    q_groups = np.ascontiguousarray(query_groups, np.int64) if grouped else _NONE
    all_groups = np.asarray(row_groups, np.int64) if grouped else _NONE
    best_rows = np.full((q.shape[0], k), -1, np.int64)
    best_dist = np.full((q.shape[0], k), np.inf, np.float32)
    for rows, vectors in blocks:
        if len(rows) == 0:
            continue
        rows = np.ascontiguousarray(rows, np.int64)
        b, b_sq = _prepared(vectors, metric, dtype)
        d = _distances(q, q_sq, b, b_sq, metric, squared).astype(np.float32, copy=False)
        groups = all_groups[rows] if grouped else _NONE
        fold_nearest(d, rows, skip, q_groups, groups, best_rows, best_dist)
    return best_rows, np.sqrt(best_dist) if squared else best_dist


def nearest_neighbours(
    queries: np.ndarray,
    base: np.ndarray,
    k: int,
    *,
    metric: str = "euclidean",
    self_index: np.ndarray | None = None,
    query_groups: np.ndarray | None = None,
    base_groups: np.ndarray | None = None,
    block_rows: int = QUERY_BLOCK_ROWS,
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` nearest rows of ``base`` for every row of ``queries``, in float32.

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
    block_rows : queries per matrix product.

    Returns
    -------
    (indices int64 (q x k), distances float32 (q x k)), nearest first, ties to the lower
    row. Where fewer than ``k`` rows remain after skipping, the tail holds index -1 and
    distance inf.
    """
    check_metric(metric)
    base = np.asarray(base, np.float32)
    everything = [(np.arange(base.shape[0], dtype=np.int64), base)]
    n_q = queries.shape[0]
    idx = np.full((n_q, k), -1, np.int64)
    dist = np.full((n_q, k), np.inf, np.float32)
    for start in range(0, n_q, block_rows):
        part = slice(start, min(start + block_rows, n_q))
        idx[part], dist[part] = nearest_rows(
            queries[part],
            everything,
            k,
            metric=metric,
            dtype=np.float32,
            skip_rows=None if self_index is None else self_index[part],
            query_groups=None if query_groups is None else query_groups[part],
            row_groups=base_groups,
        )
    return idx, dist
