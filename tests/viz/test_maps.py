"""Maps: t-SNE keeps clusters apart, from its own neighbours or from a graph's; seeds
reproduce; the graph helpers against naive twins; the MAP folder checks itself."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.manifold import trustworthiness

from kmervae.errors import InputError, KmervaeError
from kmervae.viz.maps import (
    category_codes,
    check_perplexity,
    effective_perplexity,
    graph_neighbours,
    open_map,
    pca_initialization,
    rows_at_least,
    select_ids,
    tsne_map,
    write_map_arrays,
)

N, DIM, BLOBS, K = 1200, 16, 5, 30
#: short schedules keep the tests fast; the blobs separate long before
FAST = {"n_iter": 100, "early_iter": 75, "threads": 1}


def blobs(n: int = N, dim: int = DIM, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """float32 (n, dim) Gaussian blobs well apart, and int (n,) blob labels."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 6, size=(BLOBS, dim))
    labels = rng.integers(0, BLOBS, n)
    return (centres[labels] + rng.normal(size=(n, dim))).astype(np.float32), labels


def exact_knn(x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Naive k-NN graph, itself excluded: int32 (n, k) rows and float32 distances."""
    d = np.sqrt(((x[:, None, :].astype(np.float64) - x[None, :, :]) ** 2).sum(-1))
    np.fill_diagonal(d, np.inf)
    idx = np.argsort(d, axis=1)[:, :k]
    return idx.astype(np.int32), np.take_along_axis(d, idx, 1).astype(np.float32)


def label_agreement(coords: np.ndarray, labels: np.ndarray, k: int = 10) -> float:
    """Mean fraction of each point's k nearest map neighbours sharing its label."""
    idx, _ = exact_knn(coords, k)
    return float((labels[idx] == labels[:, None]).mean())


@pytest.fixture(scope="module")
def data():
    return blobs()


@pytest.fixture(scope="module")
def own_map(data):
    x, _ = data
    return tsne_map(x, perplexity=30, seed=1, **FAST)


def test_tsne_keeps_blobs_apart(data, own_map):
    x, labels = data
    assert own_map.shape == (N, 2) and own_map.dtype == np.float32
    assert np.isfinite(own_map).all()
    assert label_agreement(own_map, labels) > 0.95
    assert trustworthiness(x, own_map, n_neighbors=10) > 0.9


def test_same_seed_same_coordinates(data, own_map):
    x, _ = data
    again = tsne_map(x, perplexity=30, seed=1, **FAST)
    np.testing.assert_array_equal(again, own_map)


def test_graph_map_as_good_as_own_neighbours(data, own_map):
    x, labels = data
    idx, dist = exact_knn(x, K)
    first = tsne_map(x, neighbors=idx, distances=dist, perplexity=10, seed=3, **FAST)
    assert label_agreement(first, labels) > 0.95
    trust_graph = trustworthiness(x, first, n_neighbors=10)
    assert trust_graph > trustworthiness(x, own_map, n_neighbors=10) - 0.03
    second = tsne_map(x, neighbors=idx, distances=dist, perplexity=10, seed=3, **FAST)
    np.testing.assert_array_equal(first, second)


def test_map_follows_the_graph_not_the_vectors(data):
    # vectors without structure, a graph of clustered points with pruned edges: only the
    # graph can put the blobs apart
    x, labels = data
    idx, dist = exact_knn(x, K)
    far = dist > np.quantile(dist, 0.8)
    idx[far], dist[far] = -1, np.inf
    idx[:3], dist[:3] = -1, np.inf  # contigs with no edge at all
    noise = np.random.default_rng(5).normal(size=x.shape).astype(np.float32)
    coords = tsne_map(noise, neighbors=idx, distances=dist, perplexity=30, seed=1, **FAST)
    assert np.isfinite(coords).all()
    assert label_agreement(coords[3:], labels[3:]) > 0.9


def test_perplexity_limits():
    assert effective_perplexity(30, 50) == pytest.approx(50 / 3)
    assert effective_perplexity(5, 50) == 5
    check_perplexity(30, 91)
    with pytest.raises(KmervaeError, match="too big for 90 contigs"):
        check_perplexity(30, 90)
    x, _ = blobs(40)
    with pytest.raises(KmervaeError, match="perplexity 30 is too big"):
        tsne_map(x, perplexity=30, **FAST)


def test_pca_initialization_matches_numpy_and_reads_only_rows():
    x, _ = blobs(500)
    rows = np.arange(0, 500, 2)
    init = pca_initialization(x, rows, seed=2, sample=10_000)
    sub = x[rows].astype(np.float64)
    sub -= sub.mean(0)
    _, _, vt = np.linalg.svd(sub, full_matrices=False)
    want = sub @ vt[:2].T
    for j in range(2):  # same axes up to sign and scale (and the tiny jitter)
        r = np.corrcoef(init[:, j], want[:, j])[0, 1]
        assert abs(r) > 0.999
    assert np.std(init[:, 0]) == pytest.approx(1e-4, rel=0.01)
    np.testing.assert_array_equal(init, pca_initialization(x, rows, seed=2, sample=10_000))


def test_graph_neighbours_remaps_like_a_naive_loop():
    rng = np.random.default_rng(1)
    n, k = 60, 6
    idx = rng.integers(0, n, (n, k)).astype(np.int32)
    dist = rng.random((n, k)).astype(np.float32)
    idx[5, 3:], dist[5, 3:] = -1, np.inf
    rows = np.sort(rng.choice(n, 40, replace=False))
    got_idx, got_dist = graph_neighbours(idx, dist, rows, k=4)
    where = {int(r): i for i, r in enumerate(rows)}
    for i, r in enumerate(rows):
        for j in range(4):
            t = int(idx[r, j])
            want = where.get(t, -1) if t >= 0 else -1
            assert got_idx[i, j] == want
            assert got_dist[i, j] == (dist[r, j] if want >= 0 else np.inf)
    all_idx, all_dist = graph_neighbours(idx, dist)
    np.testing.assert_array_equal(all_idx, idx)
    np.testing.assert_array_equal(all_dist, dist)


def test_row_selection_and_categories():
    lengths = np.array([500, 5000, 1000, 7000, 100])
    assert rows_at_least(lengths, 0) is None
    assert rows_at_least(lengths, 100) is None
    np.testing.assert_array_equal(rows_at_least(lengths, 1000), [1, 2, 3])
    ids = [["a", "b"], ["c", "d", "e"]]
    assert list(select_ids(ids, np.array([1, 2, 4]))) == [["b"], ["c", "e"]]
    codes, names, found = category_codes(iter(ids), {"a": "x", "c": "y", "e": "x"}, 5)
    assert names == ["x", "y"] and found == 3
    np.testing.assert_array_equal(codes, [0, -1, 1, -1, 0])


def _write_map(path, n=12):
    path.mkdir()
    coords = np.arange(2 * n, dtype=np.float32).reshape(n, 2)
    ids = [f"c{i}" for i in range(n)]
    write_map_arrays(path, coords, np.arange(n), np.full(n, np.nan, np.float32), [ids])
    manifest = {"format": "kmervae-map", "schema_version": 1, "n_rows": n, "method": "tsne"}
    (path / "manifest.json").write_text(json.dumps(manifest))
    return coords, ids


def test_open_map_reads_and_checks(tmp_path):
    coords, ids = _write_map(tmp_path / "m")
    m = open_map(tmp_path / "m")
    np.testing.assert_array_equal(m.coordinates, coords)
    assert m.ids() == ids and m.n_rows == 12 and np.isnan(m.gc).all()
    assert m.lengths.dtype == np.int64
    (tmp_path / "m" / "ids.txt").write_text("c0\nc1\n")
    with pytest.raises(InputError, match="2 ids for 12 map rows"):
        open_map(tmp_path / "m")
    _write_map(tmp_path / "m2")
    np.save(tmp_path / "m2" / "coordinates.npy", np.zeros((12, 3), np.float32))
    with pytest.raises(InputError, match=r"coordinates\.npy has shape"):
        open_map(tmp_path / "m2")
    with pytest.raises(InputError, match="not a kmervae map"):
        open_map(tmp_path)
    with pytest.raises(InputError, match="no such map folder"):
        open_map(tmp_path / "absent")
