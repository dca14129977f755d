"""The genome benchmark's species names and its by-genome, stratified split."""

from __future__ import annotations

from collections import Counter


def test_species_names(bench):
    assert bench.species_of("Escherichia coli") == "Escherichia coli"
    assert (
        bench.species_of("Salmonella enterica subsp. enterica serovar X") == "Salmonella enterica"
    )
    assert bench.species_of("Pseudomonas syringae pv. maculicola") == "Pseudomonas syringae"
    assert bench.species_of("Klebsiella sp. (K. pneumoniae complex)") == "Klebsiella sp."
    assert bench.species_of("uncultured virus (metagenomic contig)") == ""
    assert bench.file_stem("E_coli_K12.fa.gz") == "E_coli_K12"


def test_split_keeps_whole_genomes_and_both_sides_of_shared_species(bench):
    catalog = [
        {"file": f"{sp}_{i}.fa", "genome": f"{sp}_{i}", "species": sp}
        for sp, n in (("Ecoli", 5), ("Saureus", 3), ("Hpylori", 2))
        for i in range(n)
    ]
    catalog += [
        {"file": f"single{i}.fa", "genome": f"single{i}", "species": f"s{i}"} for i in range(20)
    ]
    train, test = bench.split_by_genome(catalog, 0.3, seed=1)
    assert {e["file"] for e in train}.isdisjoint({e["file"] for e in test})
    assert len(train) + len(test) == len(catalog)
    on_train, on_test = Counter(e["species"] for e in train), Counter(e["species"] for e in test)
    for species in ("Ecoli", "Saureus", "Hpylori"):
        assert on_train[species] >= 1 and on_test[species] >= 1
    assert 0 < sum(on_test[f"s{i}"] for i in range(20)) < 20
    assert bench.split_by_genome(catalog, 0.3, seed=1) == (train, test)


def test_train_copies_cut_each_genome_again(bench, tmp_path):
    import argparse
    import csv

    from conftest import random_fasta

    from kmervae.io.dataset import open_dataset

    genomes = tmp_path / "genomes"
    genomes.mkdir()
    entries = []
    for i in range(2):
        random_fasta(genomes / f"g{i}.fa", n=2, seed=i, min_len=20_000, max_len=30_000)
        entries.append(
            {"file": f"g{i}.fa", "genome": f"g{i}", "species": f"s{i}", "genus": "G"}
            | {"family": "F", "phylum": "P"}
        )
    args = argparse.Namespace(lengths=(2000, 5000), seed=7, threads=1)
    once = bench.build_side("train", entries, genomes, tmp_path, args)
    thrice = bench.build_side("train", entries, genomes, tmp_path, args, copies=3)
    assert once[0].name == "train.kmv" and thrice[0].name == "train-x3.kmv"
    one, three = open_dataset(once[0]), open_dataset(thrice[0])
    ids1, ids3 = list(one.ids()), list(three.ids())
    assert len(set(ids3)) == len(ids3)
    # the first cut is the single cut; the others cut elsewhere
    assert ids3[: len(ids1)] == ids1
    assert (three.lengths()[: len(ids1)] == one.lengths()).all()
    for copy in (1, 2):
        mine = [i for i in ids3 if i.endswith(f"~c{copy}")]
        assert len(mine) > len(ids1) // 2
        lengths = three.lengths()[[ids3.index(i) for i in mine]]
        assert sorted(lengths.tolist()) != sorted(one.lengths().tolist())
    with open(thrice[1], newline="") as fh:
        labels = {row["id"]: row for row in csv.DictReader(fh, delimiter="\t")}
    assert set(labels) == set(ids3)
    for cid, row in labels.items():
        assert cid.startswith(row["genome"] + "_") and row["species"] == "s" + cid[1]
