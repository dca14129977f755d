"""Outputs appear whole or not at all: write under a temporary name, rename at the end."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import stat
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

from kmervae.errors import InputError, KmervaeError, OutputExistsError

log = logging.getLogger(__name__)


def is_stream(path: Path) -> bool:
    """Whether ``path`` is a character device or a pipe (``/dev/null``, ``/dev/stdout``, a
    FIFO, a shell's ``>(...)``): such an output is written in place, never replaced."""
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):
        return False
    return stat.S_ISCHR(mode) or stat.S_ISFIFO(mode)


def check_writable(path: Path, overwrite: bool, *, stream_ok: bool = False) -> None:
    """Fail early, before any work, if ``path`` exists and may not be replaced, or its
    folder is missing or read-only. Temporaries that a killed run left for ``path`` are
    removed (see :func:`remove_stale_temporaries`).

    A device or pipe (:func:`is_stream`) is accepted, with or without ``overwrite``, where
    the writer streams into it (``stream_ok``: a single file written in one pass); it is
    refused everywhere else (a folder, or a file built under a temporary name)."""
    path = Path(path)
    if is_stream(path):
        if stream_ok:
            return
        raise KmervaeError(f"{path} is a device or a pipe: this output must be a file or folder")
    if _exists(path) and not overwrite:
        # what a killed writer left after its commit goes even though the output stands
        with contextlib.suppress(OSError):
            remove_stale_temporaries(path)
        raise OutputExistsError(path)
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


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` runs on this machine (this process included)."""
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
    return _sweep(
        _folder_of(final),
        lambda name, pid: name == final.name and not pid_alive(pid),
        logging.INFO,
    )


def remove_own_temporaries(folder: Path) -> list[Path]:
    """Remove the temporaries of this process in ``folder`` (and put back what it moved
    aside), once its command has failed or been interrupted: a signal can land between the
    creation of a temporary and the code that would remove it. Returns what was removed."""
    pid = os.getpid()
    return _sweep(Path(folder), lambda name, owner: owner == pid, logging.DEBUG)


_TEMPORARY = re.compile(r"^\.(.+)\.(tmp|old)-(\d+)(?:\..*)?$")


def _folder_of(path: Path) -> Path:
    return path.parent if str(path.parent) else Path(".")


def _sweep(folder: Path, chosen: Callable[[str, int], bool], level: int) -> list[Path]:
    """Remove the temporaries in ``folder`` for which ``chosen(final name, pid)`` holds;
    an ``.old`` entry whose final name is free is put back instead. Group-commit journals
    (``.commit``) are left to :func:`recover_interrupted_commits`."""
    removed: list[Path] = []
    try:
        entries = list(folder.iterdir())
    except OSError:
        return removed
    for entry in entries:
        match = _TEMPORARY.match(entry.name)
        if match is None or entry.name.endswith(".commit"):
            continue
        name, kind, pid = match.group(1), match.group(2), int(match.group(3))
        if not chosen(name, pid):
            continue
        final = folder / name
        if kind == "old" and not _exists(final):
            entry.rename(final)
            log.warning("put back %s, moved aside by an interrupted run", final)
            continue
        remove_path(entry)
        removed.append(entry)
    if removed:
        log.log(
            level,
            "removed %d temporary file(s) left by an interrupted run: %s",
            len(removed),
            ", ".join(str(p) for p in removed),
        )
    return removed


def replace_path(tmp: Path, final: Path) -> None:
    """Move ``tmp`` to ``final``, replacing a file or directory that is already there."""
    if final.is_dir() and not final.is_symlink():
        old = _aside(final, os.getpid())  # see remove_stale_temporaries
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


def _umask() -> int:
    """The process umask, read without changing it where the system tells it (Linux), since
    setting it to read it back races with threads that create files meanwhile."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def default_file_mode() -> int:
    """The mode ``open()`` gives a new file: ``0o666`` less the process umask."""
    return 0o666 & ~_umask()


def give_default_mode(path: Path) -> None:
    """Give the regular file ``path`` the mode of a file made with ``open()`` (see
    :func:`default_file_mode`). Writers that make their files private (``tempfile.mkstemp``,
    safetensors) would otherwise leave 0600 outputs among 0644 ones."""
    path = Path(path)
    if path.is_file() and not path.is_symlink():
        os.chmod(path, default_file_mode())


@contextlib.contextmanager
def atomic_file(final: Path, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary file path that becomes ``final`` when the block ends without error.
    A device or pipe (``/dev/null``, a FIFO) is yielded itself, to be written in place."""
    final = Path(final)
    if is_stream(final):
        yield final
        return
    check_writable(final, overwrite)
    tmp = temporary_name(final)
    try:
        yield tmp
        give_default_mode(tmp)  # whatever wrote it, the output gets the usual mode
    except BaseException:
        remove_path(tmp)
        raise
    replace_path(tmp, final)


@contextlib.contextmanager
def naming_oserrors(path: Path) -> Iterator[None]:
    """An OSError raised while ``path`` is written becomes a one-line KmervaeError naming
    ``path``: one without a file name (write() or close() on a full disk: ENOSPC, EIO) or one
    naming a temporary of ``path``. Errors about other files pass through unchanged."""
    try:
        yield
    except OSError as exc:
        own = f".{Path(path).name}.tmp-"
        if exc.filename is not None and not Path(str(exc.filename)).name.startswith(own):
            raise
        raise KmervaeError(f"{path}: cannot write: {exc.strerror or exc}") from None


# -- outputs that belong together -----------------------------------------------------------
_JOURNAL = re.compile(r"^\.(.+)\.tmp-(\d+)\.commit$")


def _exists(path: Path) -> bool:
    return path.exists() or path.is_symlink()


def _aside(final: Path, pid: int) -> Path:
    """Where an output is moved aside while a replacement goes in (:func:`replace_path`,
    :func:`commit_outputs`)."""
    return final.with_name(f".{final.name}.old-{pid}")


def commit_outputs(moves: Sequence[tuple[Path, Path]]) -> None:
    """Move each finished temporary onto its final name (``moves``: (temporary, final)
    pairs in one folder), so that the group appears whole or not at all.

    One rename is atomic; several are not, so a group is journaled:

    1. a journal ``.FIRST.tmp-PID.commit`` listing the moves is written and synced;
    2. every final name that exists is moved aside to ``.NAME.old-PID``;
    3. every temporary is renamed to its final name;
    4. the journal is removed (the commit point), then what was moved aside.

    An error or a signal inside 2-3 rolls back at once. A process killed there (kill -9,
    power loss) leaves the journal: readers refuse every output it lists
    (:func:`refuse_unfinished_commit`), and the next writer of any of them rolls the
    group back (:func:`recover_interrupted_commits`): new outputs go back to their
    temporary names and the moved-aside ones return, so the outputs are all old (or
    absent) again. After 4, only ``.old`` entries can be left, which
    :func:`kmervae.io.atomic.remove_stale_temporaries` removes since their finals exist.
    """
    moves = [(Path(tmp), Path(final)) for tmp, final in moves]
    if not moves:
        return
    if len(moves) == 1:
        replace_path(*moves[0])
        return
    folder = moves[0][1].parent
    if any(p.parent != folder for move in moves for p in move):
        raise ValueError("commit_outputs: every path must be in one folder")
    pid = os.getpid()
    journal = temporary_name(moves[0][1], "commit")
    names = [(tmp.name, final.name) for tmp, final in moves]
    try:
        with open(journal, "w") as fh:
            fh.write(json.dumps({"pid": pid, "moves": names}) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
    except BaseException:
        journal.unlink(missing_ok=True)
        raise
    try:
        for _, final in moves:
            if _exists(final):
                os.rename(final, _aside(final, pid))
        for tmp, final in moves:
            os.rename(tmp, final)
    except BaseException:
        _roll_back(folder, names, pid, journal)
        raise
    journal.unlink()
    for _, final in moves:
        remove_path(_aside(final, pid))


def _roll_back(folder: Path, names: list[tuple[str, str]], pid: int, journal: Path) -> None:
    """Undo steps 2-3 of :func:`commit_outputs`. Idempotent, so a rollback that is itself
    interrupted can be run again: a temporary is only renamed back, never removed, while the
    journal exists, and a final whose temporary is gone is the new output."""
    for tmp_name, final_name in names:
        tmp, final = folder / tmp_name, folder / final_name
        if not _exists(tmp) and _exists(final):
            os.rename(final, tmp)
    for _, final_name in names:
        final = folder / final_name
        old = _aside(final, pid)
        if _exists(old) and not _exists(final):
            os.rename(old, final)
    journal.unlink(missing_ok=True)


def _journals(folder: Path) -> Iterator[tuple[Path, int, list[tuple[str, str]] | None]]:
    """Commit journals in ``folder``: (path, writer pid, moves or None when unreadable)."""
    try:
        entries = [e for e in folder.iterdir() if e.name.startswith(".")]
    except OSError:
        return
    for entry in entries:
        match = _JOURNAL.match(entry.name)
        if not match:
            continue
        moves: list[tuple[str, str]] | None
        try:
            data = json.loads(entry.read_text())
            moves = [(str(t), str(f)) for t, f in data["moves"]]
        except (OSError, ValueError, KeyError, TypeError):
            moves = None  # cut short while written: no rename had started
        yield entry, int(match.group(2)), moves


def _listed(match_name: str, moves: list[tuple[str, str]] | None, first: str) -> bool:
    return match_name == first if moves is None else any(f == match_name for _, f in moves)


def refuse_unfinished_commit(paths: Iterable[Path]) -> None:
    """Raise an InputError when one of ``paths`` belongs to a group whose commit has not
    finished: it may sit beside outputs of another run (see :func:`commit_outputs`)."""
    for path in paths:
        path = Path(path)
        folder = path.parent if str(path.parent) else Path(".")
        for journal, pid, moves in _journals(folder):
            first = _JOURNAL.match(journal.name).group(1)  # type: ignore[union-attr]
            if not _listed(path.name, moves, first):
                continue
            if pid_alive(pid):
                raise InputError(f"{path}: being written by process {pid}; try again when done")
            raise InputError(
                f"{path}: left incomplete by an interrupted write (process {pid}); rerun "
                "the command that writes it"
            )


def recover_interrupted_commits(finals: Iterable[Path]) -> None:
    """Roll back every unfinished group commit of a dead process that lists one of
    ``finals`` (see :func:`commit_outputs`), and remove its temporaries."""
    for final in finals:
        final = Path(final)
        folder = final.parent if str(final.parent) else Path(".")
        for journal, pid, moves in _journals(folder):
            first = _JOURNAL.match(journal.name).group(1)  # type: ignore[union-attr]
            if pid_alive(pid) or not _listed(final.name, moves, first):
                continue
            _roll_back(folder, moves or [], pid, journal)
            for tmp_name, _ in moves or []:
                remove_path(folder / tmp_name)
            log.warning(
                "rolled back the outputs of an interrupted run (process %d) beside %s",
                pid,
                final,
            )
