"""The feature layout: which k-groups, in which order, with which columns.

One definition, imported everywhere. The reference layout is canonical 6-, 5-, 4-, 3-, 2-
and 1-mers in that order: 2080 + 512 + 136 + 32 + 10 + 2 = 2772 features. Within a group,
columns follow the sorted (A<C<G<T) order of the canonical k-mers, so the 1-mer columns are
A/T and C/G.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from functools import cache

import numpy as np

BASES = "ACGT"
_COMPLEMENT = str.maketrans("ACGT", "TGCA")


def reverse_complement(kmer: str) -> str:
    return kmer.translate(_COMPLEMENT)[::-1]


@cache
def canonical_kmers(k: int) -> tuple[str, ...]:
    """Sorted canonical k-mers of length ``k`` (the column names of one group)."""
    out = []
    for letters in itertools.product(BASES, repeat=k):
        kmer = "".join(letters)
        if kmer <= reverse_complement(kmer):
            out.append(kmer)
    return tuple(out)


def n_canonical(k: int) -> int:
    """Number of canonical k-mers: (4^k + 4^(k/2)) / 2 for even k, 4^k / 2 for odd k."""
    return (4**k + (4 ** (k // 2) if k % 2 == 0 else 0)) // 2


@cache
def canonical_index_map(k: int) -> np.ndarray:
    """int32[4**k]: column (within the k-group) of each 2-bit-coded k-mer.

    The code of a k-mer puts its first base in the most significant bits (A=0 C=1 G=2 T=3),
    and a k-mer and its reverse complement share one column.
    """
    column = {kmer: i for i, kmer in enumerate(canonical_kmers(k))}
    out = np.empty(4**k, dtype=np.int32)
    for code, letters in enumerate(itertools.product(BASES, repeat=k)):
        kmer = "".join(letters)
        out[code] = column[min(kmer, reverse_complement(kmer))]
    return out


@dataclass(frozen=True)
class FeatureLayout:
    """Which k-groups make up a profile row, in column order."""

    ks: tuple[int, ...] = (6, 5, 4, 3, 2, 1)

    def __post_init__(self) -> None:
        if not self.ks:
            raise ValueError("a feature layout needs at least one k")
        if len(set(self.ks)) != len(self.ks) or any(not 1 <= k <= 6 for k in self.ks):
            raise ValueError(f"k-groups must be distinct values in 1..6, got {self.ks}")

    @property
    def widths(self) -> tuple[int, ...]:
        return tuple(n_canonical(k) for k in self.ks)

    @property
    def offsets(self) -> tuple[int, ...]:
        """Start column of each group."""
        return tuple(itertools.accumulate((0, *self.widths[:-1])))

    @property
    def n_features(self) -> int:
        return sum(self.widths)

    def group_slice(self, k: int) -> slice:
        i = self.ks.index(k)
        return slice(self.offsets[i], self.offsets[i] + self.widths[i])

    def column_names(self) -> list[str]:
        return [kmer for k in self.ks for kmer in canonical_kmers(k)]

    def subset_columns(self, ks: tuple[int, ...]) -> np.ndarray:
        """Column indices (into this layout) of the groups ``ks``, in that order."""
        missing = [k for k in ks if k not in self.ks]
        if missing:
            raise ValueError(f"layout {self.ks} has no {missing}-mer group")
        return np.concatenate(
            [np.arange(self.group_slice(k).start, self.group_slice(k).stop) for k in ks]
        )

    def to_json(self) -> dict[str, object]:
        return {
            "ks": list(self.ks),
            "widths": list(self.widths),
            "canonical": True,
            "n_features": self.n_features,
        }

    @classmethod
    def from_json(cls, data: dict[str, object]) -> FeatureLayout:
        ks = data.get("ks")
        if not isinstance(ks, list):
            raise ValueError("feature layout has no 'ks' list")
        layout = cls(tuple(int(k) for k in ks))
        if data.get("n_features", layout.n_features) != layout.n_features:
            raise ValueError("feature layout n_features does not match its k-groups")
        return layout


#: The reference layout: canonical 6…1-mers, 2772 features.
FEATURE_LAYOUT = FeatureLayout()
assert FEATURE_LAYOUT.n_features == 2772
