"""Regenerate tests/data/fragments.profile.npy with the naive reference implementation.

Run from the repository root: ``python tests/kmers/make_golden.py``."""

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from naive_kmers import naive_profile

DATA = Path(__file__).resolve().parents[1] / "data"


def read_fasta(path: Path) -> list[tuple[str, str]]:
    records: list[tuple[str, str]] = []
    for line in path.read_text().splitlines():
        if line.startswith(">"):
            records.append((line[1:].split()[0], ""))
        elif records:
            records[-1] = (records[-1][0], records[-1][1] + line.strip())
    return records


if __name__ == "__main__":
    records = read_fasta(DATA / "fragments.fa")
    np.save(DATA / "fragments.profile.npy", np.stack([naive_profile(s) for _, s in records]))
