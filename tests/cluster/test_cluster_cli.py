"""``kmervae cluster`` end to end: MCL, Leiden, consensus, HDBSCAN, bins, and bad input."""

from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import pytest
from cluster_factory import (
    blobs,
    needs_mcl,
    write_embeddings,
    write_fasta,
    write_graph,
    write_store,
)
from hostile import assert_clean, assert_refused, read_only_folder, small_disk
from sklearn.metrics import adjusted_rand_score

from kmervae.cli import main
from kmervae.cluster.run import Clustering, ClusterRequest, check_not_degenerate
from kmervae.errors import KmervaeError


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("cluster")
    x, truth, lengths, gc = blobs()
    store = write_store(root / "store", x, lengths, gc)
    graph = write_graph(store, root / "graph")
    return root, x, truth, lengths, gc, store, graph


def labels_of(path, n: int) -> np.ndarray:
    frame = pd.read_csv(path, sep="\t")
    out = np.full(n, -1)
    out[frame["contig_id"].str[1:].astype(int).to_numpy()] = frame["cluster"].to_numpy()
    return out


def run_ok(argv) -> None:
    assert main([*argv, "-q"]) == 0


def fails(argv, capsys, match: str) -> str:
    return assert_refused([*argv, "-q"], capsys, match)


@needs_mcl
def test_mcl_recovers_the_groups_and_writes_every_file(data, tmp_path):
    _root, _, truth, lengths, _gc, _, graph = data
    run_ok(["cluster", str(graph), "-o", str(tmp_path / "out"), "-I", "1.4", "-t", "2"])
    out = tmp_path / "out"
    labels = labels_of(out / "clusters.tsv", len(truth))
    assert (labels > 0).all()
    assert adjusted_rand_score(truth, labels) > 0.95
    stats = pd.read_csv(out / "clusters.stats.tsv", sep="\t")
    assert stats["size"].sum() == len(truth)
    assert stats["total_bp"].sum() == lengths.sum()
    assert (stats["gc_spread"] < 3).all()  # each group has its own GC level
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["format"] == "kmervae-clusters"
    assert manifest["store"]["n_rows"] == len(truth)
    assert manifest["clusterings"][0]["name"] == "mcl-I1.4"
    assert manifest["provenance"]["command"][:2] == ["kmervae", "cluster"]
    request = ClusterRequest.from_dict(manifest["request"])
    assert request.inflations == (1.4,) and request.graph.max_in_degree == 100
    summary = pd.read_csv(out / "summary.tsv", sep="\t")
    assert summary["clusters"].tolist() == [len(stats)]
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".")]


@needs_mcl
def test_an_inflation_sweep_writes_one_clustering_each(data, tmp_path):
    *_, graph = data
    run_ok(["cluster", str(graph), "-o", str(tmp_path / "out"), "-I", "1.4,2.5"])
    run_ok(
        ["cluster", str(graph), "-o", str(tmp_path / "cheap"), "-I", "1.4", "--mcl-resource", "20"]
    )
    cheap = json.loads((tmp_path / "cheap" / "manifest.json").read_text())
    assert cheap["request"]["mcl_resource"] == 20
    assert cheap["clusterings"][0]["clusters"] >= 3
    out = tmp_path / "out"
    for name in ("mcl-I1.4", "mcl-I2.5"):
        assert (out / f"clusters.{name}.tsv").is_file()
        assert (out / f"clusters.{name}.stats.tsv").is_file()
    assert (out / "clusters.tsv").read_bytes() == (out / "clusters.mcl-I1.4.tsv").read_bytes()
    summary = pd.read_csv(out / "summary.tsv", sep="\t")
    assert summary["name"].tolist() == ["mcl-I1.4", "mcl-I2.5"]
    assert summary["clusters"].iloc[1] >= summary["clusters"].iloc[0]


@pytest.mark.parametrize("implementation", ["igraph", "leidenalg"])
def test_leiden_is_reproducible_and_recovers_the_groups(data, tmp_path, implementation):
    *_, truth, _, _, _, graph = data
    for name in ("a", "b"):
        argv = ["cluster", str(graph), "-o", str(tmp_path / name), "--method", "leiden"]
        run_ok([*argv, "--leiden-implementation", implementation, "--seed", "7"])
    a = (tmp_path / "a" / "clusters.tsv").read_bytes()
    assert a == (tmp_path / "b" / "clusters.tsv").read_bytes()
    assert adjusted_rand_score(truth, labels_of(tmp_path / "a" / "clusters.tsv", 1200)) > 0.95
    manifest = json.loads((tmp_path / "a" / "manifest.json").read_text())
    assert manifest["request"]["leiden_implementation"] == implementation


