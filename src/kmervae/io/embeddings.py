"""Embedding stores: the folder ``kmervae embed`` writes, streamed in and memory-mapped out.

An embedding store (a directory)::

    manifest.json     format "kmervae-embeddings", schema version, n_rows, latent, which
                      columns are present, the model (fingerprint, path, config), the
                      dataset (path, kind, checksums), ids SHA-256, provenance
    embeddings.npy    float32, N x latent   mu (z_mean) of every row
    sigma.npy         float32, N x latent   exp(0.5 * log var)   (optional)
    lengths.npy       int64, N              sequence lengths
    gc.npy            float32, N            G+C fraction          (native datasets only)
    sources.npy       int32, N              index into the dataset's sources (native only)
    ids.txt           N lines, one record id each, in row order
    kmervae.log       the log of the command that wrote it (written by the CLI)

Rows are in the order of the dataset they were computed from. Every ``.npy`` is an ordinary
NumPy array, written as a stream (:class:`~kmervae.io.npy.NpyStreamWriter`); the folder is
written under a temporary name and renamed into place when complete.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from kmervae._version import __version__
from kmervae.errors import InputError, KmervaeError
from kmervae.io.atomic import check_writable, remove_path, replace_path, temporary_name
from kmervae.io.dataset import count_lines, iter_id_blocks, verify_ids_file
from kmervae.io.manifest import read_json_manifest
from kmervae.io.npy import NpyStreamWriter, load_column

FORMAT_NAME = "kmervae-embeddings"
SCHEMA_VERSION = 1
#: optional per-row columns: name -> dtype
ROW_COLUMNS: dict[str, type] = {"lengths": np.int64, "gc": np.float32, "sources": np.int32}


class EmbeddingsWriter:
    """Stream embeddings into a new store that appears only when :meth:`close` succeeds.

    Parameters
    ----------
    path : the store folder to create.
    latent : columns of ``mu`` (and ``sigma``).
    sigma : also write ``sigma.npy``.
    columns : which of ``lengths``, ``gc``, ``sources`` are written.
    overwrite : replace an existing ``path``.

    Rows (:meth:`append`) and ids (:meth:`append_ids`) are separate streams; :meth:`close`
    checks that their counts agree. Use as a context manager: an exception discards
    everything written.
    """

    def __init__(
        self,
        path: str | Path,
        latent: int,
        *,
        sigma: bool = False,
        columns: tuple[str, ...] = ("lengths",),
        overwrite: bool = False,
    ):
        unknown = set(columns) - set(ROW_COLUMNS)
        if unknown:
            raise KmervaeError(f"unknown embedding columns {sorted(unknown)}")
        self.path = Path(path)
        check_writable(self.path, overwrite)
        self.latent = int(latent)
        self.n_rows = 0
        self.n_ids = 0
        self.tmp = temporary_name(self.path)
        remove_path(self.tmp)
        self.tmp.mkdir()
        self._sigma: NpyStreamWriter | None = None
        self._columns: dict[str, NpyStreamWriter] = {}
        self._ids: Any = None
        try:
            with self._writing():
                self._mu = NpyStreamWriter(self.tmp / "embeddings.npy", np.float32, (self.latent,))
                if sigma:
                    self._sigma = NpyStreamWriter(
                        self.tmp / "sigma.npy", np.float32, (self.latent,)
                    )
                for name in ROW_COLUMNS:
                    if name in columns:
                        self._columns[name] = NpyStreamWriter(
                            self.tmp / f"{name}.npy", ROW_COLUMNS[name]
                        )
                self._ids = open(self.tmp / "ids.txt", "wb")  # noqa: SIM115 - closed in close()
        except BaseException:
            self.abort()
            raise
        self._ids_digest = hashlib.sha256()

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        """An OSError raised by write() without a file name (a full disk: ENOSPC) becomes a
        one-line error that names the store."""
        try:
            yield
        except OSError as exc:
            if exc.filename is not None:
                raise
            raise KmervaeError(
                f"{self.path}: cannot write the embedding store ({exc.strerror or exc})"
            ) from None

    @property
    def directory(self) -> Path:
        """The temporary folder being written (side files such as a log go here)."""
        return self.tmp

    def append(
        self, mu: np.ndarray, sigma: np.ndarray | None = None, **columns: np.ndarray
    ) -> None:
        """Append ``n`` rows: ``mu`` and ``sigma`` float32 (n x latent), and one (n,) array
        for each column the store was opened with (``lengths``, ``gc``, ``sources``)."""
        n = mu.shape[0]
        if (sigma is None) != (self._sigma is None):
            raise ValueError("append: sigma given to a store without it, or missing")
        if set(columns) != set(self._columns):
            raise ValueError(f"append: columns {sorted(columns)}, expected {sorted(self._columns)}")
        if sigma is not None and sigma.shape != mu.shape:
            raise ValueError(f"append: sigma {sigma.shape} for mu {mu.shape}")
        for name, values in columns.items():
            if values.shape != (n,):
                raise ValueError(f"append: {name} has shape {values.shape}, expected ({n},)")
        with self._writing():
            self._mu.write(mu)
            if self._sigma is not None and sigma is not None:
                self._sigma.write(sigma)
            for name, values in columns.items():
                self._columns[name].write(values)
        self.n_rows += n

    def append_ids(self, ids: list[str]) -> None:
        """Append record ids, in row order."""
        if not ids:
            return
        text = ("\n".join(ids) + "\n").encode()
        self._ids_digest.update(text)
        with self._writing():
            self._ids.write(text)
        self.n_ids += len(ids)

    def close(self, manifest: dict[str, Any] | None = None) -> Path:
        """Finish the files, write ``manifest.json`` (``manifest`` adds to it), and move the
        store into place; returns its path."""
        if self.n_ids != self.n_rows:
            raise KmervaeError(f"{self.path}: {self.n_ids} ids for {self.n_rows} embedding rows")
        with self._writing():
            self._ids.close()
            for writer in self._writers():
                writer.close()
        record = {
            "format": FORMAT_NAME,
            "schema_version": SCHEMA_VERSION,
            "kmervae_version": __version__,
            "n_rows": self.n_rows,
            "latent": self.latent,
            "sigma": self._sigma is not None,
            "columns": list(self._columns),
            "ids_sha256": self._ids_digest.hexdigest(),
            **(manifest or {}),
        }
        with self._writing():
            (self.tmp / "manifest.json").write_text(json.dumps(record, indent=2) + "\n")
        replace_path(self.tmp, self.path)
        return self.path

    def abort(self) -> None:
        """Discard everything written so far (closing a file on a full disk may fail again:
        the temporary folder goes all the same)."""
        if self._ids is not None:
            with contextlib.suppress(OSError):
                self._ids.close()
        for writer in self._writers():
            with contextlib.suppress(OSError):
                writer.abort()
        remove_path(self.tmp)

    def _writers(self) -> list[NpyStreamWriter]:
        extra = [self._sigma] if self._sigma is not None else []
        mu = [self._mu] if hasattr(self, "_mu") else []
        return [*mu, *extra, *self._columns.values()]

    def __enter__(self) -> EmbeddingsWriter:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is not None:
            self.abort()


class Embeddings:
    """An embedding store opened for reading (memory-mapped; checks itself on open).

    Attributes
    ----------
    path : the store folder.
    manifest : its ``manifest.json``.
    n_rows, latent : shape of :attr:`mu`.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        name = str(self.path)
        if not (self.path / "manifest.json").is_file():
            raise InputError(f"{name}: not an embedding store (no manifest.json)")
        manifest = read_json_manifest(
            self.path / "manifest.json", FORMAT_NAME, SCHEMA_VERSION, "embedding store"
        )
        self.manifest: dict[str, Any] = manifest
        try:
            self.n_rows = int(manifest["n_rows"])
            self.latent = int(manifest["latent"])
            columns = [str(c) for c in manifest.get("columns", [])]
        except (KeyError, ValueError, TypeError) as exc:
            raise InputError(f"{name}/manifest.json: bad row count or latent ({exc})") from None
        shape = (self.n_rows, self.latent)
        self._mu = self._array("embeddings", np.float32, shape)
        self._sigma = self._array("sigma", np.float32, shape) if manifest.get("sigma") else None
        self._columns = {
            c: self._array(c, ROW_COLUMNS[c], (self.n_rows,)) for c in columns if c in ROW_COLUMNS
        }
        self.ids_path = self.path / "ids.txt"
        if not self.ids_path.is_file():
            raise InputError(f"{name}: missing ids.txt")
        n_ids = count_lines(self.ids_path)
        if n_ids != self.n_rows:
            raise InputError(f"{self.ids_path}: {n_ids} ids for {self.n_rows} embedding rows")

    def _array(self, column: str, dtype: type, shape: tuple[int, ...]) -> np.ndarray:
        return load_column(self.path, column, dtype, shape)

    @property
    def mu(self) -> np.ndarray:
        """Memory-mapped embeddings (mu), float32 (N x latent)."""
        return self._mu

    @property
    def sigma(self) -> np.ndarray | None:
        """Memory-mapped sigma = exp(0.5 log var), float32 (N x latent), or None."""
        return self._sigma

    @property
    def columns(self) -> tuple[str, ...]:
        """Per-row columns present (of ``lengths``, ``gc``, ``sources``)."""
        return tuple(self._columns)

    def column(self, name: str) -> np.ndarray:
        """A memory-mapped per-row column, shape (N,): ``lengths`` int64, ``gc`` float32,
        ``sources`` int32."""
        if name not in self._columns:
            raise InputError(f"{self.path}: has no {name} column (has {list(self._columns)})")
        return self._columns[name]

    def lengths(self) -> np.ndarray:
        """int64 sequence lengths, shape (N,)."""
        return self.column("lengths")

    @property
    def model_fingerprint(self) -> str:
        """SHA-256 of the weights that made this space: equal fingerprints, same space."""
        return str(self.manifest.get("model", {}).get("fingerprint", ""))

    def iter_ids(self, block_bytes: int = 8 << 20) -> Iterator[list[str]]:
        """Ids in row order, in blocks (never all in memory at once)."""
        return iter_id_blocks(self.ids_path, block_bytes)

    def ids(self) -> list[str]:
        """All ids as one list (loads them: use :meth:`iter_ids` for big stores)."""
        return [i for block in self.iter_ids() for i in block]

    def iter_blocks(self, block_rows: int = 65536) -> Iterator[tuple[list[str], np.ndarray]]:
        """(ids, float32 (n, latent) mu) blocks of ``block_rows`` rows, in row order, read
        with plain reads (memory stays flat, whatever the store's size)."""
        reader = RowReader(self.path / "embeddings.npy", (self.n_rows, self.latent))
        start = 0
        try:
            for ids in rechunk_ids(self.iter_ids(1 << 20), block_rows):
                yield ids, reader.read(start, start + len(ids))
                start += len(ids)
        finally:
            reader.close()

    def verify_ids(self) -> None:
        """Check ``ids.txt`` against the manifest checksum."""
        verify_ids_file(self.ids_path, self.manifest.get("ids_sha256"))

    def __len__(self) -> int:
        return self.n_rows

    def __repr__(self) -> str:
        return (
            f"Embeddings({str(self.path)!r}, rows={self.n_rows}, latent={self.latent}, "
            f"sigma={self._sigma is not None}, model={self.model_fingerprint[:12] or '?'})"
        )


