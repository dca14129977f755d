"""Exact nearest neighbours (kmervae.neighbours) against naive twins: sorted Python pairs."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kmervae.errors import KmervaeError
from kmervae.neighbours import (
    fold_nearest,
    k_smallest,
    nearest_neighbours,
    nearest_rows,
    pairwise_distances,
)

NONE = np.empty(0, np.int64)


def naive_k_smallest(values, rows, k, skip=lambda j: False):
    """(value, row) pairs of one query sorted as the kernel does: NaN after every number,
    ties to the lower row, +inf never; the first k."""
    pairs = [(v, r) for v, r in zip(values, rows, strict=True) if v != math.inf and not skip(r)]
    pairs.sort(key=lambda p: (math.isnan(p[0]), 0.0 if math.isnan(p[0]) else p[0], p[1]))
    pairs = pairs[:k]
    return [r for _, r in pairs] + [-1] * (k - len(pairs))


def naive_distance(a, b, metric):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if metric == "euclidean":
        return float(np.sqrt(np.sum((a - b) ** 2)))
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    return 1.0 - (float(a @ b) / (na * nb) if na > 0 and nb > 0 else 0.0)


values = st.one_of(
    st.sampled_from([0.0, 1.0, 2.0, math.inf, math.nan]),
    st.floats(-10, 10, allow_nan=False, width=32),
)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.lists(values, min_size=6, max_size=6), min_size=1, max_size=4),
    st.integers(0, 8),
    st.integers(1, 6),
)
def test_fold_nearest_matches_sorted_pairs_in_any_blocks(matrix, k, block):
    """Folding the columns block by block, in any order, keeps the k smallest (value, row)."""
    dist = np.array(matrix, np.float32)
    n_q, m = dist.shape
    rows = np.array([5, 0, 3, 9, 1, 7], np.int64)[:m]
    best_rows = np.full((n_q, k), -1, np.int64)
    best_dist = np.full((n_q, k), np.inf, np.float32)
    for start in range(m - 1, -1, -block):  # the last block first
        part = slice(max(0, start - block + 1), start + 1)
        block_dist = np.ascontiguousarray(dist[:, part])
        fold_nearest(block_dist, rows[part], NONE, NONE, NONE, best_rows, best_dist)
    for i in range(n_q):
        assert best_rows[i].tolist() == naive_k_smallest(dist[i], rows, k)
        for r, d in zip(best_rows[i], best_dist[i], strict=True):
            want = np.inf if r < 0 else dist[i][rows.tolist().index(r)]
            np.testing.assert_equal(d, want)


def test_fold_nearest_skips_own_row_and_group():
    dist = np.array([[0.0, 1.0, 2.0, 3.0], [0.0, 1.0, 2.0, 3.0]], np.float32)
    rows = np.arange(4, dtype=np.int64)
    best_rows = np.full((2, 3), -1, np.int64)
    best_dist = np.full((2, 3), np.inf, np.float32)
    groups = np.array([7, 7, 8, 9], np.int64)
    fold_nearest(dist, rows, np.array([2, -1]), np.array([-1, 7]), groups, best_rows, best_dist)
    assert best_rows.tolist() == [[0, 1, 3], [2, 3, -1]]
    assert best_dist[1, 2] == np.inf


def test_k_smallest_orders_like_numpy_sort():
    d = np.array([[np.nan, 1.0, np.inf, 0.5, np.nan, 1.0]])
    cols, vals = k_smallest(d, 6)
    assert cols.tolist() == [[3, 1, 5, 0, 4, -1]]
    np.testing.assert_equal(vals, [[0.5, 1.0, 1.0, np.nan, np.nan, np.inf]])


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_pairwise_distances_match_naive(metric):
    rng = np.random.default_rng(4)
    q, b = rng.normal(size=(5, 3)), rng.normal(size=(7, 3))
    b[2] = 0.0  # a zero row: orthogonal to everything for cosine
    got = pairwise_distances(q, b, metric)
    want = [[naive_distance(x, y, metric) for y in b] for x in q]
    np.testing.assert_allclose(got, want, atol=1e-12)
    if metric == "euclidean":
        np.testing.assert_allclose(pairwise_distances(q, b, squared=True), got**2, atol=1e-12)
    # d(a, b) is exactly d(b, a)
    np.testing.assert_array_equal(pairwise_distances(b, q, metric), got.T)
    with pytest.raises(KmervaeError, match="unknown metric"):
        pairwise_distances(q, b, "manhattan")


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_nearest_rows_over_blocks_and_filters(metric):
    rng = np.random.default_rng(9)
    if metric == "euclidean":  # small integers: exact sums, many ties (to the lower row)
        x = rng.integers(-2, 3, size=(40, 4)).astype(np.float32)
    else:
        x = rng.normal(size=(40, 4)).astype(np.float32)
    queries = x[[0, 5, 10]]
    keep = np.flatnonzero(rng.random(40) < 0.7)
    blocks = [(keep[s : s + 9], x[keep[s : s + 9]]) for s in range(0, len(keep), 9)]
    rows, dist = nearest_rows(queries, blocks, 6, metric=metric)
    for i, query in enumerate(queries):
        exact = [naive_distance(query, x[r], metric) for r in keep]
        want = naive_k_smallest(np.float32(exact), keep, 6)
        assert rows[i].tolist() == want
        np.testing.assert_allclose(
            dist[i], np.float32(exact)[np.searchsorted(keep, want)], atol=1e-5
        )


def test_nearest_neighbours_pads_and_skips():
    base = np.array([[0.0], [1.0], [2.0]], np.float32)
    idx, dist = nearest_neighbours(base, base, 3, self_index=np.arange(3), block_rows=2)
    assert idx.tolist() == [[1, 2, -1], [0, 2, -1], [1, 0, -1]]
    assert np.isinf(dist[:, 2]).all()
    np.testing.assert_allclose(dist[:, :2], [[1, 2], [1, 1], [1, 2]])
    groups = np.array([0, 0, 1])
    idx, _ = nearest_neighbours(base, base, 2, query_groups=groups, base_groups=groups)
    assert idx.tolist() == [[2, -1], [2, -1], [1, 0]]
