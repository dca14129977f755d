"""Training data: a seeded train/validation split and batch sources with bounded memory.

Two ways to feed batches, chosen by size:

- *resident*: the rows are copied once to the training device (GPU memory as float16, or
  host memory as float32 on CPU) and every epoch gathers batches through a random
  permutation on the device;
- *streamed*: for data larger than the memory budget, each epoch walks the memory-mapped
  dataset in a random order of contiguous chunks; a background thread fills a bounded
  shuffle buffer from several random chunks, whose rows are shuffled together and cut into
  batches. Host memory stays at about two buffers whatever the dataset size.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from kmervae.errors import InputError, KmervaeError
from kmervae.io.dataset import ProfileDataset, dataset_record, open_dataset
from kmervae.io.npy import first_bad_row
from kmervae.io.prefetch import Prefetch

if TYPE_CHECKING:  # the batch sources need torch; the split and row reads do not
    import torch

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Split:
    """Sorted row indices (int64) of the training and validation parts."""

    train: np.ndarray
    validation: np.ndarray


def random_split(n_rows: int, val_fraction: float, seed: int) -> Split:
    """A seeded random permutation split (never "the last 10 % of the file")."""
    if not 0.0 < val_fraction < 1.0:
        raise KmervaeError(f"validation fraction must be in (0, 1), got {val_fraction}")
    n_val = round(n_rows * val_fraction)
    rng = np.random.default_rng(seed)
    is_val = np.zeros(n_rows, bool)
    is_val[rng.choice(n_rows, n_val, replace=False)] = True
    return Split(np.flatnonzero(~is_val), np.flatnonzero(is_val))


def sample_rows(rows: np.ndarray, count: int | None, seed: int) -> np.ndarray:
    """A seeded sample of ``count`` of ``rows`` (all when None or more), sorted: the rows
    a PCA is fitted on, and the queries of a protocol that takes at most ``count``."""
    if count is None or count >= len(rows):
        return np.asarray(rows)
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(rows, count, replace=False))


@dataclass(frozen=True)
class TrainingData:
    """The opened training (and validation) data, checked before a run starts.

    ``columns`` / ``val_columns``: the feature columns (int64) of the model's k-groups;
    ``info``: what the run records about the data (paths, row counts, checksums).
    """

    dataset: ProfileDataset
    columns: np.ndarray
    validation: ProfileDataset
    val_columns: np.ndarray
    split: Split
    info: dict[str, Any]


def columns_for(ds: ProfileDataset, ks: tuple[int, ...]) -> np.ndarray:
    """The columns of k-groups ``ks`` in ``ds``; an InputError when it lacks one."""
    try:
        return ds.layout.subset_columns(ks)
    except ValueError:
        raise InputError(
            f"{ds.path}: its k-groups {list(ds.layout.ks)} do not include the "
            f"model's {list(ks)} (ks)"
        ) from None


def open_training_data(
    dataset: str | Path,
    validation: str | Path | None,
    ks: tuple[int, ...],
    *,
    val_fraction: float,
    seed: int,
    batch_size: int,
) -> TrainingData:
    """Open and check the data of a run: both datasets open, are not empty, hold the
    k-groups ``ks``, and each part has at least one batch. Reads no feature rows."""
    ds = open_dataset(dataset)
    if ds.n_rows == 0:
        raise InputError(f"{ds.path}: the dataset is empty")
    columns = columns_for(ds, ks)
    if validation is not None:
        val_ds = open_dataset(validation)
        if val_ds.n_rows == 0:
            raise InputError(f"{val_ds.path}: the validation dataset is empty")
        val_columns = columns_for(val_ds, ks)
        split = Split(np.arange(ds.n_rows), np.arange(val_ds.n_rows))
    else:
        val_ds, val_columns = ds, columns
        split = random_split(ds.n_rows, val_fraction, seed)
    if len(split.train) < batch_size:
        raise InputError(
            f"{ds.path}: {len(split.train)} training rows, fewer than one batch "
            f"({batch_size}); use a smaller batch_size"
        )
    if len(split.validation) < batch_size:
        raise InputError(
            f"{val_ds.path}: a validation set of {len(split.validation)} rows is smaller "
            f"than one batch ({batch_size}); use a larger val_fraction, a validation "
            "dataset, or a smaller batch_size"
        )
    # the sampled checksum of the features lets a resume tell that the data were rewritten
    info = dataset_record(ds, sample_features=True)
    if validation is not None:
        info["validation"] = dataset_record(val_ds, sample_features=True)
    return TrainingData(ds, columns, val_ds, val_columns, split, info)


def check_finite(block: np.ndarray, rows: np.ndarray, dataset: ProfileDataset) -> None:
    """Raise an InputError naming the first row of ``block`` with NaN, infinity or a
    negative value (``rows``: the dataset rows of ``block``)."""
    bad = first_bad_row(block)
    if bad >= 0:
        row = int(rows[bad])
        raise InputError(
            f"{dataset.path}: row {row + 1} (id {dataset.id_of_row(row)!r}) has "
            "NaN or infinite features"
        )
    low = (block < 0).any(axis=1)
    if low.any():
        row = int(rows[int(np.argmax(low))])
        raise InputError(
            f"{dataset.path}: row {row + 1} (id {dataset.id_of_row(row)!r}) "
            "has negative frequencies"
        )


def read_rows(dataset: ProfileDataset, columns: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Features of the sorted ``rows`` restricted to ``columns``, as a float32 array."""
    if len(rows) == 0:
        return np.empty((0, len(columns)), np.float32)
    block = dataset.read_feature_rows(rows)  # plain reads: RSS does not grow with the file
    whole = len(columns) == block.shape[1] and np.array_equal(columns, np.arange(len(columns)))
    out = (block if whole else block[:, columns]).astype(np.float32, copy=False)
    check_finite(out, rows, dataset)
    return out