@needs_mcl
def test_consensus_of_mcl_and_leiden_through_rcl(data, tmp_path):
    *_, truth, _, _, _, graph = data
    argv = ["cluster", str(graph), "-o", str(tmp_path / "out"), "--method", "mcl,leiden"]
    argv += ["-I", "1.4,2", "-r", "0.5,1", "--consensus", "--consensus-resolutions", "50,400"]
    run_ok(argv)
    out = tmp_path / "out"
    names = pd.read_csv(out / "summary.tsv", sep="\t")["name"].tolist()
    assert names == ["rcl-R50", "rcl-R400", "mcl-I1.4", "mcl-I2", "leiden-r0.5", "leiden-r1"]
    coarse = labels_of(out / "clusters.rcl-R400.tsv", len(truth))
    assert adjusted_rand_score(truth, coarse) > 0.9
    fine = labels_of(out / "clusters.tsv", len(truth))
    assert len(set(fine.tolist())) >= len(set(coarse.tolist()))


@pytest.mark.parametrize(
    "options",
    [
        ["--weight", "snn", "--snn-k", "10"],
        ["--symmetrise", "mutual", "--delta", "0.5"],
        ["--neighbours", "8"],
    ],
)
def test_graph_variants_cluster_too(data, tmp_path, options):
    *_, truth, _, _, _, graph = data
    run_ok(["cluster", str(graph), "-o", str(tmp_path / "o"), "--method", "leiden", *options])
    assert adjusted_rand_score(truth, labels_of(tmp_path / "o" / "clusters.tsv", 1200)) > 0.9


@needs_mcl
def test_short_contigs_stay_unclustered_and_vamb_layout(data, tmp_path):
    *_, lengths, _, _, graph = data
    out = tmp_path / "out"
    run_ok(["cluster", str(graph), "-o", str(out), "-I", "1.4", "--min-length", "5000",
            "--format", "vamb"])  # fmt: skip
    frame = pd.read_csv(out / "clusters.tsv", sep="\t")
    assert list(frame.columns) == ["clustername", "contigname"]
    clustered = frame["contigname"].str[1:].astype(int).to_numpy()
    assert set(clustered.tolist()) == set(np.flatnonzero(lengths >= 5000).tolist())
    assert (np.diff(frame["clustername"].to_numpy()) >= 0).all()  # grouped by cluster


def test_hdbscan_on_embeddings(data, tmp_path):
    _root, x, truth, lengths, gc, *_ = data
    emb = write_embeddings(tmp_path / "emb", x, lengths, gc)
    run_ok(["cluster", str(emb), "-o", str(tmp_path / "out"), "--method", "hdbscan"])
    labels = labels_of(tmp_path / "out" / "clusters.tsv", len(truth))
    member = labels > 0
    assert member.mean() > 0.8
    assert adjusted_rand_score(truth[member], labels[member]) > 0.9
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["graph_summary"]["min_cluster_size"] == 10


@needs_mcl
def test_bins_hold_the_contigs_of_each_large_cluster(data, tmp_path):
    _root, x, _truth, lengths, *_, graph = data
    ids = [f"c{i}" for i in range(len(x))]
    half = len(ids) // 2
    write_fasta(tmp_path / "a.fa", ids[:half], seed=1)
    seqs = write_fasta(tmp_path / "b.fa", ids[half:], seed=2)
    out, bins = tmp_path / "out", tmp_path / "bins"
    run_ok(["cluster", str(graph), "-o", str(out), "-I", "1.4", "--write-bins", str(bins),
            "--fasta", str(tmp_path / "a.fa"), str(tmp_path / "b.fa"),
            "--min-bin-size", "1"])  # fmt: skip
    labels = labels_of(out / "clusters.tsv", len(ids))
    files = sorted(os.listdir(bins))
    assert files == sorted(f"{c}.fna" for c in set(labels.tolist()))
    first = (bins / "1.fna").read_text().split(">")[1:]
    got = {r.split()[0] for r in first}
    assert got == {ids[i] for i in np.flatnonzero(labels == 1)}
    record = next(r for r in first if r.split()[0] in seqs)
    ident = record.split()[0]
    assert "".join(record.splitlines()[1:]) == seqs[ident]
    # a bin threshold above every cluster writes no bin but still a bin folder
    total = int(lengths.sum())
    run_ok(["cluster", str(graph), "-o", str(tmp_path / "o2"), "-I", "1.4", "--write-bins",
            str(tmp_path / "b2"), "--fasta", str(tmp_path / "a.fa"), str(tmp_path / "b.fa"),
            "--min-bin-size", str(total + 1)])  # fmt: skip
    assert os.listdir(tmp_path / "b2") == []


