"""Profile rows read in blocks for inference: from a dataset on disk or an ``.npy`` stream.

Both readers yield :class:`FeatureBlock` s of float32 features in a model's columns (selected
from the input's layout; float16 converted), each block checked for NaN and infinities.
Dataset files are read with plain sequential reads rather than through the memory map: the
pages a memory map touches count as the process's memory, which would then grow with the
dataset. The bytes read are hashed on the way (the input checksum of the output).
:class:`kmervae.io.prefetch.Prefetch` reads them ahead in a background thread.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np

from kmervae.errors import InputError
from kmervae.io.dataset import (
    LEGACY_LAYOUTS,
    ProfileDataset,
    iter_row_blocks,
)
from kmervae.io.npy import first_bad_row
from kmervae.kmers.layout import FeatureLayout


@dataclass
class FeatureBlock:
    """Rows ``start : start + n`` of an input: features float32 (n x F, C-contiguous) in the
    model's columns, and per-row columns (``lengths`` int64, ``gc`` float32, ``sources``
    int32) where the input has them."""

    start: int
    x: np.ndarray  # float32 (n x F), C-contiguous
    columns: dict[str, np.ndarray] = field(default_factory=dict)


def _read_exact(fh: BinaryIO, out: np.ndarray, name: str) -> None:
    view = out.data.cast("B")
    done = 0
    while done < len(view):
        got = fh.readinto(view[done:])  # type: ignore[attr-defined]
        if not got:
            raise InputError(f"{name}: ended after {done} of {len(view)} bytes of a block")
        done += got


class _NpyRows:
    """Rows of an ``.npy`` file read in order with plain reads; optionally hashes the file.

    The data of an ``.npy`` fills the end of the file, so it starts at ``size - rows x bytes``.
    """

    def __init__(
        self, path: Path, n_rows: int, width: int | None, dtype: np.dtype | type, digest: bool
    ):
        self.path = path
        self.row_shape = () if width is None else (width,)
        self.dtype = np.dtype(dtype)
        self._fh = open(path, "rb", buffering=0)  # noqa: SIM115 - closed in close()
        row_bytes = self.dtype.itemsize * (width or 1)
        header = os.fstat(self._fh.fileno()).st_size - n_rows * row_bytes
        if header < 10:
            self._fh.close()
            raise InputError(f"{path}: file is shorter than its {n_rows} rows")
        self._digest = hashlib.sha256() if digest else None
        head = self._fh.read(header)
        if self._digest is not None:
            self._digest.update(head)

    def read(self, n: int) -> np.ndarray:
        out = np.empty((n, *self.row_shape), self.dtype)
        _read_exact(self._fh, out, str(self.path))
        if self._digest is not None:
            self._digest.update(out.data.cast("B"))
        return out

    def hexdigest(self) -> str:
        return self._digest.hexdigest() if self._digest is not None else ""

    def close(self) -> None:
        self._fh.close()


def _column_selection(columns: np.ndarray) -> slice | np.ndarray:
    """A slice when the columns are one contiguous run (no copy needed), else the indices."""
    first = int(columns[0])
    if np.array_equal(columns, np.arange(first, first + len(columns))):
        return slice(first, first + len(columns))
    return columns


class DatasetBlocks:
    """Blocks of a profile dataset in the model's columns, float32, checked for NaN/inf.

    Parameters
    ----------
    dataset : the dataset (native or legacy).
    ks : the model's k-groups, in the model's column order.
    block_rows : rows per block.

    Raises
    ------
    InputError
        The dataset lacks one of the model's k-groups.
    """

    def __init__(self, dataset: ProfileDataset, ks: tuple[int, ...], block_rows: int):
        self.dataset = dataset
        self.block_rows = block_rows
        layout = dataset.layout
        try:
            columns = layout.subset_columns(tuple(ks))
        except ValueError:
            raise InputError(
                f"{dataset.path}: the dataset has {_ks_text(layout)} ({layout.n_features} "
                f"features) but the model needs {_ks_text(FeatureLayout(tuple(ks)))} "
                f"({FeatureLayout(tuple(ks)).n_features} features)"
            ) from None
        features = dataset.features
        if (
            features.shape[0] > 1
            and features.flags.f_contiguous
            and not features.flags.c_contiguous
        ):
            raise InputError(
                f"{dataset.path}: the features are stored in Fortran (column) order, which "
                "cannot be read row block by row block; rewrite them in C order"
            )
        if dataset.kind == "native":
            self.data_file = dataset.path / "features.npy"
            self.width = layout.n_features
            self.row_columns: tuple[str, ...] = ("lengths", "gc", "sources")
        else:
            self.data_file = dataset.path
            self.width = 1 + layout.n_features
            columns = columns + 1  # column 0 is the length
            self.row_columns = ("lengths",)
        self._select = _column_selection(columns)
        self._whole_row = isinstance(self._select, slice) and self._select == slice(0, self.width)
        self.sha256 = ""

    def __iter__(self) -> Iterator[FeatureBlock]:
        ds = self.dataset
        features = _NpyRows(self.data_file, ds.n_rows, self.width, ds.dtype, digest=True)
        side: dict[str, _NpyRows] = {}
        try:
            if ds.kind == "native":
                for name, dtype in (("lengths", np.int64), ("gc", np.float32)):
                    side[name] = _NpyRows(ds.path / f"{name}.npy", ds.n_rows, None, dtype, False)
                side["sources"] = _NpyRows(
                    ds.path / "sources.npy", ds.n_rows, None, np.int32, False
                )
            for start, stop in iter_row_blocks(ds.n_rows, self.block_rows):
                raw = features.read(stop - start)
                x = raw if self._whole_row else raw[:, self._select]
                x = np.ascontiguousarray(x, dtype=np.float32)
                bad = first_bad_row(x)
                if bad >= 0:
                    row = start + bad
                    raise InputError(
                        f"{ds.path}: row {row + 1} (id {ds.id_of_row(row)}) has NaN or "
                        "infinite features"
                    )
                if ds.kind == "native":
                    columns = {name: rows.read(stop - start) for name, rows in side.items()}
                else:
                    lengths = raw[:, 0]
                    wrong = np.flatnonzero(~(lengths >= 0) | ~np.isfinite(lengths))
                    if len(wrong):
                        row = start + int(wrong[0])
                        raise InputError(
                            f"{ds.path}: row {row + 1} (id {ds.id_of_row(row)}) has length "
                            f"{lengths[wrong[0]]} in column 0"
                        )
                    columns = {"lengths": lengths.astype(np.int64)}
                yield FeatureBlock(start, x, columns)
            self.sha256 = features.hexdigest()
        finally:
            features.close()
            for rows in side.values():
                rows.close()


def _ks_text(layout: FeatureLayout) -> str:
    return "k-groups " + ",".join(map(str, layout.ks))


class NpyStreamBlocks:
    """Blocks of one ``.npy`` read from a stream (a pipe), in the columns of the k-groups
    ``ks``. The array (any float dtype, C order) may hold N x F features in that layout,
    N x (1 + F) with a leading length column (the legacy layout), or a known layout that
    contains those k-groups (e.g. the reference 6…1-mers for a 5…1-mer model), with or
    without the length column.

    Raises
    ------
    InputError
        The stream is not a 2-D float ``.npy`` whose columns fit the model, or is empty.
    """

    def __init__(self, stream: BinaryIO, ks: tuple[int, ...], block_rows: int, name: str = "stdin"):
        from numpy.lib import format as npformat

        self.stream = stream
        self.name = name
        self.block_rows = block_rows
        try:
            version = npformat.read_magic(stream)
            if version == (1, 0):
                shape, fortran, dtype = npformat.read_array_header_1_0(stream)
            elif version == (2, 0):
                shape, fortran, dtype = npformat.read_array_header_2_0(stream)
            else:
                raise ValueError(f"unsupported .npy format version {version}")
        except (ValueError, OSError, SyntaxError) as exc:
            raise InputError(f"{name}: not a readable .npy array ({exc})") from None
        if len(shape) != 2 or dtype.kind != "f" or fortran:
            raise InputError(
                f"{name}: expected a 2-D float array in C order, got shape {shape} of {dtype}"
                f"{' (Fortran order)' if fortran else ''}"
            )
        self.n_rows, n_columns = int(shape[0]), int(shape[1])
        if self.n_rows == 0:
            raise InputError(f"{name}: the array has no rows; nothing to embed")
        self.dtype = dtype
        self.width = n_columns
        model = FeatureLayout(tuple(ks))
        candidates = [model, *(lay for lay in LEGACY_LAYOUTS.values() if lay != model)]
        for layout in candidates:
            if not set(model.ks) <= set(layout.ks):
                continue
            for offset in (0, 1):
                if n_columns == offset + layout.n_features:
                    self.layout, self.has_length = layout, bool(offset)
                    self._select = _column_selection(layout.subset_columns(model.ks) + offset)
                    return
        raise InputError(
            f"{name}: {n_columns} columns do not fit the model, which takes "
            f"{model.n_features} features ({_ks_text(model)}), or {1 + model.n_features} "
            "with a leading length column"
        )

    def __iter__(self) -> Iterator[FeatureBlock]:
        for start, stop in iter_row_blocks(self.n_rows, self.block_rows):
            raw = np.empty((stop - start, self.width), self.dtype)
            try:
                _read_exact(self.stream, raw, self.name)
            except InputError:
                raise InputError(
                    f"{self.name}: the .npy ended early (its header says {self.n_rows} rows)"
                ) from None
            x = np.ascontiguousarray(raw[:, self._select], dtype=np.float32)
            bad = first_bad_row(x)
            if bad >= 0:
                raise InputError(f"{self.name}: row {start + bad + 1} has NaN or infinite features")
            yield FeatureBlock(start, x)
