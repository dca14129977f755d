"""Join, shuffle and split profile datasets block by block, with memory that stays flat.

:func:`concat_datasets` reads native and legacy datasets (memory-mapped) in blocks of rows
and streams them into one :class:`~kmervae.io.dataset.DatasetWriter`, or two with a train /
validation split. Nothing is ever held whole: not the features, not the ids.

Shuffle
-------
``shuffle=True`` writes the rows in a uniformly random order with the two-pass out-of-core
shuffle of :mod:`kmervae.io.shuffle` (random 64-bit keys, key-range buckets on disk, one
bucket in memory at a time); see there why the permutation is uniform and why it does not
depend on ``memory_mb``. The temporary buckets take as much disk as the output and live in
a hidden folder beside it, which always goes when the call ends.

Split
-----
``split=f`` writes ``OUT.train`` and ``OUT.validation`` (legacy: ``OUT.train.npy`` +
``OUT.train.txt`` and so on) with exactly ``round(f * N)`` train rows. With ``shuffle``
the train side is the first ``round(f * N)`` rows of the shuffled order. Without it, rows
keep their order and the train rows are a uniformly random subset drawn in fixed windows
of 65,536 rows: with ``R`` rows and ``T`` train places left, the number of train rows in
the next window is hypergeometric(T, R - T, window), which is exactly its distribution under
a uniform choice of the whole subset, and their positions within the window are uniform.

Both sides are finished under temporary names and moved in as one group by
:func:`kmervae.io.dataset.commit_outputs`: a kill during the renames leaves a journal that
readers refuse and the next run rolls back, so ``OUT.train`` never stands without its
``OUT.validation`` (nor a legacy ``.npy`` beside the ids of another run).

Checks come before work: options, then the outputs (an existing one is refused before any
input is read), then that every input is there, then the inputs themselves (layouts, ids
and their checksums, duplicate ids), and every row as it is read (NaN or infinite features,
impossible lengths, G+C fractions or ambiguous counts), each a one-line error naming the
file and row. Same inputs and seed give byte-identical arrays and ids.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import math
import os
import secrets
import time
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, cast

import numpy as np

from kmervae.errors import InputError, KmervaeError
from kmervae.io.atomic import commit_outputs, naming_oserrors, remove_path, scratch_dir
from kmervae.io.dataset import (
    FEATURE_DTYPES,
    DatasetWriter,
    ProfileDataset,
    check_output,
    dataset_record,
    iter_id_blocks,
    iter_row_blocks,
    legacy_ids_candidates,
    locate_dataset,
    open_dataset,
    output_files,
)
from kmervae.io.ids import IdRegistry
from kmervae.io.npy import first_bad_row
from kmervae.io.shuffle import (
    BucketFiles,
    RowBlock,
    SplitSelector,
    bucket_count,
    bucket_record_dtype,
    gather_rows,
    scatter_rows,
)
from kmervae.provenance import run_provenance

log = logging.getLogger(__name__)

DEFAULT_MEMORY_MB = 256.0
SPLIT_SIDES = ("train", "validation")
_READ_BLOCK_BYTES = 64 << 20

#: ``progress(rows_done_now, total_row_steps)``; a shuffle counts every row twice (2 passes).
ProgressCallback = Callable[[int, int], None]


@dataclass
class ConcatSummary:
    """What :func:`concat_datasets` wrote.

    Attributes
    ----------
    outputs : the dataset paths written (one, or train and validation).
    rows_per_output : rows in each output, in the order of ``outputs``.
    n_inputs : number of input datasets.
    n_sources : entries in the merged source list.
    seed : the seed used (drawn at random when shuffling or splitting without one).
    n_buckets : temporary buckets of the shuffle (0 without ``shuffle``).
    seconds : wall time.
    """

    outputs: list[Path]
    rows_per_output: list[int]
    n_inputs: int
    n_sources: int
    seed: int | None
    n_buckets: int
    seconds: float

    @property
    def n_rows(self) -> int:
        return sum(self.rows_per_output)


def draw_seed() -> int:
    """A fresh random seed (32 bit) for runs that shuffle or split without ``--seed``."""
    return secrets.randbits(32)


def split_output_paths(output: str | Path, fmt: str) -> list[Path]:
    """``[OUT.train, OUT.validation]``; a legacy ``OUT.npy`` gives ``OUT.train(.npy)`` etc."""
    base = Path(output)
    if fmt == "legacy" and base.suffix == ".npy":
        base = base.with_suffix("")
    return [base.with_name(f"{base.name}.{side}") for side in SPLIT_SIDES]


def locate_inputs(paths: Sequence[str | Path]) -> list[tuple[str, Path]]:
    """Check that every input is there and given once, reading no file (see
    :func:`kmervae.io.dataset.locate_dataset`), so that a missing third input fails before
    the first two are opened."""
    if not paths:
        raise KmervaeError("no input datasets given")
    located = [locate_dataset(p) for p in paths]
    seen: dict[Path, Path] = {}
    for _, path in located:
        key = path.resolve()
        if key in seen:
            raise KmervaeError(f"{path} is given twice (as {seen[key]})")
        seen[key] = path
    return located


def open_inputs(paths: Sequence[str | Path]) -> list[ProfileDataset]:
    """Open every input (each checks its files and its ids checksum on open) and check that
    the feature layouts agree.

    Raises
    ------
    InputError
        naming both files when two layouts differ, or the file that is damaged.
    """
    locate_inputs(paths)
    datasets = [open_dataset(p) for p in paths]
    first = datasets[0]
    for ds in datasets:
        if ds.layout != first.layout:
            raise InputError(
                f"feature layouts differ: {first.path} has k={list(first.layout.ks)} "
                f"({first.layout.n_features} features) but {ds.path} has "
                f"k={list(ds.layout.ks)} ({ds.layout.n_features} features)"
            )
    return datasets


def _id_prefix(ds: ProfileDataset) -> str:
    # native: the folder name; legacy: NAME of NAME.npy
    return (ds.path.name if ds.kind == "native" else ds.path.stem) + "_"


class _InputIds:
    """All input ids (prefixed if asked) in one file, in input order: the duplicate check
    reads only ``sources`` (names, here the input datasets) and ``ids_file()``."""

    def __init__(self, path: Path, names: list[str]):
        self.path = path
        self.sources: list[dict[str, Any]] = [{"name": name} for name in names]

    def ids_file(self) -> Path:
        return self.path


def collect_ids(datasets: Sequence[ProfileDataset], work: Path, prefix_ids: bool) -> Path:
    """Write every id (prefixed with ``STEM_`` if ``prefix_ids``) to ``work/ids.txt`` in input
    order and fail on the first id that occurs twice, before any rows are written.

    Memory stays flat: ids are hashed into on-disk buckets (:class:`IdRegistry`).
    """
    sink = _InputIds(work / "ids.txt", [str(ds.path) for ds in datasets])
    with IdRegistry(work / "ids") as registry, open(sink.path, "wb") as out:
        row = 0
        for index, ds in enumerate(datasets):
            prefix = _id_prefix(ds) if prefix_ids else ""
            for block in ds.iter_ids():
                if "" in block:
                    line = row - _first_row(datasets, index) + block.index("") + 1
                    raise InputError(f"{ds.ids_path}: line {line} is an empty id")
                if prefix:
                    block = [prefix + ident for ident in block]
                registry.add(block, row, index)
                out.write(("\n".join(block) + "\n").encode())
                row += len(block)
        out.flush()
        # check_duplicates needs only .sources and .ids_file(), which _InputIds provides
        registry.check_duplicates(cast("DatasetWriter", sink), prefix_ids)
    return sink.path


def _first_row(datasets: Sequence[ProfileDataset], index: int) -> int:
    return sum(ds.n_rows for ds in datasets[:index])


class _IdReader:
    """Hands out exactly ``n`` ids at a time from a one-id-per-line file."""

    def __init__(self, path: Path):
        self._blocks = iter_id_blocks(path)
        self._block: list[str] = []
        self._pos = 0

    def take(self, n: int) -> list[str]:
        out: list[str] = []
        while len(out) < n:
            if self._pos == len(self._block):
                block = next(self._blocks, None)
                if block is None:
                    raise KmervaeError("ran out of ids while reading rows (ids file changed?)")
                self._block, self._pos = block, 0
            k = min(n - len(out), len(self._block) - self._pos)
            out.extend(self._block[self._pos : self._pos + k])
            self._pos += k
        return out

    def close(self) -> None:
        close = getattr(self._blocks, "close", None)
        if close is not None:
            close()


class _SourceTable:
    """The merged source list and each input's map from its source indices into it.

    A native input's sources are copied (with ``"dataset"``: the input path added); a legacy
    input, which has none, becomes the source of its own rows, as does a native input for
    rows whose source is unknown (-1).
    """

    def __init__(self, datasets: Sequence[ProfileDataset]):
        self.datasets = datasets
        self.entries: list[dict[str, Any]] = []
        self._maps: list[np.ndarray] = []
        self._self_entry: list[int | None] = []
        for ds in datasets:
            first = len(self.entries)
            for src in ds.manifest.get("sources", []) if ds.kind == "native" else []:
                entry = dict(src) if isinstance(src, dict) else {"name": str(src)}
                entry.setdefault("name", entry.get("path", str(ds.path)))
                entry["dataset"] = str(ds.path)
                self.entries.append(entry)
            self._maps.append(np.arange(first, len(self.entries), dtype=np.int32))
            self._self_entry.append(None)
            if ds.kind == "legacy":
                self._dataset_entry(len(self._maps) - 1)

    def _dataset_entry(self, index: int) -> int:
        entry = self._self_entry[index]
        if entry is None:
            ds = self.datasets[index]
            info: dict[str, Any] = {"name": str(ds.path), "path": str(ds.path), "format": ds.kind}
            if ds.kind == "legacy":
                info.update(ids=str(ds.ids_path), records=ds.n_rows)
            self.entries.append(info)
            entry = self._self_entry[index] = len(self.entries) - 1
        return entry

    def remap(self, index: int, local: np.ndarray) -> np.ndarray:
        """int32 merged source of each row, from input ``index``'s int32 ``local`` sources."""
        table = self._maps[index]
        if local.size and (local.min() < -1 or local.max() >= len(table)):
            bad = local[(local < -1) | (local >= len(table))][0]
            raise InputError(
                f"{self.datasets[index].path}: sources.npy holds index {bad} but the manifest "
                f"lists {len(table)} sources"
            )
        out = np.empty(local.shape, np.int32)
        known = local >= 0
        out[known] = table[local[known]]
        if not known.all():
            out[~known] = self._dataset_entry(index)
        return out


