"""k-NN, neighbour agreement and its modes against brute-force Python loops."""

from __future__ import annotations

import numpy as np
import pytest

from kmervae.errors import InputError
from kmervae.evaluate.labels import AlignedLabels
from kmervae.evaluate.taxonomy import (
    TaxonomyRequest,
    clustering_scores,
    evaluate_agreement,
    length_bin_names,
    length_bins,
    neighbour_agreement,
    reachable_labels,
)
from kmervae.neighbours import nearest_neighbours


def naive_knn(queries, base, k, skip):
    """For each query: (distance, index) pairs sorted, skipping skip(qi, j)."""
    out = []
    for qi, q in enumerate(queries):
        pairs = sorted(
            (float(np.linalg.norm(q - b)), j) for j, b in enumerate(base) if not skip(qi, j)
        )
        out.append([j for _, j in pairs[:k]])
    return out


def naive_agreement(q_labels, base_labels, neighbours, k, reachable):
    scores = []
    for qi, lab in enumerate(q_labels):
        if lab < 0 or not reachable(qi):
            continue
        hits = sum(1 for j in neighbours[qi][:k] if base_labels[j] == lab)
        scores.append(hits / k)
    return float(np.mean(scores)) if scores else float("nan"), len(scores)


@pytest.fixture
def toy():
    rng = np.random.default_rng(5)
    n = 60
    genome = rng.integers(0, 8, n)
    species = genome // 2  # two genomes per species
    genus = species // 2
    species[3] = -1  # one unlabelled row
    centres = rng.normal(scale=3, size=(8, 4))
    vectors = (centres[genome] + rng.normal(size=(n, 4))).astype(np.float32)
    codes = np.stack([genome, species, genus], axis=1).astype(np.int64)
    labels = AlignedLabels(codes, ["genome", "species", "genus"], {})
    lengths = rng.integers(1000, 30000, n)
    return vectors, labels, lengths


def test_knn_matches_brute_force_with_exclusions(toy):
    vectors, labels, _ = toy
    genome = labels.column("genome")
    idx, dist = nearest_neighbours(
        vectors,
        vectors,
        5,
        self_index=np.arange(len(vectors)),
        query_groups=genome,
        base_groups=genome,
    )
    want = naive_knn(vectors, vectors, 5, lambda qi, j: qi == j or genome[qi] == genome[j])
    assert idx.tolist() == want
    for qi in range(len(vectors)):
        expect = [np.linalg.norm(vectors[qi] - vectors[j]) for j in want[qi]]
        np.testing.assert_allclose(dist[qi], expect, rtol=1e-4, atol=1e-4)


def test_knn_pads_when_too_few_remain():
    base = np.array([[0.0], [1.0], [2.0]], np.float32)
    idx, dist = nearest_neighbours(base, base, 3, self_index=np.arange(3))
    assert idx[:, 2].tolist() == [-1, -1, -1] and np.isinf(dist[:, 2]).all()
    cos_idx, _ = nearest_neighbours(np.array([[1.0, 0.1]]), np.eye(2), 1, metric="cosine")
    assert cos_idx[0, 0] == 0


@pytest.mark.parametrize("exclude", [None, "genome"])
def test_agreement_matches_naive_loops(toy, exclude):
    vectors, labels, lengths = toy
    request = TaxonomyRequest(ks=(1, 5), exclude_same=exclude, ranks=("species", "genus"))
    got = evaluate_agreement(vectors, labels, lengths, request)
    genome = labels.column("genome")

    def skip(qi, j):
        return qi == j or (exclude is not None and genome[qi] == genome[j])

    neighbours = naive_knn(vectors, vectors, 5, skip)
    for rank in ("species", "genus"):
        lab = labels.column(rank)

        def reachable(qi, lab=lab):
            return any(lab[j] == lab[qi] for j in range(len(lab)) if not skip(qi, j))

        for k in (1, 5):
            value, n = naive_agreement(lab, lab, neighbours, k, reachable)
            assert got["agreement"][rank][str(k)] == pytest.approx(value)
            assert got["agreement"][rank]["queries"] == n
    assert got["mode"] == ("within" if exclude is None else "exclude-same genome")
    total = sum(entry["queries"] for entry in got["by_length"].values())
    assert total == len(vectors)


def test_reference_mode_and_threshold(toy):
    vectors, labels, lengths = toy
    ref, queries = np.arange(0, 60, 2), np.arange(1, 60, 2)
    sub = AlignedLabels(labels.codes[queries], labels.ranks, {})
    ref_labels = AlignedLabels(labels.codes[ref], labels.ranks, {})
    request = TaxonomyRequest(ks=(1, 3), ranks=("species",), distance_threshold=2.0)
    got = evaluate_agreement(
        vectors[queries],
        sub,
        lengths[queries],
        request,
        reference=vectors[ref],
        reference_labels=ref_labels,
    )
    neighbours = naive_knn(vectors[queries], vectors[ref], 3, lambda qi, j: False)
    lab_q, lab_r = sub.column("species"), ref_labels.column("species")
    value, n = naive_agreement(lab_q, lab_r, neighbours, 1, lambda qi: lab_q[qi] in set(lab_r))
    assert got["agreement"]["species"]["1"] == pytest.approx(value)
    assert got["agreement"]["species"]["queries"] == n
    nearest = [
        np.linalg.norm(vectors[queries][i] - vectors[ref][neighbours[i][0]]) for i in range(30)
    ]
    assert got["within_threshold"]["fraction"] == pytest.approx(np.mean(np.array(nearest) < 2.0))
    assert got["nearest_distance"]["median"] == pytest.approx(np.median(nearest), rel=1e-4)


def test_k_larger_than_candidates_is_an_error(toy):
    vectors, labels, lengths = toy
    with pytest.raises(InputError, match="only 59 candidate"):
        evaluate_agreement(vectors, labels, lengths, TaxonomyRequest(ks=(1, 60)))
    with pytest.raises(InputError, match="not in the labels"):
        evaluate_agreement(vectors, labels, lengths, TaxonomyRequest(ranks=("order",)))


def test_small_pieces():
    assert length_bin_names((2000, 5000)) == ["<2 kbp", "2-5 kbp", ">=5 kbp"]
    assert length_bins(np.array([10, 2000, 4999, 5000]), (2000, 5000)).tolist() == [0, 1, 1, 2]
    q = np.array([0, 1, -1])
    nb = np.array([[0, 1], [0, -1], [1, 1]])
    assert neighbour_agreement(q, nb, (1, 2)) == {1: (0.5, 2), 2: (0.25, 2)}
    # label 2 exists only in the query's own group: unreachable
    reach = reachable_labels(
        np.array([0, 2]),
        np.array([0, 0, 2]),
        query_groups=np.array([5, 6]),
        base_groups=np.array([5, 7, 6]),
    )
    assert reach.tolist() == [True, False]


def test_clustering_scores():
    codes = np.array([[0], [0], [1], [1], [-1]])
    labels = AlignedLabels(codes, ["species"], {})
    ids = ["a", "b", "c", "d", "e"]
    perfect = clustering_scores({"a": "x", "b": "x", "c": "y", "d": "y"}, ids, labels, ["species"])
    assert perfect["species"]["ari"] == pytest.approx(1.0)
    assert perfect["species"]["ami"] == pytest.approx(1.0)
    assert perfect["species"]["rows"] == 4
    with pytest.raises(InputError, match="clustering"):
        clustering_scores({"zz": "x"}, ids, labels, ["species"])
