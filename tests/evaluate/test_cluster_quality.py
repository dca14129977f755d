"""Cluster quality: every metric against a plain-Python twin (dicts and loops) on random
clusterings, known tiny cases, and ``run_clusters`` on a store, a dataset and a folder."""

from __future__ import annotations

import hashlib
import json
import math
import statistics
from collections import Counter, defaultdict

import numpy as np
import pytest
from embed_factory import SMALL, write_profiles
from hypothesis import given, settings
from hypothesis import strategies as st

from kmervae.cluster.clusters import canonical_labels
from kmervae.errors import InputError
from kmervae.evaluate.clusters import (
    cluster_quality,
    label_agreement,
    n_statistic,
    purity_completeness,
    recovered_labels,
    size_summary,
    spread_summary,
    weighted_quantile,
)
from kmervae.evaluate.labels import AlignedLabels
from kmervae.evaluate.runner import Source, run_clusters
from kmervae.index import create_index

# -- naive twins -------------------------------------------------------------------------


def naive_weighted_quantile(values, weights, q):
    pairs = sorted(zip(values, weights, strict=True), key=lambda p: p[0])
    total = sum(float(w) for _, w in pairs)
    if not pairs or total <= 0:
        return math.nan
    running = 0.0
    for value, weight in pairs:
        running += float(weight)
        if running >= q * total:
            return float(value)
    return float(pairs[-1][0])


def naive_n_statistic(sizes, fraction):
    total = sum(sizes)
    running = 0
    for size in sorted(sizes, reverse=True):
        running += size
        if running >= fraction * total:
            return size
    return 0


def naive_groups(clusters, truth):
    """cluster -> Counter of labels, label -> Counter of clusters (rows with both)."""
    by_cluster, by_label = defaultdict(Counter), defaultdict(Counter)
    for c, t in zip(clusters, truth, strict=True):
        if c >= 0 and t >= 0:
            by_cluster[c][t] += 1
            by_label[t][c] += 1
    return by_cluster, by_label


def naive_purity_completeness(clusters, truth):
    by_cluster, by_label = naive_groups(clusters, truth)
    out = {}
    for key, groups in (("purity", by_cluster), ("completeness", by_label)):
        scored = [
            (max(cnt.values()), sum(cnt.values()))
            for cnt in groups.values()
            if sum(cnt.values()) >= 2
        ]
        out[key] = {
            "n": len(scored),
            "mean": statistics.fmean(m / s for m, s in scored) if scored else math.nan,
            "weighted": sum(m for m, _ in scored) / sum(s for _, s in scored)
            if scored
            else math.nan,
            "whole": statistics.fmean(m == s for m, s in scored) if scored else math.nan,
        }
    return out


def naive_recovered(clusters, truth, weights, min_purity=0.95, min_completeness=0.9):
    label_total, cluster_total, cell = defaultdict(float), defaultdict(float), defaultdict(float)
    for c, t, w in zip(clusters, truth, weights, strict=True):
        if t < 0:
            continue
        label_total[t] += w
        if c >= 0:
            cluster_total[c] += w
            cell[c, t] += w
    recovered = set()
    for (c, t), w in cell.items():
        if w / cluster_total[c] >= min_purity and w / label_total[t] >= min_completeness:
            recovered.add(t)
    return len(recovered), len(label_total)


def naive_spreads(clusters, gc_percent):
    """cluster -> (members, max - min GC) over every cluster."""
    members = defaultdict(list)
    for c, g in zip(clusters, gc_percent, strict=True):
        if c >= 0:
            members[c].append(g)
    return {c: (len(v), max(v) - min(v)) for c, v in members.items()}


def assert_same(a, b):
    if isinstance(b, float) and math.isnan(b):
        assert math.isnan(a)
    else:
        assert a == pytest.approx(b, rel=1e-9, abs=1e-12)


# -- property tests ----------------------------------------------------------------------

