"""Taxonomic neighbour agreement: do nearest neighbours share the query's label?

For every query, the fraction of its k nearest neighbours whose label at a rank (genome,
species, genus, …) equals the query's, averaged over queries, for k = 1, 5, 10, 50, overall
and per contig-length bin. Three modes:

- *within* a dataset: neighbours are the other rows of the same dataset. Most neighbours
  come from the query's own genome, so the score saturates;
- *exclude-same RANK* (e.g. genome): neighbours sharing the query's label at RANK are
  skipped, which asks whether *other* genomes of the same species / genus come next;
- *reference*: queries from new genomes, neighbours from a labelled reference set; also how
  often the nearest reference is closer than a distance threshold.

A query without a label at a rank is left out of that rank's score, and so is a query whose
label no candidate neighbour carries (counted as ``unreachable``: a species with a single
genome under ``exclude-same genome``, a genus missing from the reference); a neighbour
without a label counts as disagreeing. ARI and AMI of a clustering against the labels
complete the picture.
"""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from kmervae.errors import InputError
from kmervae.evaluate.labels import AlignedLabels
from kmervae.neighbours import nearest_neighbours

log = logging.getLogger(__name__)

NEIGHBOUR_COUNTS = (1, 5, 10, 50)
#: contig-length bin edges in bp: <2, 2-5, 5-10, 10-20, >=20 kbp
LENGTH_EDGES = (2000, 5000, 10000, 20000)


def neighbour_agreement(
    query_labels: np.ndarray, neighbour_labels: np.ndarray, ks: tuple[int, ...]
) -> dict[int, tuple[float, int]]:
    """Mean fraction of the first k neighbours sharing the query's label, for each k.

    Parameters
    ----------
    query_labels : int (q,), -1 where unknown (such queries are left out).
    neighbour_labels : int (q x K), labels of the neighbours, nearest first; -1 (unknown or
        no neighbour) never matches.
    ks : neighbour counts, each at most K.

    Returns
    -------
    {k: (agreement, number of queries scored)}; agreement is NaN without scored queries.
    """
    scored = query_labels >= 0
    n = int(scored.sum())
    match = (neighbour_labels[scored] == query_labels[scored, None]) & (
        neighbour_labels[scored] >= 0
    )
    out: dict[int, tuple[float, int]] = {}
    for k in ks:
        out[k] = (float(match[:, :k].mean()) if n else float("nan"), n)
    return out


def reachable_labels(
    query_labels: np.ndarray,
    base_labels: np.ndarray,
    *,
    query_groups: np.ndarray | None = None,
    base_groups: np.ndarray | None = None,
    query_in_base: np.ndarray | None = None,
) -> np.ndarray:
    """bool (q,): whether any candidate neighbour of each query carries its label.

    A query whose label no candidate carries (a species with one genome under
    ``exclude-same genome``; a genus absent from the reference) cannot agree with any
    neighbour; it is left out of the score and counted apart.

    Parameters
    ----------
    query_labels : int (q,); base_labels : int (n,); -1 is unknown.
    query_groups, base_groups : int (q,), (n,): base rows in the query's group are skipped.
    query_in_base : int (q,), the query's own base row (skipped), -1 for none.
    """
    n_labels = int(max(query_labels.max(initial=-1), base_labels.max(initial=-1))) + 1
    known = base_labels >= 0
    per_label = np.bincount(base_labels[known], minlength=n_labels)
    available = np.where(query_labels >= 0, per_label[np.maximum(query_labels, 0)], 0)
    if query_groups is not None and base_groups is not None:
        pairs = {}
        both = known & (base_groups >= 0)
        keys, counts = np.unique(
            np.stack([base_labels[both], base_groups[both]], axis=1), axis=0, return_counts=True
        )
        pairs = {(int(a), int(b)): int(c) for (a, b), c in zip(keys, counts, strict=True)}
        same = np.array(
            [
                pairs.get((int(lab), int(g)), 0)
                for lab, g in zip(query_labels, query_groups, strict=True)
            ],
            np.int64,
        )
        available = available - np.where(query_groups >= 0, same, 0)
        grouped = query_groups >= 0
    else:
        grouped = np.zeros(len(query_labels), bool)
    if query_in_base is not None:
        own = (query_in_base >= 0) & ~grouped & (query_labels >= 0)
        available = available - own
    return (query_labels >= 0) & (available > 0)


def length_bin_names(edges: tuple[int, ...]) -> list[str]:
    """Names of the bins cut at ``edges`` (bp): ``<2 kbp``, ``2-5 kbp``, …, ``>=20 kbp``."""

    def kbp(x: int) -> str:
        return f"{x / 1000:g}"

    names = [f"<{kbp(edges[0])} kbp"]
    names += [f"{kbp(a)}-{kbp(b)} kbp" for a, b in itertools.pairwise(edges)]
    names.append(f">={kbp(edges[-1])} kbp")
    return names


def length_bins(lengths: np.ndarray, edges: tuple[int, ...]) -> np.ndarray:
    """int (n,): the bin of each length, 0 for below ``edges[0]``."""
    return np.searchsorted(np.asarray(edges), np.asarray(lengths), side="right")


@dataclass
class TaxonomyRequest:
    """What to measure (the defaults are the protocol's)."""

    ks: tuple[int, ...] = NEIGHBOUR_COUNTS
    ranks: tuple[str, ...] | None = None  # default: every rank of the labels
    exclude_same: str | None = None
    length_edges: tuple[int, ...] = LENGTH_EDGES
    metric: str = "euclidean"
    distance_threshold: float | None = None


