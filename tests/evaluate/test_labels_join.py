"""Labels and clusterings as other tools write them: VAMB's column order told by the contig
ids, ``chop --table`` joined with a genome catalogue, and the pandas join of the docs."""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from cluster_factory import blobs, write_store
from embed_factory import SMALL, random_profiles, write_profiles

from kmervae.cli import main
from kmervae.errors import InputError
from kmervae.evaluate.labels import (
    LabelsWithCatalog,
    read_catalog_labels,
    read_clustering,
    read_labels,
)

DOCS = Path(__file__).resolve().parents[2] / "docs"

# -- clustering files in VAMB's order ------------------------------------------------------


def test_vamb_order_without_header_is_told_by_the_contig_ids(tmp_path, caplog):
    path = tmp_path / "vamb.tsv"
    # every contig alone: neither column repeats, so only the ids tell the order
    path.write_text("".join(f"bin{i}\tc{i}\n" for i in range(20)))
    ids = [f"c{i}" for i in range(30)]
    with caplog.at_level(logging.INFO, logger="kmervae.evaluate.labels"):
        got = read_clustering(path, ids)
    assert got == {f"c{i}": f"bin{i}" for i in range(20)}
    assert "read as VAMB's clustername<TAB>contigname, by the contig ids (20 of its 20" in (
        caplog.text
    )
    # the ids are asked for only when the file does not tell
    calls = []
    assert read_clustering(path, lambda: calls.append(1) or set(ids)) == got
    assert calls == [1]


def test_order_from_header_and_values(tmp_path, caplog):
    vamb = tmp_path / "vamb.tsv"
    vamb.write_text("clustername\tcontigname\nb1\tc1\nb1\tc2\nb2\tc3\n")
    plain = tmp_path / "plain.tsv"
    plain.write_text("c1\tb1\nc2\tb1\nc3\tb2\n")
    with caplog.at_level(logging.INFO, logger="kmervae.evaluate.labels"):
        assert read_clustering(vamb, lambda: pytest.fail("ids not needed")) == {
            "c1": "b1",
            "c2": "b1",
            "c3": "b2",
        }
        assert read_clustering(plain) == read_clustering(vamb)
    assert "vamb.tsv: read as VAMB's clustername<TAB>contigname, by its header" in caplog.text
    assert "plain.tsv: read as contig_id<TAB>cluster, by its values" in caplog.text


def test_ids_override_a_misleading_repeat(tmp_path):
    # contig ids repeat in no column here, but the cluster column is unique too: by the ids
    path = tmp_path / "c.tsv"
    path.write_text("c1\tx\nc2\ty\n")
    assert read_clustering(path, {"c1", "c2"}) == {"c1": "x", "c2": "y"}
    assert read_clustering(path, {"x", "y"}) == {"x": "c1", "y": "c2"}


@pytest.fixture
def store(tmp_path):
    x, _, lengths, gc = blobs(60, 3, 8)
    return write_store(tmp_path / "store", x, lengths, gc)


def test_evaluate_clusters_reads_a_headerless_vamb_file(store, tmp_path, capsys):
    path = tmp_path / "vamb.tsv"
    path.write_text("".join(f"bin{i}\tc{i}\n" for i in range(40)))
    out = tmp_path / "r.json"
    assert main(["evaluate", "clusters", str(path), "--store", str(store), "-o", str(out)]) == 0
    err = capsys.readouterr().err
    assert "read as VAMB's clustername<TAB>contigname, by the contig ids" in err
    result = json.loads(out.read_text())
    assert result["contigs"]["clustered"] == 40


