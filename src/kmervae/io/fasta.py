"""Stream FASTA bytes as *segments*: runs of whole records, fed block by block.

A reader thread (which also decompresses and hashes) cuts the decompressed stream at record
starts. A segment is a queue of byte blocks that together hold whole records; a record
longer than one block simply makes a longer segment, fed while it is consumed, so memory
stays bounded by a few blocks whatever the record or file size. Segments can be profiled
independently and in parallel; results are put back in input order by the consumer.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from kmervae.errors import InputError
from kmervae.io.prefetch import put_until_stopped
from kmervae.io.streams import open_input, read_exactly

BLOCK_SIZE = 4 << 20
_END = object()
_POLL_SECONDS = 0.1


class ReaderClosed(Exception):
    """The reader of a segment was closed (an error or an interruption elsewhere) before the
    segment was complete: its consumer stops instead of waiting for blocks that never come."""


def unify_line_ends(data: bytes) -> bytes:
    """Turn every carriage return into a line feed, so that CR-only (old Mac) and CRLF text
    read like LF text: CRLF becomes an empty line, which FASTA readers skip. Costs one
    ``memchr`` scan of LF-only text."""
    return data.replace(b"\r", b"\n") if b"\r" in data else data


@dataclass
class Segment:
    """Blocks of whole FASTA records, in order; iterate to consume them as they arrive."""

    index: int
    source: str
    blocks: queue.Queue = field(default_factory=lambda: queue.Queue(maxsize=4))
    stop: threading.Event | None = None  # set when the reader is closed

    def _get(self) -> Any:
        if self.stop is None:
            return self.blocks.get()
        while True:
            try:
                return self.blocks.get(timeout=_POLL_SECONDS)
            except queue.Empty:
                if self.stop.is_set():
                    raise ReaderClosed(f"{self.source}: reading stopped") from None

    def __iter__(self) -> Iterator[tuple[bytes | memoryview, bool]]:
        """Yield ``(block, at_eof)``; ``at_eof`` is true for the last block of the file.

        Raises :class:`ReaderClosed` when the reader is closed before the segment is complete.
        """
        while True:
            item = self._get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item


def _describe_start(head: bytes, name: str) -> InputError | None:
    stripped = head.lstrip()
    if not stripped:
        return None
    first = stripped[:1]
    if first == b">":
        return None
    if first == b"@":
        return InputError(f"{name}: not FASTA (starts with '@': FASTQ? convert it to FASTA first)")
    if b"\x00" in head[:512] or any(b > 127 for b in head[:64]):
        return InputError(f"{name}: not FASTA (binary data)")
    shown = stripped[:20].decode("ascii", "replace").splitlines()[0]
    return InputError(f"{name}: not FASTA (first line starts with {shown!r}, expected '>')")


class SegmentReader:
    """Read one input in a background thread and hand out :class:`Segment` objects.

    Usage::

        reader = SegmentReader(path)
        for segment in reader:        # in input order
            ...                       # consume each segment (possibly in another thread)
        reader.stats                  # raw byte count, SHA-256, compression
    """

    def __init__(self, path: str | Path, block_size: int | None = None, max_pending: int = 4):
        self.path = path
        self.block_size = block_size or BLOCK_SIZE
        self._stream, self.stats = open_input(path)
        self._segments: queue.Queue = queue.Queue(maxsize=max_pending)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="kmervae-reader", daemon=True)
        self._thread.start()

    @property
    def name(self) -> str:
        return self.stats.name

    def _put(self, q: queue.Queue, item: object) -> bool:
        return put_until_stopped(q, item, self._stop)

    def _new_segment(self, index: int) -> Segment | None:
        seg = Segment(index=index, source=self.stats.name, stop=self._stop)
        return seg if self._put(self._segments, seg) else None

    def _run(self) -> None:
        seg: Segment | None = None
        try:
            seg = self._new_segment(0)
            n_segments = 1
            carry = b""
            first = True
            while seg is not None:
                data = unify_line_ends(read_exactly(self._stream, self.block_size, self.stats))
                if first:
                    first_text = data
                    while first_text.isspace() and len(first_text) < (1 << 24):
                        more = unify_line_ends(
                            read_exactly(self._stream, self.block_size, self.stats)
                        )
                        if not more:
                            break
                        first_text += more
                    data = first_text
                    if not data.strip():
                        what = "empty file" if not data else "no FASTA records (only blank space)"
                        raise InputError(f"{self.stats.name}: {what}")
                    problem = _describe_start(data[:4096], self.stats.name)
                    if problem is not None:
                        raise problem
                    first = False
                buf = carry + data if carry else data
                if not data:  # end of input
                    if buf and not self._put(seg.blocks, (buf, True)):
                        return
                    self._put(seg.blocks, _END)
                    break
                cut = buf.rfind(b"\n>")
                if cut >= 0:
                    # a zero-copy view: the block is never modified after this
                    if not self._put(seg.blocks, (memoryview(buf)[: cut + 1], False)):
                        return
                    carry = buf[cut + 1 :]
                    self._put(seg.blocks, _END)
                    seg = self._new_segment(n_segments)
                    n_segments += 1
                elif buf[:1] == b">" and b"\n" not in buf:
                    carry = buf  # a header longer than one block: keep reading
                else:
                    if not self._put(seg.blocks, (buf, False)):
                        return
                    carry = b""
        except BaseException as exc:  # handed to the consumer, which re-raises it
            if seg is not None:
                self._put(seg.blocks, exc)
            else:
                err = Segment(index=-1, source=self.stats.name)
                err.blocks.put(exc)
                self._put(self._segments, err)
        finally:
            self._put(self._segments, _END)
            self._stream.close()

    def __iter__(self) -> Iterator[Segment]:
        """Segments in input order; :class:`ReaderClosed` if the reader is closed meanwhile."""
        while True:
            try:
                item = self._segments.get(timeout=_POLL_SECONDS)
            except queue.Empty:
                if self._stop.is_set():
                    raise ReaderClosed(f"{self.stats.name}: reading stopped") from None
                continue
            if item is _END:
                return
            yield item

    def close(self, wait: bool = True) -> None:
        """Stop the reader thread (safe to call at any time, also after an error).

        Consumers still iterating a segment get :class:`ReaderClosed`. ``wait=False`` does
        not wait for the thread: after an error or an interruption it may be blocked in a
        read that never returns (a stalled pipe); being a daemon thread, it does not keep
        the process alive.
        """
        self._stop.set()
        if wait:
            self._thread.join(timeout=5)


def read_fasta_records(
    path: str | Path, block_size: int | None = None
) -> Iterator[tuple[str, str, bytes]]:
    """Yield ``(id, header, sequence)`` of each record, whole records in memory.

    For tools that need the full sequence (chopping genomes, writing bins); profiling
    streams instead. Line ends may be LF, CRLF or CR alone. Records are cut at ``\\n>`` with
    ``bytes.find`` and their line ends removed with ``bytes.translate`` (C speed); sequence
    lines with spaces or tabs at their ends are stripped line by line. ``block_size``: bytes
    read at a time.
    """
    block_size = block_size or BLOCK_SIZE
    stream, stats = open_input(path)
    parts: list[bytes] = []  # the current record's text, after its '>'
    started = False
    after_newline = True  # the byte before the current block ends a line
    first = True
    number = 0  # records yielded
    try:
        while True:
            data = unify_line_ends(read_exactly(stream, block_size, stats))
            if first and data:
                first = False
                problem = _describe_start(data[:4096], stats.name)
                if problem is not None:
                    raise problem
            if not data:
                break
            pos = 0
            if not started:
                pos = len(data) - len(data.lstrip())
                if pos == len(data):
                    after_newline = data.endswith(b"\n")
                    continue
                line_start = data[pos - 1 : pos] == b"\n" if pos else after_newline
                if data[pos : pos + 1] != b">" or not line_start:
                    raise InputError(f"{stats.name}: sequence text before the first '>' header")
                started = True
                pos += 1
            elif after_newline and data[:1] == b">":
                number += 1
                yield _record_of(parts, stats.name, number)
                parts = []
                pos = 1
            while True:
                cut = data.find(b"\n>", pos)
                if cut < 0:
                    parts.append(data[pos:])
                    break
                parts.append(data[pos:cut])
                number += 1
                yield _record_of(parts, stats.name, number)
                parts = []
                pos = cut + 2
            after_newline = data.endswith(b"\n")
    finally:
        stream.close()
    if not started:
        what = "empty file" if first else "no FASTA records (only blank space)"
        raise InputError(f"{stats.name}: {what}")
    yield _record_of(parts, stats.name, number + 1)


def _record_of(parts: list[bytes], name: str, number: int) -> tuple[str, str, bytes]:
    text = b"".join(parts)
    end = text.find(b"\n")
    head, body = (text, b"") if end < 0 else (text[:end], text[end + 1 :])
    try:
        header = head.decode().strip()
    except UnicodeDecodeError:
        header = head.decode(errors="replace").strip()
        if "\ufffd" in header.split(None, 1)[0]:
            raise InputError(f"{name}: record {number}: record id is not valid UTF-8") from None
    seq = body.translate(None, b"\n")
    if any(c in seq for c in (b" ", b"\t", b"\x0b", b"\x0c")):
        seq = b"".join(line.strip() for line in body.split(b"\n"))
    ident = header.split(None, 1)[0] if header.split() else ""
    if not ident:
        raise InputError(f"{name}: record {number}: header '>' with an empty id")
    return ident, header, seq


def file_stem(name: str | Path) -> str:
    """A FASTA file's name without compression and FASTA suffixes (the prefix that
    ``profile --prefix-ids`` puts before each id)."""
    base = Path(str(name)).name
    for suffix in (".gz", ".bz2", ".xz", ".zst", ".zstd"):
        base = base.removesuffix(suffix)
    for suffix in (".fasta", ".fa", ".fna", ".fas", ".ffn", ".faa", ".contigs"):
        base = base.removesuffix(suffix)
    return base if base != "<stdin>" else "stdin"


class ByteSink(Protocol):
    """Where :func:`write_wrapped` writes: anything with ``write(bytes)``."""

    def write(self, data: bytes, /) -> object: ...


def write_wrapped(out: ByteSink, seq: bytes, width: int) -> None:
    """Write ``seq`` in lines of ``width`` (one line when ``width`` <= 0)."""
    if width <= 0:
        out.write(seq + b"\n")
        return
    out.write(b"\n".join(seq[i : i + width] for i in range(0, len(seq), width)) + b"\n")
