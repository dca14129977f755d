"""What every output records: version, command line, seed, inputs and their checksums."""

from __future__ import annotations

import datetime as _dt
import hashlib
import os
import platform
import sys
from pathlib import Path
from typing import Any

from kmervae._version import __version__


def file_sha256(path: str | Path, chunk: int = 16 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while data := fh.read(chunk):
            digest.update(data)
    return digest.hexdigest()


def sampled_sha256(path: str | Path, blocks: int = 64, block_bytes: int = 1 << 20) -> str:
    """SHA-256 of a file's size and of ``blocks`` evenly spaced blocks of it (the whole file
    when it is smaller): tells a rewritten file from the one recorded without reading a
    150 GB matrix through."""
    size = os.path.getsize(path)
    if size <= blocks * block_bytes:
        return file_sha256(path)
    digest = hashlib.sha256(f"size {size}\n".encode())
    with open(path, "rb") as fh:
        for i in range(blocks):  # from the first block to the last, evenly spaced
            fh.seek(round(i * (size - block_bytes) / (blocks - 1)))
            digest.update(fh.read(block_bytes))
    return digest.hexdigest()


def run_provenance(
    argv: list[str] | None = None, seed: int | None = None, **extra: Any
) -> dict[str, Any]:
    """Provenance block for a manifest or log: tool version, command line, seed, platform."""
    import numpy

    record: dict[str, Any] = {
        "kmervae_version": __version__,
        "command": ["kmervae", *(sys.argv[1:] if argv is None else argv)],
        "seed": seed,
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "platform": platform.platform(),
    }
    record.update(extra)
    return record
