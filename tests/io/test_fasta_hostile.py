"""The FASTA readers on hostile bytes: every kind of line end, random bytes, random valid
FASTA in every compression, and a reader abandoned on a stalled pipe."""

from __future__ import annotations

import bz2
import gzip
import lzma
import os
import threading

import numpy as np
import pytest
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_fasta_reader import naive_records

from kmervae.errors import InputError
from kmervae.io.fasta import ReaderClosed, SegmentReader, read_fasta_records
from kmervae.kmers import kernels as K
from kmervae.kmers.profile import profile_segment

_BLANKS = b" \t\r\n\x0b\x0c"  # what a sequence line may hold that is not sequence


def profile_rows(path, block_size=None) -> tuple[list[str], np.ndarray, np.ndarray]:
    """What ``profile`` reads of one file: ids, features and meta (int64 n x 4), segment by
    segment; the first error is raised."""
    reader = SegmentReader(path, block_size=block_size)
    ids, feats, metas = [], [], []
    try:
        for segment in reader:
            result = profile_segment(segment)
            if result.error is not None:
                raise result.error
            ids += result.ids
            feats.append(result.features)
            metas.append(result.meta)
    finally:
        reader.close()
    return ids, np.concatenate(feats), np.concatenate(metas)


def naive_profile_records(text: bytes) -> list[tuple[bytes, int]]:
    """The naive twin of what the profile kernel reads: ``(id, length)`` per record. The id
    is the header's first word after leading spaces and tabs, up to the first byte <= 32;
    the length counts the sequence lines' bytes that are not blank."""
    out: list[tuple[bytes, int]] = []
    for line in text.splitlines():
        if line.startswith(b">"):
            head = line[1:].lstrip(b" \t")
            end = next((i for i, b in enumerate(head) if b <= 32), len(head))
            out.append((head[:end], 0))
        elif out:
            ident, length = out[-1]
            out[-1] = (ident, length + len(line.translate(None, _BLANKS)))
    return out


# --- line ends -----------------------------------------------------------------------------

LF_TEXT = b">a first\nACGTACGTTT\nGGCCnnAA\n>b\n\n>c x y\nTTTTACGA\nCC\n"


@pytest.mark.parametrize(
    "newline",
    [b"\n", b"\r\n", b"\r", "mixed"],
    ids=["LF", "CRLF", "CR", "mixed"],
)
@pytest.mark.parametrize("block_size", [3, 1 << 20])
def test_every_line_end_reads_like_lf(tmp_path, newline, block_size):
    if newline == "mixed":
        lines = LF_TEXT.split(b"\n")
        ends = [b"\n", b"\r\n", b"\r"]
        text = b"".join(line + ends[i % 3] for i, line in enumerate(lines[:-1]))
    else:
        text = LF_TEXT.replace(b"\n", newline)
    path = tmp_path / "x.fa"
    path.write_bytes(text)
    (tmp_path / "lf.fa").write_bytes(LF_TEXT)
    expected = list(read_fasta_records(tmp_path / "lf.fa"))
    assert [(i, s) for i, _, s in expected] == [
        ("a", b"ACGTACGTTTGGCCnnAA"),
        ("b", b""),
        ("c", b"TTTTACGACC"),
    ]
    assert list(read_fasta_records(path, block_size=block_size)) == expected
    ids, feats, meta = profile_rows(path, block_size)
    ids0, feats0, meta0 = profile_rows(tmp_path / "lf.fa")
    assert ids == ids0 == ["a", "b", "c"]
    np.testing.assert_array_equal(meta, meta0)
    np.testing.assert_array_equal(feats, feats0)
    assert meta[:, K.META_LENGTH].tolist() == [18, 0, 10]


def test_a_header_must_start_its_line(tmp_path):
    path = tmp_path / "x.fa"
    path.write_bytes(b"\n  >a\nACGT\n")
    with pytest.raises(InputError, match="before the first '>' header"):
        list(read_fasta_records(path))
    with pytest.raises(InputError, match="before the first '>' header"):
        profile_rows(path)


# --- random bytes ----------------------------------------------------------------------------