class ResidentBatches:
    """All rows of one part on the training device; batches gathered on the device."""

    def __init__(
        self,
        dataset: ProfileDataset,
        columns: np.ndarray,
        rows: np.ndarray,
        device: torch.device,
        block_rows: int = 65536,
    ):
        import torch

        dtype = torch.float16 if device.type in ("cuda", "mps") else torch.float32
        self.n_rows = len(rows)
        self.data = torch.empty((self.n_rows, len(columns)), dtype=dtype, device=device)
        for start in range(0, self.n_rows, block_rows):
            part = rows[start : start + block_rows]
            self.data[start : start + len(part)] = torch.from_numpy(
                read_rows(dataset, columns, part)
            ).to(device=device, dtype=dtype)
        self.device = device

    def epoch(self, batch_size: int, seed: int | None, drop_last: bool) -> Iterator[torch.Tensor]:
        """Batches of float32 rows; a seeded random order, or file order when ``seed`` is None."""
        import torch

        if seed is None:
            order = None
        else:
            gen = torch.Generator(device="cpu").manual_seed(seed)
            order = torch.randperm(self.n_rows, generator=gen).to(self.device)
        stop = self.n_rows - (self.n_rows % batch_size if drop_last else 0)
        for start in range(0, stop, batch_size):
            if order is None:
                yield self.data[start : start + batch_size].float()
            else:
                yield self.data[order[start : start + batch_size]].float()

    def subset(self, count: int) -> torch.Tensor:
        return self.data[:count].float()


