"""FAISS store: the exact backend's files plus a FAISS IVF-Flat index, for batched search.

LanceDB answers the queries of a batch one after another (a few ms each on two cores);
the FAISS index (:class:`kmervae.index.ivf.IvfFlatFile`) is searched a whole batch at a
time. This backend keeps the rows exactly as :class:`~kmervae.index.exact.ExactStore` does
(append-only raw files, the manifest as the commit point) and adds ``faiss.index``. Stores
below ``ann_min_rows`` use an exact flat index. Filters are evaluated on the metadata
columns (NumPy) and passed to FAISS as an id bitmap, so only matching rows are scanned.

Memory at search: the index, which holds N x dim float32.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from kmervae.index.exact import ExactStore
from kmervae.index.filters import Filter
from kmervae.index.ivf import DEFAULT_NPROBE, IvfFlatFile
from kmervae.index.protocol import SearchResult, check_partitions, check_positive_params

DEFAULTS: dict[str, Any] = {
    "ann_min_rows": 10_000,
    "num_partitions": None,
    "nprobes": DEFAULT_NPROBE,
}


class FaissStore(ExactStore):
    """Rows in raw files (as :class:`ExactStore`), searched through a FAISS IVF-Flat index."""

    backend = "faiss"

    @classmethod
    def check_params(
        cls, params: Mapping[str, Any], *, dim: int, n_rows: int | None = None
    ) -> None:
        check_positive_params(params, ("ann_min_rows", "num_partitions", "nprobes"))
        check_partitions(params, n_rows, DEFAULTS["ann_min_rows"])

    def _create_data(self) -> None:
        self.manifest["params"] = {**DEFAULTS, **self.manifest.get("params", {})}
        super()._create_data()  # opens, through _open_data

    def _open_data(self) -> None:
        super()._open_data()
        self._ivf = IvfFlatFile(self.data_dir, self.dim)

    def _param(self, name: str) -> Any:
        value = self.manifest.get("params", {}).get(name)
        return DEFAULTS[name] if value is None else value

    def _commit(self) -> dict[str, Any]:
        params = super()._commit()
        first = 0 if self.new else self.n_committed
        path = self._files()["embedding"]

        def blocks(begin: int) -> Iterator[np.ndarray]:
            # plain reads, not a memory map: mapped pages would count as this process's memory
            with open(path, "rb") as fh:
                fh.seek(begin * self.dim * 4)
                for start in range(begin, self.n_rows, 65536):
                    m = min(65536, self.n_rows - start)
                    yield np.fromfile(fh, dtype="<f4", count=m * self.dim).reshape(m, self.dim)

        def sample(rows: np.ndarray) -> np.ndarray:
            matrix = np.memmap(path, np.float32, "r", shape=(self.n_rows, self.dim))
            return np.asarray(matrix[rows])

        got = self._ivf.update(
            first=first,
            n_rows=self.n_rows,
            blocks=blocks,
            sample=sample,
            lists=self._param("num_partitions"),
            min_rows=int(self._param("ann_min_rows")),
        )
        if got:
            params["vector_index"] = got["index"]
            if "lists" in got:
                params.update(num_partitions=got["lists"], train_rows=got["train_rows"])
        return params

    def _rollback(self) -> None:
        super()._rollback()
        self._ivf.forget()

    def _search(self, queries: np.ndarray, k: int, flt: Filter | None) -> SearchResult:
        keep = None if flt is None else flt.mask(self._filter_column)
        dist, rows = self._ivf.search(
            queries, k, n_committed=self.n_committed, nprobe=int(self._param("nprobes")), keep=keep
        )
        return SearchResult(rows, dist)