@needs_mcl
def test_bins_match_prefixed_ids(tmp_path):
    x, _, lengths, gc = blobs(300, 3, seed=4)
    ids = [f"sample_c{i}" for i in range(300)]
    store = write_store(tmp_path / "store", x, lengths, gc, ids=ids)
    graph = write_graph(store, tmp_path / "graph")
    write_fasta(tmp_path / "sample.fa.gz".removesuffix(".gz"), [f"c{i}" for i in range(300)])
    run_ok(["cluster", str(graph), "-o", str(tmp_path / "out"), "-I", "1.4", "--write-bins",
            str(tmp_path / "bins"), "--fasta", str(tmp_path / "sample.fa"),
            "--min-bin-size", "1"])  # fmt: skip
    text = "".join((tmp_path / "bins" / f).read_text() for f in os.listdir(tmp_path / "bins"))
    assert text.count(">sample_c") == 300


@needs_mcl
def test_bins_missing_contigs_are_named_and_nothing_is_left(data, tmp_path, capsys):
    *_, graph = data
    write_fasta(tmp_path / "a.fa", [f"c{i}" for i in range(1000)])
    err = fails(["cluster", str(graph), "-o", str(tmp_path / "out"), "-I", "1.4",
                 "--write-bins", str(tmp_path / "bins"), "--fasta", str(tmp_path / "a.fa"),
                 "--min-bin-size", "1"], capsys, "200 contig(s) of the bins")  # fmt: skip
    assert "'c1000'" in err
    assert os.listdir(tmp_path) == ["a.fa"]


def test_a_graph_of_other_contigs_is_refused(data, tmp_path, capsys):
    _root, x, _truth, lengths, gc, _store, graph = data
    other = write_store(tmp_path / "other", x, lengths, gc, ids=[f"d{i}" for i in range(len(x))])
    fails(["cluster", str(graph), "-o", str(tmp_path / "out"), "--store", str(other)], capsys,
          "does not belong to this store")  # fmt: skip
    small = write_store(tmp_path / "small", x[:100], lengths[:100], gc[:100])
    fails(["cluster", str(graph), "-o", str(tmp_path / "out"), "--store", str(small)], capsys,
          "does not belong to this store")  # fmt: skip
    assert sorted(os.listdir(tmp_path)) == ["other", "small"]


@needs_mcl
def test_an_empty_graph_names_the_threshold_and_the_quantiles(data, tmp_path, capsys):
    *_, graph = data
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("good output")
    err = fails(["cluster", str(graph), "-o", str(tmp_path / "out"), "--max-distance", "0.001",
                 "--force"], capsys, "no edge left after thresholding")  # fmt: skip
    assert "0.001" in err and "50%" in err
    # --force never destroys a good output before the new one can be made
    assert (tmp_path / "out" / "keep.txt").read_text() == "good output"
    assert os.listdir(tmp_path) == ["out"]


def test_mcl_missing_is_one_line_with_the_install_hint(data, tmp_path, capsys, monkeypatch):
    *_, graph = data
    monkeypatch.setenv("PATH", str(tmp_path))
    fails(["cluster", str(graph), "-o", str(tmp_path / "out")], capsys, "apt-get install mcl")
    assert not (tmp_path / "out").exists()


