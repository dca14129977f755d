"""Profile assembly: FASTA segments in, rows of canonical 6…1-mer frequencies out.

:func:`profile_segment` runs the numba kernel over one segment (whole records, fed block
by block); :func:`profile_fasta` drives readers, a thread pool and a dataset writer so that
rows stream to disk in input order with flat memory.
"""

from __future__ import annotations

import logging
import queue
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from kmervae.errors import InputError, KmervaeError
from kmervae.io.atomic import naming_oserrors, remove_path, temporary_name
from kmervae.io.dataset import DatasetWriter
from kmervae.io.fasta import Segment, SegmentReader, file_stem
from kmervae.io.ids import IdRegistry
from kmervae.io.streams import check_readable
from kmervae.kmers import kernels as K

log = logging.getLogger(__name__)

_LUT = K.byte_classes()
_CMAP = K.canonical_maps()
_ROWS_PER_BUFFER = 512


class BufferPool:
    """Reusable row buffers (features float32 512 x 2772, meta int64 512 x 4).

    Recycling them after each write avoids faulting in fresh pages for every segment.
    """

    def __init__(self) -> None:
        self._free: queue.SimpleQueue[tuple[np.ndarray, np.ndarray]] = queue.SimpleQueue()

    def get(self) -> tuple[np.ndarray, np.ndarray]:
        try:
            return self._free.get_nowait()
        except queue.Empty:
            return (
                np.empty((_ROWS_PER_BUFFER, K.N_FEATURES), np.float32),
                np.empty((_ROWS_PER_BUFFER, K.META_COLUMNS), np.int64),
            )

    def put(self, buffers: list[tuple[np.ndarray, np.ndarray]]) -> None:
        for pair in buffers:
            self._free.put(pair)


@dataclass
class SegmentResult:
    """Rows of one segment, in buffer-sized chunks of (features float32 n x 2772,
    meta int64 n x 4), and their ids."""

    chunks: list[tuple[np.ndarray, np.ndarray]]
    ids: list[str]
    buffers: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)
    error: InputError | None = None
    error_record: int = 0  # 1-based record of this segment where the error is

    @property
    def features(self) -> np.ndarray:
        return (
            np.concatenate([f for f, _ in self.chunks])
            if self.chunks
            else np.empty((0, K.N_FEATURES), np.float32)
        )

    @property
    def meta(self) -> np.ndarray:
        return (
            np.concatenate([m for _, m in self.chunks])
            if self.chunks
            else np.empty((0, K.META_COLUMNS), np.int64)
        )


class _Buffers:
    def __init__(self, pool: BufferPool):
        self.pool = pool
        self.taken: list[tuple[np.ndarray, np.ndarray]] = []
        self.chunks: list[tuple[np.ndarray, np.ndarray]] = []
        self.fill = 0
        self.grow()

    def grow(self) -> None:
        if self.taken:
            self._seal()
        self.taken.append(self.pool.get())
        self.fill = 0

    def _seal(self) -> None:
        feats, meta = self.taken[-1]
        if self.fill:
            self.chunks.append((feats[: self.fill], meta[: self.fill]))

    def views(self) -> tuple[np.ndarray, np.ndarray]:
        feats, meta = self.taken[-1]
        return feats[self.fill :], meta[self.fill :]

    def full(self) -> bool:
        return self.fill == _ROWS_PER_BUFFER

    def result(
        self, ids: list[str], error: InputError | None = None, error_record: int = 0
    ) -> SegmentResult:
        self._seal()
        return SegmentResult(self.chunks, ids, self.taken, error, error_record)


def _decode_ids(buf: bytes | memoryview, spans: np.ndarray, n: int, out: list[str]) -> bool:
    """Append the ``n`` ids at ``spans`` to ``out``; False at the first id that is not UTF-8
    (the ids before it are appended)."""
    for s, e in spans[:n].tolist():
        try:
            out.append(bytes(buf[s:e]).decode())
        except UnicodeDecodeError:
            return False
    return True