class _StreamDigest:
    """SHA-256 of a ``.npy`` file, read in step with the rows taken from its memory map.

    The bytes are read just after numpy touched them, so they come from the page cache: the
    checksum costs no second pass over the disk.
    """

    def __init__(self, path: Path, n_rows: int, row_bytes: int):
        self._fh: BinaryIO = open(path, "rb")  # noqa: SIM115 - closed in close()
        self._size = os.fstat(self._fh.fileno()).st_size
        self._data_start = self._size - n_rows * row_bytes  # the data fills the file's end
        self._row_bytes = row_bytes
        self._done = 0
        self._digest = hashlib.sha256()

    def advance(self, stop_row: int) -> None:
        """Hash the file up to the end of row ``stop_row``."""
        target = self._data_start + stop_row * self._row_bytes
        while self._done < target:
            data = self._fh.read(min(16 << 20, target - self._done))
            if not data:
                raise InputError(f"{self._fh.name}: file shrank while it was read")
            self._digest.update(data)
            self._done += len(data)

    def hexdigest(self) -> str:
        self.advance((self._size - self._data_start) // self._row_bytes)
        return self._digest.hexdigest()

    def close(self) -> None:
        self._fh.close()


def _check_rows(ds: ProfileDataset, start: int, rows: RowBlock) -> None:
    """Refuse values no profile has: NaN or infinite features, a negative length, a G+C
    fraction outside [0, 1] (NaN is allowed: no A/C/G/T), an ambiguous count below -1.
    One InputError names the dataset, the first bad row (1-based) and its id."""
    found: list[tuple[int, str]] = []
    bad = first_bad_row(rows.features)
    if bad >= 0:
        found.append((bad, "NaN or infinite features"))
    for values, wrong, what in (
        (rows.lengths, rows.lengths < 0, "length"),
        (rows.gc, (rows.gc < 0) | (rows.gc > 1), "G+C fraction"),  # NaN compares False
        (rows.ambiguous, rows.ambiguous < -1, "ambiguous-base count"),
    ):
        where = np.flatnonzero(wrong)
        if len(where):
            found.append((int(where[0]), f"{what} {values[where[0]]}"))
    if found:
        row, what = min(found)
        row += start
        raise InputError(f"{ds.path}: row {row + 1} (id {ds.id_of_row(row)}) has {what}")


def _stream_inputs(
    datasets: Sequence[ProfileDataset],
    sources: _SourceTable,
    ids_path: Path,
    block_rows: int,
    records: list[dict[str, Any]],
) -> Generator[RowBlock, None, None]:
    """All input rows in order, ``block_rows`` at a time; fills ``records`` with each input's
    path and checksums as it is finished."""
    ids = _IdReader(ids_path)
    try:
        for index, ds in enumerate(datasets):
            n_features = ds.layout.n_features
            if ds.kind == "native":
                data_file, row_bytes = ds.path / "features.npy", n_features * ds.dtype.itemsize
            else:
                data_file, row_bytes = ds.path, (1 + n_features) * 4
            digest = _StreamDigest(data_file, ds.n_rows, row_bytes)
            try:
                for start, stop in iter_row_blocks(ds.n_rows, block_rows):
                    rows = RowBlock(
                        np.asarray(ds.features[start:stop]),
                        ds.lengths(start, stop),
                        ds.gc(start, stop),
                        ds.ambiguous(start, stop),
                        sources.remap(index, ds.sources(start, stop)),
                        ids.take(stop - start),
                    )
                    _check_rows(ds, start, rows)
                    yield rows
                    digest.advance(stop)
                records.append(dataset_record(ds, features_sha256=digest.hexdigest()))
            finally:
                digest.close()
    finally:
        ids.close()


class _Outputs:
    """Routes rows to the one output, or to train and validation."""

    def __init__(
        self, writers: list[DatasetWriter], n_train: int | None, selector: SplitSelector | None
    ):
        self.writers = writers
        self.n_train = n_train
        self.selector = selector
        self.position = 0

    def write(self, rows: RowBlock) -> None:
        n = len(rows)
        if len(self.writers) == 1:
            rows.append_to(self.writers[0])
        elif self.selector is not None:
            train = self.selector.take(n)
            rows.take(np.flatnonzero(train)).append_to(self.writers[0])
            rows.take(np.flatnonzero(~train)).append_to(self.writers[1])
        else:  # shuffled: the first n_train rows of the order are the train side
            cut = min(max(cast(int, self.n_train) - self.position, 0), n)
            rows.take(slice(0, cut)).append_to(self.writers[0])
            rows.take(slice(cut, n)).append_to(self.writers[1])
        self.position += n


# -- the entry point ------------------------------------------------------------------------
def _refuse_overwriting_inputs(
    targets: list[Path], located: list[tuple[str, Path]], fmt: str
) -> None:
    taken: set[Path] = set()
    for kind, path in located:
        taken.add(path.resolve())
        if kind == "legacy":
            taken.update(p.resolve() for p in legacy_ids_candidates(path))
    for target in targets:
        for path in output_files(target, fmt):
            if path.resolve() in taken:
                raise KmervaeError(f"output {path} is one of the inputs; choose another name")


def concat_datasets(
    inputs: Sequence[str | Path],
    output: str | Path,
    *,
    fmt: str = "native",
    dtype: str | None = None,
    shuffle: bool = False,
    seed: int | None = None,
    split: float | None = None,
    prefix_ids: bool = False,
    overwrite: bool = False,
    memory_mb: float = DEFAULT_MEMORY_MB,
    provenance: dict[str, Any] | None = None,
    progress: ProgressCallback | None = None,
    on_writer: Callable[[DatasetWriter], None] | None = None,
) -> ConcatSummary:
    """Join profile datasets into one (or a train and a validation) dataset.

    Parameters
    ----------
    inputs : native dataset folders and/or legacy ``NAME.npy`` files (ids in ``NAME.txt`` or
        ``NAME.txt.gz``), all with the same feature layout.
    output : the dataset to write; with ``split``, the base of ``OUT.train`` and
        ``OUT.validation`` (see :func:`split_output_paths`).
    fmt : ``"native"`` or ``"legacy"`` (N x (1 + F) float32 ``.npy`` + ids ``.txt``).
    dtype : feature dtype, ``"float32"`` or ``"float16"``; default the first input's
        (legacy output: float32).
    shuffle : write the rows (and their ids, lengths, ... with them) in a uniformly random
        order, out of core (see the module docstring).
    seed : seed of the shuffle and split (non-negative); drawn at random when needed and not
        given, and returned in the summary.
    split : train fraction in (0, 1): ``round(split * N)`` rows go to ``OUT.train``.
    prefix_ids : prefix every id with its input's stem and ``_`` (ids must be unique).
    overwrite : replace outputs that exist.
    memory_mb : memory for one shuffle bucket (MiB); sets the number of buckets.
    provenance : provenance block (see :func:`kmervae.provenance.run_provenance`); seed,
        inputs with their checksums and the options are added.
    progress : called as ``progress(rows, total)`` while rows are read and written.
    on_writer : called with each :class:`DatasetWriter` once created (to attach a log file).

    Returns
    -------
    ConcatSummary

    Raises
    ------
    KmervaeError, InputError
        on bad options or input (layouts differ, duplicate ids, checksums); nothing is
        written then.
    """
    started = time.perf_counter()
    # options, then outputs, then inputs: an error costs no reading
    if fmt not in ("native", "legacy"):
        raise KmervaeError(f"unknown dataset format {fmt!r} (use native or legacy)")
    if dtype is not None and dtype not in FEATURE_DTYPES:
        raise KmervaeError(f"unsupported feature dtype {dtype!r} (use float32 or float16)")
    if fmt == "legacy" and dtype not in (None, "float32"):
        raise KmervaeError(
            "the legacy format is float32 only (use the dtype float32 or the native format)"
        )
    if split is not None and not 0.0 < split < 1.0:
        raise KmervaeError(
            f"split takes the train fraction, between 0 and 1 exclusive; got {split}"
        )
    if not (math.isfinite(memory_mb) and memory_mb > 0):
        raise KmervaeError(f"memory_mb must be positive, got {memory_mb}")
    if seed is not None and seed < 0:
        raise KmervaeError(f"seed must be a non-negative integer, got {seed}")
    targets = [Path(output)] if split is None else split_output_paths(output, fmt)
    for target in targets:
        check_output(target, fmt, overwrite)
    located = locate_inputs(inputs)
    _refuse_overwriting_inputs(targets, located, fmt)
    datasets = open_inputs(inputs)
    layout = datasets[0].layout
    if dtype is None:
        dtype = "float32" if fmt == "legacy" else datasets[0].dtype.name
    n_rows = sum(ds.n_rows for ds in datasets)
    n_train: int | None = None
    if split is not None:
        n_train = round(split * n_rows)
        if not 0 < n_train < n_rows:
            raise KmervaeError(
                f"split {split} of {n_rows} rows leaves "
                f"{'no train' if n_train == 0 else 'no validation'} rows"
            )
    if seed is None and (shuffle or split is not None):
        seed = draw_seed()
    memory_bytes = int(memory_mb * (1 << 20))
    bucket_row_bytes = bucket_record_dtype(layout.n_features, dtype).itemsize
    block_bytes = min(_READ_BLOCK_BYTES, memory_bytes // 4) if shuffle else _READ_BLOCK_BYTES
    block_rows = max(1, block_bytes // (layout.n_features * 4 + 64))
    n_buckets = bucket_count(n_rows, bucket_row_bytes, memory_bytes) if shuffle else 0
    total_steps = n_rows * (2 if shuffle else 1)

    def step(n: int) -> None:
        if progress is not None:
            progress(n, total_steps)

    writers: list[DatasetWriter] = []
    work: Path | None = None
    try:
        with naming_oserrors(targets[0]):
            for target in targets:
                writers.append(DatasetWriter(target, layout, dtype, fmt, overwrite))
            # named after the first output file, so that its writer's next run removes it
            work = scratch_dir(writers[0].path, "work")
            if on_writer is not None:
                for writer in writers:
                    on_writer(writer)
            log.debug(
                "concat: %d inputs, %d rows, layout k=%s, output %s %s",
                len(datasets),
                n_rows,
                list(layout.ks),
                fmt,
                dtype,
            )
            ids_path = collect_ids(datasets, work, prefix_ids)
            sources = _SourceTable(datasets)
            selector = None
            if split is not None and not shuffle:
                selector = SplitSelector(n_rows, cast(int, n_train), np.random.default_rng(seed))
            outputs = _Outputs(writers, n_train, selector)
            records: list[dict[str, Any]] = []
            rows_in = contextlib.closing(
                _stream_inputs(datasets, sources, ids_path, block_rows, records)
            )
            with rows_in as rows_iter:
                if shuffle:
                    log.info(
                        "shuffling %d rows through %d temporary buckets in %s",
                        n_rows,
                        n_buckets,
                        work,
                    )
                    record = bucket_record_dtype(layout.n_features, dtype)
                    store = BucketFiles(work / "buckets")
                    try:
                        scatter_rows(
                            rows_iter, store, np.random.default_rng(seed), record, n_buckets, step
                        )
                    finally:
                        store.close()
                    gather_rows(
                        store, record, n_buckets, cast(int, seed), block_rows, outputs.write, step
                    )
                else:
                    for rows in rows_iter:
                        outputs.write(rows)
                        step(len(rows))
            for record_in in records:
                log.debug("input %s", record_in)
            base = dict(provenance) if provenance is not None else run_provenance([], seed)
            base.update(
                seed=seed,
                inputs=records,
                concat={
                    "shuffle": shuffle,
                    "split": split,
                    "prefix_ids": prefix_ids,
                    "memory_mb": memory_mb,
                    "n_buckets": n_buckets,
                    "dtype": dtype,
                    "format": fmt,
                },
            )
            moves: list[tuple[Path, Path]] = []
            for side, writer in enumerate(writers):
                for entry in sources.entries:
                    writer.add_source(entry)
                meta = dict(base)
                if split is not None:
                    meta["split_side"] = SPLIT_SIDES[side]
                moves += writer.finish(meta)
            # train and validation (and each legacy pair) appear together or not at all
            commit_outputs(moves)
    except BaseException:
        for writer in writers:
            writer.abort()
        raise
    finally:
        if work is not None:
            remove_path(work)
    return ConcatSummary(
        outputs=[w.path for w in writers],
        rows_per_output=[w.n_rows for w in writers],
        n_inputs=len(datasets),
        n_sources=len(sources.entries),
        seed=seed,
        n_buckets=n_buckets,
        seconds=time.perf_counter() - started,
    )
