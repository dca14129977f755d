"""The JSON of kmervae outputs: reading a manifest (one definition of the checks) and
writing a record that may hold NumPy values."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from kmervae._version import __version__
from kmervae.errors import InputError
from kmervae.io.atomic import atomic_file


def read_json_manifest(
    file: Path, format_name: str, schema_version: int, what: str
) -> dict[str, Any]:
    """Load ``file`` and check that it is a ``format_name`` manifest this version can read.

    ``what`` names the kind of output in messages ("profile dataset", "index store", …).
    Every problem is one InputError line naming the file.
    """
    if not file.is_file():
        raise InputError(f"{file.parent}: not a kmervae {what} (no {file.name})")
    try:
        manifest = json.loads(file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{file}: not valid JSON ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != format_name:
        found = manifest.get("format") if isinstance(manifest, dict) else None
        raise InputError(f"{file.parent}: not a kmervae {what} (format is {found!r})")
    if manifest.get("schema_version", 0) > schema_version:
        raise InputError(
            f"{file.parent}: {what} schema {manifest['schema_version']} is newer "
            f"than this kmervae ({__version__}) reads; upgrade kmervae"
        )
    return manifest


def json_default(value: Any) -> Any:
    """The ``default`` of ``json.dumps`` for NumPy values: a scalar as the Python number, an
    array as nested lists; anything else is a TypeError."""
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def write_json(path: Path, record: Any, overwrite: bool = False) -> None:
    """Write ``record`` (NumPy values allowed) to ``path`` as indented JSON, atomically;
    an existing ``path`` is replaced only with ``overwrite``."""
    with atomic_file(path, overwrite) as tmp:
        Path(tmp).write_text(json.dumps(record, indent=2, default=json_default) + "\n")