def profile_segment(
    segment: Segment | Sequence[tuple[bytes | memoryview, bool]],
    source: str = "",
    pool: BufferPool | None = None,
) -> SegmentResult:
    """Profile the records of one segment (an iterable of ``(block, at_eof)`` byte blocks).

    Errors in the data are returned in the result (with the record index at which they
    occurred) so the caller can name the record by its position in the whole file.
    """
    state = K.new_state()
    work = np.zeros(K.WORK_SIZE, np.int64)
    out = _Buffers(pool or BufferPool())
    spans = np.empty((_ROWS_PER_BUFFER + 1, 2), np.int64)
    ids: list[str] = []
    n_rows = 0
    for block, at_eof in segment:
        buf = np.frombuffer(block, np.uint8)
        pos, end = 0, len(buf)
        while True:
            feats, meta = out.views()
            status, pos, rows, n_ids = K.scan_fasta(
                buf, pos, end, at_eof, _LUT, _CMAP, state, work, feats, meta, spans
            )
            if not _decode_ids(block, spans, n_ids, ids):
                # the ids decoded so far are those of the records before the bad one
                error = InputError("record id is not valid UTF-8")
                return out.result(ids[:n_rows], error, len(ids) + 1)
            out.fill += rows
            n_rows += rows
            if status == K.SCAN_DONE:
                break
            if status == K.SCAN_FULL:
                out.grow()
                continue
            record = n_rows + 1
            message = {
                K.SCAN_EMPTY_ID: "header '>' with an empty id",
                K.SCAN_HEADER_CUT: "header line cut off (file truncated?)",
                K.SCAN_TEXT_BEFORE_HEADER: "sequence text before the first '>' header",
            }[status]
            return out.result(ids[:n_rows], InputError(message), record)
    if state[K.ST_OPEN]:
        if out.full():
            out.grow()
        feats, meta = out.views()
        K.finish_record(state, work, _CMAP, feats, meta, 0)
        out.fill += 1
    return out.result(ids)


def profile_sequence(sequence: str | bytes) -> np.ndarray:
    """Profile of one sequence: float32[2772] canonical 6…1-mer frequencies."""
    data = sequence.encode() if isinstance(sequence, str) else bytes(sequence)
    result = profile_segment([(b">s\n" + data + b"\n", True)])
    return result.features[0]


@dataclass
class ProfileSummary:
    """What :func:`profile_fasta` did."""

    output: Path
    n_rows: int
    n_records: int
    n_short: int
    n_without_kmers: int
    bases: int
    seconds: float
    sources: list[dict[str, Any]]


def _gc_fraction(meta: np.ndarray) -> np.ndarray:
    acgt = meta[:, K.META_ACGT]
    with np.errstate(invalid="ignore", divide="ignore"):
        gc = meta[:, K.META_GC] / acgt
    return np.where(acgt > 0, gc, np.nan).astype(np.float32)


def profile_fasta(
    inputs: Sequence[str | Path],
    output: str | Path,
    *,
    min_length: int = 0,
    threads: int = 1,
    dtype: str = "float32",
    fmt: str = "native",
    prefix_ids: bool = False,
    overwrite: bool = False,
    provenance: dict[str, Any] | None = None,
    progress: Callable[[int], None] | None = None,
    on_writer: Callable[[DatasetWriter], None] | None = None,
) -> ProfileSummary:
    """Profile every record of ``inputs`` (FASTA, plain or compressed, ``-`` for stdin).

    Rows are streamed to a new dataset at ``output`` (native directory or legacy pair),
    which appears only when everything succeeded. Records shorter than ``min_length`` are
    skipped. ``progress`` is called with raw input bytes consumed since the last call.
    """
    if threads < 1:
        raise KmervaeError("threads must be at least 1")
    if min_length < 0:
        raise KmervaeError("min_length must be 0 or more")
    if not inputs:
        raise KmervaeError("no input files")
    if sum(str(p) == "-" for p in inputs) > 1:
        raise KmervaeError("stdin ('-') can be given only once")
    for p in inputs:
        check_readable(p)
    started = time.perf_counter()
    writer = DatasetWriter(output, dtype=dtype, fmt=fmt, overwrite=overwrite)
    scratch = temporary_name(writer.path, "ids")
    try:
        with (
            naming_oserrors(writer.path),
            writer,
            IdRegistry(scratch) as registry,
            ThreadPoolExecutor(max_workers=threads) as executor,
        ):
            if on_writer is not None:
                on_writer(writer)
            run = _ProfileRun(writer, registry, executor, threads, min_length, prefix_ids, progress)
            for path in inputs:
                run.add_file(path)
            registry.check_duplicates(writer, prefix_ids)
            path_out = writer.close(provenance)
    except BaseException:
        # the registry's own clean-up stops at its first error: on a full disk, the flush of
        # a bucket file it closes before removing the folder
        remove_path(scratch)
        raise
    counts = run.counts
    return ProfileSummary(
        path_out,
        writer.n_rows,
        counts["records"],
        counts["short"],
        counts["no_kmers"],
        counts["bases"],
        time.perf_counter() - started,
        writer.sources,
    )


