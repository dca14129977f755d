"""FAISS store: the exact backend's files plus a FAISS IVF-Flat index, for batched search.

LanceDB answers the queries of a batch one after another (a few ms each on two cores);
FAISS scans its inverted lists for a whole batch at once, with every core. This backend
keeps the rows exactly as :class:`~kmervae.index.exact.ExactStore` does (append-only raw
files, the manifest as the commit point) and adds ``faiss.index``: an IVF-Flat index
(full float32 vectors in the lists, so distances are exact) trained on a seeded sample at
the first commit and extended by every ``add``. Stores below ``ann_min_rows`` use an exact
flat index. Filters are evaluated on the metadata columns (NumPy) and passed to FAISS as
an id selector, so only matching rows are scanned.

Memory at search: the index, which holds N x dim float32.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np

from kmervae.errors import KmervaeError
from kmervae.index.exact import ExactStore
from kmervae.index.filters import Filter
from kmervae.index.protocol import SearchResult

log = logging.getLogger(__name__)

#: batches of at least this many unfiltered queries are searched list by list (see below)
BATCH_BY_LISTS = 32


def search_by_lists(
    index: Any, queries: np.ndarray, k: int, nprobe: int
) -> tuple[np.ndarray, np.ndarray]:
    """IVF-Flat search of a batch, list by list: the queries that probe one list are
    compared with all its vectors in one matrix product, so every list is read once per
    batch instead of once per query (FAISS's own search is bound by memory bandwidth here).
    Same candidates as ``index.search`` with this ``nprobe``.

    Returns squared distances (float32, Q x k, ascending) and row ids (int64, -1 padding).
    """
    import faiss

    q = np.ascontiguousarray(queries, np.float32)
    n_q, dim = q.shape
    probes = index.quantizer.search(q, min(nprobe, index.nlist))[1]
    best_d = np.full((n_q, k), np.inf, np.float32)
    best_i = np.full((n_q, k), -1, np.int64)
    q_norms = np.einsum("ij,ij->i", q, q)
    flat = probes.ravel()
    owners = np.repeat(np.arange(n_q), probes.shape[1])
    keep = flat >= 0
    flat, owners = flat[keep], owners[keep]
    order = np.argsort(flat, kind="stable")
    flat, owners = flat[order], owners[order]
    starts = np.flatnonzero(np.r_[True, flat[1:] != flat[:-1]])
    stops = np.r_[starts[1:], len(flat)]
    invlists = index.invlists
    for a, b in zip(starts.tolist(), stops.tolist(), strict=True):
        lst = int(flat[a])
        size = invlists.list_size(lst)
        if size == 0:
            continue
        vecs = faiss.rev_swig_ptr(invlists.get_codes(lst), size * dim * 4).view(np.float32)
        vecs = vecs.reshape(size, dim)
        ids = faiss.rev_swig_ptr(invlists.get_ids(lst), size).copy()
        qs = owners[a:b]
        d2 = q_norms[qs, None] - 2.0 * (q[qs] @ vecs.T) + np.einsum("ij,ij->i", vecs, vecs)
        all_d = np.hstack([best_d[qs], d2.astype(np.float32)])
        all_i = np.hstack([best_i[qs], np.broadcast_to(ids, (len(qs), size))])
        kk = min(k, all_d.shape[1])
        part = np.argpartition(all_d, kk - 1, axis=1)[:, :kk]
        best_d[qs, :kk] = np.take_along_axis(all_d, part, axis=1)
        best_i[qs, :kk] = np.take_along_axis(all_i, part, axis=1)
    srt = np.argsort(best_d, axis=1, kind="stable")
    best_d = np.take_along_axis(best_d, srt, axis=1)
    best_i = np.take_along_axis(best_i, srt, axis=1)
    best_i[~np.isfinite(best_d)] = -1
    return best_d, best_i


DEFAULTS: dict[str, Any] = {"ann_min_rows": 10_000, "num_partitions": None, "nprobes": 16}


def _faiss() -> Any:
    try:
        import faiss
    except ImportError:
        raise KmervaeError("the faiss backend needs FAISS: pip install faiss-cpu") from None
    return faiss


class FaissStore(ExactStore):
    """Rows in raw files (as :class:`ExactStore`), searched through a FAISS IVF-Flat index."""

    backend = "faiss"

    def _create_data(self) -> None:
        self.manifest["params"] = {**DEFAULTS, **self.manifest.get("params", {})}
        super()._create_data()
        self._index: Any = None

    def _open_data(self) -> None:
        super()._open_data()
        self._index = None

    def _param(self, name: str) -> Any:
        value = self.manifest.get("params", {}).get(name)
        return DEFAULTS[name] if value is None else value

    def _index_path(self) -> Any:
        return self.data_dir / "faiss.index"

    def _load_index(self) -> Any:
        if self._index is None:
            faiss = _faiss()
            path = self._index_path()
            if not path.exists():
                raise KmervaeError(f"{self.path}: faiss.index is missing")
            self._index = faiss.read_index(str(path))
            if self._index.ntotal < self.n_committed:
                raise KmervaeError(f"{self.path}: faiss.index holds fewer rows than the store")
        return self._index

    def _commit(self) -> dict[str, Any]:
        faiss = _faiss()
        params = super()._commit()
        first = 0 if self.new else self.n_committed
        if self.new:
            index = self._new_index(faiss, params)
        else:
            index = self._load_index()
            if index.ntotal > first:  # an interrupted add wrote past the commit
                index.remove_ids(faiss.IDSelectorRange(first, index.ntotal))
        # plain reads, not a memory map: mapped pages would count as this process's memory
        with open(self._files()["embedding"], "rb") as fh:
            fh.seek(first * self.dim * 4)
            for start in range(first, self.n_rows, 65536):
                m = min(65536, self.n_rows - start)
                block = np.fromfile(fh, dtype="<f4", count=m * self.dim).reshape(m, self.dim)
                index.add(block)
        tmp = self._index_path().with_name(".faiss.index.tmp")
        faiss.write_index(index, str(tmp))
        tmp.replace(self._index_path())
        self._index = index
        return params

    def _new_index(self, faiss: Any, params: dict[str, Any]) -> Any:
        n = self.n_rows
        if n < int(self._param("ann_min_rows")):
            params["vector_index"] = "flat"
            return faiss.IndexFlatL2(self.dim)
        lists = int(self._param("num_partitions") or max(1, round(math.sqrt(n))))
        index = faiss.IndexIVFFlat(faiss.IndexFlatL2(self.dim), self.dim, lists)
        size = min(n, max(64 * lists, 50_000))
        sample = np.sort(np.random.default_rng(0).choice(n, size=size, replace=False))
        matrix = np.memmap(self._files()["embedding"], np.float32, "r", shape=(n, self.dim))
        index.train(np.ascontiguousarray(matrix[sample]))
        log.info("trained %d IVF lists on %d rows", lists, size)
        params.update(vector_index="ivf-flat", num_partitions=lists, train_rows=size)
        return index

    def _rollback(self) -> None:
        super()._rollback()
        self._index = None

    def _search(self, queries: np.ndarray, k: int, flt: Filter | None) -> SearchResult:
        faiss = _faiss()
        index = self._load_index()
        queries = np.ascontiguousarray(queries, np.float32)
        keep = None if flt is None else flt.mask(self._filter_column)
        bits: np.ndarray | None = None
        selector = None
        if keep is not None:
            bits = np.packbits(keep, bitorder="little")
            selector = faiss.IDSelectorBitmap(len(keep), faiss.swig_ptr(bits))

        def run(x: np.ndarray, nprobe: int) -> tuple[np.ndarray, np.ndarray]:
            if isinstance(index, faiss.IndexIVF):
                params = faiss.SearchParametersIVF(nprobe=nprobe)
            else:
                params = faiss.SearchParameters()
            if selector is not None:
                params.sel = selector
            d2, idx = index.search(x, k, params=params)
            return d2, idx

        nprobe = int(self._param("nprobes"))
        if isinstance(index, faiss.IndexIVF) and keep is None and len(queries) >= BATCH_BY_LISTS:
            d2, idx = search_by_lists(index, queries, k, nprobe)
        else:
            d2, idx = run(queries, nprobe)
        if isinstance(index, faiss.IndexIVF) and keep is not None:
            # lists probed may hold too few rows that pass the filter: scan all for those
            short = (idx < 0).any(axis=1) & (int(keep.sum()) > (idx >= 0).sum(axis=1))
            if short.any():
                d2[short], idx[short] = run(queries[short], index.nlist)
        dist = np.sqrt(np.maximum(d2, 0)).astype(np.float32)
        rows = idx.astype(np.int64)
        rows[rows >= self.n_committed] = -1
        dist[rows < 0] = np.inf
        del bits
        return SearchResult(rows, dist)
