"""Fan search and k-NN work out over Dask workers: one code path, local or distributed.

The work is cut into blocks of queries (rows); each block runs :func:`search_block` or a
k-NN block function that opens the store *by path* (shared storage: the Lance files on a
network file system or object store) and answers its block. Without a client the very same
functions run here, one block after another. A worker keeps opened stores and loaded
FAISS indices in a per-process cache, so each is opened once per worker.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from kmervae._extras import require
from kmervae.errors import KmervaeError
from kmervae.index.protocol import SearchResult, StoreBase

log = logging.getLogger(__name__)

#: queries per block sent to a worker
QUERY_BLOCK = 4096


def dask_client(address: str | None) -> Any:
    """A ``distributed.Client`` for a scheduler address (``tcp://host:8786``), or a local
    cluster for ``"local"``; None for no Dask."""
    if address is None:
        return None
    distributed = require("distributed", extra="dask", purpose="running on Dask")
    if address == "local":
        cluster = distributed.LocalCluster(processes=False, n_workers=1, threads_per_worker=2)
        return distributed.Client(cluster)
    return distributed.Client(address)


_STORES: dict[tuple[str, int], StoreBase] = {}


def remember_store(store: StoreBase) -> tuple[str, int]:
    """Put an open store in this process's cache; returns its key (path, n_rows)."""
    key = (str(store.path.resolve()), len(store))
    if len(_STORES) >= 8:
        _STORES.clear()
    _STORES[key] = store
    return key


def cached_store(path: str, n_rows: int) -> StoreBase:
    """The store at ``path`` opened once per process (``n_rows`` is part of the key, so a
    store that grew is reopened)."""
    from kmervae.index.protocol import open_index

    key = (path, n_rows)
    if key not in _STORES:
        store = open_index(path)
        if len(store) != n_rows:
            raise KmervaeError(f"{path}: holds {len(store)} rows on this worker, not {n_rows}")
        remember_store(store)
    return _STORES[key]


def search_block(
    path: str, n_rows: int, queries: np.ndarray, k: int, where: str | None
) -> tuple[np.ndarray, np.ndarray]:
    """Search one block of queries in the store at ``path`` (runs on a worker or here).

    Returns
    -------
    (rows, distances) : int64 and float32 (n, k).
    """
    result = cached_store(path, n_rows).search(queries, k, where=where)
    return result.rows, result.distances


def run_blocks(
    func: Callable[..., tuple[np.ndarray, np.ndarray]],
    blocks: Sequence[tuple[Any, ...]],
    client: Any = None,
    on_block: Callable[[int, tuple[np.ndarray, np.ndarray]], None] | None = None,
) -> list[tuple[np.ndarray, np.ndarray]] | None:
    """Run ``func(*args)`` for every block: here in order, or on Dask workers.

    With ``on_block(i, result)`` results are handed over as they come in order (and not
    kept: memory stays at a few blocks); otherwise they are returned as a list.
    """
    results: list[tuple[np.ndarray, np.ndarray]] = []

    def deliver(i: int, value: tuple[np.ndarray, np.ndarray]) -> None:
        if on_block is not None:
            on_block(i, value)
        else:
            results.append(value)

    if client is None:
        for i, args in enumerate(blocks):
            deliver(i, func(*args))
    else:
        window = max(2, 2 * len(client.scheduler_info().get("workers", {})) or 2)
        futures: dict[int, Any] = {}
        submitted = 0
        for i in range(len(blocks)):
            while submitted < len(blocks) and submitted < i + window:
                futures[submitted] = client.submit(func, *blocks[submitted], pure=False)
                submitted += 1
            deliver(i, futures.pop(i).result())
    return None if on_block is not None else results


def search_blocks(
    store: StoreBase,
    queries: np.ndarray,
    k: int,
    *,
    where: str | None = None,
    client: Any = None,
    block: int = QUERY_BLOCK,
) -> SearchResult:
    """Search ``queries`` (float32 (n, dim)) in blocks, here or on Dask workers.

    The store is checked (k, filter columns, dimension) here first, so bad requests fail
    before any work is sent out.
    """
    store.check_k(k)
    store.parse_where(where)
    if queries.ndim != 2 or queries.shape[1] != store.dim:
        raise KmervaeError(
            f"dimension mismatch: queries of shape {queries.shape}, the store holds "
            f"{store.dim}-dimensional vectors"
        )
    path, n_rows = remember_store(store)
    blocks = [
        (path, n_rows, queries[s : s + block], k, where) for s in range(0, len(queries), block)
    ]
    parts = run_blocks(search_block, blocks, client) or []
    if not parts:
        return SearchResult(np.empty((0, k), np.int64), np.empty((0, k), np.float32))
    return SearchResult(
        np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
    )