class _ProfileRun:
    """Profiles files one after another into one writer, segments in parallel, rows in order."""

    def __init__(
        self,
        writer: DatasetWriter,
        registry: IdRegistry,
        executor: ThreadPoolExecutor,
        threads: int,
        min_length: int,
        prefix_ids: bool,
        progress: Callable[[int], None] | None,
    ):
        self.writer = writer
        self.registry = registry
        self.executor = executor
        self.threads = threads
        self.min_length = min_length
        self.prefix_ids = prefix_ids
        self.progress = progress
        self.pool = BufferPool()
        self.counts = {"records": 0, "short": 0, "no_kmers": 0, "bases": 0}

    def add_file(self, path: str | Path) -> None:
        reader = SegmentReader(path)
        name = reader.name
        source = self.writer.add_source({"path": str(path), "name": name})
        prefix = file_stem(name) if self.prefix_ids else None
        before = self.counts["records"]
        consumed = 0
        pending: deque[Future[SegmentResult]] = deque()
        try:
            for segment in reader:
                pending.append(self.executor.submit(profile_segment, segment, name, self.pool))
                # write finished segments in order; keep at most 2 x threads in flight
                while len(pending) > 2 * self.threads or (pending and pending[0].done()):
                    self._write(pending.popleft().result(), source, name, prefix)
                    if self.progress is not None:
                        self.progress(reader.stats.raw_bytes - consumed)
                        consumed = reader.stats.raw_bytes
            while pending:
                self._write(pending.popleft().result(), source, name, prefix)
        except BaseException:
            # an error, Ctrl-C or SIGTERM: abandon the reader (it may be blocked on a stalled
            # pipe) so that the workers waiting for its blocks stop too
            for future in pending:
                future.cancel()
            reader.close(wait=False)
            raise
        reader.close()
        if self.progress is not None:
            self.progress(reader.stats.raw_bytes - consumed)
        stats = reader.stats
        self.writer.sources[source].update(
            compression=stats.compression,
            bytes=stats.raw_bytes,
            sha256=stats.sha256.hexdigest(),
            records=self.counts["records"] - before,
        )
        if self.counts["records"] == before:
            raise InputError(f"{name}: no FASTA records")

    def _write(self, result: SegmentResult, source: int, name: str, prefix: str | None) -> None:
        counts = self.counts
        records_before = counts["records"]
        ids = result.ids if prefix is None else [f"{prefix}_{i}" for i in result.ids]
        first = 0
        for feats, meta in result.chunks:
            n = meta.shape[0]
            chunk_ids = ids[first : first + n]
            first += n
            counts["records"] += n
            counts["bases"] += int(meta[:, K.META_LENGTH].sum())
            counts["no_kmers"] += int(np.count_nonzero(meta[:, K.META_ACGT] < 6))
            if self.min_length > 0:
                keep = meta[:, K.META_LENGTH] >= self.min_length
                n_keep = int(keep.sum())
                counts["short"] += n - n_keep
                if n_keep < n:
                    feats, meta = feats[keep], meta[keep]
                    chunk_ids = [i for i, k in zip(chunk_ids, keep.tolist(), strict=True) if k]
            if chunk_ids:
                self.registry.add(chunk_ids, self.writer.n_rows, source)
                self.writer.append(
                    feats,
                    meta[:, K.META_LENGTH],
                    chunk_ids,
                    gc=_gc_fraction(meta),
                    ambiguous=meta[:, K.META_AMBIGUOUS],
                    sources=source,
                )
        self.pool.put(result.buffers)
        if result.error is not None:
            raise InputError(
                f"{name}: record {records_before + result.error_record}: {result.error}"
            )
