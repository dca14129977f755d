"""Duplicate-id detection with memory that does not grow with the dataset.

Each id is hashed (64 bit) as rows are written; ``(hash, row, source)`` triples go to 64
bucket files on disk chosen by the hash's top bits. At the end each bucket is sorted on its
own, equal hashes are confirmed against the real ids, and the first duplicate is reported
with the files it came from.
"""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from kmervae.errors import InputError

if TYPE_CHECKING:
    from kmervae.io.dataset import DatasetWriter

_BUCKET_BITS = 6
_RECORD = np.dtype([("hash", "<u8"), ("row", "<i8"), ("source", "<i4")])


def id_hashes(ids: list[str]) -> np.ndarray:
    """uint64 hash of each id (Python's string hash: fast, and stable within one process,
    which is all a duplicate check needs; equal hashes are confirmed on the ids)."""
    return np.fromiter(map(hash, ids), np.int64, len(ids)).view(np.uint64)


class IdRegistry:
    """Collect ids as they are written; :meth:`check_duplicates` raises on the first repeat."""

    def __init__(self, folder: Path, buffer_rows: int = 1 << 18):
        """``folder`` is created for the scratch files and removed by :meth:`close`."""
        self._dir = Path(folder)
        self._dir.mkdir()
        self._files = [
            open(self._dir / f"{b:02x}.bin", "wb")  # noqa: SIM115
            for b in range(1 << _BUCKET_BITS)
        ]
        self._buffer = np.empty(buffer_rows, _RECORD)
        self._fill = 0

    def add(self, ids: list[str], first_row: int, source: int) -> None:
        n = len(ids)
        if self._fill + n > len(self._buffer):
            self._flush()
        if n > len(self._buffer):
            self._buffer = np.empty(n, _RECORD)
        rec = self._buffer[self._fill : self._fill + n]
        rec["hash"] = id_hashes(ids)
        rec["row"] = np.arange(first_row, first_row + n)
        rec["source"] = source
        self._fill += n

    def _flush(self) -> None:
        rec = self._buffer[: self._fill]
        self._fill = 0
        if not len(rec):
            return
        bucket = (rec["hash"] >> np.uint64(64 - _BUCKET_BITS)).astype(np.int64)
        order = np.argsort(bucket, kind="stable")
        rec, bucket = rec[order], bucket[order]
        bounds = np.searchsorted(bucket, np.arange((1 << _BUCKET_BITS) + 1))
        for b in range(1 << _BUCKET_BITS):
            if bounds[b + 1] > bounds[b]:
                self._files[b].write(rec[bounds[b] : bounds[b + 1]].tobytes())

    def candidate_rows(self) -> dict[int, list[tuple[int, int]]]:
        """Rows whose id hash is shared, grouped by hash: {hash: [(row, source), ...]}."""
        self._flush()
        for fh in self._files:
            fh.flush()
        groups: dict[int, list[tuple[int, int]]] = {}
        for b in range(1 << _BUCKET_BITS):
            rec = np.fromfile(self._dir / f"{b:02x}.bin", dtype=_RECORD)
            if len(rec) < 2:
                continue
            rec = rec[np.argsort(rec["hash"], kind="stable")]
            same = rec["hash"][1:] == rec["hash"][:-1]
            if not same.any():
                continue
            dup = np.zeros(len(rec), bool)
            dup[1:] |= same
            dup[:-1] |= same
            for h, row, src in rec[dup].tolist():
                groups.setdefault(h, []).append((row, src))
        return groups

    def check_duplicates(self, writer: DatasetWriter, prefixed: bool) -> None:
        groups = self.candidate_rows()
        if not groups:
            return
        wanted = {row: src for rows in groups.values() for row, src in rows}
        found: dict[str, list[tuple[int, int]]] = {}
        row = 0
        with open(writer.ids_file(), "rb") as fh:
            for line in fh:
                if row in wanted:
                    found.setdefault(line.rstrip(b"\n").decode(), []).append((row, wanted[row]))
                row += 1
        dups = [(rows[0][0], ident, rows) for ident, rows in found.items() if len(rows) > 1]
        if not dups:
            return  # hash collisions only
        _, ident, rows = min(dups)
        names = writer.sources
        files = sorted({names[src]["name"] for _, src in rows})
        where = f"within {files[0]}" if len(files) == 1 else "in " + " and ".join(files)
        hint = "" if prefixed else "; prefix each id with its file's stem (prefix_ids)"
        more = f" ({len(dups) - 1} more repeated ids)" if len(dups) > 1 else ""
        raise InputError(f"duplicate record id {ident!r} ({len(rows)} times, {where}){more}{hint}")

    def close(self) -> None:
        """Close the bucket files and remove the scratch folder, also when closing fails
        (a full disk refuses the last flush): the scratch space never outlives the run."""
        try:
            for fh in self._files:
                with contextlib.suppress(OSError):
                    fh.close()
        finally:
            shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> IdRegistry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