def evaluate_agreement(
    vectors: np.ndarray,
    labels: AlignedLabels,
    lengths: np.ndarray,
    request: TaxonomyRequest,
    *,
    reference: np.ndarray | None = None,
    reference_labels: AlignedLabels | None = None,
    query_rows: np.ndarray | None = None,
) -> dict[str, Any]:
    """Neighbour agreement of ``vectors`` (q x d float32) with their labels.

    Without ``reference``, neighbours are the other rows of ``vectors`` itself (optionally
    skipping those that share ``request.exclude_same``); with it, neighbours are rows of
    ``reference`` (n x d) labelled by ``reference_labels`` (aligned with the same vocab).
    ``query_rows`` (int, sorted) restricts the queries to those rows of ``vectors``.

    Raises
    ------
    InputError
        The largest k is not below the number of candidate neighbours, or the
        ``exclude_same`` rank is not among the labels.
    """
    ks = tuple(sorted(set(request.ks)))
    ranks = list(request.ranks or labels.ranks)
    for rank in ranks:
        labels.column(rank)  # raises for an unknown rank
    queries = np.arange(len(vectors)) if query_rows is None else np.asarray(query_rows)
    base = vectors if reference is None else reference
    base_labels = labels if reference_labels is None else reference_labels
    candidates = base.shape[0] - (1 if reference is None else 0)
    if ks[-1] > candidates:
        raise InputError(
            f"k = {ks[-1]} neighbours asked for, but only {candidates} candidate "
            f"neighbours exist; use smaller -k values"
        )
    q_groups = b_groups = None
    if request.exclude_same:
        if reference is not None:
            raise InputError("exclude_same applies within one dataset, not with a reference")
        q_groups = labels.column(request.exclude_same)[queries]
        b_groups = labels.column(request.exclude_same)
        ranks = [r for r in ranks if r != request.exclude_same]
    idx, dist = nearest_neighbours(
        vectors[queries],
        base,
        ks[-1],
        metric=request.metric,
        self_index=queries if reference is None else None,
        query_groups=q_groups,
        base_groups=b_groups,
    )
    bins = length_bins(lengths[queries], request.length_edges)
    bin_names = length_bin_names(request.length_edges)
    result: dict[str, Any] = {
        "mode": "reference"
        if reference is not None
        else f"exclude-same {request.exclude_same}"
        if request.exclude_same
        else "within",
        "queries": len(queries),
        "candidates": int(candidates),
        "ks": list(ks),
        "metric": request.metric,
        "ranks": ranks,
        "agreement": {},
        "by_length": {},
        "unreachable": {},
        "labels": labels.report(),
    }
    short = (idx < 0).any(axis=1)
    if short.any():
        result["queries_short_of_neighbours"] = int(short.sum())
    for rank in ranks:
        q_lab = labels.column(rank)[queries]
        reach = reachable_labels(
            q_lab,
            base_labels.column(rank),
            query_groups=q_groups,
            base_groups=b_groups,
            query_in_base=queries if reference is None else None,
        )
        result["unreachable"][rank] = int(((q_lab >= 0) & ~reach).sum())
        q_lab = np.where(reach, q_lab, -1)
        n_lab = np.where(idx >= 0, base_labels.column(rank)[np.maximum(idx, 0)], -1)
        scores = neighbour_agreement(q_lab, n_lab, ks)
        result["agreement"][rank] = {str(k): v for k, (v, _) in scores.items()}
        result["agreement"][rank]["queries"] = next(iter(scores.values()))[1]
        for b, name in enumerate(bin_names):
            in_bin = bins == b
            if not in_bin.any():
                continue
            per = neighbour_agreement(q_lab[in_bin], n_lab[in_bin], ks)
            entry = result["by_length"].setdefault(name, {"queries": int(in_bin.sum())})
            entry[rank] = {str(k): v for k, (v, _) in per.items()}
    if reference is not None:
        nearest = dist[:, 0].astype(np.float64)
        result["nearest_distance"] = {
            "median": float(np.median(nearest)),
            "p10": float(np.percentile(nearest, 10)),
            "p90": float(np.percentile(nearest, 90)),
        }
        if request.distance_threshold is not None:
            close = nearest < request.distance_threshold
            entry = {"threshold": request.distance_threshold, "fraction": float(close.mean())}
            for rank in ranks:
                q_lab = labels.column(rank)[queries][close]
                top = base_labels.column(rank)[idx[close, 0]]
                agree = neighbour_agreement(q_lab, top[:, None], (1,))[1][0]
                entry[f"{rank}@1_when_closer"] = agree
            result["within_threshold"] = entry
    return result


def clustering_scores(
    clusters: dict[str, str], ids: list[str], labels: AlignedLabels, ranks: list[str]
) -> dict[str, Any]:
    """ARI and AMI of a clustering against the labels at each rank.

    Scored over the ids that have both a cluster and a label at the rank.
    """
    from sklearn.metrics import adjusted_mutual_info_score, adjusted_rand_score

    cluster_of = np.array([clusters.get(i, "") for i in ids], dtype=object)
    has_cluster = cluster_of != ""
    if not has_cluster.any():
        raise InputError("no dataset id appears in the clustering file; do the ids match?")
    out: dict[str, Any] = {"clustered_rows": int(has_cluster.sum())}
    for rank in ranks:
        lab = labels.column(rank)
        keep = has_cluster & (lab >= 0)
        if keep.sum() < 2:
            continue
        out[rank] = {
            "ari": float(adjusted_rand_score(lab[keep], cluster_of[keep])),
            "ami": float(adjusted_mutual_info_score(lab[keep], cluster_of[keep])),
            "rows": int(keep.sum()),
        }
    return out