_TOKENS = [b">", b"\n", b"\r", b"\r\n", b" ", b"\t", b"\x0b", b"ACGT", b"acg", b"N", b"id"]
_TOKENS += [b"@", b"\x00", b"\xff", b"\xc3\xa9", b"\xc2\xa0", b"-", b"x y", b"\x1f"]
hostile_bytes = st.one_of(
    st.binary(max_size=200),
    st.lists(st.sampled_from(_TOKENS), max_size=80).map(b"".join),
    st.lists(st.sampled_from(_TOKENS), max_size=60).map(lambda t: b">r\n" + b"".join(t)),
)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(hostile_bytes, st.integers(1, 40))
def test_random_bytes_read_as_the_naive_reader_or_refused(tmp_path, text, block_size):
    """Either exactly the naive reader's records, or an InputError: never another exception,
    never a record lost or changed."""
    path = tmp_path / "x.fa"
    path.write_bytes(text)
    try:
        expected = naive_records(text)
    except IndexError:  # a header with an empty id: must be refused
        expected = None
    try:
        got = list(read_fasta_records(path, block_size=block_size))
    except InputError:
        got = None
    if got is not None:
        assert got == expected
    try:
        ids, _, meta = profile_rows(path, block_size)
    except InputError:
        return
    naive = naive_profile_records(text)
    assert ids == [ident.decode() for ident, _ in naive]
    assert meta[:, K.META_LENGTH].tolist() == [length for _, length in naive]


# --- random valid FASTA, every compression ---------------------------------------------------

_COMPRESSORS = {
    "plain": lambda b: b,
    "gzip": lambda b: gzip.compress(b, compresslevel=1),
    "bzip2": lambda b: bz2.compress(b, compresslevel=1),
    "xz": lambda b: lzma.compress(b, preset=0),
    "zstd": lambda b: zstandard.ZstdCompressor(level=1).compress(b),
}

_sequence = st.lists(
    st.one_of(
        st.text("ACGT", min_size=1, max_size=60),
        st.text("acgt", min_size=1, max_size=60),
        st.integers(1, 30).map(lambda n: "N" * n),
    ),
    max_size=6,
).map("".join)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(st.tuples(_sequence, st.integers(1, 70)), min_size=1, max_size=6),
    st.sampled_from([b"\n", b"\r\n", b"\r"]),
    st.sampled_from(sorted(_COMPRESSORS)),
    st.integers(1, 64),
)
def test_random_valid_fasta_in_every_compression(tmp_path, records, newline, packing, block):
    chunks = []
    for i, (seq, width) in enumerate(records):
        chunks.append(b">rec%d description %d" % (i, width) + newline)
        data = seq.encode()
        chunks += [data[j : j + width] + newline for j in range(0, len(data), width)]
    path = tmp_path / "x.fa.any"
    path.write_bytes(_COMPRESSORS[packing](b"".join(chunks)))
    got = list(read_fasta_records(path, block_size=block))
    assert [(i, s.decode()) for i, _, s in got] == [
        (f"rec{i}", seq) for i, (seq, _) in enumerate(records)
    ]
    ids, _, meta = profile_rows(path, block)
    assert ids == [f"rec{i}" for i in range(len(records))]
    assert meta[:, K.META_LENGTH].tolist() == [len(seq) for seq, _ in records]
    assert meta[:, K.META_AMBIGUOUS].tolist() == [seq.count("N") for seq, _ in records]


# --- a reader abandoned on a stalled pipe ----------------------------------------------------


def test_closing_the_reader_releases_a_consumer_waiting_on_a_stalled_pipe():
    read_end, write_end = os.pipe()
    os.write(write_end, b">a\nACGT\n>b\n" + b"ACGT" * 600)
    reader = SegmentReader(f"/dev/fd/{read_end}", block_size=1024)
    outcome: list[BaseException | None] = []

    def consume() -> None:
        try:
            for segment in reader:
                profile_segment(segment)
            outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)

    consumer = threading.Thread(target=consume, daemon=True)
    consumer.start()
    consumer.join(0.5)
    assert consumer.is_alive()  # waiting for the rest of a record that never comes
    try:
        reader.close(wait=False)
        consumer.join(3)
        assert not consumer.is_alive()
        assert len(outcome) == 1 and isinstance(outcome[0], ReaderClosed)
    finally:
        os.close(write_end)  # the blocked read sees the end of the pipe and the thread ends
        reader.close()
        os.close(read_end)
