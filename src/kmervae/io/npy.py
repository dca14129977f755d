"""``.npy`` files: a streaming writer whose row count is known only at the end, and the
checked memory-mapped readers every folder format uses.

The writer reserves the header at a fixed size and rewrites it on close, so rows go straight
to disk and memory stays flat; the result is an ordinary ``.npy`` that
``np.load(mmap_mode="r")`` reads.
"""

from __future__ import annotations

import contextlib
import os
import struct
from pathlib import Path
from typing import BinaryIO

import numpy as np

from kmervae.errors import InputError

_HEADER_BYTES = 128  # total header size, a multiple of 64 as the format recommends


def _npy_header(dtype: np.dtype, shape: tuple[int, ...]) -> bytes:
    text = f"{{'descr': {dtype.str!r}, 'fortran_order': False, 'shape': {shape!r}, }}"
    room = _HEADER_BYTES - 10 - 1
    if len(text) > room:
        raise ValueError(f"npy header too long for shape {shape}")
    body = (text + " " * (room - len(text)) + "\n").encode("latin1")
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(body)) + body


class NpyStreamWriter:
    """Append rows of a fixed trailing shape to an ``.npy`` file.

    Parameters
    ----------
    path : file to create (overwritten).
    dtype : element type of the array.
    row_shape : shape of one row, e.g. ``(2772,)`` for a matrix, ``()`` for a vector.
    """

    def __init__(self, path: Path, dtype: np.dtype | type, row_shape: tuple[int, ...] = ()):
        self.path = Path(path)
        self.dtype = np.dtype(dtype)
        self.row_shape = tuple(row_shape)
        self.n_rows = 0
        self._fh: BinaryIO | None = open(self.path, "wb")  # noqa: SIM115 - closed in close()
        self._fh.write(_npy_header(self.dtype, (0, *self.row_shape)))

    def write(self, rows: np.ndarray) -> None:
        """Append ``rows`` (shape ``(n, *row_shape)``), converting to the file's dtype."""
        if self._fh is None:
            raise ValueError(f"{self.path} is closed")
        if rows.shape[1:] != self.row_shape:
            raise ValueError(
                f"rows of shape {rows.shape[1:]} for {self.path}, expected {self.row_shape}"
            )
        data = np.ascontiguousarray(rows, dtype=self.dtype)
        self._fh.write(data.data.cast("B"))
        self.n_rows += rows.shape[0]

    def close(self) -> None:
        if self._fh is None:
            return
        self._fh.seek(0)
        self._fh.write(_npy_header(self.dtype, (self.n_rows, *self.row_shape)))
        self._fh.close()
        self._fh = None

    def abort(self) -> None:
        if self._fh is not None:
            with contextlib.suppress(OSError):  # a full disk fails the final flush again
                self._fh.close()
            self._fh = None
        self.path.unlink(missing_ok=True)


def _npy_file_size(path: Path) -> tuple[int, tuple[int, ...], np.dtype] | None:
    """(file size, shape, dtype) of the ``.npy`` at ``path`` as its header describes them;
    None for header versions other than 1.0 and 2.0."""
    with open(path, "rb") as fh:
        version = np.lib.format.read_magic(fh)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(fh)
        elif version == (2, 0):
            shape, _, dtype = np.lib.format.read_array_header_2_0(fh)
        else:
            return None
        size = fh.tell() + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        return size, tuple(shape), dtype


def load_npy(path: Path, name: str) -> np.ndarray:
    """Memory-map ``path`` (read only); ``name`` (the folder) is named when it is missing.

    The file must be exactly its header plus the data the header announces: a truncated file
    (a copy cut short) or one with bytes after the data (readers that find the data at the
    end of the file would be misaligned) is an InputError naming it.
    """
    if not path.exists():
        raise InputError(f"{name}: missing {path.name}")
    if not path.is_file():
        raise InputError(f"{path}: not a file")
    try:
        header = _npy_file_size(path)
        if header is not None:
            expected, shape, dtype = header
            size = os.path.getsize(path)
            if size != expected:
                state = "is truncated" if size < expected else "has extra bytes after its data"
                raise InputError(
                    f"{path}: {state} ({size} bytes; its header announces {expected}: "
                    f"shape {shape} of {dtype})"
                )
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError, SyntaxError) as exc:
        raise InputError(f"{path}: not a readable .npy file ({exc})") from None
    if not isinstance(arr, np.ndarray):
        raise InputError(f"{path}: not a .npy array")
    return arr


def load_column(folder: Path, column: str, dtype: type, shape: tuple[int, ...]) -> np.ndarray:
    """Memory-map ``folder/column.npy`` and check its shape and dtype (one-line errors)."""
    arr = load_npy(folder / f"{column}.npy", str(folder))
    if arr.shape != shape or arr.dtype != dtype:
        raise InputError(
            f"{folder}: {column}.npy has shape {arr.shape} and dtype {arr.dtype}, "
            f"expected {shape} {np.dtype(dtype)}"
        )
    return arr


def first_bad_row(x: np.ndarray) -> int:
    """Index of the first row of ``x`` (n x F) holding NaN or an infinity, or -1.

    Row sums find candidates in one cheap pass (NaN and inf propagate); a candidate is then
    confirmed on its own, since a sum of huge finite values can overflow.
    """
    sums = np.add.reduce(x, axis=1)
    for row in np.flatnonzero(~np.isfinite(sums)):
        if not np.isfinite(x[row]).all():
            return int(row)
    return -1