@needs_mcl
@pytest.mark.bad_input
@pytest.mark.parametrize(
    ("options", "match"),
    [
        (["-I", "1"], "argument -I/--inflation: must be in (1, 100]"),
        (["-I", "1.4,x"], "expected comma-separated numbers"),
        (["--mcl-resource", "0"], "argument --mcl-resource: must be >= 1"),
        (["--leiden-iterations", "0"], "Leiden iterations must be -1 or at least 1"),
        (["--neighbours", "0"], "argument -k/--neighbours: must be >= 1"),
        (["--max-distance", "-1"], "argument --max-distance: must be > 0"),
        (["--delta", "nan"], "argument --delta: must be a finite number"),
        (["--seed", "-1"], "argument --seed"),
        (["-t", "-1"], "argument -t/--threads"),
        (["--min-bin-size", "-5"], "argument --min-bin-size"),
        (["--consensus"], "at least two clusterings"),
        (["--consensus-resolutions", "100"], "goes with --consensus"),
        (["--method", "leiden", "-r", "0"], "argument -r/--resolution: must be > 0"),
        (["--method", "hdbscan"], "give a map"),
        (["--method", "hdbscan,mcl"], "use it alone"),
        (["--max-in-degree", "-1"], "--max-in-degree"),
        (["--fasta", "x.fa"], "for bins (bins_dir) only"),
        (["--write-bins", "bins"], "give their FASTA files"),
        (["--min-length", "10000000"], "no contig is at least"),
    ],
)
def test_bad_options_are_one_line(data, tmp_path, capsys, options, match):
    *_, graph = data
    fails(["cluster", str(graph), "-o", str(tmp_path / "out"), *options], capsys, match)
    assert not (tmp_path / "out").exists()


@needs_mcl
def test_existing_output_and_wrong_inputs(data, tmp_path, capsys):
    _root, *_, store, graph = data
    (tmp_path / "out").mkdir()
    fails(["cluster", str(graph), "-o", str(tmp_path / "out")], capsys, "already exists")
    fails(["cluster", str(store), "-o", str(tmp_path / "o2")], capsys, "cluster reads a k-NN")
    fails(["cluster", str(tmp_path / "nope"), "-o", str(tmp_path / "o2")], capsys, "no such")
    emb = write_embeddings(tmp_path / "emb", *blobs(50)[:1], *blobs(50)[2:])
    fails(["cluster", str(emb), "-o", str(tmp_path / "o2")], capsys, "clusters a k-NN graph")
    fails(["cluster", str(emb), "-o", str(tmp_path / "o2"), "--method", "hdbscan",
           "--min-cluster-size", "60"], capsys, "cannot form clusters")  # fmt: skip


def test_hdbscan_all_noise_is_an_error(tmp_path, capsys):
    rng = np.random.default_rng(0)
    x = rng.random((300, 2)).astype(np.float32)
    emb = write_embeddings(tmp_path / "emb", x, np.full(300, 5000), np.full(300, 0.5, np.float32))
    fails(["cluster", str(emb), "-o", str(tmp_path / "out"), "--method", "hdbscan",
           "--min-cluster-size", "150", "--min-samples", "100"], capsys,
          "all 300 points are noise")  # fmt: skip


def test_one_cluster_only_warns_and_fails_when_every_clustering_has_one():
    one = Clustering("a", "mcl", 2.0, np.ones(10, np.int64))
    two = Clustering("b", "mcl", 3.0, np.r_[np.ones(5), np.full(5, 2)].astype(np.int64))
    check_not_degenerate([one, two], 10)
    with pytest.raises(KmervaeError, match="one cluster"):
        check_not_degenerate([one], 10)


@needs_mcl
@pytest.mark.bad_input
@pytest.mark.parametrize("disk", ["full", "read-only"])
def test_cluster_on_a_full_or_read_only_disk(data, tmp_path, capsys, disk):
    *_, graph = data
    with small_disk(tmp_path, "48k") if disk == "full" else read_only_folder(tmp_path) as d:
        needle = "No space left" if disk == "full" else "is not writable"
        assert_refused(["cluster", graph, "-o", d / "out", "-I", "1.4,2"], capsys, needle, str(d))
        assert_clean(d, d / "out")


@needs_mcl
@pytest.mark.bad_input
def test_an_mcl_clustering_that_ends_short_is_refused(tmp_path):
    from kmervae.cluster.consensus import write_mcl_clustering
    from kmervae.cluster.mcl import read_mcl_clusters

    path = write_mcl_clustering(np.array([0, 0, 1, 1, 2]), tmp_path / "five.cls")
    np.testing.assert_array_equal(read_mcl_clusters(path, 5), [0, 0, 1, 1, 2])
    with pytest.raises(KmervaeError, match="lacks 2 of 7 contigs"):
        read_mcl_clusters(path, 7)
