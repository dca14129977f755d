"""The clustering graph: from k-NN lists to one undirected weighted edge list.

The recipe (docs/cluster.md): the k = 50 neighbour graph in the
latent space, edges longer than a threshold dropped, in-degree capped (each contig keeps
its closest incoming edges, which tames hubs), weight 1 / (d + delta), symmetrised. A
shared-nearest-neighbour graph (Jaccard index of the two contigs' neighbour sets) is the
alternative weighting; union symmetrisation keeps a pair found in either direction, mutual
keeps only pairs found in both.

Memory: the k-NN arrays are copied once (12 bytes an edge with int32 rows) and the edge
list sorted once (about 24 bytes an edge); nothing grows beyond the edges themselves.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from kmervae.errors import KmervaeError
from kmervae.index.graph import cap_in_degree

WEIGHTS = ("inverse", "snn")
SYMMETRISE = ("union", "mutual")


@dataclass(frozen=True)
class GraphOptions:
    """How the k-NN graph becomes the clustering graph.

    Attributes
    ----------
    neighbours : use only the first this many neighbours of each contig's list (None: all
        k of the graph); a sparser graph, cheaper for MCL.
    max_distance : drop edges longer than this (None: keep all).
    max_in_degree : keep at most this many in-edges per contig, the nearest (None: no cap).
    weight : ``inverse`` (1 / (d + delta)) or ``snn`` (Jaccard index of neighbour sets).
    delta : the ``delta`` of the inverse weight.
    snn_k : neighbours per contig that make up its set for ``snn`` (the first of each list).
    symmetrise : ``union`` or ``mutual``.
    min_length : contigs shorter than this are left out of the graph (and unclustered).
    """

    neighbours: int | None = None
    max_distance: float | None = None
    max_in_degree: int | None = 100
    weight: str = "inverse"
    delta: float = 0.1
    snn_k: int = 15
    symmetrise: str = "union"
    min_length: int = 0

    def __post_init__(self) -> None:
        if self.weight not in WEIGHTS:
            raise KmervaeError(f"unknown weight {self.weight!r} (use {' or '.join(WEIGHTS)})")
        if self.symmetrise not in SYMMETRISE:
            raise KmervaeError(
                f"unknown symmetrisation {self.symmetrise!r} (use {' or '.join(SYMMETRISE)})"
            )
        if self.neighbours is not None and self.neighbours < 1:
            raise KmervaeError(f"neighbours must be at least 1, got {self.neighbours}")
        if self.max_distance is not None and not self.max_distance > 0:
            raise KmervaeError(f"the maximum distance must be above 0, got {self.max_distance}")
        if self.max_in_degree is not None and self.max_in_degree < 1:
            raise KmervaeError(f"the in-degree cap must be at least 1, got {self.max_in_degree}")
        if not self.delta > 0:
            raise KmervaeError(f"delta must be above 0, got {self.delta}")
        if self.snn_k < 1:
            raise KmervaeError(f"the shared-neighbour k must be at least 1, got {self.snn_k}")
        if self.min_length < 0:
            raise KmervaeError(f"the minimum length must be 0 or more, got {self.min_length}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class EdgeList:
    """An undirected weighted graph over ``n_nodes`` contigs, each pair once.

    Attributes
    ----------
    n_nodes : contigs (graph rows), including those left out.
    src, dst : int32 or int64 (E,), ``src < dst``, sorted by (src, dst).
    weight : float32 (E,), > 0.
    nodes : bool (n_nodes,), the contigs in the graph (False: below the minimum length).
    """

    n_nodes: int
    src: np.ndarray
    dst: np.ndarray
    weight: np.ndarray
    nodes: np.ndarray

    def __len__(self) -> int:
        return int(self.src.shape[0])

    def degrees(self) -> np.ndarray:
        """int64 (n_nodes,), edges at each node."""
        return np.bincount(self.src, minlength=self.n_nodes) + np.bincount(
            self.dst, minlength=self.n_nodes
        )


def prune_knn(
    indices: np.ndarray, distances: np.ndarray, options: GraphOptions, lengths: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Copies of the k-NN arrays with edges dropped by length, distance and in-degree.

    Returns (indices, distances, nodes): the first two like the inputs (-1 / +inf where an
    edge is gone), ``nodes`` the bool mask of contigs kept by ``min_length``.
    """
    n = indices.shape[0]
    used = indices.shape[1] if options.neighbours is None else options.neighbours
    idx = np.array(indices[:, :used])
    dist = np.array(distances[:, :used], dtype=np.float32)
    nodes = np.ones(n, bool)
    if options.min_length > 0:
        if lengths is None:
            raise KmervaeError("a minimum length needs the contigs' lengths")
        nodes = np.asarray(lengths) >= options.min_length
    drop = idx < 0
    if not nodes.all():
        drop |= ~nodes[:, None]
        drop |= ~nodes[np.where(drop, 0, idx)]
    if options.max_distance is not None:
        drop |= dist > options.max_distance
    idx[drop] = -1
    dist[drop] = np.inf
    del drop
    if options.max_in_degree is not None:
        cap_in_degree(idx, dist, options.max_in_degree)
    return idx, dist, nodes


