"""Every TSV a command writes loads as it is, with pandas' defaults: the header first, the
provenance in the folder's manifest or in the table's sidecar ``NAME.tsv.json``."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from cluster_factory import blobs, write_embeddings
from conftest import random_fasta

from kmervae.cli import main
from kmervae.evaluate.labels import read_clustering, read_labels
from kmervae.provenance import SIDECAR_FORMAT, sidecar_path

N, GROUPS, DIM = 240, 3, 8
MAP_FAST = ["--n-iter", "100", "--early-iter", "75", "-t", "1"]


def run(*argv: object) -> None:
    assert main([str(a) for a in argv] + ["-q"]) == 0, argv


@pytest.fixture(scope="module")
def outputs(tmp_path_factory):
    """Every TSV-writing command, run once on small data: name -> path."""
    tmp = tmp_path_factory.mktemp("tsv")
    x, truth, lengths, gc = blobs(N, GROUPS, DIM)
    ids = [f"c{i}" for i in range(N)]
    emb = write_embeddings(tmp / "emb", x, lengths, gc, ids)
    columns = tmp / "columns.tsv"
    columns.write_text(
        "id\tsample\tenvironment\n"
        + "".join(
            f"{i}\tS{j % 4}\t{'marine' if t else 'soil'}\n"
            for j, (i, t) in enumerate(zip(ids, truth, strict=True))
        )
    )
    samples = tmp / "samples.tsv"
    samples.write_text(
        "contig\tsample\tgroup\n"
        + "".join(f"{i}\tS{j % 4}\t{'AB'[j % 2]}\n" for j, i in enumerate(ids))
    )
    random_fasta(tmp / "genome.fa", n=6, min_len=4000, max_len=9000)

    store, graph = tmp / "store", tmp / "graph"
    run("index", "build", emb, "-o", store, "--backend", "exact", "--columns", columns)
    run(
        "search",
        store,
        "--ids",
        "c0",
        "c1",
        "c2",
        "-k",
        "4",
        "-o",
        tmp / "hits.tsv",
        "--columns",
        "sample,environment",
    )
    run("knn", store, "-o", graph, "-k", "10", "--tsv", tmp / "edges.tsv")
    run("cluster", graph, "-o", tmp / "clusters", "--method", "leiden")
    run("map", emb, "-o", tmp / "map", *MAP_FAST)
    run(
        "compare",
        tmp / "map",
        "--samples",
        samples,
        "--a",
        "A",
        "--b",
        "B",
        "-o",
        tmp / "compare",
        "--clusters",
        tmp / "clusters" / "clusters.tsv",
        "--format",
        "png",
    )
    run(
        "chop",
        tmp / "genome.fa",
        "-o",
        tmp / "contigs.fa",
        "-l",
        "1000",
        "--table",
        tmp / "chop.tsv",
    )
    run("export", emb, "-o", tmp / "emb.tsv")
    return {
        "tmp": tmp,
        "n": N,
        "hits": tmp / "hits.tsv",
        "edges": tmp / "edges.tsv",
        "clusters": tmp / "clusters" / "clusters.tsv",
        "stats": tmp / "clusters" / "clusters.stats.tsv",
        "summary": tmp / "clusters" / "summary.tsv",
        "map": tmp / "map" / "map.tsv",
        "composition": tmp / "compare" / "composition.tsv",
        "chop": tmp / "chop.tsv",
        "export": tmp / "emb.tsv",
    }


#: (output, columns, rows: a number, or the name of a function of the outputs)
EXPECTED = [
    ("hits", ["query", "rank", "neighbour", "distance", "length", "sample", "environment"], 12),
    ("edges", ["source", "target", "rank", "distance"], N * 10),
    ("clusters", ["contig_id", "cluster"], N),
    (
        "stats",
        ["cluster", "size", "total_bp", "gc_min", "gc_max", "gc_spread", "median_length"],
        "clusters",
    ),
    (
        "summary",
        [
            "name",
            "method",
            "parameter",
            "clusters",
            "clustered_contigs",
            "singletons",
            "median_gc_spread",
            "within_5pp",
        ],
        1,
    ),
    ("map", ["contig_id", "x", "y", "length", "gc"], N),
    (
        "composition",
        ["cluster", "n_a", "n_b", "fraction_a", "fraction_b", "share_a"],
        "clusters",
    ),
    ("chop", ["contig_id", "file", "record", "start", "end", "length"], "chop"),
    ("export", ["contig", *(f"dim_{j}" for j in range(DIM))], N),
]
#: tables written on their own, with a sidecar
STANDALONE = {"hits", "edges", "chop", "export"}


def _rows(outputs, rows) -> int:
    if rows == "clusters":
        return pd.read_csv(outputs["clusters"], sep="\t")["cluster"].nunique()
    if rows == "chop":
        return sum(1 for line in open(outputs["tmp"] / "contigs.fa") if line.startswith(">"))
    return rows


@pytest.mark.parametrize(("name", "columns", "rows"), EXPECTED, ids=[e[0] for e in EXPECTED])
def test_every_tsv_loads_with_pandas_defaults(outputs, name, columns, rows):
    path = outputs[name]
    assert not path.read_text().startswith("#")
    frame = pd.read_csv(path, sep="\t")
    assert list(frame.columns) == columns
    assert len(frame) == _rows(outputs, rows) > 0
    side = sidecar_path(path)
    if name in STANDALONE:
        record = json.loads(side.read_text())
        assert record["format"] == SIDECAR_FORMAT and record["file"] == path.name
        assert record["n_rows"] == len(frame)
        assert record["provenance"]["command"][0] == "kmervae"
        if "columns" in record:
            assert record["columns"] == columns
    else:
        assert not side.exists()
        assert (path.parent / "manifest.json").is_file()


def test_search_hits_carry_store_columns(outputs):
    hits = pd.read_csv(outputs["hits"], sep="\t")
    truth = {f"c{j}": f"S{j % 4}" for j in range(N)}
    assert (hits["sample"] == hits["neighbour"].map(truth)).all()
    assert set(hits["environment"]) <= {"marine", "soil"}
    assert hits.groupby("query")["rank"].apply(list).tolist() == [[1, 2, 3, 4]] * 3


def test_search_unknown_column_names_the_store_and_its_columns(outputs, capsys):
    store = outputs["tmp"] / "store"
    code = main(["search", str(store), "--ids", "c0", "--columns", "sample,depth", "-q"])
    err = capsys.readouterr().err.strip()
    assert code == 1 and "\n" not in err
    assert f"{store}: no column 'depth'" in err
    assert "sample" in err and "environment" in err and "source_path" in err


def test_search_to_stdout_starts_with_the_header(outputs, capsys):
    store = outputs["tmp"] / "store"
    assert main(["search", str(store), "--ids", "c5", "-k", "2", "-q"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == "query\trank\tneighbour\tdistance\tlength"


def test_readers_take_the_new_tables_and_the_old_comment_line(outputs, tmp_path):
    clusters = read_clustering(outputs["clusters"])
    assert len(clusters) == N
    old = tmp_path / "old.tsv"
    old.write_text("# kmervae 0.1.0: kmervae cluster g -o c\n" + outputs["clusters"].read_text())
    assert read_clustering(old) == clusters
    labels = tmp_path / "labels.tsv"
    labels.write_text("# kmervae 0.1.0 labels\n#contig_id\tgenus\nc1\tG1\nc2\tG2\n")
    table = read_labels(labels)
    assert table.ranks == ["genus"] and table.by_id == {"c1": ("G1",), "c2": ("G2",)}


def test_a_table_and_its_sidecar_appear_together(outputs, tmp_path, capsys):
    store = outputs["tmp"] / "store"
    out = tmp_path / "hits.tsv"
    assert main(["search", str(store), "--ids", "c0", "-o", str(out), "-q"]) == 0
    first = json.loads(sidecar_path(out).read_text())
    assert main(["search", str(store), "--ids", "c0", "-o", str(out), "-q"]) == 1
    assert "already exists" in capsys.readouterr().err
    assert main(["search", str(store), "--ids", "c1", "-k", "3", "-o", str(out), "--force"]) == 0
    again = json.loads(sidecar_path(out).read_text())
    assert again["n_rows"] == 3 != first["n_rows"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hits.tsv", "hits.tsv.json"]


def test_export_tsv_holds_the_float32_values_exactly(outputs):
    from kmervae.io.embeddings import open_embeddings

    frame = pd.read_csv(outputs["export"], sep="\t")
    emb = open_embeddings(outputs["tmp"] / "emb")
    assert frame["contig"].tolist() == emb.ids()
    np.testing.assert_array_equal(frame.iloc[:, 1:].to_numpy(np.float32), np.asarray(emb.mu))


def test_chop_table_file_names_the_genome(outputs):
    frame = pd.read_csv(outputs["chop"], sep="\t")
    assert set(frame["file"]) == {"genome.fa"}
    assert (frame["end"] - frame["start"] == frame["length"]).all()
    record = json.loads(sidecar_path(outputs["chop"]).read_text())
    assert record["spec"]["min_length"] == 1000 and record["genomes"][0].endswith("genome.fa")


def test_no_temporaries_are_left(outputs):
    assert not [p for p in outputs["tmp"].iterdir() if ".tmp-" in p.name]