clusterings = st.integers(1, 40).flatmap(
    lambda n: st.tuples(
        st.lists(st.integers(-1, 6), min_size=n, max_size=n),
        st.lists(st.integers(-1, 4), min_size=n, max_size=n),
        st.lists(st.integers(1, 5000), min_size=n, max_size=n),
    )
)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.floats(0, 50), st.integers(0, 20)), min_size=0, max_size=30),
    st.sampled_from([0.0, 0.1, 0.25, 0.5, 0.9, 1.0]),
)
def test_weighted_quantile_matches_naive(pairs, q):
    values = [v for v, _ in pairs]
    weights = [w for _, w in pairs]
    assert_same(
        weighted_quantile(np.array(values), np.array(weights), q),
        naive_weighted_quantile(values, weights, q),
    )


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(1, 10_000), max_size=30), st.sampled_from([0.1, 0.5, 0.9]))
def test_n_statistic_matches_naive(sizes, fraction):
    assert n_statistic(np.array(sizes, np.int64), fraction) == naive_n_statistic(sizes, fraction)


@settings(max_examples=200, deadline=None)
@given(clusterings)
def test_purity_completeness_match_naive(data):
    clusters, truth, _ = data
    got = purity_completeness(np.array(clusters), np.array(truth))
    want = naive_purity_completeness(clusters, truth)
    assert got["purity"]["clusters"] == want["purity"]["n"]
    assert got["completeness"]["labels"] == want["completeness"]["n"]
    for key, share in (("purity", "pure_share"), ("completeness", "whole_share")):
        assert_same(got[key]["mean"], want[key]["mean"])
        assert_same(got[key]["weighted"], want[key]["weighted"])
        assert_same(got[key][share], want[key]["whole"])


@settings(max_examples=200, deadline=None)
@given(clusterings, st.booleans())
def test_recovered_matches_naive(data, by_bp):
    clusters, truth, lengths = data
    weights = lengths if by_bp else [1] * len(lengths)
    got = recovered_labels(
        np.array(clusters), np.array(truth), np.array(lengths) if by_bp else None
    )
    recovered, present = naive_recovered(clusters, truth, weights)
    assert (got["recovered"], got["labels"]) == (recovered, present)


@settings(max_examples=150, deadline=None)
@given(clusterings, st.integers(0, 2**31))
def test_cluster_quality_matches_naive(data, seed):
    """The whole protocol, GC spread and sizes through cluster_stats, against loops."""
    clusters, truth, lengths = data
    rng = np.random.default_rng(seed)
    gc = np.round(rng.uniform(0.3, 0.7, len(clusters)), 4)
    labels = AlignedLabels(np.array(truth, np.int64)[:, None], ["genome"], {})
    ids = [f"c{i}" for i in range(len(clusters))]
    got = cluster_quality(np.array(clusters), np.array(lengths), gc, labels=labels, ids=ids)

    spreads = naive_spreads(clusters, gc * 100)
    bp = defaultdict(int)
    for c, n in zip(clusters, lengths, strict=True):
        if c >= 0:
            bp[c] += n
    sizes = got["sizes"]
    assert sizes["clusters"] == len(spreads)
    assert sizes["singletons"] == sum(m == 1 for m, _ in spreads.values())
    assert sizes["contigs"] == sum(c >= 0 for c in clusters)
    assert sizes["bp"] == sum(bp.values())
    members = [m for m, _ in spreads.values()]
    assert sizes["largest"] == max(members, default=0)
    assert sizes["members_n"]["N50"] == naive_n_statistic(members, 0.5)
    assert sizes["bp_n"]["N90"] == naive_n_statistic(list(bp.values()), 0.9)

    multi = {c: v for c, v in spreads.items() if v[0] >= 2}
    spread = got["gc_spread"]
    values = [s for _, s in multi.values()]
    assert spread["clusters"] == len(multi)
    assert_same(spread["median"], statistics.median(values) if values else math.nan)
    assert_same(spread["mean"], statistics.fmean(values) if values else math.nan)
    within = [s <= 5.0 for s in values]
    assert_same(spread["share_within"], statistics.fmean(within) if values else math.nan)
    weights = [multi[c][0] for c in multi]
    assert_same(spread["by_members"]["median"], naive_weighted_quantile(values, weights, 0.5))
    if values:
        total = sum(weights)
        mean = sum(s * w for s, w in zip(values, weights, strict=True)) / total
        assert spread["by_members"]["mean"] == pytest.approx(mean, abs=1e-6)
        bp_w = [bp[c] for c in multi]
        share = sum(w for s, w in zip(values, bp_w, strict=True) if s <= 5.0) / sum(bp_w)
        assert spread["by_bp"]["share_within"] == pytest.approx(share)

    rank = got["labels"]["genome"]
    want = naive_purity_completeness(clusters, truth)
    assert_same(rank["purity"]["mean"], want["purity"]["mean"])
    assert_same(rank["kept_whole"]["share"], want["completeness"]["whole"])
    assert rank["kept_whole"]["labels"] == want["completeness"]["n"]
    assert rank["recovered"]["recovered"] == naive_recovered(clusters, truth, lengths)[0]
    assert rank["recovered"]["by"] == "bp"
    labelled = [t >= 0 for t in truth]
    assert rank["labelled"] == sum(labelled)
    assert rank["unclustered"] == sum(
        t >= 0 and c < 0 for c, t in zip(clusters, truth, strict=True)
    )


