"""Outputs appear whole or not at all: write under a temporary name, rename at the end."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

from kmervae.errors import KmervaeError

log = logging.getLogger(__name__)


def check_writable(path: Path, overwrite: bool) -> None:
    """Fail early, before any work, if ``path`` exists and may not be replaced, or its
    folder is missing or read-only. Temporaries that a killed run left for ``path`` are
    removed (see :func:`remove_stale_temporaries`)."""
    path = Path(path)
    if (path.exists() or path.is_symlink()) and not overwrite:
        raise KmervaeError(f"{path} already exists (use --force to replace it)")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise KmervaeError(f"output folder {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise KmervaeError(f"output folder {parent} is not writable")
    remove_stale_temporaries(path)


def temporary_name(path: Path, purpose: str = "") -> Path:
    """The name ``path`` is built under: ``.NAME.tmp-PID`` beside it (``.NAME.tmp-PID.PURPOSE``
    for scratch space that belongs to the same output). The process id tells a later run
    whether the writer is still alive."""
    path = Path(path)
    return path.with_name(f".{path.name}.tmp-{os.getpid()}{'.' + purpose if purpose else ''}")


def scratch_dir(final: Path, purpose: str) -> Path:
    """Create a scratch folder beside ``final`` (same file system), named after it."""
    folder = temporary_name(final, purpose)
    folder.mkdir()
    return folder


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def remove_stale_temporaries(final: Path) -> list[Path]:
    """Remove what a killed (kill -9, power loss) writer of ``final`` left beside it: the
    ``.NAME.tmp-PID*`` and ``.NAME.old-PID`` entries whose process no longer runs on this
    machine. An ``.old`` entry is a whole earlier output moved aside for a replacement; if the
    writer died before the replacement landed, it is put back instead. Returns what was
    removed."""
    final = Path(final)
    parent = final.parent if str(final.parent) else Path(".")
    pattern = re.compile(rf"^\.{re.escape(final.name)}\.(?:tmp|old)-(\d+)(?:\..*)?$")
    removed: list[Path] = []
    try:
        entries = list(parent.iterdir())
    except OSError:
        return removed
    for entry in entries:
        match = pattern.match(entry.name)
        if not match or _pid_alive(int(match.group(1))):
            continue
        if ".old-" in entry.name and not (final.exists() or final.is_symlink()):
            entry.rename(final)
            log.warning("put back %s, moved aside by an interrupted run", final)
            continue
        remove_path(entry)
        removed.append(entry)
    if removed:
        log.info(
            "removed %d temporary file(s) left by an interrupted run: %s",
            len(removed),
            ", ".join(str(p) for p in removed),
        )
    return removed


def replace_path(tmp: Path, final: Path) -> None:
    """Move ``tmp`` to ``final``, replacing a file or directory that is already there."""
    if final.is_dir() and not final.is_symlink():
        old = final.with_name(f".{final.name}.old-{os.getpid()}")  # see remove_stale_temporaries
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
