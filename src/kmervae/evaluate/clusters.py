"""Cluster quality, the fifth protocol of docs/evaluate.md: how tight and how taxonomically clean a
clustering of contigs is.

Everything here is pure numpy on arrays; :mod:`kmervae.evaluate.runner` reads the files.
A clustering of ``n`` contigs is an int array of cluster codes, ``-1`` for a contig in no
cluster; labels are the int codes of :class:`~kmervae.evaluate.labels.AlignedLabels`, ``-1``
where unknown.

- **GC spread** of a cluster: max − min GC of its members, in percentage points (from
  :func:`kmervae.cluster.clusters.cluster_stats`, the one definition). It is summarised over
  clusters of two or more members; a singleton's spread is 0 by construction, so singletons
  are counted apart.
- **Sizes**: clusters, singletons, contigs clustered, the largest cluster, Nx of members and
  of bp (the size S such that clusters of size ≥ S hold x % of the clustered contigs or bp).
- **Purity** of a cluster (per rank): the share of its labelled members that carry its
  majority label, over clusters with at least two labelled members (a singleton is pure by
  construction).
- **Completeness** of a label: the largest share of its clustered members that one cluster
  holds, over labels with at least two clustered members; a label is *kept whole* when one
  cluster holds all of them.
- **Recovered** labels (the binning benchmarks' convention, e.g. AMBER and VAMB): a cluster
  recovers a genome when at least 95 % of the cluster's labelled bp are that genome (purity)
  and it holds at least 90 % of the genome's bp among the evaluated contigs, clustered or
  not (completeness). Without lengths, contigs are counted instead of bp.
- **ARI and AMI** come from :func:`kmervae.evaluate.taxonomy.clustering_scores`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from kmervae.cluster.clusters import canonical_labels, cluster_stats
from kmervae.evaluate.labels import AlignedLabels

#: GC spread (pp) a cluster must not exceed to count as tight
WITHIN_PP = 5.0
#: quantiles of the GC-spread distribution that are reported
SPREAD_QUANTILES = (0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99)
#: Nx statistics of the size distribution (N10, N50, N90)
N_FRACTIONS = (0.1, 0.5, 0.9)
#: the binning benchmarks' thresholds for a recovered genome
MIN_PURITY = 0.95
MIN_COMPLETENESS = 0.9


def weighted_quantile(values: np.ndarray, weights: np.ndarray, q: float) -> float:
    """The lower weighted ``q``-quantile: the smallest value whose cumulative weight (values
    in ascending order) reaches ``q`` of the total weight.

    Parameters
    ----------
    values : float (m,).
    weights : non-negative (m,), same length; integer weights (members, bp) are exact.
    q : in [0, 1].

    Returns
    -------
    float; NaN when ``values`` is empty or the weights sum to 0.
    """
    values = np.asarray(values, np.float64)
    weights = np.asarray(weights, np.float64)
    total = weights.sum()
    if len(values) == 0 or total <= 0:
        return float("nan")
    order = np.argsort(values, kind="stable")
    cumulative = np.cumsum(weights[order])
    at = int(np.searchsorted(cumulative, q * total, side="left"))
    return float(values[order][min(at, len(values) - 1)])


def n_statistic(sizes: np.ndarray, fraction: float) -> int:
    """Nx of ``sizes`` (N50 for ``fraction`` 0.5): the largest size S such that the sizes of
    at least S hold at least ``fraction`` of the total.

    Parameters
    ----------
    sizes : non-negative int (C,), e.g. cluster members or cluster bp.

    Returns
    -------
    int; 0 for no sizes.
    """
    sizes = np.sort(np.asarray(sizes, np.int64))[::-1]
    if len(sizes) == 0:
        return 0
    cumulative = np.cumsum(sizes)
    at = int(np.searchsorted(cumulative, fraction * cumulative[-1], side="left"))
    return int(sizes[min(at, len(sizes) - 1)])


def spread_summary(
    spread: np.ndarray,
    size: np.ndarray,
    total_bp: np.ndarray,
    *,
    within: float = WITHIN_PP,
    quantiles: Sequence[float] = SPREAD_QUANTILES,
) -> dict[str, Any]:
    """The GC-spread distribution over clusters of two or more members.

    Parameters
    ----------
    spread : float64 (C,), max − min GC of each cluster in percentage points; NaN where no
        member has a GC value (such clusters are counted as ``no_gc`` and left out).
    size : int64 (C,), members of each cluster.
    total_bp : int64 (C,), bp of each cluster.
    within : a cluster is tight when its spread is at most this (pp).

    Returns
    -------
    ``clusters`` (scored), ``singletons``, ``no_gc``, ``median``, ``mean``,
    ``share_within`` and ``quantiles`` over clusters; ``by_members`` and ``by_bp``: the
    same median (lower weighted median), mean and share with each cluster weighted by its
    members or its bp. NaN where no cluster is scored. ``largest_clusters``: size and
    spread of the three largest clusters (the research's first check of a clustering).
    """
    spread = np.asarray(spread, np.float64)
    size = np.asarray(size, np.int64)
    total_bp = np.asarray(total_bp, np.int64)
    multi = size >= 2
    scored = multi & ~np.isnan(spread)
    s = spread[scored]
    nan = float("nan")
    out: dict[str, Any] = {
        "clusters": int(scored.sum()),
        "singletons": int((size == 1).sum()),
        "no_gc": int((multi & np.isnan(spread)).sum()),
        "within": float(within),
        "median": float(np.median(s)) if len(s) else nan,
        "mean": float(s.mean()) if len(s) else nan,
        "share_within": float((s <= within).mean()) if len(s) else nan,
        "quantiles": {f"{q:g}": float(np.quantile(s, q)) if len(s) else nan for q in quantiles},
    }
    for key, weights in (("by_members", size[scored]), ("by_bp", total_bp[scored])):
        w = weights.astype(np.float64)
        total = w.sum()
        out[key] = {
            "median": weighted_quantile(s, w, 0.5),
            "mean": float((s * w).sum() / total) if total > 0 else nan,
            "share_within": float(w[s <= within].sum() / total) if total > 0 else nan,
        }
    largest = np.argsort(-size, kind="stable")[:3]
    out["largest_clusters"] = [
        {"size": int(size[i]), "spread": float(spread[i])} for i in largest.tolist()
    ]
    return out


def size_summary(size: np.ndarray, total_bp: np.ndarray) -> dict[str, Any]:
    """The size distribution of a clustering.

    Parameters
    ----------
    size : int64 (C,), members of each cluster (each ≥ 1).
    total_bp : int64 (C,), bp of each cluster.

    Returns
    -------
    ``clusters``, ``singletons``, ``contigs`` (clustered), ``bp`` (clustered), ``largest``
    (members), ``largest_bp``, ``median`` and ``mean`` members, and ``members_n`` /
    ``bp_n``: N10, N50, N90 of members and of bp.
    """
    size = np.asarray(size, np.int64)
    total_bp = np.asarray(total_bp, np.int64)
    some = len(size) > 0
    return {
        "clusters": len(size),
        "singletons": int((size == 1).sum()),
        "contigs": int(size.sum()),
        "bp": int(total_bp.sum()),
        "largest": int(size.max()) if some else 0,
        "largest_bp": int(total_bp.max()) if some else 0,
        "median": float(np.median(size)) if some else float("nan"),
        "mean": float(size.mean()) if some else float("nan"),
        "members_n": {f"N{round(100 * f)}": n_statistic(size, f) for f in N_FRACTIONS},
        "bp_n": {f"N{round(100 * f)}": n_statistic(total_bp, f) for f in N_FRACTIONS},
    }


def contingency(
    clusters: np.ndarray, truth: np.ndarray, weights: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The non-zero cells of the cluster × label table over rows with both.

    Parameters
    ----------
    clusters : int (n,), -1 for no cluster.
    truth : int (n,), -1 for no label.
    weights : (n,) per-row weights (e.g. bp); default 1 per row.

    Returns
    -------
    (cluster, label, total): int64, int64 and float64 (m,), one entry per (cluster, label)
    pair that occurs, sorted by cluster then label.
    """
    clusters = np.asarray(clusters, np.int64)
    truth = np.asarray(truth, np.int64)
    both = (clusters >= 0) & (truth >= 0)
    w = np.ones(len(clusters)) if weights is None else np.asarray(weights, np.float64)
    pairs = np.stack([clusters[both], truth[both]], axis=1)
    if len(pairs) == 0:
        empty = np.zeros(0, np.int64)
        return empty, empty, np.zeros(0, np.float64)
    keys, inverse = np.unique(pairs, axis=0, return_inverse=True)
    total = np.bincount(inverse.ravel(), weights=w[both], minlength=len(keys))
    return keys[:, 0], keys[:, 1], total


def _group_max(groups: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per group (int codes): the sum and the max of ``values``, indexed by group code."""
    n = int(groups.max()) + 1 if len(groups) else 0
    sums = np.bincount(groups, weights=values, minlength=n)
    maxima = np.zeros(n, np.float64)
    np.maximum.at(maxima, groups, values)
    return sums, maxima


def purity_completeness(clusters: np.ndarray, truth: np.ndarray) -> dict[str, Any]:
    """Purity of clusters and completeness of labels, over rows with a cluster and a label.

    Parameters
    ----------
    clusters : int (n,), -1 for no cluster.
    truth : int (n,), -1 for no label.

    Returns
    -------
    ``purity``: ``clusters`` scored (≥ 2 labelled members), ``mean`` over them, ``weighted``
    (each cluster weighted by its labelled members) and ``pure_share`` (purity 1);
    ``completeness``: ``labels`` scored (≥ 2 clustered members), ``mean``, ``weighted`` and
    ``whole_share`` (the share of those labels that one cluster holds entirely). NaN where
    nothing is scored.
    """
    c, t, count = contingency(clusters, truth)
    nan = float("nan")
    out: dict[str, Any] = {}
    for key, groups, share_key in (
        ("purity", c, "pure_share"),
        ("completeness", t, "whole_share"),
    ):
        sums, maxima = _group_max(groups, count)
        scored = sums >= 2
        value = maxima[scored] / sums[scored]
        n = int(scored.sum())
        out[key] = {
            ("clusters" if key == "purity" else "labels"): n,
            "mean": float(value.mean()) if n else nan,
            "weighted": float(maxima[scored].sum() / sums[scored].sum()) if n else nan,
            share_key: float((maxima[scored] == sums[scored]).mean()) if n else nan,
        }
    return out


def recovered_labels(
    clusters: np.ndarray,
    truth: np.ndarray,
    weights: np.ndarray | None = None,
    *,
    min_purity: float = MIN_PURITY,
    min_completeness: float = MIN_COMPLETENESS,
) -> dict[str, Any]:
    """Labels (genomes) recovered as a bin: some cluster whose labelled weight is at least
    ``min_purity`` this label and that holds at least ``min_completeness`` of the label's
    weight over all rows, clustered or not.

    Parameters
    ----------
    clusters : int (n,), -1 for no cluster.
    truth : int (n,), -1 for no label.
    weights : (n,) per-row weights, the contig lengths for the convention's bp; default 1.

    Returns
    -------
    ``recovered`` (count), ``labels`` (labels with at least one row), ``share``.
    """
    truth = np.asarray(truth, np.int64)
    w = np.ones(len(truth)) if weights is None else np.asarray(weights, np.float64)
    labelled = truth >= 0
    present = np.unique(truth[labelled])
    label_total = np.bincount(truth[labelled], weights=w[labelled])
    c, t, total = contingency(clusters, truth, w)
    cluster_total = np.bincount(c, weights=total) if len(c) else np.zeros(0)
    with np.errstate(divide="ignore", invalid="ignore"):
        purity = total / cluster_total[c] if len(c) else total
        completeness = total / label_total[t] if len(t) else total
    hit = (purity >= min_purity) & (completeness >= min_completeness)
    recovered = len(np.unique(t[hit]))
    return {
        "recovered": recovered,
        "labels": len(present),
        "share": recovered / len(present) if len(present) else float("nan"),
    }


def label_agreement(
    clusters: np.ndarray,
    truth: np.ndarray,
    lengths: np.ndarray | None = None,
    *,
    min_purity: float = MIN_PURITY,
    min_completeness: float = MIN_COMPLETENESS,
) -> dict[str, Any]:
    """Everything one rank's labels say about a clustering (ARI/AMI aside).

    Parameters
    ----------
    clusters : int (n,), -1 for no cluster; the n rows are the evaluated contigs.
    truth : int (n,), label codes at one rank, -1 where unknown.
    lengths : int (n,) contig lengths; recovered labels are judged by bp when given.

    Returns
    -------
    ``labelled`` rows, ``unclustered`` (labelled rows in no cluster) and
    ``unclustered_share``; ``purity`` and ``completeness`` (:func:`purity_completeness`);
    ``kept_whole`` (``share`` and ``labels`` counted); ``recovered``
    (:func:`recovered_labels`, with ``by``: ``bp`` or ``contigs`` and the thresholds).
    """
    clusters = np.asarray(clusters, np.int64)
    truth = np.asarray(truth, np.int64)
    labelled = truth >= 0
    n_labelled = int(labelled.sum())
    unclustered = int((labelled & (clusters < 0)).sum())
    out: dict[str, Any] = {
        "labelled": n_labelled,
        "unclustered": unclustered,
        "unclustered_share": unclustered / n_labelled if n_labelled else float("nan"),
    }
    out.update(purity_completeness(clusters, truth))
    completeness = out["completeness"]
    out["kept_whole"] = {"share": completeness["whole_share"], "labels": completeness["labels"]}
    recovered = recovered_labels(
        clusters, truth, lengths, min_purity=min_purity, min_completeness=min_completeness
    )
    recovered["by"] = "contigs" if lengths is None else "bp"
    recovered["min_purity"] = min_purity
    recovered["min_completeness"] = min_completeness
    out["recovered"] = recovered
    return out


def cluster_quality(
    clusters: np.ndarray,
    lengths: np.ndarray | None,
    gc: np.ndarray,
    *,
    labels: AlignedLabels | None = None,
    ids: Sequence[str] | None = None,
    ranks: Sequence[str] | None = None,
    within: float = WITHIN_PP,
) -> dict[str, Any]:
    """The whole protocol for one clustering of the evaluated contigs.

    Parameters
    ----------
    clusters : int (n,), any non-negative codes, -1 for no cluster.
    lengths : int64 (n,) contig lengths in bp; None where unknown (bp figures are then 0 or
        NaN, and recovered labels are judged by contigs).
    gc : float (n,) GC fractions in [0, 1], NaN where unknown.
    labels : the evaluated contigs' labels (rows aligned with ``clusters``).
    ids : the evaluated contigs' ids (needed with ``labels``, for ARI/AMI).
    ranks : ranks to score (default: every rank of ``labels``).

    Returns
    -------
    ``sizes`` (:func:`size_summary`), ``gc_spread`` (:func:`spread_summary`) and, with
    labels, ``labels``: rank -> :func:`label_agreement` plus ``ari``, ``ami`` and
    ``ari_rows`` (rows with a cluster and a label).
    """
    from kmervae.evaluate.taxonomy import clustering_scores

    canonical = canonical_labels(clusters)
    known = None if lengths is None else np.asarray(lengths, np.int64)
    zeros = np.zeros(len(canonical), np.int64)
    stats = cluster_stats(canonical, zeros if known is None else known, gc)
    result: dict[str, Any] = {
        "sizes": size_summary(stats.size, stats.total_bp),
        "gc_spread": spread_summary(stats.gc_spread, stats.size, stats.total_bp, within=within),
    }
    if labels is None:
        return result
    if ids is None or len(ids) != len(canonical):
        raise ValueError("cluster_quality: labels need the ids of the same rows")
    ranks = list(ranks or labels.ranks)
    clustered = np.flatnonzero(canonical >= 0)
    scores: dict[str, Any] = {}
    if len(clustered):
        codes = canonical[clustered].tolist()
        named = {ids[i]: str(c) for i, c in zip(clustered.tolist(), codes, strict=True)}
        scores = clustering_scores(named, list(ids), labels, ranks)
    per_rank: dict[str, Any] = {}
    for rank in ranks:
        entry = label_agreement(canonical, labels.column(rank), known)
        adjusted = scores.get(rank)
        nan = float("nan")
        entry["ari"] = adjusted["ari"] if isinstance(adjusted, dict) else nan
        entry["ami"] = adjusted["ami"] if isinstance(adjusted, dict) else nan
        entry["ari_rows"] = adjusted["rows"] if isinstance(adjusted, dict) else 0
        per_rank[rank] = entry
    result["labels"] = per_rank
    return result
