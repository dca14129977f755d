"""Cluster assignments: canonical numbering, the TSV files and per-cluster statistics.

A clustering of ``N`` contigs is an int64 array of labels, one per row, ``-1`` for a contig
that is in no cluster (below ``--min-length``, or HDBSCAN noise). Clusters are numbered
1, 2, … by decreasing size (ties: the cluster holding the lower row first), so the same
partition always gets the same names, whatever the method numbered it.

Files (tab-separated, the header is the first line, so pandas and R read them as they are)::

    clusters.tsv          contig_id  cluster          (row order; unclustered contigs left out)
    clusters.tsv (vamb)   clustername  contigname     (VAMB's column order, grouped by cluster)
    clusters.stats.tsv    cluster  size  total_bp  gc_min  gc_max  gc_spread  median_length
                          (GC in percent; spread = max - min, in percentage points)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import numpy as np

FORMATS = ("kmervae", "vamb")
STATS_COLUMNS = (
    "cluster",
    "size",
    "total_bp",
    "gc_min",
    "gc_max",
    "gc_spread",
    "median_length",
)


def canonical_labels(labels: np.ndarray) -> np.ndarray:
    """Renumber clusters 1..C by decreasing size (ties: lowest first row); -1 kept.

    Parameters
    ----------
    labels : int (N,), any non-negative cluster codes, negative for unclustered.

    Returns
    -------
    int64 (N,).
    """
    labels = np.asarray(labels, np.int64)
    out = np.full(labels.shape, -1, np.int64)
    member = labels >= 0
    if not member.any():
        return out
    codes, first, inverse, counts = np.unique(
        labels[member], return_index=True, return_inverse=True, return_counts=True
    )
    rows = np.flatnonzero(member)
    order = np.lexsort((rows[first], -counts))  # size descending, then first row
    rank = np.empty(len(codes), np.int64)
    rank[order] = np.arange(1, len(codes) + 1)
    out[member] = rank[inverse]
    return out


def write_clusters(fh: TextIO, ids: Sequence[str], labels: np.ndarray, fmt: str = "kmervae") -> int:
    """Write the clustered contigs of ``ids`` (row order) with their ``labels``.

    ``fmt`` ``kmervae``: ``contig_id<TAB>cluster`` in row order; ``vamb``:
    ``clustername<TAB>contigname`` grouped by cluster. Returns the lines written.
    """
    labels = np.asarray(labels, np.int64)
    if len(ids) != len(labels):
        raise ValueError(f"{len(ids)} ids but {len(labels)} labels")
    rows = np.flatnonzero(labels >= 0)
    if fmt == "kmervae":
        fh.write("contig_id\tcluster\n")
    elif fmt == "vamb":
        fh.write("clustername\tcontigname\n")
        rows = rows[np.argsort(labels[rows], kind="stable")]
    else:
        raise ValueError(f"unknown clusters format {fmt!r}")
    names = labels[rows].tolist()
    for start in range(0, len(rows), 65536):
        chunk = rows[start : start + 65536].tolist()
        lab = names[start : start + 65536]
        if fmt == "kmervae":
            fh.writelines(f"{ids[r]}\t{c}\n" for r, c in zip(chunk, lab, strict=True))
        else:
            fh.writelines(f"{c}\t{ids[r]}\n" for r, c in zip(chunk, lab, strict=True))
    return len(rows)


@dataclass
class ClusterStats:
    """Per-cluster statistics, one entry per cluster in label order (1, 2, …).

    Attributes
    ----------
    cluster, size, total_bp : int64 (C,).
    gc_min, gc_max, gc_spread : float64 (C,), GC in percent; spread in percentage points
        (NaN where no member has a GC value).
    median_length : float64 (C,).
    """

    cluster: np.ndarray
    size: np.ndarray
    total_bp: np.ndarray
    gc_min: np.ndarray
    gc_max: np.ndarray
    gc_spread: np.ndarray
    median_length: np.ndarray

    def __len__(self) -> int:
        return len(self.cluster)

    def write_tsv(self, fh: TextIO) -> None:
        fh.write("\t".join(STATS_COLUMNS) + "\n")
        for row in zip(*(getattr(self, c).tolist() for c in STATS_COLUMNS), strict=True):
            c, size, bp, lo, hi, spread, med = row
            fh.write(f"{c}\t{size}\t{bp}\t{_pct(lo)}\t{_pct(hi)}\t{_pct(spread)}\t{med:.1f}\n")


def _pct(value: float) -> str:
    return "NA" if value != value else f"{value:.3f}"


def cluster_stats(labels: np.ndarray, lengths: np.ndarray, gc: np.ndarray) -> ClusterStats:
    """Size, total bp, GC range and median length of every cluster of ``labels``.

    Parameters
    ----------
    labels : int64 (N,), canonical (1..C, -1 unclustered; see :func:`canonical_labels`).
    lengths : int (N,) sequence lengths.
    gc : float (N,) GC fractions in [0, 1], NaN where unknown.
    """
    labels = np.asarray(labels, np.int64)
    member = np.flatnonzero(labels >= 0)
    lab = labels[member]
    order = np.argsort(lab, kind="stable")
    lab = lab[order]
    rows = member[order]
    clusters, starts, sizes = np.unique(lab, return_index=True, return_counts=True)
    length = np.asarray(lengths, np.int64)[rows]
    pct = np.asarray(gc, np.float64)[rows] * 100.0
    n = len(clusters)
    if n == 0:
        empty_i, empty_f = np.zeros(0, np.int64), np.zeros(0, np.float64)
        return ClusterStats(empty_i, empty_i, empty_i, empty_f, empty_f, empty_f, empty_f)
    total = np.add.reduceat(length, starts)
    known = ~np.isnan(pct)
    lo = np.minimum.reduceat(np.where(known, pct, np.inf), starts)
    hi = np.maximum.reduceat(np.where(known, pct, -np.inf), starts)
    lo[~np.isfinite(lo)] = np.nan
    hi[~np.isfinite(hi)] = np.nan
    # median length: sort lengths within each cluster (clusters stay contiguous)
    by_len = np.lexsort((length, lab))
    sorted_len = length[by_len].astype(np.float64)
    mid_lo = starts + (sizes - 1) // 2
    mid_hi = starts + sizes // 2
    median = (sorted_len[mid_lo] + sorted_len[mid_hi]) / 2
    return ClusterStats(
        clusters.astype(np.int64), sizes.astype(np.int64), total, lo, hi, hi - lo, median
    )


def write_stats_file(path: Path, stats: ClusterStats) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        stats.write_tsv(fh)