class RowReader:
    """Rows of a 2-D float32 ``.npy`` (``shape``) by plain file reads: the pages of a memory
    map would count as this process's memory and grow with N."""

    def __init__(self, path: Path, shape: tuple[int, int]):
        from numpy.lib import format as npformat

        self._fh = open(path, "rb")  # noqa: SIM115 - closed by close()
        version = npformat.read_magic(self._fh)
        read_header = (
            npformat.read_array_header_1_0 if version == (1, 0) else npformat.read_array_header_2_0
        )
        read_header(self._fh)
        self.offset = self._fh.tell()
        self.cols = shape[1]

    def read(self, start: int, stop: int) -> np.ndarray:
        """float32 (stop - start, cols): rows ``start:stop``."""
        self._fh.seek(self.offset + start * self.cols * 4)
        data = np.fromfile(self._fh, dtype="<f4", count=(stop - start) * self.cols)
        if data.size != (stop - start) * self.cols:
            raise InputError(f"{self._fh.name}: truncated at row {start}")
        return data.reshape(stop - start, self.cols)

    def close(self) -> None:
        self._fh.close()


def rechunk_ids(blocks: Iterator[list[str]], size: int) -> Iterator[list[str]]:
    """The ids of ``blocks`` again, in blocks of ``size`` (the last one shorter)."""
    buf: list[str] = []
    for block in blocks:
        buf.extend(block)
        while len(buf) >= size:
            yield buf[:size]
            buf = buf[size:]
    if buf:
        yield buf


def open_embeddings(path: str | Path) -> Embeddings:
    """Open an embedding store written by ``kmervae embed`` (memory-mapped, checked)."""
    return Embeddings(path)
