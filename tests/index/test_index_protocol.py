"""One test suite for the index protocol, run over every backend.

``exact`` is the reference; ``lance`` below its ANN threshold scans exactly too, so it must
agree with the reference row for row; ``lance-ivf`` (IVF-PQ + refine) must reach a recall.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from kmervae.errors import KmervaeError
from kmervae.index import create_index, open_index
from kmervae.index.exact import brute_force_topk

N, DIM = 3000, 16
SCHEMA = {"length": "int64", "gc": "float32", "source": "string"}
BACKENDS = {
    "exact": ("exact", {}),
    "lance": ("lance", {}),
    "lance-ivf": ("lance", {"ann_min_rows": 1000, "num_partitions": 16, "nprobes": 8}),
    "faiss": ("faiss", {}),
    "faiss-ivf": ("faiss", {"ann_min_rows": 1000, "num_partitions": 16, "nprobes": 4}),
    "lance-pq": (
        "lance",
        {"ann_min_rows": 1000, "index_type": "ivf-pq", "num_partitions": 16, "nprobes": 8},
    ),
}


def clustered(n: int = N, dim: int = DIM, seed: int = 0) -> np.ndarray:
    """float32 (n, dim): 30 Gaussian clusters, like embeddings of many genomes."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 3, size=(30, dim))
    return (centres[rng.integers(0, 30, n)] + rng.normal(size=(n, dim))).astype(np.float32)


def columns(start: int, stop: int) -> dict[str, np.ndarray]:
    i = np.arange(start, stop)
    return {
        "length": 1000 + 7 * i,
        "gc": (i % 100 / 100).astype(np.float32),
        "source": np.array(["marine" if j % 3 else "soil" for j in i]),
    }


def ids(start: int, stop: int) -> list[str]:
    return [f"c{i}" for i in range(start, stop)]


def truth(x: np.ndarray, queries: np.ndarray, k: int, keep: np.ndarray | None = None):
    rows = np.arange(len(x)) if keep is None else np.flatnonzero(keep)
    return brute_force_topk(queries, [(rows, x[rows])], k)


@pytest.fixture(params=list(BACKENDS))
def backend(request):
    return request.param


@pytest.fixture
def vectors():
    return clustered()


@pytest.fixture
def store(tmp_path, backend, vectors):
    name, params = BACKENDS[backend]
    path = tmp_path / "store"
    with create_index(path, backend=name, dim=DIM, schema=SCHEMA, params=params) as s:
        for a in range(0, N, 1000):
            s.add(ids(a, a + 1000), vectors[a : a + 1000], columns(a, a + 1000))
        s.save({"action": "build"})
    return open_index(path)


def _recall(found: np.ndarray, expected: np.ndarray) -> float:
    return float(
        np.mean([len(set(f) & set(e)) / len(e) for f, e in zip(found, expected, strict=True)])
    )


def test_search_finds_the_true_neighbours(store, backend, vectors):
    queries = vectors[::97] + 0.01
    got = store.search(queries, 10)
    want = truth(vectors, queries, 10)
    assert got.rows.shape == (len(queries), 10) and got.rows.dtype == np.int64
    assert got.distances.dtype == np.float32
    if backend.endswith(("-ivf", "-pq")):
        assert _recall(got.rows, want.rows) >= 0.9
    else:
        np.testing.assert_array_equal(got.rows, want.rows)
        np.testing.assert_allclose(got.distances, want.distances, rtol=1e-4, atol=1e-4)
    # distances are Euclidean (not squared) and sorted
    found = got.rows[0][got.rows[0] >= 0]
    direct = np.linalg.norm(vectors[found] - queries[0], axis=1)
    np.testing.assert_allclose(got.distances[0][: len(found)], direct, rtol=1e-3, atol=1e-3)
    assert (np.diff(got.distances, axis=1) >= -1e-6).all()


