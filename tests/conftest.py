"""Shared fixtures: small FASTA files written on the fly, the real genomes when present."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

DATA = Path(__file__).resolve().parent / "data"
SHARED_GENOMES = Path(
    os.environ.get(
        "KMERVAE_GENOMES", Path(__file__).resolve().parents[2] / "shared" / "data" / "genomes"
    )
)


def random_fasta(
    path: Path, n: int = 20, seed: int = 0, min_len: int = 50, max_len: int = 3000, width: int = 60
) -> dict[str, str]:
    """Write ``n`` random records (some with N runs and lower case); return id -> sequence."""
    rng = np.random.default_rng(seed)
    records = {}
    with open(path, "w") as fh:
        for i in range(n):
            seq = "".join(rng.choice(list("ACGT"), int(rng.integers(min_len, max_len))))
            if i % 3 == 0 and len(seq) > 20:
                j = int(rng.integers(0, len(seq) - 10))
                seq = seq[:j] + "NNNNN" + seq[j + 5 :].lower()
            records[f"contig_{i}"] = seq
            fh.write(f">contig_{i} len={len(seq)}\n")
            for k in range(0, len(seq), width):
                fh.write(seq[k : k + width] + "\n")
    return records


@pytest.fixture
def fragments_fasta() -> Path:
    return DATA / "fragments.fa"


@pytest.fixture
def genomes_dir() -> Path:
    if not (SHARED_GENOMES / "catalog.tsv").exists():
        pytest.skip("the shared real-genome collection is not beside this checkout")
    return SHARED_GENOMES
