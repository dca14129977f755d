"""Open plain or compressed input by magic bytes, hashing the raw bytes as they are read."""

from __future__ import annotations

import bz2
import hashlib
import io
import lzma
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from kmervae.errors import InputError

MAGIC = {
    b"\x1f\x8b": "gzip",
    b"BZh": "bzip2",
    b"\xfd7zXZ\x00": "xz",
    b"\x28\xb5\x2f\xfd": "zstd",
}


def detect_compression(head: bytes) -> str:
    """Compression named by the first bytes of a file: gzip, bzip2, xz, zstd or plain."""
    for magic, name in MAGIC.items():
        if head.startswith(magic):
            return name
    return "plain"


_HEAD_BYTES = 8  # enough for every magic number above


class ByteStream(Protocol):
    """What readers need of a (decompressing) input: ``read`` and ``close``."""

    def read(self, size: int = -1, /) -> bytes: ...

    def close(self) -> None: ...


@dataclass
class InputStats:
    """What was read of one input: raw (compressed) byte count and SHA-256."""

    name: str
    raw_bytes: int = 0
    sha256: hashlib._Hash = field(default_factory=hashlib.sha256)
    compression: str = "plain"


class _HashingReader(io.RawIOBase):
    def __init__(self, raw: BinaryIO, stats: InputStats):
        self._raw = raw
        self._stats = stats

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        # a pipe returns what its writer wrote so far: read on until the few bytes that tell
        # the compression are all there
        view = memoryview(buffer).cast("B")
        total = 0
        while total < min(len(view), _HEAD_BYTES):
            n = self._raw.readinto(view[total:])  # type: ignore[attr-defined]
            if not n:
                break
            total += n
        if total:
            self._stats.sha256.update(view[:total])
            self._stats.raw_bytes += total
        return total

    def close(self) -> None:
        if self._raw is not sys.stdin.buffer:
            self._raw.close()  # a FileIO on stdin's descriptor does not close it
        super().close()


def _open_stdin() -> BinaryIO:
    """Standard input, unbuffered, straight from its file descriptor.

    ``sys.stdin.buffer`` waits to fill its buffer and holds a lock while it waits; a reader
    thread blocked there on a stalled pipe could hang the interpreter's exit. A ``FileIO`` on
    the descriptor returns what each read brings and has no lock.
    """
    try:
        return open(sys.stdin.buffer.fileno(), "rb", buffering=0, closefd=False)
    except (AttributeError, OSError, ValueError):  # no descriptor (an in-memory stand-in)
        return sys.stdin.buffer


def check_readable(path: str | Path) -> None:
    """Refuse an input that is missing, a folder or unreadable (``-``, stdin, passes)."""
    if str(path) == "-":
        return
    p = Path(path)
    if not p.exists():
        raise InputError(f"{path}: no such file")
    if p.is_dir():
        raise InputError(f"{path}: is a directory, not a FASTA file")
    if not os.access(p, os.R_OK):
        raise InputError(f"{path}: permission denied")


def display_name(path: str | Path) -> str:
    return "<stdin>" if str(path) == "-" else str(path)


def open_input(path: str | Path, buffer_size: int = 1 << 20) -> tuple[ByteStream, InputStats]:
    """Open ``path`` (``-`` for stdin) for reading decompressed bytes.

    The compression is detected from magic bytes, never from the file name. Returns the
    decompressed binary stream and an :class:`InputStats` that fills in as it is read.
    """
    name = display_name(path)
    stats = InputStats(name=name)
    try:
        # unbuffered: the first peek below returns what a pipe holds so far, not a full buffer
        raw: BinaryIO = (
            _open_stdin() if name == "<stdin>" else open(path, "rb", buffering=0)  # noqa: SIM115
        )
    except FileNotFoundError:
        raise InputError(f"{name}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"{name}: is a directory, not a FASTA file") from None
    except PermissionError:
        raise InputError(f"{name}: permission denied") from None
    buffered = io.BufferedReader(_HashingReader(raw, stats), buffer_size=buffer_size)
    stats.compression = detect_compression(buffered.peek(_HEAD_BYTES)[:_HEAD_BYTES])
    stream: ByteStream
    if stats.compression == "gzip":
        from isal import igzip

        stream = igzip.IGzipFile(fileobj=buffered, mode="rb")
    elif stats.compression == "bzip2":
        stream = bz2.BZ2File(buffered, "rb")
    elif stats.compression == "xz":
        stream = lzma.LZMAFile(buffered, "rb")  # noqa: SIM115 - the caller closes it
    elif stats.compression == "zstd":
        import zstandard

        stream = zstandard.ZstdDecompressor().stream_reader(
            buffered, read_across_frames=True, closefd=True
        )
    else:
        stream = buffered
    return stream, stats


def read_exactly(stream: ByteStream, n: int, stats: InputStats) -> bytes:
    """``stream.read(n)`` that turns decompression failures into one clear error."""
    try:
        return stream.read(n)
    except EOFError:
        raise InputError(
            f"{stats.name}: truncated {stats.compression} stream "
            "(the file ends before the compressed data does)"
        ) from None
    except (OSError, lzma.LZMAError, ValueError) as exc:
        if stats.compression == "plain":
            raise InputError(f"{stats.name}: read failed: {exc}") from None
        raise InputError(f"{stats.name}: corrupt {stats.compression} data ({exc})") from None
    except Exception as exc:  # zstandard.ZstdError and relatives
        raise InputError(f"{stats.name}: corrupt {stats.compression} data ({exc})") from None
