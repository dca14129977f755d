"""Dict-based twin of the k-mer kernel: slow, obvious, and independent of it."""

from __future__ import annotations

import numpy as np

COMPLEMENT = {"A": "T", "C": "G", "G": "C", "T": "A"}


def revcomp(kmer: str) -> str:
    return "".join(COMPLEMENT[b] for b in reversed(kmer))


def sorted_canonical(k: int) -> list[str]:
    kmers = [""]
    for _ in range(k):
        kmers = [p + b for p in kmers for b in "ACGT"]
    return sorted({min(km, revcomp(km)) for km in kmers})


def naive_runs(sequence: str) -> list[str]:
    """Maximal runs of A/C/G/T (any case) after dropping line breaks and blanks."""
    runs, current = [], []
    for ch in sequence:
        up = ch.upper()
        if up in "ACGT":
            current.append(up)
        elif ch in "\r\n \t\v\f":
            continue
        else:
            runs.append("".join(current))
            current = []
    runs.append("".join(current))
    return [r for r in runs if r]


def naive_counts(sequence: str, k: int) -> dict[str, int]:
    counts = dict.fromkeys(sorted_canonical(k), 0)
    for run in naive_runs(sequence):
        for i in range(len(run) - k + 1):
            kmer = run[i : i + k]
            counts[min(kmer, revcomp(kmer))] += 1
    return counts


def naive_profile(sequence: str, ks: tuple[int, ...] = (6, 5, 4, 3, 2, 1)) -> np.ndarray:
    out: list[float] = []
    for k in ks:
        counts = naive_counts(sequence, k)
        total = sum(counts.values())
        out.extend(c / total if total else 0.0 for c in counts.values())
    return np.array(out, dtype=np.float32)
