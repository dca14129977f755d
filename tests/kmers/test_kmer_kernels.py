"""The numba kernel against its dict-based twin, golden files and properties."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from naive_kmers import naive_counts, naive_profile, naive_runs, revcomp

from kmervae.kmers import kernels as K
from kmervae.kmers.layout import (
    FEATURE_LAYOUT,
    FeatureLayout,
    canonical_index_map,
    canonical_kmers,
    n_canonical,
)
from kmervae.kmers.profile import profile_segment, profile_sequence

DATA = Path(__file__).resolve().parents[1] / "data"

dna = st.text(alphabet="ACGT", max_size=300)
messy = st.text(alphabet="ACGTacgtNnRY-\n", max_size=300)


def test_layout_is_the_reference():
    assert FEATURE_LAYOUT.ks == (6, 5, 4, 3, 2, 1)
    assert FEATURE_LAYOUT.widths == (2080, 512, 136, 32, 10, 2)
    assert FEATURE_LAYOUT.n_features == 2772
    assert FEATURE_LAYOUT.column_names()[-2:] == ["A", "C"]
    assert FeatureLayout((5, 4, 3, 2, 1)).n_features == 692


@pytest.mark.parametrize("k", range(1, 7))
def test_canonical_tables(k):
    kmers = canonical_kmers(k)
    assert len(kmers) == n_canonical(k)
    assert list(kmers) == sorted(kmers)
    assert all(km <= revcomp(km) for km in kmers)
    cmap = canonical_index_map(k)
    # a k-mer and its reverse complement share a column
    codes = {"".join(p): i for i, p in enumerate(_all_kmers(k))}
    for kmer, code in codes.items():
        assert cmap[code] == cmap[codes[revcomp(kmer)]]
        assert kmers[cmap[code]] == min(kmer, revcomp(kmer))


def _all_kmers(k):
    out = [""]
    for _ in range(k):
        out = [p + b for p in out for b in "ACGT"]
    return out


def test_fold_map_covers_every_raw_kmer_once():
    cmap = K.canonical_maps()
    slots = np.concatenate([cmap[0], cmap[1][cmap[1] != K.ZERO_SLOT]])
    assert sorted(slots.tolist()) == list(range(K.ZERO_SLOT))


@pytest.mark.parametrize(
    "seq",
    [
        "",
        "A",
        "ACGTA",
        "ACGTAC",
        "acgtacgtnnACGTTTGCA",
        "N" * 50,
        "ACGTNACGTNACGTNA",
        "GATTACA-GATTACA",
        "AAAAAAAAAAAAAAA",
    ],
)
def test_kernel_matches_naive_on_edge_cases(seq):
    np.testing.assert_allclose(profile_sequence(seq), naive_profile(seq), rtol=1e-6, atol=1e-7)


@settings(max_examples=150, deadline=None)
@given(messy)
def test_kernel_matches_naive(seq):
    np.testing.assert_allclose(profile_sequence(seq), naive_profile(seq), rtol=1e-6, atol=1e-7)


@settings(max_examples=100, deadline=None)
@given(dna)
def test_reverse_complement_invariance(seq):
    np.testing.assert_allclose(
        profile_sequence(seq), profile_sequence(revcomp(seq)), rtol=1e-6, atol=1e-7
    )


@settings(max_examples=100, deadline=None)
@given(messy)
def test_each_group_sums_to_one_or_zero(seq):
    prof = profile_sequence(seq).astype(np.float64)
    longest = max((len(r) for r in naive_runs(seq)), default=0)
    for k in FEATURE_LAYOUT.ks:
        total = prof[FEATURE_LAYOUT.group_slice(k)].sum()
        if longest >= k:
            assert total == pytest.approx(1.0, abs=1e-5)
        else:
            assert total == 0.0


@settings(max_examples=100, deadline=None)
@given(dna, dna, st.sampled_from("NnRY-"))
def test_ambiguous_base_resets_counting(a, b, gap):
    """k-mers never span a non-ACGT base: counts of a+N+b = counts(a) + counts(b)."""
    expected = []
    for k in FEATURE_LAYOUT.ks:
        ca, cb = naive_counts(a, k), naive_counts(b, k)
        total = sum(ca.values()) + sum(cb.values())
        expected.extend((ca[m] + cb[m]) / total if total else 0.0 for m in ca)
    np.testing.assert_allclose(
        profile_sequence(a + gap + b), np.array(expected, np.float32), rtol=1e-6, atol=1e-7
    )


def test_lower_case_counts_as_upper_case():
    seq = "ACGTTGCAAGGCTTAACGGATCCA" * 7
    np.testing.assert_array_equal(profile_sequence(seq), profile_sequence(seq.lower()))


def _read_fasta(path):
    records = []
    for line in path.read_text().splitlines():
        if line.startswith(">"):
            records.append([line[1:].split()[0], ""])
        elif records:
            records[-1][1] += line.strip()
    return records


def test_golden_profiles_of_real_fragments():
    golden = np.load(DATA / "fragments.profile.npy")
    data = (DATA / "fragments.fa").read_bytes()
    result = profile_segment([(data, True)])
    assert result.ids == [r[0] for r in _read_fasta(DATA / "fragments.fa")]
    np.testing.assert_allclose(result.features, golden, rtol=1e-6, atol=1e-7)
    lengths = [len(s) for _, s in _read_fasta(DATA / "fragments.fa")]
    assert result.meta[:, K.META_LENGTH].tolist() == lengths
    assert result.meta[:, K.META_AMBIGUOUS].tolist() == [0] * len(lengths)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(messy, min_size=1, max_size=5),
    st.lists(st.integers(1, 400), max_size=6),
    st.booleans(),
)
def test_blocks_split_anywhere_inside_records(seqs, cuts, crlf):
    """A segment fed in arbitrary pieces (never inside a header) gives the same rows."""
    nl = "\r\n" if crlf else "\n"
    text = "".join(
        f">r{i} some description{nl}{s.replace(chr(10), nl)}{nl}" for i, s in enumerate(seqs)
    ).encode()
    whole = profile_segment([(text, True)])
    # cut only inside sequence lines: positions not within a header line
    header_spans = []
    pos = 0
    for line in text.split(b"\n"):
        if line.startswith(b">"):
            header_spans.append((pos, pos + len(line) + 1))
        pos += len(line) + 1
    points = sorted({c % len(text) for c in cuts} - {0})
    points = [p for p in points if not any(lo < p < hi for lo, hi in header_spans)]
    pieces = [text[i:j] for i, j in zip([0, *points], [*points, len(text)], strict=True)]
    split = profile_segment([(p, i == len(pieces) - 1) for i, p in enumerate(pieces)])
    assert split.ids == whole.ids == [f"r{i}" for i in range(len(seqs))]
    np.testing.assert_array_equal(split.features, whole.features)
    np.testing.assert_array_equal(split.meta, whole.meta)
    for i, s in enumerate(seqs):
        np.testing.assert_allclose(whole.features[i], naive_profile(s), rtol=1e-6, atol=1e-7)


def test_meta_counts_length_ambiguous_and_gc():
    result = profile_segment([(b">x\nACGGNNac\nRT\n>y\n\n>z\nGGGCCC", True)])
    meta = result.meta
    assert result.ids == ["x", "y", "z"]
    assert meta[:, K.META_LENGTH].tolist() == [10, 0, 6]
    assert meta[:, K.META_AMBIGUOUS].tolist() == [3, 0, 0]
    assert meta[:, K.META_GC].tolist() == [4, 0, 6]
    assert meta[:, K.META_ACGT].tolist() == [7, 0, 6]
    assert not result.features[1].any()


def test_many_records_overflow_one_buffer():
    text = b"".join(b">r%d\nACGTTGCA%s\n" % (i, b"A" * (i % 13)) for i in range(1500))
    result = profile_segment([(text, True)])
    assert len(result.ids) == 1500 and result.features.shape == (1500, 2772)
    np.testing.assert_allclose(
        result.features[1234], naive_profile("ACGTTGCA" + "A" * (1234 % 13)), rtol=1e-6, atol=1e-7
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (b">a\nACGT\n>\nACGT\n", "empty id"),
        (b">a\nACGT\n>   \t\nACGT\n", "empty id"),
    ],
)
def test_errors_are_reported_with_the_record(text, message):
    result = profile_segment([(text, True)])
    assert result.error is not None and message in str(result.error)
    assert result.error_record == 2
    assert result.ids == ["a"]
