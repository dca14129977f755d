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
