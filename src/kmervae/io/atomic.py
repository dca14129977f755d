"""Outputs appear whole or not at all: write under a temporary name, rename at the end."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from kmervae.errors import KmervaeError


def check_writable(path: Path, overwrite: bool) -> None:
    """Fail early, before any work, if ``path`` exists and may not be replaced."""
    if path.exists() and not overwrite:
        raise KmervaeError(f"{path} already exists (use --force to replace it)")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise KmervaeError(f"output folder {parent} does not exist")


def temporary_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


def replace_path(tmp: Path, final: Path) -> None:
    """Move ``tmp`` to ``final``, replacing a file or directory that is already there."""
    if final.is_dir() and not final.is_symlink():
        old = final.with_name(f".{final.name}.old-{os.getpid()}")
        final.rename(old)
        tmp.rename(final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, final)


def remove_path(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_file(final: Path, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary file path that becomes ``final`` when the block ends without error."""
    final = Path(final)
    check_writable(final, overwrite)
    tmp = temporary_name(final)
    try:
        yield tmp
    except BaseException:
        remove_path(tmp)
        raise
    replace_path(tmp, final)
