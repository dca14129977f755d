"""The k-NN graph on disk: a compact binary folder, its reader, pruning and TSV export.

A graph (a directory, written under a temporary name and renamed when complete)::

    manifest.json     format "kmervae-knn-graph", schema version, n_rows, k, metric, the
                      method and its parameters (FAISS lists/probes, estimated recall),
                      the pruning (max_distance, max_in_degree, edges kept), the store it
                      came from (path, rows, model fingerprint, ids SHA-256), provenance
    indices.npy       int32 (int64 when N >= 2^31), N x k: neighbour rows, nearest first;
                      -1 where an edge was pruned (always after the kept ones)
    distances.npy     float32, N x k: Euclidean distances; +inf where indices is -1
    ids.txt           N lines: the id of each row (the store's ids, in row order)
    kmervae.log       the log of the command (CLI)

Row ``i`` of both arrays lists the out-neighbours of contig ``i`` (itself excluded).
Read it with :func:`open_knn_graph` (memory-mapped).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from kmervae.errors import InputError
from kmervae.io.dataset import count_lines, iter_id_blocks
from kmervae.io.manifest import read_json_manifest
from kmervae.io.npy import load_npy

FORMAT_NAME = "kmervae-knn-graph"
SCHEMA_VERSION = 1
BLOCK_ROWS = 65536


def index_dtype(n_rows: int) -> np.dtype:
    """int32 while rows fit in it, else int64."""
    return np.dtype(np.int32 if n_rows < 2**31 - 1 else np.int64)


class KnnGraph:
    """A k-NN graph opened for reading (memory-mapped; checks itself on open).

    Attributes
    ----------
    path : the graph folder.
    manifest : its ``manifest.json``.
    n_rows, k : shape of :attr:`indices` and :attr:`distances`.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        name = str(self.path)
        manifest = read_json_manifest(
            self.path / "manifest.json", FORMAT_NAME, SCHEMA_VERSION, "k-NN graph"
        )
        self.manifest: dict[str, Any] = manifest
        self.n_rows = int(manifest["n_rows"])
        self.k = int(manifest["k"])
        self._indices = load_npy(self.path / "indices.npy", name)
        self._distances = load_npy(self.path / "distances.npy", name)
        shape = (self.n_rows, self.k)
        if self._indices.shape != shape or self._indices.dtype not in (np.int32, np.int64):
            raise InputError(f"{name}: indices.npy is {self._indices.shape} {self._indices.dtype}")
        if self._distances.shape != shape or self._distances.dtype != np.float32:
            raise InputError(f"{name}: distances.npy is {self._distances.shape}")
        self.ids_path = self.path / "ids.txt"
        if not self.ids_path.is_file() or count_lines(self.ids_path) != self.n_rows:
            raise InputError(f"{name}: ids.txt is missing or does not hold {self.n_rows} ids")

    @property
    def indices(self) -> np.ndarray:
        """int32 or int64 (N, k) neighbour rows, nearest first; -1 for pruned edges."""
        return self._indices

    @property
    def distances(self) -> np.ndarray:
        """float32 (N, k) Euclidean distances; +inf for pruned edges."""
        return self._distances

    def iter_ids(self) -> Iterator[list[str]]:
        return iter_id_blocks(self.ids_path)

    def ids(self) -> list[str]:
        return [i for block in self.iter_ids() for i in block]

    def n_edges(self) -> int:
        """Edges kept (entries of :attr:`indices` that are not -1)."""
        return int(sum((self._indices[s : s + BLOCK_ROWS] >= 0).sum() for s in _starts(self)))

    def iter_edges(self, block_rows: int = BLOCK_ROWS) -> Iterator[tuple[np.ndarray, ...]]:
        """(source int64, target int64, distance float32) arrays, block by block of rows."""
        for start in range(0, self.n_rows, block_rows):
            idx = np.asarray(self._indices[start : start + block_rows])
            dist = np.asarray(self._distances[start : start + block_rows])
            src, col = np.nonzero(idx >= 0)
            yield src + start, idx[src, col].astype(np.int64), dist[src, col]

    def to_csr(self, weight: str = "distance") -> Any:
        """The graph as a ``scipy.sparse.csr_matrix`` (N x N) of distances, or of weights
        1 / (d + 0.1) with ``weight="inverse"`` (the clustering recipe)."""
        from scipy import sparse

        srcs, dsts, vals = [], [], []
        for s, t, d in self.iter_edges():
            srcs.append(s)
            dsts.append(t)
            vals.append(1.0 / (d + 0.1) if weight == "inverse" else d)
        if not srcs:
            return sparse.csr_matrix((self.n_rows, self.n_rows), dtype=np.float32)
        return sparse.csr_matrix(
            (np.concatenate(vals), (np.concatenate(srcs), np.concatenate(dsts))),
            shape=(self.n_rows, self.n_rows),
            dtype=np.float32,
        )

    def __repr__(self) -> str:
        return f"KnnGraph({str(self.path)!r}, rows={self.n_rows}, k={self.k})"


