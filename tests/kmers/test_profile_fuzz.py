"""The profile kernel, fed through the FASTA reader, against its naive twin on random
records: random line widths, upper and lower case, N and other non-ACGT runs, every kind of
line end, any read block size."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from naive_kmers import naive_profile

from kmervae.io.fasta import SegmentReader
from kmervae.kmers import kernels as K
from kmervae.kmers.profile import profile_segment

_piece = st.one_of(
    st.text("ACGT", min_size=1, max_size=80),
    st.text("acgt", min_size=1, max_size=40),
    st.text("NnRYKM-.*", min_size=1, max_size=8),
)
_sequence = st.lists(_piece, max_size=8).map("".join)


def _fasta(records: list[tuple[str, int]], newline: bytes) -> bytes:
    chunks = []
    for i, (seq, width) in enumerate(records):
        chunks.append(b">r%d some words" % i + newline)
        data = seq.encode()
        chunks += [data[j : j + width] + newline for j in range(0, len(data), width)]
    return b"".join(chunks)


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(st.tuples(_sequence, st.integers(1, 90)), min_size=1, max_size=6),
    st.sampled_from([b"\n", b"\r\n", b"\r"]),
    st.integers(1, 300),
)
def test_profiles_of_random_records_match_the_naive_twin(tmp_path, records, newline, block):
    path = tmp_path / "x.fa"
    path.write_bytes(_fasta(records, newline))
    reader = SegmentReader(path, block_size=block)
    ids: list[str] = []
    feats, metas = [], []
    try:
        for segment in reader:
            result = profile_segment(segment)
            assert result.error is None
            ids += result.ids
            feats.append(result.features)
            metas.append(result.meta)
    finally:
        reader.close()
    features, meta = np.concatenate(feats), np.concatenate(metas)
    assert ids == [f"r{i}" for i in range(len(records))]
    for i, (seq, _) in enumerate(records):
        np.testing.assert_allclose(features[i], naive_profile(seq), rtol=1e-6, atol=1e-7)
        acgt = sum(c in "ACGTacgt" for c in seq)
        assert meta[i, K.META_LENGTH] == len(seq)
        assert meta[i, K.META_AMBIGUOUS] == len(seq) - acgt
        assert meta[i, K.META_GC] == sum(c in "GCgc" for c in seq)


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=300))
def test_any_sequence_bytes_count_as_bases_or_ambiguous(data):
    """Every byte of a sequence line that is not blank is a base or an ambiguous base."""
    body = data.replace(b">", b"x").replace(b"\r", b"\n")
    result = profile_segment([(b">s\n" + body + b"\n", True)])
    assert result.error is None and result.ids == ["s"]
    length = len(body.translate(None, b" \t\n\x0b\x0c"))
    assert result.meta[0, K.META_LENGTH] == length
    text = body.decode("latin-1")
    np.testing.assert_allclose(result.features[0], naive_profile(text), rtol=1e-6, atol=1e-7)
