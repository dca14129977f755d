"""Batched IVF-Flat search, list by list.

FAISS's own IVF search takes the queries one at a time and, for each, reads the ``nprobe``
lists it probes: at a million 384-d vectors that is tens of MB read per query, and the
search is bound by memory bandwidth. Here a batch is turned around: the queries are
grouped by the lists they probe, every list is read once per batch and compared with all
its queries in one matrix product (BLAS), and a compiled kernel keeps each query's k best
as the products stream past. Same candidates as ``index.search`` with the same
``nprobe``; distances from ``|q|^2 + |v|^2 - 2 q.v``.

Threads take whole lists from a shared queue, each with single-threaded BLAS and its own
running k best, merged at the end. Coarse pieces of work keep every core busy on a
machine other jobs share, where many small parallel products wait on each other.
"""

from __future__ import annotations

import threading
from typing import Any

import numba
import numpy as np

from kmervae.cores import available_threads


@numba.njit(nogil=True, cache=True)
def _merge_products(
    products: np.ndarray,
    list_norms: np.ndarray,
    list_ids: np.ndarray,
    owners: np.ndarray,
    q_norms: np.ndarray,
    best_d: np.ndarray,
    best_i: np.ndarray,
    list_keep: np.ndarray,
) -> None:  # pragma: no cover - compiled
    """Fold one list into the running k best: row r of ``products`` holds q.v for query
    ``owners[r]`` against every vector of the list. ``best_d`` rows stay sorted ascending;
    a query appears at most once per list. ``list_keep`` (one flag a vector, or empty for
    all) leaves out the vectors a filter rejects."""
    filtered = list_keep.size > 0
    m, size = products.shape
    k = best_d.shape[1]
    for r in range(m):
        q = owners[r]
        qn = q_norms[q]
        worst = best_d[q, k - 1]
        for j in range(size):
            d = qn + list_norms[j] - 2.0 * products[r, j]
            if d < worst:
                if filtered and not list_keep[j]:
                    continue
                pos = k - 1
                while pos > 0 and best_d[q, pos - 1] > d:
                    best_d[q, pos] = best_d[q, pos - 1]
                    best_i[q, pos] = best_i[q, pos - 1]
                    pos -= 1
                best_d[q, pos] = d
                best_i[q, pos] = list_ids[j]
                worst = best_d[q, k - 1]


def list_arrays(index: Any, lst: int) -> tuple[np.ndarray, np.ndarray]:
    """The vectors (size x dim float32, a view into the index) and ids of one IVF-Flat list."""
    import faiss

    invlists = index.invlists
    size = invlists.list_size(lst)
    dim = index.d
    if size == 0:
        return np.empty((0, dim), np.float32), np.empty(0, np.int64)
    vecs = faiss.rev_swig_ptr(invlists.get_codes(lst), size * dim * 4).view(np.float32)
    ids = faiss.rev_swig_ptr(invlists.get_ids(lst), size)
    return vecs.reshape(size, dim), ids


def search_by_lists(
    index: Any,
    queries: np.ndarray,
    k: int,
    nprobe: int,
    norms_cache: dict[int, np.ndarray] | None = None,
    threads: int | None = None,
    keep: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """IVF-Flat search of a batch, list by list (see the module's text).

    ``keep`` (bool, one per id): only ids where it is true are candidates.
    ``norms_cache`` (list -> squared norms of its vectors) saves recomputing them from one
    batch to the next; the caller must clear it when the index changes. ``threads``:
    default, the cores this process may use.

    Returns squared distances (float32, Q x k, ascending) and row ids (int64, -1 padding).
    """
    from threadpoolctl import threadpool_limits

    q = np.ascontiguousarray(queries, np.float32)
    n_q = q.shape[0]
    if n_q == 0 or k == 0:
        return np.full((n_q, k), np.inf, np.float32), np.full((n_q, k), -1, np.int64)
    probes = index.quantizer.search(q, min(nprobe, index.nlist))[1]
    q_norms = np.einsum("ij,ij->i", q, q)
    flat = probes.ravel()
    owners = np.repeat(np.arange(n_q, dtype=np.int64), probes.shape[1])
    probed = flat >= 0
    flat, owners = flat[probed], owners[probed]
    order = np.argsort(flat, kind="stable")
    flat, owners = flat[order], owners[order]
    starts = np.flatnonzero(np.r_[True, flat[1:] != flat[:-1]])
    stops = np.r_[starts[1:], len(flat)]
    groups = list(zip(flat[starts].tolist(), starts.tolist(), stops.tolist(), strict=True))
    cache: dict[int, np.ndarray] = {} if norms_cache is None else norms_cache
    n_threads = max(1, min(threads or available_threads(), len(groups)))
    no_filter = np.empty(0, np.bool_)
    taken = iter(range(len(groups)))
    lock = threading.Lock()

    def work() -> tuple[np.ndarray, np.ndarray]:
        best_d = np.full((n_q, k), np.inf, np.float32)
        best_i = np.full((n_q, k), -1, np.int64)
        while True:
            with lock:
                g = next(taken, None)
            if g is None:
                return best_d, best_i
            lst, a, b = groups[g]
            vecs, ids = list_arrays(index, lst)
            if len(ids) == 0:
                continue
            norms = cache.get(lst)
            if norms is None:
                norms = cache[lst] = np.einsum("ij,ij->i", vecs, vecs)
            qs = owners[a:b]
            flags = no_filter if keep is None else keep[ids]
            _merge_products(q[qs] @ vecs.T, norms, ids, qs, q_norms, best_d, best_i, flags)

    with threadpool_limits(limits=1, user_api="blas"):
        if n_threads == 1:
            parts = [work()]
        else:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(n_threads) as pool:
                parts = [f.result() for f in [pool.submit(work) for _ in range(n_threads)]]
    if len(parts) == 1:
        best_d, best_i = parts[0]
    else:
        all_d = np.hstack([d for d, _ in parts])
        all_i = np.hstack([i for _, i in parts])
        srt = np.argsort(all_d, axis=1, kind="stable")[:, :k]
        best_d = np.take_along_axis(all_d, srt, axis=1)
        best_i = np.take_along_axis(all_i, srt, axis=1)
    best_i[~np.isfinite(best_d)] = -1
    return best_d, best_i