def _starts(graph: KnnGraph) -> range:
    return range(0, graph.n_rows, BLOCK_ROWS)


def open_knn_graph(path: str | Path) -> KnnGraph:
    """Open a graph written by ``kmervae knn`` (memory-mapped, checked)."""
    return KnnGraph(path)


def cap_in_degree(
    indices: np.ndarray, distances: np.ndarray, cap: int, block_rows: int = BLOCK_ROWS
) -> int:
    """Keep at most ``cap`` in-edges per node (its nearest sources), in place.

    Parameters
    ----------
    indices : int32/int64 (N, k), writable (a memory map opened ``r+``); -1 = no edge.
    distances : float32 (N, k), writable.

    Memory: one int64 per node for the in-degrees, plus the edges that point at nodes over
    the cap (hubs), never the whole edge list. Returns the number of edges removed.
    """
    n = indices.shape[0]
    indeg = np.zeros(n, np.int64)
    for s in range(0, n, block_rows):
        idx = np.asarray(indices[s : s + block_rows])
        indeg += np.bincount(idx[idx >= 0], minlength=n)
    hub = indeg > cap
    if not hub.any():
        return 0
    targets, dists, srcs, cols = [], [], [], []
    for s in range(0, n, block_rows):
        idx = np.asarray(indices[s : s + block_rows])
        hit = idx >= 0
        hit[hit] = hub[idx[hit]]
        r, c = np.nonzero(hit)
        targets.append(idx[r, c].astype(np.int64))
        dists.append(np.asarray(distances[s : s + block_rows])[r, c])
        srcs.append(r + s)
        cols.append(c)
    t, d, src, col = (np.concatenate(a) for a in (targets, dists, srcs, cols))
    order = np.lexsort((src, d, t))
    t, src, col = t[order], src[order], col[order]
    rank = np.arange(len(t)) - np.searchsorted(t, t, side="left")
    drop = rank >= cap
    indices[src[drop], col[drop]] = -1
    distances[src[drop], col[drop]] = np.inf
    for row in np.unique(src[drop]).tolist():  # pruned edges go after the kept ones
        keep = np.argsort(np.asarray(indices[row]) < 0, kind="stable")
        indices[row] = np.asarray(indices[row])[keep]
        distances[row] = np.asarray(distances[row])[keep]
    return int(drop.sum())


def graph_tsv_record(graph: KnnGraph, provenance: dict[str, Any]) -> dict[str, Any]:
    """What the sidecar of ``knn --tsv`` records (see :func:`kmervae.provenance.sidecar_path`):
    its columns, the graph written out and the provenance."""
    return {
        "kind": "k-NN graph edges",
        "columns": ["source", "target", "rank", "distance"],
        "graph": {"path": str(graph.path.resolve()), "n_rows": graph.n_rows, "k": graph.k},
        "provenance": provenance,
    }


def write_graph_tsv(graph: KnnGraph, fh: TextIO) -> int:
    """Write a header line, then ``source, target, rank, distance`` lines (ids; rank from
    1); returns the count."""
    ids = np.array(graph.ids(), dtype=object)
    fh.write("source\ttarget\trank\tdistance\n")
    lines = 0
    for start in range(0, graph.n_rows, BLOCK_ROWS):
        idx = np.asarray(graph.indices[start : start + BLOCK_ROWS])
        dist = np.asarray(graph.distances[start : start + BLOCK_ROWS])
        r, c = np.nonzero(idx >= 0)
        src, dst = ids[r + start], ids[idx[r, c]]
        fh.writelines(
            f"{s}\t{t}\t{rank + 1}\t{d:.6g}\n"
            for s, t, rank, d in zip(
                src.tolist(), dst.tolist(), c.tolist(), dist[r, c].tolist(), strict=True
            )
        )
        lines += len(r)
    return lines
