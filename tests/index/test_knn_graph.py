"""The k-NN graph: exact and IVF against brute force, pruning, the reader, Dask fan-out."""

from __future__ import annotations

import numpy as np
import pytest
from test_index_protocol import clustered

from kmervae.errors import KmervaeError
from kmervae.index import create_index, open_index
from kmervae.index.exact import brute_force_topk
from kmervae.index.graph import cap_in_degree, open_knn_graph
from kmervae.index.knn import knn_graph
from kmervae.index.protocol import SearchResult
from kmervae.index.query import exclude_self

N, DIM, K = 2000, 16, 10


def _store(path, backend="exact", x=None):
    x = clustered(N, DIM, seed=3) if x is None else x
    with create_index(path, backend=backend, dim=DIM, schema={"length": "int64"}) as s:
        s.add([f"c{i}" for i in range(len(x))], x, {"length": np.arange(len(x)) * 10})
        s.save({"action": "build"})
    return open_index(path), x


def _exact_graph(x, k):
    found = brute_force_topk(x, [(np.arange(len(x)), x)], k + 1)
    return exclude_self(found, np.arange(len(x)), k)


@pytest.fixture(scope="module")
def lance_store(tmp_path_factory):
    return _store(tmp_path_factory.mktemp("knn") / "store", "lance")


def test_exact_graph_is_the_brute_force_graph(lance_store, tmp_path):
    store, x = lance_store
    summary = knn_graph(store, tmp_path / "g", K, method="exact", block=300)
    graph = open_knn_graph(tmp_path / "g")
    want = _exact_graph(x, K)
    np.testing.assert_array_equal(graph.indices, want.rows)
    np.testing.assert_allclose(graph.distances, want.distances, rtol=1e-4, atol=1e-4)
    assert summary.edges == N * K and graph.ids()[:2] == ["c0", "c1"]
    assert graph.manifest["method"]["method"] == "exact"


def test_ivf_graph_reaches_recall_and_reports_it(lance_store, tmp_path):
    store, x = lance_store
    summary = knn_graph(store, tmp_path / "g", K, method="ivf-flat", nlist=20, nprobe=4)
    graph = open_knn_graph(tmp_path / "g")
    want = _exact_graph(x, K)
    recall = np.mean(
        [len(set(a) & set(b)) / K for a, b in zip(graph.indices, want.rows, strict=True)]
    )
    assert recall >= 0.9
    assert summary.recall is not None and abs(summary.recall - recall) < 0.1
    assert graph.manifest["method"]["nlist"] == 20
    assert not (graph.indices == np.arange(N)[:, None]).any()


def test_ivf_by_lists_reaches_recall(lance_store, tmp_path):
    store, x = lance_store
    summary = knn_graph(store, tmp_path / "g", K, method="ivf-gemm", nlist=20, nprobe=4)
    graph = open_knn_graph(tmp_path / "g")
    want = _exact_graph(x, K)
    hits = [len(set(a) & set(b)) / K for a, b in zip(graph.indices, want.rows, strict=True)]
    assert np.mean(hits) >= 0.9
    assert summary.recall is not None and abs(summary.recall - np.mean(hits)) < 0.1
    assert not (graph.indices == np.arange(N)[:, None]).any()
    found = graph.indices >= 0
    direct = np.linalg.norm(x[np.where(found, graph.indices, 0)] - x[:, None, :], axis=2)
    np.testing.assert_allclose(graph.distances[found], direct[found], rtol=1e-5, atol=1e-5)
    assert (np.diff(graph.distances, axis=1) >= 0).all()


def test_ivf_by_lists_probing_every_list_is_exact(lance_store, tmp_path):
    # the vectors go through a list-ordered temporary file: every list probed must give
    # the brute-force graph, and the temporary file must be gone
    store, x = lance_store
    seen: list = []
    knn_graph(
        store, tmp_path / "g", K, method="ivf-gemm", nlist=12, nprobe=12, on_folder=seen.append
    )
    graph = open_knn_graph(tmp_path / "g")
    want = _exact_graph(x, K)
    np.testing.assert_array_equal(np.sort(graph.indices, axis=1), np.sort(want.rows, axis=1))
    np.testing.assert_allclose(graph.distances, want.distances, rtol=1e-5, atol=1e-5)
    assert not seen[0].exists() and not (tmp_path / "g" / "vectors-by-list.f32").exists()


def test_exclude_self_with_an_exact_duplicate():
    # row 0's twin (row 1) may come first: row 0 itself is dropped, the twin kept
    result = SearchResult(np.array([[1, 0, 5], [2, 3, 4]]), np.zeros((2, 3), np.float32))
    got = exclude_self(result, np.array([0, 9]), 2)
    np.testing.assert_array_equal(got.rows, [[1, 5], [2, 3]])


def test_cap_in_degree_matches_a_naive_cap():
    rng = np.random.default_rng(0)
    n, k, cap = 300, 6, 4
    idx = rng.integers(0, 40, size=(n, k)).astype(np.int32)  # hubs among the first 40
    dist = np.sort(rng.random((n, k)).astype(np.float32), axis=1)
    want_idx, want_dist = idx.copy(), dist.copy()
    edges = sorted((int(idx[i, j]), float(dist[i, j]), i, j) for i in range(n) for j in range(k))
    seen: dict[int, int] = {}
    for t, _, i, j in edges:
        seen[t] = seen.get(t, 0) + 1
        if seen[t] > cap:
            want_idx[i, j], want_dist[i, j] = -1, np.inf
    removed = cap_in_degree(idx, dist, cap, block_rows=70)
    assert removed == int((want_idx < 0).sum())
    for i in range(n):  # same edges kept, pruned ones moved to the end
        kept = want_idx[i] >= 0
        np.testing.assert_array_equal(idx[i][: kept.sum()], want_idx[i][kept])
        assert (idx[i][kept.sum() :] == -1).all() and np.isinf(dist[i][kept.sum() :]).all()
    assert np.bincount(idx[idx >= 0]).max() <= cap


def test_bad_knn_requests(lance_store, tmp_path):
    store, _ = lance_store
    with pytest.raises(KmervaeError, match="larger than the store"):
        knn_graph(store, tmp_path / "g", N)
    with pytest.raises(KmervaeError, match="unknown method"):
        knn_graph(store, tmp_path / "g", 3, method="hnsw")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("processes", [False, True], ids=["threads", "worker-processes"])
def test_dask_fan_out_gives_the_local_answers(lance_store, tmp_path, processes):
    # worker processes open the store by path, as workers on other machines would
    distributed = pytest.importorskip("distributed")
    from kmervae.distributed.fanout import search_blocks

    store, x = lance_store
    local = search_blocks(store, x[:300], 5, where="length >= 5000", block=64)
    with (
        distributed.LocalCluster(
            processes=processes, n_workers=2, threads_per_worker=1, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        remote = search_blocks(store, x[:300], 5, where="length >= 5000", client=client, block=64)
        knn_graph(store, tmp_path / "g", K, method="exact", block=256, client=client)
    np.testing.assert_array_equal(remote.rows, local.rows)
    graph = open_knn_graph(tmp_path / "g")
    np.testing.assert_array_equal(graph.indices, _exact_graph(x, K).rows)