# -- known cases -------------------------------------------------------------------------


def _labels(*columns):
    codes = np.array(columns, np.int64).T
    ranks = ["genome", "species"][: len(columns)]
    return AlignedLabels(codes, ranks, {})


def _quality(clusters, genome, species, lengths=None, gc=None):
    n = len(clusters)
    lengths = np.full(n, 1000) if lengths is None else np.asarray(lengths)
    gc = np.full(n, 0.5) if gc is None else np.asarray(gc)
    return cluster_quality(
        np.array(clusters),
        lengths,
        gc,
        labels=_labels(genome, species),
        ids=[f"c{i}" for i in range(n)],
    )


GENOME = [0, 0, 0, 1, 1, 1, 2, 2]
SPECIES = [0, 0, 0, 0, 0, 0, 1, 1]


def test_perfect_clustering():
    got = _quality(GENOME, GENOME, SPECIES)
    genome = got["labels"]["genome"]
    assert genome["purity"]["mean"] == 1 and genome["purity"]["pure_share"] == 1
    assert genome["completeness"]["mean"] == 1 and genome["completeness"]["weighted"] == 1
    assert genome["ari"] == pytest.approx(1.0) and genome["ami"] == pytest.approx(1.0)
    assert genome["kept_whole"] == {"share": 1.0, "labels": 3}
    assert genome["recovered"]["recovered"] == 3 == genome["recovered"]["labels"]
    assert genome["unclustered"] == 0
    species = got["labels"]["species"]
    # s0 is split over the clusters of its two genomes: not whole, not recovered
    assert species["kept_whole"] == {"share": 0.5, "labels": 2}
    assert species["purity"]["mean"] == 1 and species["recovered"]["recovered"] == 1
    assert got["sizes"]["clusters"] == 3 and got["sizes"]["singletons"] == 0


def test_all_in_one_cluster():
    got = _quality([7] * 8, GENOME, SPECIES, gc=np.linspace(0.3, 0.6, 8))
    genome = got["labels"]["genome"]
    assert genome["purity"]["clusters"] == 1
    assert genome["purity"]["mean"] == pytest.approx(3 / 8) and genome["purity"]["pure_share"] == 0
    assert genome["completeness"]["mean"] == 1 and genome["kept_whole"]["share"] == 1
    assert genome["ari"] == pytest.approx(0.0) and genome["recovered"]["recovered"] == 0
    spread = got["gc_spread"]
    assert spread["clusters"] == 1 and spread["median"] == pytest.approx(30.0)
    assert spread["share_within"] == 0 and got["sizes"]["largest"] == 8


def test_all_singletons():
    got = _quality(list(range(8)), GENOME, SPECIES)
    genome = got["labels"]["genome"]
    assert genome["purity"]["clusters"] == 0 and math.isnan(genome["purity"]["mean"])
    assert genome["completeness"]["mean"] == pytest.approx((1 / 3 + 1 / 3 + 1 / 2) / 3)
    assert genome["kept_whole"]["share"] == 0 and genome["recovered"]["recovered"] == 0
    assert genome["ari"] == pytest.approx(0.0)
    assert got["sizes"]["singletons"] == 8 and got["gc_spread"]["clusters"] == 0
    assert math.isnan(got["gc_spread"]["median"])


def test_recovered_is_judged_by_bp_over_unclustered_contigs_too():
    # genome 0: a 9 kbp contig clustered with a 100 bp contig of genome 1, and a 500 bp
    # contig left unclustered: purity by bp 0.989, completeness 9000 / 9500 = 0.947
    clusters = [1, 1, -1]
    truth = [0, 1, 0]
    got = label_agreement(np.array(clusters), np.array(truth), np.array([9000, 100, 500]))
    assert got["recovered"]["recovered"] == 1 and got["recovered"]["by"] == "bp"
    assert got["unclustered"] == 1 and got["unclustered_share"] == pytest.approx(1 / 3)
    by_count = label_agreement(np.array(clusters), np.array(truth))
    assert by_count["recovered"]["recovered"] == 0 and by_count["recovered"]["by"] == "contigs"