def test_evaluate_taxonomy_clustering_in_vamb_order(tmp_path, capsys):
    ids = [f"c{i}" for i in range(120)]
    ds = write_profiles(tmp_path / "ds", random_profiles(120, SMALL.layout, seed=1), ids=ids)
    labels = tmp_path / "labels.tsv"
    labels.write_text("id\tspecies\n" + "".join(f"{i}\ts{j % 3}\n" for j, i in enumerate(ids)))
    clusters = tmp_path / "vamb.tsv"
    clusters.write_text("".join(f"bin_{i}\t{i}\n" for i in ids))  # singletons, no header
    out = tmp_path / "tax.json"
    argv = ["evaluate", "taxonomy", "tetra", str(ds), "--labels", str(labels)]
    assert main([*argv, "--clustering", str(clusters), "--json", str(out)]) == 0
    assert "read as VAMB's clustername<TAB>contigname" in capsys.readouterr().err
    assert json.loads(out.read_text())["clustering"]["clustered_rows"] == 120


# -- chop tables joined with a genome catalogue ----------------------------------------------
CATALOG = (
    "file\torganism\tgenus\tfamily\tphylum/domain\tnotes\n"
    "Ecoli_K12.fa.gz\tEscherichia coli\tEscherichia\tEnterobacteriaceae\tBacteria; P\t\n"
    "Phage_X.fna\tPhage X (uncultured)\t\t\tViruses\tx\n"
)
CHOP = (
    "contig_id\tfile\trecord\tstart\tend\tlength\n"
    "NC1.1\tEcoli_K12.fa.gz\tNC1\t0\t10\t10\n"
    "NC1.2\tEcoli_K12.fa.gz\tNC1\t10\t20\t10\n"
    "P.1\tPhage_X.fa\tP\t0\t10\t10\n"
    "Z.1\tunknown_genome.fa\tZ\t0\t10\t10\n"
)


@pytest.fixture
def joined(tmp_path):
    (tmp_path / "catalog.tsv").write_text(CATALOG)
    (tmp_path / "chop.tsv").write_text(CHOP)
    return tmp_path / "chop.tsv", tmp_path / "catalog.tsv"


def test_chop_table_joined_with_a_catalogue(joined, caplog):
    chop, catalog = joined
    with caplog.at_level(logging.WARNING):
        table = read_catalog_labels(chop, catalog)
    assert table.ranks == ["genome", "species", "genus", "family", "phylum"]
    assert table.by_id["NC1.2"] == (
        "Ecoli_K12",
        "Escherichia coli",
        "Escherichia",
        "Enterobacteriaceae",
        "Bacteria; P",
    )
    # Phage_X.fa matches Phage_X.fna (suffixes aside); empty cells are missing labels
    assert table.by_id["P.1"] == ("Phage_X", "Phage X (uncultured)", None, None, "Viruses")
    assert table.by_id["Z.1"] == ("unknown_genome", None, None, None, None)
    assert "1 genome(s) of" in caplog.text and "unknown_genome" in caplog.text
    picked = read_labels(LabelsWithCatalog(chop, catalog), ["notes", "genus"])
    assert picked.ranks == ["notes", "genus"] and picked.by_id["P.1"] == ("x", None)


@pytest.mark.parametrize(
    ("chop", "catalog", "message"),
    [
        (CHOP, "name\tgenus\nA.fa\tG\n", "no 'file' column to join on"),
        (CHOP, CATALOG + "Ecoli_K12.fna\tE\t\t\t\t\n", "genome 'Ecoli_K12' is listed twice"),
        ("contig_id\tgenome\nc1\tg\n", CATALOG, "no 'file' column to join with"),
        ("contig_id\tfile\nc1\tnone.fa\n", CATALOG, "none of its genomes is in"),
        (CHOP + "NC1.1\tEcoli_K12.fa.gz\tNC1\t0\t10\t10\n", CATALOG, "line 6: id 'NC1.1'"),
    ],
)
def test_bad_joins_are_one_line(tmp_path, chop, catalog, message):
    (tmp_path / "chop.tsv").write_text(chop)
    (tmp_path / "catalog.tsv").write_text(catalog)
    with pytest.raises(InputError, match=re.escape(message)) as err:
        read_catalog_labels(tmp_path / "chop.tsv", tmp_path / "catalog.tsv")
    assert "\n" not in str(err.value)


