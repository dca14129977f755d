"""Profile assembly: FASTA segments in, rows of canonical 6…1-mer frequencies out.

:func:`profile_segment` runs the numba kernel over one segment (whole records, fed block
by block); :func:`profile_fasta` drives readers, a thread pool and a dataset writer so that
rows stream to disk in input order with flat memory.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from kmervae.errors import InputError, KmervaeError
from kmervae.io.dataset import DatasetWriter
from kmervae.io.fasta import Segment, SegmentReader
from kmervae.io.ids import IdRegistry
from kmervae.kmers import kernels as K

log = logging.getLogger(__name__)

_LUT = K.byte_classes()
_CMAP = K.canonical_maps()
_ROWS_PER_BUFFER = 512


@dataclass
class SegmentResult:
    """Rows of one segment: features float32 (n x 2772), meta int64 (n x 4), ids."""

    features: np.ndarray
    meta: np.ndarray
    ids: list[str]
    error: InputError | None = None
    error_record: int = 0  # records of this segment before the one that failed


@dataclass
class _Buffers:
    feats: list[np.ndarray] = field(default_factory=list)
    metas: list[np.ndarray] = field(default_factory=list)
    fill: int = 0

    def __post_init__(self) -> None:
        self.grow()

    def grow(self) -> None:
        self.feats.append(np.empty((_ROWS_PER_BUFFER, K.N_FEATURES), np.float32))
        self.metas.append(np.empty((_ROWS_PER_BUFFER, K.META_COLUMNS), np.int64))
        self.fill = 0

    def views(self) -> tuple[np.ndarray, np.ndarray]:
        return self.feats[-1][self.fill :], self.metas[-1][self.fill :]

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        self.feats[-1] = self.feats[-1][: self.fill]
        self.metas[-1] = self.metas[-1][: self.fill]
        if len(self.feats) == 1:
            return self.feats[0], self.metas[0]
        return np.concatenate(self.feats), np.concatenate(self.metas)


def _decode_ids(buf: bytes, spans: np.ndarray, n: int, source: str) -> list[str]:
    out = []
    for s, e in spans[:n].tolist():
        try:
            out.append(buf[s:e].decode())
        except UnicodeDecodeError:
            raise InputError(f"{source}: record id {buf[s:e]!r} is not valid UTF-8") from None
    return out


def profile_segment(segment: Segment | Sequence[tuple[bytes, bool]], source: str = "") -> SegmentResult:
    """Profile the records of one segment (an iterable of ``(block, at_eof)`` byte blocks).

    Errors in the data are returned in the result (with the record index at which they
    occurred) so the caller can name the record by its position in the whole file.
    """
    state = K.new_state()
    work = np.zeros(K.WORK_SIZE, np.int64)
    out = _Buffers()
    spans = np.empty((_ROWS_PER_BUFFER + 1, 2), np.int64)
    ids: list[str] = []
    n_rows = 0
    for block, at_eof in segment:
        buf = np.frombuffer(block, np.uint8)
        pos, end = 0, len(buf)
        while True:
            feats, meta = out.views()
            status, pos, rows, n_ids = K.scan_fasta(buf, pos, end, at_eof, _LUT, _CMAP, state,
                                                    work, feats, meta, spans)
            ids.extend(_decode_ids(block, spans, n_ids, source))
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
            feats_done, meta_done = out.result()
            return SegmentResult(feats_done, meta_done, ids[:n_rows],
                                 InputError(message), error_record=record)
    if state[K.ST_OPEN]:
        if out.fill == _ROWS_PER_BUFFER:
            out.grow()
        feats, meta = out.views()
        K.finish_record(state, work, _CMAP, feats, meta, 0)
        out.fill += 1
    feats_done, meta_done = out.result()
    return SegmentResult(feats_done, meta_done, ids)


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
        raise KmervaeError("--threads must be at least 1")
    if min_length < 0:
        raise KmervaeError("--min-length must be 0 or more")
    if not inputs:
        raise KmervaeError("no input files")
    if sum(str(p) == "-" for p in inputs) > 1:
        raise KmervaeError("stdin ('-') can be given only once")
    for p in inputs:
        if str(p) != "-" and not Path(p).exists():
            raise InputError(f"{p}: no such file")
    started = time.perf_counter()
    writer = DatasetWriter(output, dtype=dtype, fmt=fmt, overwrite=overwrite)
    if on_writer is not None:
        on_writer(writer)
    registry = IdRegistry(writer.path.parent)
    counts = {"records": 0, "short": 0, "no_kmers": 0, "bases": 0}
    with writer, registry, ThreadPoolExecutor(max_workers=threads) as pool:
        for path in inputs:
            reader = SegmentReader(path)
            name = reader.name
            stem = _file_stem(name)
            source_index = writer.add_source({"path": str(path), "name": name})
            before = counts["records"]
            consumed = 0
            try:
                pending: deque[Future[SegmentResult]] = deque()

                def drain(limit: int) -> None:
                    nonlocal consumed
                    while len(pending) > limit or (pending and pending[0].done()):
                        result = pending.popleft().result()
                        _write_result(result, writer, registry, counts, min_length,
                                      source_index, name, stem if prefix_ids else None,
                                      counts["records"])
                        if progress is not None:
                            raw = reader.stats.raw_bytes
                            progress(raw - consumed)
                            consumed = raw

                for segment in reader:
                    pending.append(pool.submit(profile_segment, segment, name))
                    drain(2 * threads)
                drain(0)
            finally:
                reader.close()
            if progress is not None:
                progress(reader.stats.raw_bytes - consumed)
            info = writer.sources[source_index]
            info.update(compression=reader.stats.compression, bytes=reader.stats.raw_bytes,
                        sha256=reader.stats.sha256.hexdigest(),
                        records=counts["records"] - before)
            if counts["records"] == before:
                raise InputError(f"{name}: no FASTA records")
        registry.check_duplicates(writer, prefix_ids)
        path_out = writer.close(provenance)
    summary = ProfileSummary(path_out, writer.n_rows, counts["records"], counts["short"],
                             counts["no_kmers"], counts["bases"],
                             time.perf_counter() - started, writer.sources)
    return summary


def _file_stem(name: str) -> str:
    base = Path(name).name
    for suffix in (".gz", ".bz2", ".xz", ".zst", ".zstd"):
        base = base.removesuffix(suffix)
    for suffix in (".fasta", ".fa", ".fna", ".fas", ".ffn", ".faa", ".contigs"):
        base = base.removesuffix(suffix)
    return base if base != "<stdin>" else "stdin"


def _write_result(result: SegmentResult, writer: DatasetWriter, registry: IdRegistry,
                  counts: dict[str, int], min_length: int, source_index: int, name: str,
                  prefix: str | None, records_before: int) -> None:
    meta = result.meta
    n = meta.shape[0]
    counts["records"] += n
    counts["bases"] += int(meta[:, K.META_LENGTH].sum())
    counts["no_kmers"] += int(np.count_nonzero(meta[:, K.META_ACGT] < 6))
    ids = result.ids if prefix is None else [f"{prefix}_{i}" for i in result.ids]
    if n:
        keep = meta[:, K.META_LENGTH] >= min_length
        n_keep = int(keep.sum())
        counts["short"] += n - n_keep
        feats = result.features
        if n_keep < n:
            feats, meta = feats[keep], meta[keep]
            ids = [i for i, k in zip(ids, keep.tolist(), strict=True) if k]
        if n_keep:
            registry.add(ids, writer.n_rows, source_index)
            writer.append(feats, meta[:, K.META_LENGTH], ids, gc=_gc_fraction(meta),
                          ambiguous=meta[:, K.META_AMBIGUOUS], sources=source_index)
    if result.error is not None:
        raise InputError(f"{name}: record {records_before + result.error_record}: "
                         f"{result.error}")