def test_summaries_of_nothing_and_no_gc():
    empty = size_summary(np.zeros(0, np.int64), np.zeros(0, np.int64))
    assert empty["clusters"] == 0 and empty["members_n"]["N50"] == 0
    spread = spread_summary(np.array([np.nan, 0.0]), np.array([3, 1]), np.array([10, 5]))
    assert spread["no_gc"] == 1 and spread["clusters"] == 0 and spread["singletons"] == 1
    assert math.isnan(spread["by_bp"]["mean"])


def test_the_three_largest_clusters_are_named_with_their_spread():
    spread = spread_summary(
        np.array([1.0, 7.0, 2.5, 0.0, 4.0]), np.array([4, 9, 4, 1, 6]), np.arange(5) * 100
    )
    assert spread["largest_clusters"] == [
        {"size": 9, "spread": 7.0},
        {"size": 6, "spread": 4.0},
        {"size": 4, "spread": 1.0},
    ]


# -- run_clusters ------------------------------------------------------------------------

N_GENOMES, PER_GENOME = 4, 15


def _genome_profiles(seed=0):
    """Profiles of N_GENOMES genomes: each a Dirichlet around its own composition."""
    rng = np.random.default_rng(seed)
    groups = []
    for width in SMALL.layout.widths:
        centres = rng.dirichlet(np.full(width, 0.7), size=N_GENOMES)
        rows = [
            rng.dirichlet(400 * centres[g]) for g in range(N_GENOMES) for _ in range(PER_GENOME)
        ]
        groups.append(np.array(rows))
    return np.concatenate(groups, axis=1).astype(np.float32)


@pytest.fixture
def world(tmp_path):
    n = N_GENOMES * PER_GENOME
    ids = [f"c{i}" for i in range(n)]
    genome = np.repeat(np.arange(N_GENOMES), PER_GENOME)
    x = _genome_profiles()
    dataset = write_profiles(tmp_path / "ds", x, ids=ids)  # lengths 1000 + 7 i, gc i / 1000
    store = tmp_path / "store"
    with create_index(
        store, backend="exact", dim=2, schema={"length": "int64", "gc": "float32"}
    ) as s:
        s.add(
            ids,
            np.stack([genome, np.arange(n) % 3], axis=1).astype(np.float32),
            {"length": 1000 + 7 * np.arange(n), "gc": (np.arange(n) / 1000).astype(np.float32)},
        )
        s.save({"action": "build"})
    labels = tmp_path / "labels.tsv"
    labels.write_text(
        "id\tgenome\tspecies\n"
        + "".join(f"c{i}\tg{genome[i]}\ts{genome[i] // 2}\n" for i in range(n))
    )
    return {
        "n": n,
        "ids": ids,
        "genome": genome,
        "dataset": dataset,
        "store": store,
        "labels": labels,
        "tmp": tmp_path,
    }


def _folder(world, clusters, *, min_length=0, name="mcl-I3", ids_sha256=None):
    """A cluster folder as ``kmervae cluster`` writes it (clusters.tsv + manifest)."""
    from kmervae.cluster.run import ClusterRequest
    from kmervae.index import open_index

    folder = world["tmp"] / "clusters"
    folder.mkdir(exist_ok=True)
    lines = [f"{world['ids'][i]}\t{c}\n" for i, c in enumerate(clusters) if c >= 0]
    (folder / "clusters.tsv").write_text("contig_id\tcluster\n" + "".join(lines))
    store = open_index(world["store"])
    digest = hashlib.sha256(("\n".join(world["ids"]) + "\n").encode()).hexdigest()
    request = ClusterRequest.from_dict({"graph": {"min_length": min_length}})
    manifest = {
        "format": "kmervae-clusters",
        "schema_version": 1,
        "store": {
            "path": str(world["store"]),
            "n_rows": store.n_committed,
            "ids_sha256": ids_sha256 or digest,
            "model_fingerprint": "",
        },
        "input": {"kind": "graph", "k": 10},
        "request": request.to_dict(),
        "clusterings": [{"name": name, "file": "clusters.tsv", "n_clusters": len(set(clusters))}],
    }
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