class StreamedBatches:
    """Rows read from the memory-mapped dataset in shuffled chunks, with a bounded buffer.

    Parameters
    ----------
    chunk_rows : rows per contiguous chunk of the file (the unit of random access).
    buffer_rows : rows per shuffle buffer; at most three exist at a time.
    """

    def __init__(
        self,
        dataset: ProfileDataset,
        columns: np.ndarray,
        rows: np.ndarray,
        device: torch.device,
        chunk_rows: int = 8192,
        buffer_rows: int = 65536,
    ):
        self.dataset = dataset
        self.columns = columns
        self.rows = rows
        self.n_rows = len(rows)
        self.device = device
        self.chunk_rows = chunk_rows
        self.buffer_rows = max(buffer_rows, chunk_rows)
        n_chunks = -(-dataset.n_rows // chunk_rows)
        bounds = np.searchsorted(rows, np.arange(n_chunks + 1) * chunk_rows)
        self._chunks = [(int(a), int(b)) for a, b in itertools.pairwise(bounds) if b > a]

    def _buffers(self, seed: int | None) -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
        if seed is None:
            order = np.arange(len(self._chunks))
        else:
            order = np.random.default_rng(seed).permutation(len(self._chunks))
        group: list[np.ndarray] = []
        size = 0
        for c in order:
            a, b = self._chunks[c]
            group.append(self.rows[a:b])
            size += b - a
            if size >= self.buffer_rows:
                yield self._fill(group, size, seed)
                group, size = [], 0
        if group:
            yield self._fill(group, size, seed)

    def _fill(
        self, group: list[np.ndarray], size: int, seed: int | None
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """One buffer (float32, size x F) and the order to visit its rows (None: as is)."""
        block = np.empty((size, len(self.columns)), np.float32)
        pos = 0
        for rows in group:
            block[pos : pos + len(rows)] = read_rows(self.dataset, self.columns, rows)
            pos += len(rows)
        if seed is None:
            return block, None
        return block, np.random.default_rng([seed, int(group[0][0])]).permutation(size)

    def epoch(self, batch_size: int, seed: int | None, drop_last: bool) -> Iterator[torch.Tensor]:
        """Batches of float32 rows. A background thread fills the next buffer while this one
        is used; batches are gathered from the buffer through its order (no shuffled copy),
        so at most three buffers exist: one used, one queued, one filling."""
        import torch

        reader = Prefetch(self._buffers(seed), depth=1, name="kmervae-batches")
        carry = np.empty((0, len(self.columns)), np.float32)
        try:
            for block, order in reader:
                n = len(block)
                start = 0
                if len(carry):  # rows left from the previous buffer start this one's first batch
                    take = min(batch_size - len(carry), n)
                    head = block[order[:take]] if order is not None else block[:take]
                    carry = np.concatenate([carry, head])
                    start = take
                    if len(carry) < batch_size:
                        continue
                    yield torch.from_numpy(carry).to(self.device)
                    carry = carry[:0]
                while start + batch_size <= n:
                    stop_at = start + batch_size
                    rows = (
                        block[order[start:stop_at]] if order is not None else block[start:stop_at]
                    )
                    yield torch.from_numpy(rows).to(self.device, non_blocking=True)
                    start = stop_at
                rest = order[start:] if order is not None else np.arange(start, n)
                carry = block[rest]
            if len(carry) and not drop_last:
                yield torch.from_numpy(carry).to(self.device)
        finally:
            reader.close(timeout=5)

    def subset(self, count: int) -> torch.Tensor:
        import torch

        rows = self.rows[:count]
        return torch.from_numpy(read_rows(self.dataset, self.columns, rows)).to(self.device)


def make_batches(
    dataset: ProfileDataset,
    columns: np.ndarray,
    rows: np.ndarray,
    device: torch.device,
    placement: str,
    memory_bytes: int,
) -> ResidentBatches | StreamedBatches:
    """Pick resident or streamed batches for ``rows`` (``placement``: auto|resident|stream)."""
    if placement not in ("auto", "resident", "stream"):
        raise KmervaeError(f"unknown data placement {placement!r} (auto, resident or stream)")
    bytes_per_value = 2 if device.type in ("cuda", "mps") else 4
    need = len(rows) * len(columns) * bytes_per_value
    if placement == "resident" or (placement == "auto" and need <= memory_bytes):
        return ResidentBatches(dataset, columns, rows, device)
    buffer_rows = max(1024, memory_bytes // 3 // (len(columns) * 4))  # three buffers at most
    return StreamedBatches(dataset, columns, rows, device, buffer_rows=int(buffer_rows))
