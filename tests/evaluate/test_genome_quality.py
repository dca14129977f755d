"""Quality thresholds of the baselines on real genomes (skipped without the collection)."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from conftest import SHARED_GENOMES

from kmervae.evaluate.runner import Source, run_fidelity, run_taxonomy
from kmervae.evaluate.taxonomy import TaxonomyRequest
from kmervae.io.chop import ChopSpec, chop_genomes
from kmervae.kmers.profile import profile_fasta

GENOMES = {
    "Helicobacter_pylori_G27.fa.gz": "Helicobacter pylori",
    "Helicobacter_pylori_SJM180.fa.gz": "Helicobacter pylori",
    "Staphylococcus_aureus_COL.fa.gz": "Staphylococcus aureus",
    "Staphylococcus_aureus_N315.fa.gz": "Staphylococcus aureus",
}


@pytest.fixture(scope="module")
def contigs(tmp_path_factory):
    # module scope (built once), so the genomes_dir fixture's check is repeated here
    genomes_dir = SHARED_GENOMES
    if not (genomes_dir / "catalog.tsv").exists():
        pytest.skip("the shared real-genome collection is not beside this checkout")
    missing = [g for g in GENOMES if not (genomes_dir / g).exists()]
    if missing:
        pytest.skip(f"genomes missing from the collection: {missing}")
    tmp = tmp_path_factory.mktemp("genomes")
    table = tmp / "contigs.tsv"
    chop_genomes(
        [genomes_dir / g for g in GENOMES],
        tmp / "contigs.fa",
        ChopSpec(3000, 10000, 3000, 1),
        table=table,
        prefix_ids=True,
    )
    dataset = profile_fasta([tmp / "contigs.fa"], tmp / "contigs.kmv").output
    labels = tmp / "labels.tsv"
    with open(table) as fh, open(labels, "w") as out:
        out.write("id\tgenome\tspecies\n")
        for row in csv.DictReader(fh, delimiter="\t"):
            out.write(f"{row['contig_id']}\t{row['file']}\t{GENOMES[row['file']]}\n")
    return dataset, labels


def test_tetranucleotide_neighbours_share_species(contigs):
    dataset, labels = contigs
    within = run_taxonomy(Source("tetra"), dataset, labels, TaxonomyRequest(ks=(1, 10)))
    assert within["agreement"]["species"]["1"] > 0.97
    assert within["agreement"]["species"]["10"] > 0.95
    other = run_taxonomy(
        Source("tetra"), dataset, labels, TaxonomyRequest(ks=(1,), exclude_same="genome")
    )
    # the nearest contig of another genome is still of the same species
    assert other["agreement"]["species"]["1"] > 0.9
    assert other["agreement"]["species"]["queries"] == other["queries"]


def test_tetranucleotide_fidelity_on_real_contigs(contigs):
    dataset, _ = contigs
    tetra = run_fidelity(Source("tetra"), dataset, n_bootstrap=100)
    clr = run_fidelity(Source("clr"), dataset, n_bootstrap=0)
    assert clr["spearman"] == pytest.approx(1.0)
    # 4-mers alone predict the 6..1-mer CLR distance of close neighbours only in part
    assert 0.5 < tetra["spearman"] < 1.0
    assert tetra["ci"]["spearman"][0] < tetra["spearman"] < tetra["ci"]["spearman"][1]
    assert tetra["mean_clr_mse_top"][1] < tetra["random"]["mean_clr_mse"]
    assert np.isfinite(tetra["pearson"])
