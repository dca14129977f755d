"""Exact brute-force store: the reference backend (every answer is the true neighbours).

Files (append-only; the manifest's ``n_rows`` is the commit point, so an interrupted add
leaves the committed rows intact and is cut off on the next add)::

    embeddings.f32      float32, N x dim, row-major, no header
    ids.txt             N lines
    <column>.bin        int64 / float32 / float64, N values (numeric metadata columns)
    <column>.txt        N lines (string metadata columns)

Search streams the embeddings from a memory map in blocks, so memory stays flat.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from kmervae.errors import InputError, KmervaeError
from kmervae.index.filters import Filter
from kmervae.index.protocol import COLUMN_TYPES, SearchResult, StoreBase
from kmervae.neighbours import nearest_rows

#: rows compared per block: float32 blocks of 32 k x dim stay in cache-friendly sizes
BLOCK_ROWS = 32768


def brute_force_topk(
    queries: np.ndarray, blocks: Iterable[tuple[np.ndarray, np.ndarray]], k: int
) -> SearchResult:
    """Exact k nearest neighbours of ``queries`` among rows given block by block
    (:func:`kmervae.neighbours.nearest_rows`, computed in float64 so near-ties keep their
    order).

    Parameters
    ----------
    queries : float32 (n, d).
    blocks : (rows int64 (m,), vectors float32 (m, d)) pairs.
    k : neighbours per query.

    Returns
    -------
    SearchResult
        rows int64 (n, k) and Euclidean distances float32 (n, k), nearest first, ties to
        the lower row; -1 / inf where fewer.
    """
    rows, distances = nearest_rows(queries, blocks, k, dtype=np.float64)
    return SearchResult(rows, distances)


class ExactStore(StoreBase):
    """Brute force over a memory-mapped float32 matrix: exact, simple, O(N) per query."""

    backend = "exact"

    def _create_data(self) -> None:
        self._open_data()

    def _open_data(self) -> None:
        self._ids_list: list[str] | None = None
        self._id_rows: dict[str, int] | None = None
        self._pending_ids: set[str] = set()

    def _files(self) -> dict[str, Path]:
        files = {"embedding": self.data_dir / "embeddings.f32", "id": self.data_dir / "ids.txt"}
        for name, kind in self.schema.items():
            ext = ".txt" if kind == "string" else ".bin"
            files[name] = self.data_dir / f"{name}{ext}"
        return files

    def _sizes(self, n: int) -> dict[str, int]:
        """Byte size of each file holding ``n`` rows (text files: counted by lines)."""
        sizes = {"embedding": n * self.dim * 4}
        for name, kind in self.schema.items():
            if kind != "string":
                sizes[name] = n * np.dtype(COLUMN_TYPES[kind]).itemsize
        return sizes

    def _truncate_to_committed(self) -> None:
        for name, size in self._sizes(self.n_committed).items():
            path = self._files()[name]
            if path.exists() and path.stat().st_size != size:
                with open(path, "r+b") as fh:
                    fh.truncate(size)
        for name in ("id", *(c for c, t in self.schema.items() if t == "string")):
            path = self._files()[name]
            if not path.exists():
                continue
            with open(path, "r+b") as fh:
                pos = 0
                for seen, line in enumerate(fh):
                    if seen == self.n_committed:
                        break
                    pos += len(line)
                fh.truncate(pos)

    def _append(
        self, ids: list[str], vectors: np.ndarray, columns: dict[str, np.ndarray], first: int
    ) -> None:
        if first == self.n_committed and not self._pending_ids:
            self._truncate_to_committed()  # drop what an interrupted add left behind
        files = self._files()
        with open(files["embedding"], "ab") as fh:
            fh.write(vectors.astype("<f4").tobytes())
        with open(files["id"], "a", encoding="utf-8") as fh:
            fh.write("\n".join(ids) + "\n")
        for name, kind in self.schema.items():
            if kind == "string":
                text = [str(v) for v in columns[name].tolist()]
                if any("\n" in v for v in text):
                    raise KmervaeError(f"column {name}: values may not contain newlines")
                with open(files[name], "a", encoding="utf-8") as fh:
                    fh.write("\n".join(text) + "\n")
            else:
                with open(files[name], "ab") as fh:
                    fh.write(
                        columns[name]
                        .astype(np.dtype(COLUMN_TYPES[kind]).newbyteorder("<"))
                        .tobytes()
                    )
        self._pending_ids.update(ids)

    def _commit(self) -> dict[str, Any]:
        if self.n_rows == 0 and self.new:
            for path in self._files().values():
                path.touch()
        self._pending_ids = set()
        self._ids_list = None
        self._id_rows = None
        return {}

    def _rollback(self) -> None:
        self._truncate_to_committed()
        self._pending_ids = set()

    # -- reading -----------------------------------------------------------------------
    def _matrix(self) -> np.ndarray:
        if self.n_committed == 0:
            return np.empty((0, self.dim), np.float32)
        return np.memmap(
            self._files()["embedding"], np.float32, "r", shape=(self.n_committed, self.dim)
        )

    def _column(self, name: str) -> np.ndarray:
        kind = self.schema[name]
        path = self._files()[name]
        if kind == "string":
            lines = path.read_text(encoding="utf-8").split("\n")[: self.n_committed]
            return np.array(lines, dtype=np.str_)
        if self.n_committed == 0:
            return np.empty(0, COLUMN_TYPES[kind])
        return np.memmap(path, COLUMN_TYPES[kind], "r", shape=(self.n_committed,))

    def _all_ids(self) -> list[str]:
        if self._ids_list is None:
            text = self._files()["id"].read_text(encoding="utf-8")
            self._ids_list = text.split("\n")[: self.n_committed]
            if len(self._ids_list) != self.n_committed:
                raise InputError(f"{self.path}: ids.txt holds fewer ids than the manifest says")
        return self._ids_list

    def _search(self, queries: np.ndarray, k: int, flt: Filter | None) -> SearchResult:
        matrix = self._matrix()
        keep = None if flt is None else flt.mask(self._filter_column)

        def blocks() -> Iterator[tuple[np.ndarray, np.ndarray]]:
            for first in range(0, self.n_committed, BLOCK_ROWS):
                rows = np.arange(first, min(first + BLOCK_ROWS, self.n_committed))
                if keep is not None:
                    rows = rows[keep[rows]]
                yield rows, np.asarray(matrix[rows])

        return brute_force_topk(queries, blocks(), k)

    def _filter_column(self, name: str) -> np.ndarray:
        if name == "row":
            return np.arange(self.n_committed)
        if name == "id":
            return np.array(self._all_ids(), dtype=np.str_)
        return self._column(name)

    def _take(self, rows: np.ndarray, columns: list[str]) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        for name in columns:
            if name == "embedding":
                out[name] = np.asarray(self._matrix()[rows], dtype=np.float32)
            elif name == "row":
                out[name] = rows.copy()
            elif name == "id":
                ids = self._all_ids()
                out[name] = np.array([ids[r] for r in rows.tolist()], dtype=object)
            else:
                out[name] = np.asarray(self._column(name)[rows])
        return out

    def _find(self, ids: list[str]) -> np.ndarray:
        if self._id_rows is None:
            self._id_rows = {ident: row for row, ident in enumerate(self._all_ids())}
        return np.array([self._id_rows.get(i, -1) for i in ids], dtype=np.int64)

    def _has_id(self, ident: str) -> bool:
        return ident in self._pending_ids or (
            self.n_committed > 0 and bool(self._find([ident])[0] >= 0)
        )