def test_run_clusters_on_a_folder_with_min_length(world):
    clusters = canonical_labels(np.array(world["genome"]))
    clusters[:5] = -1  # five short contigs left out by --min-length (1000 + 7 i < 1035)
    clusters[50] = -1  # and one long contig that ended in no cluster
    result = run_clusters(_folder(world, clusters, min_length=1035), labels=world["labels"])
    contigs = result["contigs"]
    assert contigs["kind"] == "store" and contigs["evaluated"] == world["n"] - 5
    assert contigs["below_min_length"] == 5 and contigs["unclustered"] == 1
    (row,) = result["rows"]
    genome = row["labels"]["genome"]
    assert row["kind"] == "input" and row["name"] == "mcl-I3"
    assert genome["purity"]["mean"] == 1 and genome["unclustered"] == 1
    assert genome["recovered"]["recovered"] == 4 and genome["ari"] == pytest.approx(1.0)
    assert row["gc_spread"]["median"] == pytest.approx(1.4)  # 15 rows x 0.1 pp, minus one
    assert result["labels"]["rows_without_labels"] == 0


def test_run_clusters_plain_tsv_with_dataset_and_vamb_order(world):
    tsv = world["tmp"] / "vamb.tsv"
    tsv.write_text(
        "clustername\tcontigname\n"
        + "".join(f"bin{g}\tc{i}\n" for i, g in enumerate(world["genome"]) if i % 2 == 0)
        + "bin9\tghost\n"
    )
    result = run_clusters(tsv, dataset=world["dataset"], labels=world["labels"], ranks=["species"])
    assert result["contigs"]["kind"] == "dataset" and result["contigs"]["evaluated"] == 30
    assert result["contigs"]["clustered_ids_not_found"] == 1
    species = result["rows"][0]["labels"]["species"]
    assert species["kept_whole"]["share"] == 0 and species["purity"]["pure_share"] == 1
    assert result["ranks"] == ["species"]


def test_run_clusters_baselines_side_by_side(world):
    folder = _folder(world, canonical_labels(np.array(world["genome"])))
    result = run_clusters(
        folder,
        dataset=world["dataset"],
        labels=world["labels"],
        baselines=[Source("clr"), Source("pca-4")],
    )
    names = [r["name"] for r in result["rows"]]
    assert names == ["mcl-I3", "clr", "pca-4"] and result["k"] == 10
    for row in result["rows"][1:]:
        assert "error" not in row and row["contigs_clustered"] == world["n"]
        assert row["clustering"] == "mcl-I3"
        assert row["labels"]["genome"]["ari"] > 0.5  # the genomes are well separated


def test_run_clusters_bad_input(world, caplog):
    folder = _folder(world, canonical_labels(np.array(world["genome"])))
    with pytest.raises(InputError, match="baselines need dataset"):
        run_clusters(folder, baselines=[Source("clr")])
    with pytest.raises(InputError, match="no such cluster folder or clustering file"):
        run_clusters(world["tmp"] / "nothing")
    with pytest.raises(InputError, match="no clustering named 'x'"):
        run_clusters(folder, clustering="x")
    other = world["tmp"] / "other.tsv"
    other.write_text("x1\t1\nx2\t1\n")
    with pytest.raises(InputError, match="none of the 2 clustered ids is in"):
        run_clusters(other, store=world["store"])
    with pytest.raises(InputError, match="needs a store or a profile dataset"):
        run_clusters(other)
    nolab = world["tmp"] / "nolab.tsv"
    nolab.write_text("id\tgenome\nzz\tg\n")
    with pytest.raises(InputError, match="do the ids match"):
        run_clusters(folder, labels=nolab)
    other_store = _folder(world, canonical_labels(np.array(world["genome"])), ids_sha256="0" * 64)
    with pytest.raises(InputError, match="its ids differ from those of the store"):
        run_clusters(other_store)
    one = world["tmp"] / "one.tsv"
    one.write_text("".join(f"c{i}\tA\n" for i in range(10)))
    result = run_clusters(one, store=world["store"])
    assert result["warnings"] == ["one: every clustered contig is in one cluster"]
    assert "every clustered contig is in one cluster" in caplog.text
