"""What every output records: version, command line, seed, inputs and their checksums."""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import os
import platform
import sys
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from kmervae._version import __version__


def chunks_sha256(chunks: Iterable[bytes]) -> str:
    """SHA-256 (hex) of the bytes ``chunks`` yields, in order (e.g. a decompressed file)."""
    digest = hashlib.sha256()
    for data in chunks:
        digest.update(data)
    return digest.hexdigest()


def file_sha256(path: str | Path, chunk: int = 16 << 20) -> str:
    """SHA-256 (hex) of the bytes of the file ``path``, read ``chunk`` bytes at a time."""
    with open(path, "rb") as fh:
        return chunks_sha256(iter(lambda: fh.read(chunk), b""))


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


# -- the provenance of a file that stands alone --------------------------------------------
#: ``format`` of a sidecar record
SIDECAR_FORMAT = "kmervae-sidecar"


def sidecar_path(path: str | Path) -> Path:
    """Where the provenance of a file that stands alone (not in an output folder with a
    ``manifest.json``) is recorded: ``NAME.json`` beside ``NAME`` (``hits.tsv`` ->
    ``hits.tsv.json``), so the file itself holds only its data (a TSV's first line is its
    header)."""
    path = Path(path)
    return path.with_name(path.name + ".json")


@contextlib.contextmanager
def atomic_with_sidecar(
    final: str | Path,
    record: dict[str, Any],
    *,
    overwrite: bool = False,
    companions: Sequence[Path] = (),
) -> Iterator[Path]:
    """Yield the temporary path ``final`` is written under; when the block ends without
    error, ``final`` and its sidecar (:func:`sidecar_path`) appear together.

    The sidecar is JSON: ``format`` (:data:`SIDECAR_FORMAT`), ``schema_version``, ``file``
    (the name of ``final``) and ``record``, read when the block ends (so a writer may add
    counts to it inside the block); ``record`` should hold a ``provenance`` block
    (:func:`run_provenance`). An existing ``final`` (or companion) is refused unless
    ``overwrite``; its sidecar is replaced with it. ``companions``: files in the folder of
    ``final`` that belong with it; each is written under
    :func:`kmervae.io.atomic.temporary_name` of itself and appears with ``final``.
    """
    from kmervae.io.atomic import (
        check_writable,
        commit_outputs,
        is_stream,
        naming_oserrors,
        remove_path,
        temporary_name,
    )

    final = Path(final)
    if is_stream(final):  # /dev/null, a pipe: written in place, with no sidecar
        yield final
        return
    side = sidecar_path(final)
    for path in (final, *companions):
        check_writable(path, overwrite)
    check_writable(side, True)
    moves = [(temporary_name(p), p) for p in (final, *companions, side)]
    side_tmp = moves[-1][0]
    try:
        yield moves[0][0]
        text = json.dumps(
            {"format": SIDECAR_FORMAT, "schema_version": 1, "file": final.name, **record},
            indent=2,
            default=str,
        )
        with naming_oserrors(side):
            side_tmp.write_text(text + "\n")
        commit_outputs(moves)
    except BaseException:
        for tmp, _ in moves:
            remove_path(tmp)
        raise
