"""Segment reader: any block size, any compression, clear errors."""

from __future__ import annotations

import bz2
import gzip
import lzma

import numpy as np
import pytest
import zstandard
from conftest import random_fasta

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
