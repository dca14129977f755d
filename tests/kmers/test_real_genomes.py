"""Profiles of contigs cut from the real-genome collection (skipped when it is absent)."""

from __future__ import annotations

import numpy as np
from naive_kmers import naive_profile

from kmervae import open_dataset
from kmervae.cli import main
from kmervae.io.fasta import read_fasta_records


def test_real_genome_contigs_match_the_naive_twin(tmp_path, genomes_dir):
    genomes = [
        genomes_dir / name
        for name in (
            "Escherichia_phage_phiX174.fa.gz",
            "MERS-CoV_England1.fa.gz",
            "Klebsiella_pneumoniae_kaptive_fragmented_assembly.fa.gz",
        )
    ]
    contigs = tmp_path / "contigs.fa"
    assert (
        main(
            [
                "chop",
                *map(str, genomes),
                "-o",
                str(contigs),
                "-l",
                "1000-4000",
                "--prefix-ids",
                "-q",
            ]
        )
        == 0
    )
    out = tmp_path / "prof"
    assert main(["profile", str(contigs), "-o", str(out), "-t", "2", "-q"]) == 0
    ds = open_dataset(out)
    records = list(read_fasta_records(contigs))
    assert ds.ids() == [r[0] for r in records]
    rng = np.random.default_rng(0)
    for i in rng.choice(len(records), 25, replace=False):
        seq = records[i][2].decode()
        np.testing.assert_allclose(ds.features[i], naive_profile(seq), rtol=1e-6, atol=1e-7)
        assert ds.lengths()[i] == len(seq)