def build_edges(
    indices: np.ndarray,
    distances: np.ndarray,
    options: GraphOptions,
    lengths: np.ndarray | None = None,
) -> EdgeList:
    """The clustering graph of a k-NN graph.

    Parameters
    ----------
    indices : int32/int64 (N, k), neighbour rows nearest first, -1 for no edge (a
        :class:`~kmervae.index.graph.KnnGraph`'s arrays, memory-mapped or not).
    distances : float32 (N, k), Euclidean distances.
    options : the recipe.
    lengths : int (N,), needed with ``min_length``.
    """
    from kmervae.cluster.kernels import shared_neighbour_weights

    n = indices.shape[0]
    idx, dist, nodes = prune_knn(indices, distances, options, lengths)
    rows, cols = np.nonzero(idx >= 0)
    dst = idx[rows, cols]
    src = rows.astype(dst.dtype)
    if options.weight == "inverse":
        weight = (1.0 / (dist[rows, cols].astype(np.float64) + options.delta)).astype(np.float32)
    else:
        m = min(options.snn_k, idx.shape[1])
        sets = np.empty((n, m + 1), dtype=idx.dtype)
        sets[:, 0] = np.arange(n, dtype=idx.dtype)
        sets[:, 1:] = np.asarray(indices[:, :m])
        sets[~nodes] = -1
        sets[:, 1:][(sets[:, 1:] >= 0) & ~nodes[np.maximum(sets[:, 1:], 0)]] = -1
        sets.sort(axis=1)
        weight = np.empty(len(src), np.float32)
        shared_neighbour_weights(sets, src, dst, weight)
    del idx, dist, rows, cols
    return symmetrise(n, src, dst, weight, options.symmetrise, nodes)


def symmetrise(
    n: int, src: np.ndarray, dst: np.ndarray, weight: np.ndarray, how: str, nodes: np.ndarray
) -> EdgeList:
    """Directed edges -> each unordered pair once (``union``: the larger weight of the two
    directions; ``mutual``: only pairs present in both directions)."""
    lo = np.minimum(src, dst).astype(np.int64)
    hi = np.maximum(src, dst).astype(np.int64)
    key = lo * n + hi
    del lo, hi
    order = np.argsort(key, kind="stable")
    key = key[order]
    weight = weight[order]
    del order
    starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]]) if len(key) else np.zeros(0, int)
    counts = np.diff(np.r_[starts, len(key)])
    best = np.maximum.reduceat(weight, starts) if len(key) else weight
    pair = key[starts]
    if how == "mutual":
        keep = counts >= 2
        pair, best = pair[keep], best[keep]
    keep_pos = best > 0
    pair, best = pair[keep_pos], best[keep_pos]
    dtype = np.int32 if n < 2**31 - 1 else np.int64
    return EdgeList(
        n, (pair // n).astype(dtype), (pair % n).astype(dtype), best.astype(np.float32), nodes
    )


def distance_quantiles(distances: np.ndarray) -> dict[str, float]:
    """Quantiles (5, 25, 50, 75, 95 %) of the finite distances of a k-NN graph, from a
    seeded sample of rows holding about a million edges (for the message of an empty graph)."""
    n = distances.shape[0]
    rng = np.random.default_rng(0)
    size = min(n, max(1, 1_000_000 // max(1, distances.shape[1])))
    values = np.asarray(distances[np.sort(rng.choice(n, size=size, replace=False))]).ravel()
    values = values[np.isfinite(values)]
    if not len(values):
        return {}
    probs = (0.05, 0.25, 0.5, 0.75, 0.95)
    return {
        f"{int(p * 100)}%": float(v) for p, v in zip(probs, np.quantile(values, probs), strict=True)
    }