def test_unknown_rank_names_the_ranks_there_are(joined):
    with pytest.raises(InputError, match=r"no column for rank\(s\) order \(ranks: genome, "):
        read_catalog_labels(*joined, ["order"])


def test_evaluate_clusters_with_labels_from_chop_and_catalogue(store, joined, tmp_path, capsys):
    chop, catalog = joined
    table = "contig_id\tfile\trecord\tstart\tend\tlength\n" + "".join(
        f"c{i}\t{['Ecoli_K12.fa.gz', 'Phage_X.fna'][i % 2]}\tr\t0\t1\t1\n" for i in range(60)
    )
    chop.write_text(table)
    clusters = tmp_path / "clusters.tsv"
    clusters.write_text("contig_id\tcluster\n" + "".join(f"c{i}\t{i % 2}\n" for i in range(60)))
    out = tmp_path / "r.json"
    argv = ["evaluate", "clusters", str(clusters), "--store", str(tmp_path / "store")]
    argv += ["--labels", str(chop), "--catalog", str(catalog), "-o", str(out), "-q"]
    assert main(argv) == 0
    result = json.loads(out.read_text())
    assert result["ranks"] == ["genome", "species", "genus", "family", "phylum"]
    genome = result["rows"][0]["labels"]["genome"]
    assert genome["purity"]["mean"] == 1.0 and genome["ari"] == pytest.approx(1.0)
    alone = ["evaluate", "clusters", str(clusters), "--store", str(tmp_path / "store")]
    assert main([*alone, "--catalog", str(catalog), "-q"]) == 1
    assert "--catalog goes with --labels" in capsys.readouterr().err


# -- the pandas join of docs/evaluate.md ------------------------------------------------------
def doc_join_script() -> str:
    text = (DOCS / "evaluate.md").read_text()
    block = text.split("<!-- labels-from-chop -->", 1)[1]
    return block.split("```python\n", 1)[1].split("```", 1)[0]


def check_doc_join(folder: Path) -> None:
    script = doc_join_script()
    subprocess.run([sys.executable, "-c", script], cwd=folder, check=True, timeout=300)
    frame = pd.read_csv(folder / "labels.tsv", sep="\t")
    assert list(frame.columns) == ["contig_id", "genome", "species", "genus", "family", "phylum"]
    from_docs = read_labels(folder / "labels.tsv")
    ours = read_catalog_labels(folder / "chop.tsv", folder / "catalog.tsv")
    assert from_docs.ranks == ours.ranks and from_docs.by_id == ours.by_id


def test_the_documented_pandas_join_gives_the_same_labels(joined):
    check_doc_join(joined[0].parent)


def test_real_genomes_chopped_and_joined_with_their_catalogue(genomes_dir, tmp_path):
    genomes = [genomes_dir / "Escherichia_phage_phiX174.fa.gz"]
    genomes += [genomes_dir / "Yersinia_pestis_91001_pPCP1.fa.gz"]
    chop = tmp_path / "chop.tsv"
    argv = ["chop", *map(str, genomes), "-o", str(tmp_path / "c.fa"), "-l", "1000"]
    assert main([*argv, "--table", str(chop), "-q"]) == 0
    (tmp_path / "catalog.tsv").write_bytes((genomes_dir / "catalog.tsv").read_bytes())
    table = read_catalog_labels(chop, tmp_path / "catalog.tsv")
    species = {v[1] for v in table.by_id.values()}
    assert species == {"Escherichia phage phiX174", "Yersinia pestis"}
    assert np.all(
        [
            v[0] in ("Escherichia_phage_phiX174", "Yersinia_pestis_91001_pPCP1")
            for v in table.by_id.values()
        ]
    )
    check_doc_join(tmp_path)