@pytest.mark.parametrize("n_queries", [20, 100], ids=["small-batch", "list-by-list"])
def test_filtered_search_keeps_only_matching_rows(store, backend, vectors, n_queries):
    # 20 queries go query by query; 100 go list by list where a backend has a FAISS index
    queries = vectors[:: N // n_queries][:n_queries] + 0.01
    where = "length >= 15000 and source = 'marine'"
    got = store.search(queries, 5, where=where)
    cols = columns(0, N)
    keep = (cols["length"] >= 15000) & (cols["source"] == "marine")
    assert keep[got.rows[got.rows >= 0]].all()
    want = truth(vectors, queries, 5, keep)
    if backend.endswith(("-ivf", "-pq")):
        assert _recall(got.rows, want.rows) >= 0.8
    else:
        np.testing.assert_array_equal(got.rows, want.rows)
    # a filter few rows pass pads with -1 / inf (probed lists hold too few: all scanned)
    few = store.search(queries, 5, where="row < 3")
    assert (few.rows[:, 3:] == -1).all() and np.isinf(few.distances[:, 3:]).all()
    assert (np.sort(few.rows[:, :3], axis=1) == [0, 1, 2]).all()


def test_bad_requests_are_clear_errors(store):
    with pytest.raises(KmervaeError, match="unknown column 'size'"):
        store.search(np.zeros((1, DIM), np.float32), 3, where="size > 5")
    with pytest.raises(KmervaeError, match="larger than the store"):
        store.search(np.zeros((1, DIM), np.float32), N + 1)
    with pytest.raises(KmervaeError, match="dimension mismatch"):
        store.search(np.zeros((1, DIM + 1), np.float32), 3)
    with pytest.raises(KmervaeError, match="is not in"):
        store.lookup(["c1", "nope"])
    with pytest.raises(KmervaeError, match="text column"):
        store.search(np.zeros((1, DIM), np.float32), 3, where="source > 3")


def test_lookup_take_and_ids(store, vectors):
    rows = store.lookup(["c17", "c3", "c2999"])
    np.testing.assert_array_equal(rows, [17, 3, 2999])
    got = store.take(rows, ["id", "embedding", "length", "gc", "source"])
    assert list(got["id"]) == ["c17", "c3", "c2999"]
    np.testing.assert_array_equal(got["embedding"], vectors[[17, 3, 2999]])
    np.testing.assert_array_equal(got["length"], [1000 + 7 * 17, 1021, 1000 + 7 * 2999])
    assert list(got["source"]) == ["marine", "soil", "marine"]
    assert [i for block in store.iter_ids(batch_rows=700) for i in block] == ids(0, N)
    first, block = next(store.iter_batches(["embedding"], batch_rows=500, start=1000))
    assert first == 1000
    np.testing.assert_array_equal(block["embedding"], vectors[1000:1500])


def test_add_commits_atomically_and_refuses_duplicates(store, tmp_path, vectors):
    extra = clustered(50, seed=1)
    with pytest.raises(KmervaeError, match="already in the store"):
        store.add(["new0", "c5"], extra[:2], {k: v[:2] for k, v in columns(0, 2).items()})
    with pytest.raises(KmervaeError, match="among the embeddings being added"):
        store.add(["x", "x"], extra[:2], {k: v[:2] for k, v in columns(0, 2).items()})
    with pytest.raises(KmervaeError, match="dimension mismatch"):
        store.add(["x"], np.zeros((1, DIM + 2), np.float32), columns(0, 1))
    # rows added but never saved stay invisible
    store.add(ids(N, N + 10), extra[:10], columns(N, N + 10))
    assert len(open_index(store.path)) == N
    reopened = open_index(store.path)
    reopened.add(ids(N, N + 50), extra, columns(N, N + 50))
    reopened.save({"action": "add"})
    again = open_index(store.path)
    assert len(again) == N + 50
    np.testing.assert_array_equal(again.lookup([f"c{N + 49}"]), [N + 49])
    got = again.search(extra[:5], 1)
    np.testing.assert_array_equal(got.rows[:, 0], np.arange(N, N + 5))
    manifest = json.loads((store.path / "manifest.json").read_text())
    assert [h["action"] for h in manifest["history"]] == ["build", "add"]
    assert manifest["n_rows"] == N + 50


def test_a_failed_build_leaves_nothing(tmp_path, backend):
    name, params = BACKENDS[backend]
    path = tmp_path / "broken"
    with pytest.raises(KmervaeError), create_index(path, backend=name, dim=4, params=params) as s:
        s.add(["a"], np.zeros((1, 4), np.float32), {})
        s.add(["a"], np.zeros((1, 4), np.float32), {})
    assert not path.exists()
    assert list(tmp_path.iterdir()) == []


def test_batched_search_finds_the_true_neighbours(store, backend, vectors):
    # 100 queries: the LanceDB and FAISS stores search such batches list by list
    queries = vectors[::30] + 0.01
    got = store.search(queries, 10)
    want = truth(vectors, queries, 10)
    if backend.endswith(("-ivf", "-pq")):
        assert _recall(got.rows, want.rows) >= 0.9
    else:
        np.testing.assert_array_equal(got.rows, want.rows)
        np.testing.assert_allclose(got.distances, want.distances, rtol=1e-4, atol=1e-4)
    assert (np.diff(got.distances, axis=1) >= -1e-6).all()


@pytest.mark.parametrize("backend", ["lance-ivf", "faiss-ivf"])
def test_an_index_written_past_the_commit_stays_invisible(store, backend, vectors):
    # a crash after the index file was written but before the manifest: the extra rows
    # must not be found, and the next add must index its own rows once
    extra = clustered(200, seed=1)
    store.add(ids(N, N + 200), extra, columns(N, N + 200))
    store._commit()  # index structures and faiss.index written; manifest.json not
    reopened = open_index(store.path)
    assert len(reopened) == N
    for queries in (extra[:5], extra[:100]):  # one by one and list by list
        got = reopened.search(queries, 10)
        assert ((got.rows >= 0) & (got.rows < N)).all()
    reopened.add(ids(N, N + 200), extra, columns(N, N + 200))
    reopened.save({"action": "add"})
    again = open_index(store.path)
    got = again.search(extra[:100], 1)
    np.testing.assert_array_equal(got.rows[:, 0], np.arange(N, N + 100))


def test_lance_without_batch_index(tmp_path, vectors):
    path = tmp_path / "store"
    params = {"ann_min_rows": 1000, "num_partitions": 16, "nprobes": 8, "batch_index": "none"}
    with create_index(path, backend="lance", dim=DIM, schema=SCHEMA, params=params) as s:
        s.add(ids(0, N), vectors, columns(0, N))
        s.save({"action": "build"})
    store = open_index(path)
    assert not (path / "faiss.index").exists()
    assert store.manifest["params"]["batch_index"] == "none"
    queries = vectors[::30] + 0.01
    assert _recall(store.search(queries, 10).rows, truth(vectors, queries, 10).rows) >= 0.9
    with pytest.raises(KmervaeError, match="batch_index must be one of"):
        create_index(tmp_path / "bad", backend="lance", dim=DIM, params={"batch_index": "x"})
