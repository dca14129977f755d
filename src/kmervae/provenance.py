"""What every output records: version, command line, seed, inputs and their checksums."""

from __future__ import annotations

import datetime as _dt
import hashlib
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
