"""Randomness over data that does not fit in memory: the out-of-core shuffle and the split.

Out-of-core shuffle (two passes)
--------------------------------
Pass 1 (:func:`scatter_rows`) streams the rows in input order and draws for every row a
random 64-bit key from a seeded numpy Generator. The key space is cut into ``B`` equal
ranges, one temporary bucket per range; the row (features, length, GC, ambiguous count,
source, key) is appended to the bucket file of its key and its id to the bucket's id file.
:func:`bucket_count` picks ``B`` so that an average bucket fills half of the memory budget.
Pass 2 (:func:`gather_rows`) loads one bucket at a time, orders its rows by key and hands
them on; buckets are visited in key order, and each is deleted once written.

Why the result is a uniformly random permutation: the output is the whole dataset sorted by
key. The keys are independent and identically distributed, so the rows are exchangeable
(relabelling them leaves the joint distribution of the keys unchanged) and every order is
equally likely to be the sorted one. Equal keys (probability below N^2 / 2^65) would break
that symmetry, so a run of equal keys gets an order of its own drawn from a Generator seeded
by (seed, key). Seen bucket-wise this is the classic two-pass shuffle: every row goes to a
uniformly random bucket (the top bits of its key) independently of the others, and given a
bucket's rows, the remaining key bits order them by a uniformly random permutation.

A row's place depends only on its key, not on ``B`` or on how the rows are cut into blocks,
so the output is the same for a given seed and input whatever the memory budget is.

Memory: one read block and its bucket-sorted copy in pass 1, one bucket plus one output
chunk in pass 2, and at most ``_MAX_OPEN_FILES`` open bucket files. Disk: the buckets take
as much space as the rows they hold.

Split without shuffling: :class:`SplitSelector`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from kmervae.errors import KmervaeError
from kmervae.io.dataset import DatasetWriter

_SPLIT_WINDOW_ROWS = 1 << 16
_MAX_BUCKETS = 1 << 16
_MAX_OPEN_FILES = 128  # bucket files kept open at once (the others are reopened to append)
_HYPERGEOMETRIC_LIMIT = 10**9  # numpy's bound on each of ngood and nbad


@dataclass
class RowBlock:
    """A block of ``n`` profile rows and everything that travels with them.

    Attributes
    ----------
    features : (n, F) float32 or float16.
    lengths : (n,) int64 sequence lengths.
    gc : (n,) float32 G+C fractions.
    ambiguous : (n,) int64 ambiguous-base counts (-1: unknown).
    sources : (n,) int32 index into the output's source list.
    ids : n record ids.
    """

    features: np.ndarray
    lengths: np.ndarray
    gc: np.ndarray
    ambiguous: np.ndarray
    sources: np.ndarray
    ids: list[str]

    def __len__(self) -> int:
        return len(self.ids)

    def take(self, index: np.ndarray | slice) -> RowBlock:
        ids = self.ids[index] if isinstance(index, slice) else [self.ids[i] for i in index.tolist()]
        return RowBlock(
            self.features[index],
            self.lengths[index],
            self.gc[index],
            self.ambiguous[index],
            self.sources[index],
            ids,
        )

    def append_to(self, writer: DatasetWriter) -> None:
        writer.append(
            self.features,
            self.lengths,
            self.ids,
            gc=self.gc,
            ambiguous=self.ambiguous,
            sources=self.sources,
        )


class SplitSelector:
    """A uniformly random choice of ``n_train`` of ``n_rows`` rows, streamed as bool masks.

    Windows of ``_SPLIT_WINDOW_ROWS`` rows are drawn in turn: with ``R`` rows and ``T`` train
    places left, the window's train count is hypergeometric(T, R - T, window) and their
    positions in it are uniform. The masks do not depend on how :meth:`take` cuts the rows.
    """

    def __init__(self, n_rows: int, n_train: int, rng: np.random.Generator):
        if max(n_train, n_rows - n_train) >= _HYPERGEOMETRIC_LIMIT:
            raise KmervaeError(
                "a split without shuffling handles under 10^9 rows per side; shuffle too"
            )
        self._rows_left = n_rows
        self._train_left = n_train
        self._rng = rng
        self._window = np.zeros(0, bool)
        self._pos = 0

    def _next_window(self) -> None:
        size = min(_SPLIT_WINDOW_ROWS, self._rows_left)
        k = int(
            self._rng.hypergeometric(self._train_left, self._rows_left - self._train_left, size)
        )
        self._window = np.zeros(size, bool)
        self._window[self._rng.choice(size, k, replace=False)] = True
        self._pos = 0
        self._rows_left -= size
        self._train_left -= k

    def take(self, n: int) -> np.ndarray:
        """bool (n,): True for the train rows among the next ``n`` rows."""
        parts = []
        while n > 0:
            if self._pos == len(self._window):
                self._next_window()
            k = min(n, len(self._window) - self._pos)
            parts.append(self._window[self._pos : self._pos + k])
            self._pos += k
            n -= k
        return np.concatenate(parts) if parts else np.zeros(0, bool)


def bucket_record_dtype(n_features: int, dtype: str) -> np.dtype:
    """Packed row of a bucket file: key, length, ambiguous, gc, source, features (output dtype)."""
    return np.dtype(
        [
            ("key", "<u8"),
            ("length", "<i8"),
            ("ambiguous", "<i8"),
            ("gc", "<f4"),
            ("source", "<i4"),
            ("features", np.dtype(dtype), (n_features,)),
        ]
    )


def bucket_count(n_rows: int, row_bytes: int, memory_bytes: int) -> int:
    """Number of buckets so an average bucket holds half of ``memory_bytes`` (the rest is
    headroom for bucket-size scatter and the block being written); at most one per row."""
    per_bucket = max(1, memory_bytes // 2)
    wanted = -(-n_rows * row_bytes // per_bucket)
    return int(max(1, min(wanted, n_rows, _MAX_BUCKETS)))


def bucket_of_keys(keys: np.ndarray, n_buckets: int) -> np.ndarray:
    """uint64 bucket of each uint64 key: ``B`` equal ranges of the key space, in key order."""
    return ((keys >> np.uint64(32)) * np.uint64(n_buckets)) >> np.uint64(32)


def order_by_key(keys: np.ndarray, seed: int) -> np.ndarray:
    """int64 indices that sort the uint64 ``keys``; a run of equal keys is put in a random
    order drawn from a Generator seeded by ``(seed, key)`` (independent of bucket layout)."""
    order = np.argsort(keys, kind="stable")
    ordered = keys[order]
    ties = np.flatnonzero(ordered[1:] == ordered[:-1]).tolist()
    j = 0
    while j < len(ties):
        start = ties[j]
        stop = start + 2
        j += 1
        while j < len(ties) and ties[j] == stop - 1:
            stop += 1
            j += 1
        rng = np.random.default_rng([seed, int(ordered[start])])
        order[start:stop] = order[start:stop][rng.permutation(stop - start)]
    return order


class BucketFiles:
    """Append-only bucket files (rows ``NNNNN.bin``, ids ``NNNNN.txt``) in a folder; at most
    ``_MAX_OPEN_FILES`` handles are open at a time (least recently used closed first)."""

    def __init__(self, directory: Path):
        self.directory = directory
        directory.mkdir()
        self._open: dict[Path, BinaryIO] = {}

    def paths(self, bucket: int) -> tuple[Path, Path]:
        return self.directory / f"{bucket:05d}.bin", self.directory / f"{bucket:05d}.txt"

    def append(self, path: Path, data: bytes) -> None:
        fh = self._open.pop(path, None)
        if fh is None:
            if len(self._open) >= _MAX_OPEN_FILES:
                self._open.pop(next(iter(self._open))).close()
            fh = open(path, "ab")  # noqa: SIM115 - kept open across calls, closed in close()
        self._open[path] = fh
        fh.write(data)

    def close(self) -> None:
        for fh in self._open.values():
            fh.close()
        self._open.clear()


def scatter_rows(
    rows_in: Iterable[RowBlock],
    store: BucketFiles,
    rng: np.random.Generator,
    record: np.dtype,
    n_buckets: int,
    step: Callable[[int], None],
) -> None:
    """Pass 1: give every row a random key and append it to the bucket of its key."""
    for rows in rows_in:
        # raw 64-bit draws: the same stream however the rows are cut into blocks
        keys = rng.bit_generator.random_raw(len(rows))
        bucket = bucket_of_keys(keys, n_buckets)
        order = np.argsort(bucket, kind="stable")
        packed = np.empty(len(rows), record)
        packed["key"] = keys[order]
        packed["length"] = rows.lengths[order]
        packed["ambiguous"] = rows.ambiguous[order]
        packed["gc"] = rows.gc[order]
        packed["source"] = rows.sources[order]
        packed["features"] = rows.features[order]
        ids = [rows.ids[i] for i in order.tolist()]
        present, starts = np.unique(bucket[order], return_index=True)
        stops = [*starts[1:].tolist(), len(rows)]
        for b, lo, hi in zip(present.tolist(), starts.tolist(), stops, strict=True):
            rec_path, ids_path = store.paths(b)
            store.append(rec_path, packed[lo:hi].tobytes())
            store.append(ids_path, ("\n".join(ids[lo:hi]) + "\n").encode())
        step(len(rows))
    store.close()


def gather_rows(
    store: BucketFiles,
    record: np.dtype,
    n_buckets: int,
    seed: int,
    chunk_rows: int,
    write: Callable[[RowBlock], None],
    step: Callable[[int], None],
) -> None:
    """Pass 2: load each bucket, order it by key and write it; delete it once written."""
    for b in range(n_buckets):
        rec_path, ids_path = store.paths(b)
        if not rec_path.exists():
            continue
        packed = np.fromfile(rec_path, dtype=record)
        ids = ids_path.read_bytes().decode().split("\n")[:-1]
        if len(ids) != len(packed):
            raise KmervaeError(
                f"temporary bucket {rec_path} holds {len(packed)} rows but "
                f"{len(ids)} ids (was the disk full?)"
            )
        order = order_by_key(packed["key"], seed)
        for lo in range(0, len(order), chunk_rows):
            index = order[lo : lo + chunk_rows]
            part = packed[index]
            write(
                RowBlock(
                    part["features"],
                    part["length"],
                    part["gc"],
                    part["ambiguous"],
                    part["source"],
                    [ids[i] for i in index.tolist()],
                )
            )
            step(len(index))
        del packed, ids
        rec_path.unlink()
        ids_path.unlink()
