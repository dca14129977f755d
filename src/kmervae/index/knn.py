"""All-vs-all k nearest neighbours of a store's contigs, with FAISS, batched and out of core.

Methods:

``exact``
    brute force (FAISS ``IndexFlatL2``): the true neighbours; O(N^2 d), for small stores.
``ivf-flat``
    FAISS IVF-Flat: the vectors are clustered into ``nlist`` lists (k-means on a seeded
    sample); each query scans its ``nprobe`` nearest lists. Distances are computed on the
    full float32 vectors, so the candidates come back exactly ranked.
``ivf-gemm``
    the same lists, searched a whole list at a time with BLAS products, candidates re-ranked
    by exact distances (:func:`_knn_by_lists`); about 4x faster than ``ivf-flat`` here.
``auto`` (default)
    ``exact`` up to :data:`EXACT_MAX_ROWS` rows, else ``ivf-gemm`` (``ivf-flat`` on Dask).

Memory: the FAISS index (N x dim float32, what it needs) plus a block of queries; the
results stream to disk block by block. The work runs through
:func:`kmervae.distributed.fanout.run_blocks`, so the same block function runs here or on
Dask workers, which load the index from the graph's temporary folder on shared storage.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from kmervae._version import __version__
from kmervae.errors import KmervaeError
from kmervae.index.graph import FORMAT_NAME, SCHEMA_VERSION, cap_in_degree
from kmervae.index.graph import index_dtype as graph_index_dtype
from kmervae.index.ivf import faiss_module
from kmervae.index.protocol import StoreBase, storage_errors
from kmervae.io.atomic import check_writable, remove_path, replace_path, temporary_name
from kmervae.io.npy import NpyStreamWriter
from kmervae.provenance import file_sha256

log = logging.getLogger(__name__)

METHODS = ("auto", "exact", "ivf-flat", "ivf-gemm")
EXACT_MAX_ROWS = 50_000
QUERY_BLOCK = 8192
#: queries whose exact neighbours are computed to estimate the recall of an IVF graph
RECALL_SAMPLE = 200

_INDICES: dict[str, Any] = {}


def _faiss() -> Any:
    return faiss_module()


@dataclass
class KnnSummary:
    """What a k-NN run did."""

    output: Path
    n_rows: int
    k: int
    method: str
    seconds: float
    edges: int
    recall: float | None


def default_nlist(n_rows: int) -> int:
    """IVF lists: about sqrt(N), at least 1, with at least 39 training points per list."""
    return max(1, min(round(math.sqrt(n_rows)), n_rows // 39))


def build_faiss_index(
    store: StoreBase,
    method: str,
    *,
    nlist: int | None = None,
    train_rows: int | None = None,
    seed: int = 0,
    progress: Callable[[int], None] | None = None,
) -> tuple[Any, dict[str, Any]]:
    """A FAISS index holding every row of ``store`` (streamed in), and its parameters."""
    faiss = _faiss()
    n, dim = len(store), store.dim
    params: dict[str, Any] = {"method": method}
    if method == "exact":
        index = faiss.IndexFlatL2(dim)
    else:
        lists = nlist or default_nlist(n)
        quantizer = faiss.IndexFlatL2(dim)
        index = faiss.IndexIVFFlat(quantizer, dim, lists, faiss.METRIC_L2)
        size = min(n, train_rows or max(64 * lists, 50_000))
        rng = np.random.default_rng(seed)
        sample = np.sort(rng.choice(n, size=size, replace=False))
        t0 = time.perf_counter()
        vectors = np.concatenate(
            [
                store.take(sample[s : s + 65536], ["embedding"])["embedding"]
                for s in range(0, size, 65536)
            ]
        )
        index.train(vectors)
        del vectors
        log.info("trained %d IVF lists on %d rows in %.1f s", lists, size, time.perf_counter() - t0)
        params.update(nlist=lists, train_rows=size, seed=seed)
    for _, block in store.iter_batches(["embedding"], 65536):
        index.add(np.ascontiguousarray(block["embedding"], dtype=np.float32))
    return index, params


def _knn_by_lists(
    store: StoreBase,
    tmp: Path,
    k: int,
    *,
    nlist: int | None,
    nprobe: int,
    max_distance: float | None,
    seed: int,
    dtype: np.dtype,
    progress: Callable[[int], None] | None,
) -> dict[str, Any]:
    """IVF by lists with matrix products: all members of one k-means list are searched
    together against the members of the ``nprobe`` lists nearest to its centroid, as one
    BLAS product (tens of GFLOP/s, where scanning lists query by query runs at a few), then
    the k + 1 best candidates are re-ranked by exact distances. Writes ``indices.npy`` and
    ``distances.npy`` into ``tmp``.

    Out of core: the vectors are copied once, in list order, into a temporary file in
    ``tmp``, and each list and its candidate lists are read back as contiguous ranges.
    Memory: 20 bytes a row (list order, norms), the training sample, and one list with its
    candidates and their block of products (about 300 MB).
    """
    from numpy.lib.format import open_memmap

    from kmervae.index.protocol import SearchResult
    from kmervae.index.query import exclude_self

    faiss = _faiss()
    n, dim = len(store), store.dim
    lists = nlist or default_nlist(n)
    size = min(n, max(64 * lists, 50_000))
    rng = np.random.default_rng(seed)
    sample = np.sort(rng.choice(n, size=size, replace=False))
    t0 = time.perf_counter()
    train = np.concatenate(
        [
            store.take(sample[s : s + 65536], ["embedding"])["embedding"]
            for s in range(0, size, 65536)
        ]
    )
    kmeans = faiss.Kmeans(dim, lists, niter=20, seed=seed, verbose=False)
    kmeans.train(np.ascontiguousarray(train, np.float32))
    del train
    centroids = kmeans.centroids
    quantizer = faiss.IndexFlatL2(dim)
    quantizer.add(centroids)
    log.info("trained %d lists on %d rows in %.1f s", lists, size, time.perf_counter() - t0)
    assign = np.empty(n, np.int64)
    for first, block in store.iter_batches(["embedding"], 65536):
        v = np.ascontiguousarray(block["embedding"], np.float32)
        assign[first : first + len(v)] = quantizer.search(v, 1)[1][:, 0]
    order = np.argsort(assign, kind="stable")  # rows in list order
    bounds = np.searchsorted(assign[order], np.arange(lists + 1))
    del assign
    position = np.empty(n, np.int64)
    position[order] = np.arange(n)
    norms = np.empty(n, np.float32)  # by position
    by_list = tmp / "vectors-by-list.f32"
    with open(by_list, "wb") as fh:
        fh.truncate(n * dim * 4)
        for first, block in store.iter_batches(["embedding"], 65536):
            v = np.ascontiguousarray(block["embedding"], np.float32)
            pos = position[first : first + len(v)]
            srt = np.argsort(pos, kind="stable")
            pos, v = pos[srt], v[srt]
            norms[pos] = np.einsum("ij,ij->i", v, v)
            # the rows of one list in a block have consecutive positions: one write a run
            runs = np.flatnonzero(np.r_[True, np.diff(pos) != 1, True])
            for a, b in zip(runs[:-1].tolist(), runs[1:].tolist(), strict=True):
                os.pwrite(fh.fileno(), v[a:b].tobytes(), int(pos[a]) * dim * 4)
    del position

    def read_lists(ids: Any) -> tuple[np.ndarray, np.ndarray]:
        """Positions and vectors of the given lists, one contiguous read each, straight
        into one array."""
        spans = [(int(bounds[p]), int(bounds[p + 1])) for p in ids if p >= 0]
        spans = [(a, b) for a, b in spans if b > a]
        total = sum(b - a for a, b in spans)
        vecs = np.empty((total, dim), np.float32)
        at = 0
        with open(by_list, "rb") as fh:
            for a, b in spans:
                fh.seek(a * dim * 4)
                fh.readinto(vecs[at : at + b - a].data.cast("B"))
                at += b - a
        pos = np.concatenate([np.arange(a, b) for a, b in spans]) if spans else np.empty(0, int)
        return pos.astype(np.int64), vecs

    probes = quantizer.search(centroids, min(nprobe, lists))[1]
    out_idx = open_memmap(tmp / "indices.npy", "w+", dtype, (n, k))
    out_dist = open_memmap(tmp / "distances.npy", "w+", np.float32, (n, k))
    for c in range(lists):
        q_pos, q_vec = read_lists([c])
        if len(q_pos) == 0:
            continue
        cand_pos, cand_vec = read_lists(probes[c])
        cand = order[cand_pos]
        cand_norms = norms[cand_pos]
        kk = min(k + 1, len(cand))
        # d2, its argpartition (int64) and two temporaries: about 20 bytes x chunk x cand
        chunk = max(16, min(4096, int(1.5e7 // len(cand))))
        for s in range(0, len(q_pos), chunk):
            qr = order[q_pos[s : s + chunk]]
            q = q_vec[s : s + chunk]
            d2 = norms[q_pos[s : s + chunk]][:, None] - 2.0 * (q @ cand_vec.T) + cand_norms
            part = np.argpartition(d2, kk - 1, axis=1)[:, :kk]
            rows = cand[part]
            exact = np.empty(rows.shape, np.float32)
            for j in range(kk):  # column by column: small temporaries, exact distances
                diff = q - cand_vec[part[:, j]]
                exact[:, j] = np.sqrt(np.einsum("ij,ij->i", diff, diff))
            srt = np.lexsort((rows, exact), axis=1)
            rows = np.take_along_axis(rows, srt, axis=1)
            exact = np.take_along_axis(exact, srt, axis=1)
            if kk < k + 1:
                pad = k + 1 - kk
                rows = np.pad(rows, ((0, 0), (0, pad)), constant_values=-1)
                exact = np.pad(exact, ((0, 0), (0, pad)), constant_values=np.inf)
            result = exclude_self(SearchResult(rows.astype(np.int64), exact), qr, k)
            if max_distance is not None:
                far = result.distances > max_distance
                result.rows[far] = -1
                result.distances[far] = np.inf
            out_idx[qr] = result.rows.astype(dtype)
            out_dist[qr] = result.distances
        if progress is not None:
            progress(len(q_pos))
    out_idx.flush()
    out_dist.flush()
    del out_idx, out_dist
    remove_path(by_list)
    return {
        "method": "ivf-gemm",
        "nlist": lists,
        "nprobe": nprobe,
        "train_rows": size,
        "seed": seed,
    }


def knn_block(
    store_path: str,
    n_rows: int,
    index_path: str,
    start: int,
    stop: int,
    k: int,
    nprobe: int,
    max_distance: float | None,
) -> tuple[np.ndarray, np.ndarray]:
    """Neighbours of rows ``start:stop`` (self excluded): int64 and float32 (n, k).

    Runs here or on a Dask worker: the store is opened by path and the FAISS index read
    from ``index_path`` once per process.
    """
    from kmervae.distributed.fanout import cached_store
    from kmervae.index.protocol import SearchResult
    from kmervae.index.query import exclude_self

    faiss = _faiss()
    store = cached_store(store_path, n_rows)
    if index_path not in _INDICES:
        _INDICES.clear()
        _INDICES[index_path] = faiss.read_index(index_path)
    index = _INDICES[index_path]
    if hasattr(index, "nprobe"):
        index.nprobe = nprobe
    rows = np.arange(start, stop, dtype=np.int64)
    queries = store.take(rows, ["embedding"])["embedding"]
    d2, idx = index.search(np.ascontiguousarray(queries, np.float32), k + 1)
    dist = np.sqrt(np.maximum(d2, 0)).astype(np.float32)
    dist[idx < 0] = np.inf
    result = exclude_self(SearchResult(idx.astype(np.int64), dist), rows, k)
    if max_distance is not None:
        far = result.distances > max_distance
        result.rows[far] = -1
        result.distances[far] = np.inf
    return result.rows, result.distances


def _recall_estimate(store: StoreBase, graph_rows: np.ndarray, sample: np.ndarray, k: int) -> float:
    """Fraction of the exact k neighbours (self excluded) found, over ``sample`` rows."""
    from kmervae.index.exact import brute_force_topk
    from kmervae.index.protocol import SearchResult
    from kmervae.index.query import exclude_self

    queries = store.take(sample, ["embedding"])["embedding"]
    blocks = (
        (np.arange(first, first + len(b["embedding"])), b["embedding"])
        for first, b in store.iter_batches(["embedding"], 8192)  # small float64 temporaries
    )
    exact = brute_force_topk(queries, blocks, k + 1)
    exact = exclude_self(SearchResult(exact.rows, exact.distances), sample, k)
    hits = [len(set(a[a >= 0]) & set(b)) / k for a, b in zip(graph_rows, exact.rows, strict=True)]
    return float(np.mean(hits))


def _knn_by_blocks(
    store: StoreBase,
    tmp: Path,
    k: int,
    chosen: str,
    nlist: int | None,
    nprobe: int,
    max_distance: float | None,
    seed: int,
    dtype: np.dtype,
    client: Any,
    block: int,
    progress: Callable[[int], None] | None,
) -> dict[str, Any]:
    """A FAISS index (exact or IVF-Flat) searched block of queries by block, here or on
    Dask workers (:func:`knn_block`); results streamed into ``tmp``."""
    faiss = _faiss()
    n = len(store)
    t0 = time.perf_counter()
    index, params = build_faiss_index(store, chosen, nlist=nlist, seed=seed)
    params["nprobe"] = nprobe if chosen != "exact" else None
    log.info("%s index over %d rows built in %.1f s", chosen, n, time.perf_counter() - t0)
    from kmervae.distributed.fanout import remember_store, run_blocks

    store_path, n_rows = remember_store(store)
    index_file = tmp / "faiss.index"
    if client is not None:
        faiss.write_index(index, str(index_file))  # workers read it from shared storage
    _INDICES.clear()
    _INDICES[str(index_file.resolve())] = index
    idx_writer = NpyStreamWriter(tmp / "indices.npy", dtype, (k,))
    dist_writer = NpyStreamWriter(tmp / "distances.npy", np.float32, (k,))
    blocks = [
        (store_path, n_rows, str(index_file.resolve()), s, min(s + block, n), k, nprobe,
         max_distance)
        for s in range(0, n, block)
    ]  # fmt: skip

    def write(i: int, result: tuple[np.ndarray, np.ndarray]) -> None:
        idx_writer.write(result[0].astype(dtype))
        dist_writer.write(result[1])
        if progress is not None:
            progress(len(result[0]))

    t0 = time.perf_counter()
    run_blocks(knn_block, blocks, client, on_block=write)
    idx_writer.close()
    dist_writer.close()
    log.info("searched %d rows in %.1f s", n, time.perf_counter() - t0)
    del index
    _INDICES.clear()
    remove_path(index_file)
    return params


def knn_graph(
    store: StoreBase,
    output: str | Path,
    k: int = 50,
    *,
    method: str = "auto",
    nlist: int | None = None,
    nprobe: int = 16,
    max_distance: float | None = None,
    max_in_degree: int | None = None,
    threads: int | None = None,
    client: Any = None,
    block: int = QUERY_BLOCK,
    seed: int = 0,
    provenance: dict[str, Any] | None = None,
    overwrite: bool = False,
    progress: Callable[[int], None] | None = None,
    on_folder: Callable[[Path], None] | None = None,
) -> KnnSummary:
    """Write the k-NN graph of every row of ``store`` (see :mod:`kmervae.index.graph`).

    Parameters
    ----------
    store : an open store (any backend).
    output : the graph folder to create.
    k : neighbours per contig, itself excluded (k < N).
    method : ``auto``, ``exact`` or ``ivf-flat``.
    nlist, nprobe : IVF lists (default about sqrt(N)) and lists scanned per query.
    max_distance : drop edges longer than this.
    max_in_degree : keep at most this many in-edges per contig (the nearest ones).
    threads : FAISS (OpenMP) threads; None: FAISS's default (all cores).
    client : a ``distributed.Client`` to fan the query blocks out to, or None.
    block : queries per block.

    Raises
    ------
    KmervaeError
        k not smaller than the store, an unknown method, bad pruning values.
    """
    started = time.perf_counter()
    output = Path(output)
    check_writable(output, overwrite)
    chosen = check_knn_request(
        store,
        k,
        method,
        nlist,
        nprobe=nprobe,
        block=block,
        max_distance=max_distance,
        max_in_degree=max_in_degree,
        distributed=client is not None,
    )
    faiss = _faiss()
    if threads:
        faiss.omp_set_num_threads(int(threads))
    with storage_errors(output):
        return _write_graph(
            store, output, k, chosen, nlist, nprobe, max_distance, max_in_degree, client,
            block, seed, provenance, progress, on_folder, started,
        )  # fmt: skip


def check_knn_request(
    store: StoreBase,
    k: int,
    method: str = "auto",
    nlist: int | None = None,
    *,
    nprobe: int = 16,
    block: int = QUERY_BLOCK,
    max_distance: float | None = None,
    max_in_degree: int | None = None,
    distributed: bool = False,
) -> str:
    """Refuse a k-NN request that cannot work on ``store``, before any work; returns the
    method that will run (``auto`` resolved)."""
    n = len(store)
    if method not in METHODS:
        raise KmervaeError(f"unknown method {method!r} (use one of {', '.join(METHODS)})")
    if k < 1:
        raise KmervaeError(f"k must be at least 1, got {k}")
    if k >= n:
        raise KmervaeError(
            f"k = {k} is larger than the store allows ({n} contigs, each excluded from its "
            "own neighbours)"
        )
    for name, value in (("nlist", nlist), ("nprobe", nprobe), ("block", block)):
        if value is not None and value < 1:
            raise KmervaeError(f"{name} must be at least 1, got {value}")
    if max_in_degree is not None and max_in_degree < 1:
        raise KmervaeError(f"max_in_degree must be at least 1, got {max_in_degree}")
    if max_distance is not None and not (max_distance >= 0 and math.isfinite(max_distance)):
        raise KmervaeError(f"max_distance must be a finite number >= 0, got {max_distance}")
    large = "ivf-flat" if distributed else "ivf-gemm"  # ivf-gemm runs here only
    chosen = method if method != "auto" else ("exact" if n <= EXACT_MAX_ROWS else large)
    if chosen == "ivf-gemm" and distributed:
        raise KmervaeError("the method ivf-gemm runs in this process; distributed, use ivf-flat")
    if chosen != "exact" and nlist is not None and nlist > n:
        raise KmervaeError(f"nlist {nlist} is more than the store's {n} contigs")
    return chosen


def _write_graph(
    store: StoreBase,
    output: Path,
    k: int,
    chosen: str,
    nlist: int | None,
    nprobe: int,
    max_distance: float | None,
    max_in_degree: int | None,
    client: Any,
    block: int,
    seed: int,
    provenance: dict[str, Any] | None,
    progress: Callable[[int], None] | None,
    on_folder: Callable[[Path], None] | None,
    started: float,
) -> KnnSummary:
    """The graph, built in a temporary folder beside ``output`` and renamed into place."""
    n = len(store)
    tmp = temporary_name(output)
    remove_path(tmp)
    tmp.mkdir()
    try:
        if on_folder is not None:
            on_folder(tmp)
        dtype = graph_index_dtype(n)
        if chosen == "ivf-gemm":
            t0 = time.perf_counter()
            params = _knn_by_lists(
                store,
                tmp,
                k,
                nlist=nlist,
                nprobe=nprobe,
                max_distance=max_distance,
                seed=seed,
                dtype=dtype,
                progress=progress,
            )
            log.info("searched %d rows by lists in %.1f s", n, time.perf_counter() - t0)
        else:
            params = _knn_by_blocks(
                store, tmp, k, chosen, nlist, nprobe, max_distance, seed, dtype, client, block,
                progress,
            )  # fmt: skip
        indices = np.load(tmp / "indices.npy", mmap_mode="r+")
        distances = np.load(tmp / "distances.npy", mmap_mode="r+")
        recall = None
        if chosen != "exact":
            rng = np.random.default_rng(seed + 1)
            sample = np.sort(rng.choice(n, size=min(RECALL_SAMPLE, n), replace=False))
            graph_rows = np.asarray(indices[sample], dtype=np.int64)
            recall = (
                _recall_estimate(store, graph_rows, sample, k) if max_distance is None else None
            )
            if recall is not None:
                log.info("estimated recall@%d over %d rows: %.4f", k, len(sample), recall)
        removed = 0
        if max_in_degree is not None:
            removed = cap_in_degree(indices, distances, max_in_degree)
            log.info("in-degree cap %d removed %d edges", max_in_degree, removed)
        indices.flush()
        distances.flush()
        edges = int(sum((indices[s : s + 65536] >= 0).sum() for s in range(0, n, 65536)))
        del indices, distances
        with open(tmp / "ids.txt", "w", encoding="utf-8") as fh:
            for ids in store.iter_ids():
                fh.write("\n".join(ids) + "\n")
        manifest = {
            "format": FORMAT_NAME,
            "schema_version": SCHEMA_VERSION,
            "kmervae_version": __version__,
            "n_rows": n,
            "k": k,
            "metric": "euclidean",
            "self_excluded": True,
            "index_dtype": dtype.name,
            "method": params,
            "recall_estimate": recall,
            "pruning": {
                "max_distance": max_distance,
                "max_in_degree": max_in_degree,
                "removed_by_in_degree": removed,
                "edges": edges,
            },
            "store": {
                "path": str(store.path.resolve()),
                "backend": store.backend,
                "n_rows": n,
                "model_fingerprint": store.model_fingerprint,
                "ids_sha256": file_sha256(tmp / "ids.txt"),
                "params": store.manifest.get("params", {}),
            },
            "provenance": provenance or {},
        }
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        replace_path(tmp, output)
    except BaseException:
        _INDICES.clear()
        remove_path(tmp)
        raise
    seconds = time.perf_counter() - started
    log.info("k-NN graph of %d rows (k=%d, %s) in %.1f s: %s", n, k, chosen, seconds, output)
    return KnnSummary(output, n, k, chosen, seconds, edges, recall)
