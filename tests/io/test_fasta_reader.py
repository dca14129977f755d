"""Segment reader: any block size, any compression, clear errors."""

from __future__ import annotations

import bz2
import gzip
import lzma

import numpy as np
import pytest
import zstandard
from conftest import random_fasta
from hypothesis import given, settings
from hypothesis import strategies as st

from kmervae.errors import InputError
from kmervae.io.fasta import SegmentReader, read_fasta_records
from kmervae.io.streams import detect_compression
from kmervae.kmers.profile import profile_segment


def _profile_all(path, block_size):
    reader = SegmentReader(path, block_size=block_size)
    ids, feats = [], []
    try:
        for segment in reader:
            result = profile_segment(segment)
            assert result.error is None
            ids += result.ids
            feats.append(result.features)
    finally:
        reader.close()
    return ids, np.concatenate(feats), reader.stats


@pytest.mark.parametrize("block_size", [1, 7, 64, 1000, 1 << 22])
def test_same_rows_for_any_block_size(tmp_path, block_size):
    fasta = tmp_path / "x.fa"
    records = random_fasta(fasta, n=15)
    ids, feats, stats = _profile_all(fasta, 1 << 22)
    ids2, feats2, _ = _profile_all(fasta, block_size)
    assert ids == ids2 == list(records)
    np.testing.assert_array_equal(feats, feats2)
    assert stats.raw_bytes == fasta.stat().st_size


@pytest.mark.parametrize(
    ("writer", "name"),
    [
        (gzip.compress, "gzip"),
        (bz2.compress, "bzip2"),
        (lzma.compress, "xz"),
        (lambda b: zstandard.ZstdCompressor().compress(b), "zstd"),
    ],
)
def test_compression_detected_by_content(tmp_path, writer, name):
    plain = tmp_path / "x.fa"
    random_fasta(plain, n=5)
    packed = tmp_path / "misleading.txt"  # the name says nothing
    packed.write_bytes(writer(plain.read_bytes()))
    assert detect_compression(packed.read_bytes()[:8]) == name
    ids, feats, stats = _profile_all(packed, 1000)
    ids0, feats0, _ = _profile_all(plain, 1000)
    assert ids == ids0
    np.testing.assert_array_equal(feats, feats0)
    assert stats.compression == name


def test_multi_member_gzip(tmp_path):
    a, b = tmp_path / "a.fa", tmp_path / "b.fa"
    ra = random_fasta(a, n=3, seed=1)
    rb = {k.replace("contig", "other"): v for k, v in random_fasta(b, n=3, seed=2).items()}
    b.write_text(b.read_text().replace("contig", "other"))
    both = tmp_path / "ab.fa.gz"
    both.write_bytes(gzip.compress(a.read_bytes()) + gzip.compress(b.read_bytes()))
    ids, _, _ = _profile_all(both, 500)
    assert ids == list(ra) + list(rb)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty file"),
        (b"\n  \n", "no FASTA records"),
        (b"@read1\nACGT\n+\nIIII\n", "FASTQ"),
        (bytes(range(256)) * 4, "binary"),
        (b"ACGT\n>a\nACGT\n", "expected '>'"),
    ],
)
def test_bad_starts(tmp_path, content, message):
    path = tmp_path / "bad.fa"
    path.write_bytes(content)
    reader = SegmentReader(path)
    with pytest.raises(InputError, match=message):
        for segment in reader:
            for _ in segment:
                pass
    reader.close()


def test_truncated_gzip(tmp_path):
    plain = tmp_path / "x.fa"
    random_fasta(plain, n=50, max_len=5000)
    data = gzip.compress(plain.read_bytes())
    cut = tmp_path / "cut.fa.gz"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="truncated gzip"):
        _profile_all(cut, 1000)


def test_long_header_is_never_split(tmp_path):
    path = tmp_path / "x.fa"
    path.write_text(">" + "h" * 5000 + " desc\nACGTACGTAA\n>b\nACGTAC\n")
    ids, _, _ = _profile_all(path, 16)
    assert ids == ["h" * 5000, "b"]


def test_read_fasta_records(tmp_path):
    path = tmp_path / "x.fa"
    records = random_fasta(path, n=4)
    got = list(read_fasta_records(path))
    assert [(i, s.decode()) for i, _, s in got] == list(records.items())
    assert got[0][1].startswith("contig_0 len=")


def naive_records(text: bytes) -> list[tuple[str, str, bytes]]:
    """The naive twin of read_fasta_records: the whole text split into lines (LF, CRLF or
    CR alone end a line)."""
    out, header, parts = [], None, []
    for line in text.splitlines():
        if line.startswith(b">"):
            if header is not None:
                out.append((header, b"".join(parts)))
            header, parts = line[1:].decode(errors="replace").strip(), []
        elif header is not None:
            parts.append(line.strip())
    if header is not None:
        out.append((header, b"".join(parts)))
    return [(h.split()[0], h, s) for h, s in out]


_record_strategy = st.tuples(
    st.text("abcXYZ019_.|", min_size=1, max_size=12),
    st.sampled_from(["", " desc", "\tlen=5 x", " ", "  two  words "]),
    st.text("ACGTNacgtn", max_size=300),
)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(_record_strategy, min_size=1, max_size=8),
    st.integers(1, 90),
    st.sampled_from([b"\n", b"\r\n", b"\r"]),
    st.booleans(),
    st.booleans(),
    st.integers(1, 64),
)
def test_records_match_the_naive_reader(
    tmp_path_factory, records, width, newline, blank_lines, padded, block_size
):
    chunks = [b"\n\n" if blank_lines else b""]
    for ident, desc, seq in records:
        chunks.append(b">" + (ident + desc).encode() + newline)
        for j in range(0, len(seq), width):
            line = seq[j : j + width].encode()
            chunks.append((b" " + line + b"\t" if padded and j == 0 else line) + newline)
        if blank_lines:
            chunks.append(newline)
    text = b"".join(chunks)
    path = tmp_path_factory.mktemp("fa") / "x.fa"
    path.write_bytes(text)
    assert list(read_fasta_records(path, block_size=block_size)) == naive_records(text)


def test_text_before_the_first_header_and_an_empty_file(tmp_path):
    (tmp_path / "a.fa").write_bytes(b"\n\n>a\nACGT\n")
    assert list(read_fasta_records(tmp_path / "a.fa", block_size=1)) == [("a", "a", b"ACGT")]
    (tmp_path / "b.fa").write_bytes(b"\n   \n")
    with pytest.raises(InputError, match="no FASTA records"):
        list(read_fasta_records(tmp_path / "b.fa"))
    (tmp_path / "c.fa").write_bytes(b"\n" * 5000 + b"ACGT\n>a\nAC\n")
    with pytest.raises(InputError, match="sequence text before the first"):
        list(read_fasta_records(tmp_path / "c.fa", block_size=4096))
