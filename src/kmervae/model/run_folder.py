"""The files of a training run folder that :func:`kmervae.model.train.train_vae` keeps up to
date: where the run is written (:class:`RunFiles`), its ``history.jsonl``
(:class:`RunHistory`) and atomic rewrites of ``run.json``.

Epochs are counted from 1. Run folders written when they were counted from 0 are read as if
they had not been: :func:`history_from_one` for ``history.jsonl``, :func:`resume_from_one`
for the ``resumes`` of ``run.json`` (checkpoints: :func:`kmervae.model.checkpoint.
load_checkpoint`). Nothing here needs torch.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from kmervae.io.atomic import (
    atomic_file,
    naming_oserrors,
    remove_path,
    remove_stale_temporaries,
    replace_path,
    temporary_name,
)

log = logging.getLogger(__name__)


def write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` under a temporary name; a failure names ``path``."""
    with naming_oserrors(path), atomic_file(path, overwrite=True) as tmp, open(tmp, "w") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())


def history_from_one(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The lines of a run's ``history.jsonl`` with epochs counted from 1.

    A history whose epoch lines start at 0 was written when epochs were counted from 0 (its
    first epoch line is always epoch 0, which a history counted from 1 never has): a copy is
    returned with its ``epoch`` and the ``from_epoch`` of its resume lines shifted by 1.
    Any other history is returned as it is.
    """
    epochs = [r["epoch"] for r in rows if isinstance(r.get("epoch"), int)]
    if not epochs or min(epochs) > 0:
        return rows
    shifted = []
    for row in rows:
        row = dict(row)
        if isinstance(row.get("epoch"), int):
            row["epoch"] += 1
        if isinstance(row.get("from_epoch"), int):
            row["from_epoch"] += 1
        shifted.append(row)
    return shifted


def resume_from_one(entry: Any) -> Any:
    """A ``resumes`` entry of ``run.json`` with the first epoch it ran counted from 1
    (``from_epoch``); entries written when epochs were counted from 0 held it as ``epoch``."""
    if isinstance(entry, dict) and "from_epoch" not in entry and "epoch" in entry:
        entry = {"from_epoch": int(entry["epoch"]) + 1, **entry}
        del entry["epoch"]
    return entry


class RunHistory:
    """``history.jsonl``: one JSON line per epoch, appended; a resume drops the lines of
    epochs after its checkpoint. ``rows``: the lines read or written so far."""

    def __init__(self, path: Path):
        self.path = path
        self.rows: list[dict[str, Any]] = []

    def load(self, upto_epoch: int | None) -> None:
        """Read the file (its epochs counted from 1, see :func:`history_from_one`) and write
        back the lines of epochs up to ``upto_epoch`` (all of them when None)."""
        rows = []
        if self.path.exists():
            for line in self.path.read_text().splitlines():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError:
                    continue  # a line cut short by a kill
        rows = [
            row
            for row in history_from_one(rows)
            # an epoch whose checkpoint never landed: it will be redone
            if upto_epoch is None or row.get("epoch", 0) <= upto_epoch
        ]
        write_text(self.path, "".join(json.dumps(r) + "\n" for r in rows))
        self.rows = rows

    def append(self, row: dict[str, Any]) -> None:
        """Append ``row`` as one line, synced to disk."""
        with naming_oserrors(self.path), open(self.path, "a") as fh:
            fh.write(json.dumps(row) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        self.rows.append(row)


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """Hold SIGINT and SIGTERM back for a few steps that must not be cut in two."""
    hold = {signal.SIGINT, signal.SIGTERM}
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, hold)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


class RunFiles:
    """Where a run is written: a new run in a temporary folder beside its run folder until
    its first checkpoint lands (:meth:`place` then moves it into place, replacing an earlier
    run), a resumed run in its run folder. ``saved_epoch``: the epoch of the newest
    checkpoint in place (None before the first)."""

    def __init__(self, final: Path, resume: bool):
        self.final = final
        self.placed = resume
        if resume:
            self.root = final
        else:
            self.root = temporary_name(final)
            remove_path(self.root)
            self.root.mkdir()
        self.saved_epoch: int | None = None

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    def place(self) -> None:
        """Move a new run into place (once; a resumed run is in place already)."""
        if self.placed:
            return
        with signals_held():
            replace_path(self.root, self.final)
            self.root, self.placed = self.final, True
        log.debug("run moved into place at %s", self.final)

    def open_history(self) -> RunHistory:
        """Create the checkpoints folder, remove what a killed run left half-written, and
        return the run's history (not yet read)."""
        self.checkpoints.mkdir(exist_ok=True)
        for name in ("last.pt", "best.pt"):
            remove_stale_temporaries(self.checkpoints / name)
        for name in ("history.jsonl", "run.json", "training_curves.png"):
            remove_stale_temporaries(self.root / name)
        return RunHistory(self.root / "history.jsonl")
