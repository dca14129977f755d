"""Profile datasets: the native directory format and the legacy ``.npy`` + ids pair.

Native dataset (a directory)::

    manifest.json     schema version, feature layout, dtype, row count, ids SHA-256,
                      sources, tool version and provenance
    features.npy      float32 or float16, N x F (F = 2772 for the reference layout)
    lengths.npy       int64, N   full sequence length (never float16: it tops out at 65504)
    ambiguous.npy     int64, N   non-ACGT bases (-1 where unknown, e.g. from legacy input)
    gc.npy            float32, N G+C fraction of the A/C/G/T bases (NaN when there are none)
    sources.npy       int32, N   index into manifest["sources"]
    ids.txt           N lines, one record id each

Legacy dataset: ``NAME.npy`` (float32, N x (1 + F), column 0 the length) and ``NAME.txt`` or
``NAME.txt.gz`` (one id per line). Both are memory-mapped, never loaded whole. kmervae writes
``NAME.json`` beside them, the manifest a native dataset would have: its row count, layout and
ids SHA-256 tie the pair together, so an ``.npy`` next to the ids of another run is refused.
A pair from elsewhere, without ``NAME.json``, is read as it is.

Checks on open (each failure is one :class:`~kmervae.errors.InputError` line naming the file):
the manifest and its layout, every array's dtype, shape and exact file size (a truncated or
padded ``.npy``), C order, the number of ids and their UTF-8 text and checksum, and an
unfinished group commit (see :func:`commit_outputs`). The feature values themselves are
checked for NaN and infinities by the commands that read every row anyway (``concat``,
``train``, ``embed``), where it costs nothing extra, with the row and id named.
"""

from __future__ import annotations

import codecs
import contextlib
import gzip
import hashlib
import json
import logging
import os
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from kmervae._version import __version__
from kmervae.errors import InputError, KmervaeError
from kmervae.io.atomic import (
    check_writable,
    commit_outputs,
    naming_oserrors,
    recover_interrupted_commits,
    refuse_unfinished_commit,
    remove_path,
    remove_stale_temporaries,
    temporary_name,
)
from kmervae.io.manifest import read_json_manifest
from kmervae.io.npy import NpyStreamWriter, load_npy
from kmervae.kmers.layout import FEATURE_LAYOUT, FeatureLayout
from kmervae.provenance import chunks_sha256

log = logging.getLogger(__name__)

FORMAT_NAME = "kmervae-profiles"
SCHEMA_VERSION = 1
FEATURE_DTYPES = ("float32", "float16")
#: the layouts a legacy ``.npy`` may hold, by its columns (the length column included)
LEGACY_LAYOUTS = {1 + FEATURE_LAYOUT.n_features: FEATURE_LAYOUT}
for _ks in ((5, 4, 3, 2, 1), (4,)):
    LEGACY_LAYOUTS[1 + FeatureLayout(_ks).n_features] = FeatureLayout(_ks)
# gzip and zlib errors carry no file name; they are re-raised naming the file
_COMPRESSED_ERRORS = (gzip.BadGzipFile, EOFError, zlib.error)


def _read_manifest(path: Path) -> dict[str, Any]:
    return read_json_manifest(
        path / "manifest.json", FORMAT_NAME, SCHEMA_VERSION, "profile dataset"
    )


def _open_text(path: Path) -> BinaryIO:
    with open(path, "rb") as fh:
        magic = fh.read(2)
    if magic == b"\x1f\x8b":
        return gzip.open(path, "rb")  # type: ignore[return-value]
    return open(path, "rb")


def _chunks(path: Path, size: int) -> Iterator[bytes]:
    """The (decompressed) bytes of ``path`` in chunks of ``size``; a damaged gzip stream is
    an InputError naming the file."""
    try:
        with _open_text(path) as fh:
            while data := fh.read(size):
                yield data
    except _COMPRESSED_ERRORS as exc:
        raise InputError(f"{path}: damaged compressed file ({exc})") from None


def iter_id_blocks(path: Path, block_bytes: int = 8 << 20) -> Iterator[list[str]]:
    """Ids of a one-id-per-line file (plain or gzip), in blocks of whole lines."""
    carry = b""
    lines_before = 0

    def decode(data: bytes) -> list[str]:
        try:
            return data.decode().split("\n")
        except UnicodeDecodeError as exc:
            line = lines_before + data[: exc.start].count(b"\n") + 1
            raise InputError(f"{path}: line {line} is not UTF-8 text") from None

    for data in _chunks(path, block_bytes):
        data = carry + data
        cut = data.rfind(b"\n")
        if cut < 0:
            carry = data
            continue
        carry = data[cut + 1 :]
        block = decode(data[:cut])
        lines_before += len(block)
        yield block
    if carry:
        yield decode(carry)


def count_lines(path: Path) -> int:
    n = 0
    last = b"\n"
    for data in _chunks(path, 16 << 20):
        n += data.count(b"\n")
        last = data[-1:]
    return n + (last != b"\n")


def scan_ids(path: Path) -> tuple[int, str]:
    """Number of ids in ``path`` and the SHA-256 of its (decompressed) text, in one pass that
    also checks the text is UTF-8 (an InputError names the line where it is not)."""
    n = 0
    last = b"\n"
    digest = hashlib.sha256()
    decoder = codecs.getincrementaldecoder("utf-8")()
    for data in _chunks(path, 16 << 20):
        try:
            decoder.decode(data)
        except UnicodeDecodeError as exc:
            line = n + data[: max(exc.start, 0)].count(b"\n") + 1
            raise InputError(f"{path}: line {line} is not UTF-8 text") from None
        digest.update(data)
        n += data.count(b"\n")
        last = data[-1:]
    try:
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        raise InputError(f"{path}: line {n + 1} is not UTF-8 text") from None
    return n + (last != b"\n"), digest.hexdigest()


def locate_dataset(path: str | Path) -> tuple[str, Path]:
    """``("native", folder)`` or ``("legacy", NAME.npy)`` for a dataset given as a folder,
    ``NAME.npy`` or ``NAME``; a cheap check (no file is read) for a clear error before work.

    Raises
    ------
    InputError
        nothing there, or something that is not a profile dataset.
    """
    path = Path(path)
    if path.is_dir():
        if not (path / "manifest.json").exists():
            raise InputError(f"{path}: a folder without manifest.json is not a profile dataset")
        return "native", path
    if path.suffix == ".npy":
        npy = path
    elif path.exists():
        raise InputError(
            f"{path}: not a profile dataset (expected a dataset folder or a legacy NAME.npy)"
        )
    else:
        npy = path.with_name(path.name + ".npy")
    if not npy.exists():
        raise InputError(f"{path}: no such dataset (neither a folder nor a legacy .npy)")
    if not npy.is_file():
        raise InputError(f"{npy}: not a file")
    return "legacy", npy


def legacy_ids_candidates(npy: Path) -> list[Path]:
    """Where the ids of the legacy ``NAME.npy`` may be: ``NAME.txt``, then ``NAME.txt.gz``."""
    stem = npy.with_suffix("").name  # NAME may hold dots: set.train.npy -> set.train.txt
    return [npy.with_name(stem + ".txt"), npy.with_name(stem + ".txt.gz")]


def _c_order(arr: np.ndarray, path: Path) -> None:
    if arr.ndim == 2 and arr.shape[0] > 1 and not arr.flags.c_contiguous:
        raise InputError(
            f"{path}: the array is stored in Fortran (column) order, which cannot be read "
            "row block by row block; rewrite it in C order"
        )


class ProfileDataset:
    """A profile dataset opened for reading (memory-mapped; checks itself on open).

    Attributes
    ----------
    path : the dataset directory (native) or the ``.npy`` file (legacy).
    kind : ``"native"`` or ``"legacy"``.
    layout : :class:`FeatureLayout` of the feature columns.
    n_rows : number of records.
    """

    def __init__(self, path: str | Path):
        path = Path(path)
        npy = path if path.suffix == ".npy" else path.with_name(path.name + ".npy")
        # first: an interrupted group commit can leave a member missing
        refuse_unfinished_commit([path, npy, *legacy_ids_candidates(npy)])
        kind, located = locate_dataset(path)
        self.manifest: dict[str, Any]
        if kind == "native":
            self._open_native(located)
        else:
            self._open_legacy(located)
        n_ids, ids_sha256 = scan_ids(self.ids_path)
        #: SHA-256 of the ids text (decompressed), read once when the dataset is opened
        self.ids_text_sha256 = ids_sha256
        if n_ids != self.n_rows:
            raise InputError(
                f"{self.ids_path}: {n_ids} ids for the {self.n_rows} profile rows of "
                f"{self._data_file}"
            )
        expected = self.manifest.get("ids_sha256")
        if expected and expected != ids_sha256:
            if self.kind == "native":
                raise InputError(
                    f"{self.ids_path}: ids do not match the manifest checksum "
                    "(file changed or belongs to another dataset)"
                )
            raise InputError(
                f"{self.path} and {self.ids_path} do not belong together: the ids do not "
                f"match the checksum in {self.path.with_suffix('.json')} (files of "
                "different runs?)"
            )

    # -- opening -----------------------------------------------------------------------
    def _open_native(self, path: Path) -> None:
        self.kind = "native"
        self.path = path
        self.manifest = _read_manifest(path)
        name = str(path)
        where = f"{path}/manifest.json"
        try:
            self.layout = FeatureLayout.from_json(self.manifest["layout"])
        except (KeyError, ValueError, TypeError, AttributeError) as exc:
            raise InputError(f"{where}: bad feature layout ({exc})") from None
        n_rows = self.manifest.get("n_rows")
        if not isinstance(n_rows, int) or isinstance(n_rows, bool) or n_rows < 0:
            raise InputError(f"{where}: bad row count {n_rows!r}")
        self.n_rows = n_rows
        n_features = self.manifest.get("n_features", self.layout.n_features)
        if n_features != self.layout.n_features:
            raise InputError(
                f"{where}: n_features is {n_features!r} but the layout k={list(self.layout.ks)} "
                f"has {self.layout.n_features}"
            )
        if not isinstance(self.manifest.get("sources", []), list):
            raise InputError(f"{where}: 'sources' is not a list")
        self._features = load_npy(path / "features.npy", name)
        self._data_file, self._skip_columns = path / "features.npy", 0
        if self._features.dtype.name not in FEATURE_DTYPES or not self._features.dtype.isnative:
            raise InputError(
                f"{name}: features.npy has dtype {self._features.dtype.str}, "
                f"expected one of {FEATURE_DTYPES}"
            )
        declared = self.manifest.get("dtype", self._features.dtype.name)
        if declared != self._features.dtype.name:
            raise InputError(
                f"{name}: features.npy holds {self._features.dtype.name} but the manifest "
                f"says {declared!r}"
            )
        if self._features.shape != (self.n_rows, self.layout.n_features):
            raise InputError(
                f"{name}: features.npy has shape {self._features.shape}, manifest "
                f"says ({self.n_rows}, {self.layout.n_features}) for k={list(self.layout.ks)}"
            )
        _c_order(self._features, path / "features.npy")
        self._columns: dict[str, np.ndarray] = {}
        for column, dtype in (
            ("lengths", np.int64),
            ("ambiguous", np.int64),
            ("gc", np.float32),
            ("sources", np.int32),
        ):
            arr = load_npy(path / f"{column}.npy", name)
            if arr.shape != (self.n_rows,) or arr.dtype != np.dtype(dtype).newbyteorder("="):
                raise InputError(
                    f"{name}: {column}.npy has shape {arr.shape} and dtype "
                    f"{arr.dtype.str}, expected ({self.n_rows},) {np.dtype(dtype)}"
                )
            self._columns[column] = arr
        self.ids_path = path / "ids.txt"
        if not self.ids_path.is_file():
            raise InputError(f"{name}: missing ids.txt")

    def _open_legacy(self, npy: Path) -> None:
        self.kind = "legacy"
        self.path = npy
        matrix = load_npy(npy, str(npy))
        if matrix.ndim != 2 or matrix.dtype != np.dtype(np.float32).newbyteorder("="):
            raise InputError(
                f"{npy}: legacy profiles must be a 2-D float32 array, got "
                f"{matrix.ndim}-D {matrix.dtype.str}"
            )
        layout = LEGACY_LAYOUTS.get(matrix.shape[1])
        if layout is None:
            known = ", ".join(str(n) for n in sorted(LEGACY_LAYOUTS))
            raise InputError(
                f"{npy}: {matrix.shape[1]} columns matches no feature layout "
                f"(expected {known}: length + features)"
            )
        _c_order(matrix, npy)
        self.layout = layout
        self.n_rows = matrix.shape[0]
        self._matrix = matrix
        self._features = matrix[:, 1:]
        self._data_file, self._skip_columns = npy, 1
        self._columns = {}
        for candidate in legacy_ids_candidates(npy):
            if candidate.exists():
                self.ids_path = candidate
                break
        else:
            raise InputError(f"{npy}: no ids file beside it ({npy.stem}.txt or {npy.stem}.txt.gz)")
        self.manifest = {
            "format": "legacy",
            "n_rows": self.n_rows,
            "layout": self.layout.to_json(),
            "dtype": "float32",
            "sources": [],
        }
        side = _legacy_side_manifest(npy)
        if side is None:
            return
        where = npy.with_suffix(".json")
        if side.get("n_rows") != self.n_rows:
            raise InputError(
                f"{npy} has {self.n_rows} rows but {where} records {side.get('n_rows')!r} "
                "(files of different runs?)"
            )
        try:
            side_layout = FeatureLayout.from_json(side["layout"])
        except (KeyError, ValueError, TypeError, AttributeError) as exc:
            raise InputError(f"{where}: bad feature layout ({exc})") from None
        if side_layout != layout:
            raise InputError(
                f"{where} records k={list(side_layout.ks)} ({side_layout.n_features} "
                f"features) but {npy} has {matrix.shape[1] - 1} feature columns"
            )
        if isinstance(side.get("ids_sha256"), str):
            self.manifest["ids_sha256"] = side["ids_sha256"]
        if isinstance(side.get("provenance"), dict):
            self.manifest["provenance"] = side["provenance"]

    # -- columns -----------------------------------------------------------------------
    @property
    def features(self) -> np.ndarray:
        """Memory-mapped features, N x F (float32 or float16; legacy: a strided view)."""
        return self._features

    @property
    def dtype(self) -> np.dtype:
        return self._features.dtype

    @property
    def data_file(self) -> Path:
        """The file that holds the features: ``features.npy`` (native) or ``NAME.npy``."""
        return self._data_file

    def lengths(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """int64 sequence lengths of rows ``start:stop``."""
        if self.kind == "native":
            return np.asarray(self._columns["lengths"][start:stop])
        raw = np.asarray(self._matrix[start:stop, 0])
        bad = np.flatnonzero(~(raw >= 0) | ~np.isfinite(raw))  # NaN fails both
        if len(bad):
            row = start + int(bad[0])
            raise InputError(
                f"{self.path}: row {row + 1} (id {self.id_of_row(row)}) has length "
                f"{raw[bad[0]]} in column 0"
            )
        return raw.astype(np.int64)

    def gc(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """float32 G+C fraction of rows ``start:stop`` (legacy: the C/G 1-mer column)."""
        if self.kind == "native":
            return np.asarray(self._columns["gc"][start:stop])
        if 1 not in self.layout.ks:
            return np.full(len(range(*slice(start, stop).indices(self.n_rows))), np.nan, np.float32)
        col = self.layout.group_slice(1).start + 1
        gc = self._features[start:stop, col].astype(np.float32)
        lone = self._features[start:stop, col - 1] + self._features[start:stop, col] == 0
        gc[lone] = np.nan
        return gc

    def ambiguous(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """int64 ambiguous-base counts of rows ``start:stop`` (-1: unknown)."""
        if self.kind == "native":
            return np.asarray(self._columns["ambiguous"][start:stop])
        return np.full(len(range(*slice(start, stop).indices(self.n_rows))), -1, np.int64)

    def sources(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """int32 index into :attr:`source_names` of rows ``start:stop`` (-1: unknown)."""
        if self.kind == "native":
            return np.asarray(self._columns["sources"][start:stop])
        return np.full(len(range(*slice(start, stop).indices(self.n_rows))), -1, np.int32)

    @property
    def source_names(self) -> list[str]:
        return [s.get("name", s.get("path", "?")) for s in self.manifest.get("sources", [])]

    def iter_ids(self, block_bytes: int = 8 << 20) -> Iterator[list[str]]:
        """Ids in row order, in blocks (never all in memory at once)."""
        return iter_id_blocks(self.ids_path, block_bytes)

    def ids(self) -> list[str]:
        """All ids as one list (loads them: use :meth:`iter_ids` for big datasets)."""
        return [i for block in self.iter_ids() for i in block]

    def verify_ids(self) -> None:
        """Check ids against the recorded checksum (already done on open; kept for callers
        that check again after a long run)."""
        verify_ids_file(self.ids_path, self.manifest.get("ids_sha256"))

    def read_feature_rows(self, rows: np.ndarray, max_gap: int = 8) -> np.ndarray:
        """Features of the sorted 0-based ``rows`` (n x F, the stored dtype), read with plain
        file reads rather than through the memory map, so that memory accounting (RSS) does
        not grow with what was read. Nearby rows (at most ``max_gap`` apart) share one read.
        """
        rows = np.asarray(rows, np.int64)
        f = self.layout.n_features
        width = f + self._skip_columns
        itemsize = self._features.dtype.itemsize
        out = np.empty((len(rows), f), self._features.dtype)
        if not len(rows):
            return out
        offset = _npy_data_offset(self._data_file)
        breaks = np.flatnonzero(np.diff(rows) > max_gap) + 1
        starts = np.concatenate([[0], breaks])
        stops = np.concatenate([breaks, [len(rows)]])
        fd = os.open(self._data_file, os.O_RDONLY)
        try:
            for a, b in zip(starts.tolist(), stops.tolist(), strict=True):
                lo, hi = int(rows[a]), int(rows[b - 1]) + 1
                nbytes = (hi - lo) * width * itemsize
                buf = bytearray(nbytes)
                view = memoryview(buf)
                done = 0
                while done < nbytes:
                    got = os.preadv(fd, [view[done:]], offset + lo * width * itemsize + done)
                    if got <= 0:
                        raise InputError(f"{self._data_file}: file ends before row {hi}")
                    done += got
                block = np.frombuffer(buf, self._features.dtype).reshape(hi - lo, width)
                out[a:b] = block[rows[a:b] - lo, self._skip_columns :]
        finally:
            os.close(fd)
        return out

    def id_of_row(self, row: int) -> str:
        """The id of 0-based ``row`` (reads ids up to it: for error messages)."""
        seen = 0
        for block in self.iter_ids():
            if row < seen + len(block):
                return block[row - seen]
            seen += len(block)
        return "?"

    def __len__(self) -> int:
        return self.n_rows

    def __repr__(self) -> str:
        return (
            f"ProfileDataset({str(self.path)!r}, kind={self.kind}, rows={self.n_rows}, "
            f"features={self.layout.n_features}, dtype={self.dtype})"
        )


def _npy_data_offset(path: Path) -> int:
    with open(path, "rb") as fh:
        version = np.lib.format.read_magic(fh)
        if version == (1, 0):
            np.lib.format.read_array_header_1_0(fh)
        else:
            np.lib.format.read_array_header_2_0(fh)
        return fh.tell()


def _legacy_side_manifest(npy: Path) -> dict[str, Any] | None:
    """The manifest kmervae wrote beside a legacy ``NAME.npy`` (``NAME.json``), or None when
    there is none (a pair from another tool; a JSON file that is not ours is not read)."""
    side = npy.with_suffix(".json")
    if not side.is_file():
        return None
    try:
        data = json.loads(side.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        log.debug("%s is not a kmervae manifest (not JSON); not used", side)
        return None
    if not isinstance(data, dict) or data.get("format") != FORMAT_NAME:
        log.debug("%s is not a kmervae manifest; not used", side)
        return None
    return data


def verify_ids_file(path: Path, expected: str | None) -> None:
    """Raise an InputError if the SHA-256 of the ids file ``path`` is not ``expected``."""
    if not expected:
        return
    if chunks_sha256(_chunks(path, 16 << 20)) != expected:
        raise InputError(
            f"{path}: ids do not match the manifest checksum "
            "(file changed or belongs to another dataset)"
        )


def open_dataset(path: str | Path) -> ProfileDataset:
    """Open a native dataset directory or a legacy ``NAME.npy`` (+ ``NAME.txt[.gz]``)."""
    return ProfileDataset(path)


#: the keys of :func:`dataset_record`, in the order they are written
DATASET_RECORD_KEYS = (
    "path",
    "kind",
    "n_rows",
    "dtype",
    "layout",
    "sources",
    "ids_path",
    "ids_sha256",
    "features_sha256",
    "features_sampled_sha256",
)


def dataset_record(
    ds: ProfileDataset,
    *,
    features_sha256: str | None = None,
    sample_features: bool = False,
) -> dict[str, Any]:
    """What an output records about the profile dataset it was made from: the one record
    written into run folders, model cards, embedding stores and concatenated datasets.

    Keys (:data:`DATASET_RECORD_KEYS`): ``path`` (absolute), ``kind`` (``native`` or
    ``legacy``), ``n_rows``, ``dtype``, ``layout``, ``sources`` (the first 50 source names),
    ``ids_path`` (absolute), ``ids_sha256`` (SHA-256 of the ids text, decompressed: the
    manifest's checksum), ``features_sha256`` (SHA-256 of :attr:`ProfileDataset.data_file`,
    or None) and ``features_sampled_sha256`` (a sampled SHA-256 of that file, or None).

    Parameters
    ----------
    features_sha256
        The SHA-256 of the feature file, when the caller has read it through anyway.
    sample_features
        Also take a sampled SHA-256 of the feature file: its size and 64 spread blocks, so
        that a 150 GB matrix is not read through (see :func:`kmervae.provenance.sampled_sha256`).
    """
    from kmervae.provenance import sampled_sha256

    return {
        "path": str(Path(ds.path).resolve()),
        "kind": ds.kind,
        "n_rows": ds.n_rows,
        "dtype": ds.dtype.name,
        "layout": ds.layout.to_json(),
        "sources": ds.source_names[:50],
        "ids_path": str(Path(ds.ids_path).resolve()),
        "ids_sha256": ds.ids_text_sha256,
        "features_sha256": features_sha256,
        "features_sampled_sha256": sampled_sha256(ds.data_file) if sample_features else None,
    }


#: the ``checksums`` mapping of run records written before :func:`dataset_record`
_OLD_CHECKSUMS = {
    "features (sampled SHA-256)": "features_sampled_sha256",
    "ids (SHA-256)": "ids_sha256",
}


def read_dataset_record(record: Any) -> dict[str, Any]:
    """A dataset record as :func:`dataset_record` writes it, from one that an earlier kmervae
    wrote (``format`` for ``kind``, ``npy_sha256`` for ``features_sha256``, a ``checksums``
    mapping) or this one; a nested ``validation`` record is read the same way. Keys it does
    not know are kept; anything but a mapping gives an empty record."""
    if not isinstance(record, dict):
        return {}
    out = dict(record)
    if "kind" not in out and "format" in out:
        out["kind"] = out.pop("format")
    if out.get("features_sha256") is None and "npy_sha256" in out:
        out["features_sha256"] = out.pop("npy_sha256")
    checksums = out.pop("checksums", None)
    if isinstance(checksums, dict):
        for old, new in _OLD_CHECKSUMS.items():
            if checksums.get(old):
                out[new] = checksums[old]  # the ids text's checksum, even for legacy ids
    if isinstance(out.get("validation"), dict):
        out["validation"] = read_dataset_record(out["validation"])
    return out


def legacy_paths(path: str | Path) -> tuple[Path, Path]:
    """The ``(NAME.npy, NAME.txt)`` pair for a legacy output named ``NAME`` or ``NAME.npy``."""
    path = Path(path)
    stem = path.with_suffix("") if path.suffix == ".npy" else path
    return stem.with_name(stem.name + ".npy"), stem.with_name(stem.name + ".txt")


def output_files(path: str | Path, fmt: str) -> list[Path]:
    """The final names a dataset output takes: the folder (native), or ``NAME.txt``,
    ``NAME.npy`` and the side manifest ``NAME.json`` (legacy)."""
    if fmt == "native":
        return [Path(path)]
    npy, txt = legacy_paths(path)
    return [txt, npy, npy.with_suffix(".json")]


def check_output(path: str | Path, fmt: str, overwrite: bool) -> None:
    """Refuse, before any work, a dataset output that exists (unless ``overwrite``) or whose
    folder is missing or read-only. What a killed writer left is cleaned up first: an
    unfinished group commit is rolled back (:func:`recover_interrupted_commits`), then its
    temporaries are removed."""
    finals = output_files(path, fmt)
    recover_interrupted_commits(finals)
    for final in finals:
        check_writable(final, overwrite)
    if fmt == "legacy":  # the log kmervae writes beside NAME.npy
        remove_stale_temporaries(finals[1].with_suffix(".log"))


class DatasetWriter:
    """Stream rows into a new dataset that appears only when :meth:`close` succeeds.

    ``fmt="native"`` writes a dataset directory, ``fmt="legacy"`` the ``NAME.npy`` +
    ``NAME.txt`` pair (float32 only) with the side manifest ``NAME.json``. Use as a context
    manager: an exception discards everything written. Outputs that must appear together
    (a train and a validation set) are finished one by one with :meth:`finish` and moved in
    at once with :func:`commit_outputs`.
    """

    def __init__(
        self,
        path: str | Path,
        layout: FeatureLayout = FEATURE_LAYOUT,
        dtype: str = "float32",
        fmt: str = "native",
        overwrite: bool = False,
    ):
        if dtype not in FEATURE_DTYPES:
            raise KmervaeError(f"unsupported feature dtype {dtype!r} (use float32 or float16)")
        if fmt not in ("native", "legacy"):
            raise KmervaeError(f"unknown dataset format {fmt!r} (use native or legacy)")
        if fmt == "legacy" and dtype != "float32":
            raise KmervaeError(
                "the legacy format is float32 only (use the dtype float32 or the native format)"
            )
        self.layout = layout
        self.dtype = dtype
        self.fmt = fmt
        self.n_rows = 0
        self._ids_digest = hashlib.sha256()
        self.sources: list[dict[str, Any]] = []
        check_output(path, fmt, overwrite)
        if fmt == "native":
            self.path = Path(path)
            self.tmp = temporary_name(self.path)
            remove_path(self.tmp)
            self.tmp.mkdir()
        else:
            self.npy_path, self.ids_final = legacy_paths(path)
            self.path = self.npy_path
            self._side_final = self.npy_path.with_suffix(".json")
            self._tmp_npy = temporary_name(self.npy_path)
            self._tmp_ids = temporary_name(self.ids_final)
            self._tmp_side = temporary_name(self._side_final)
        try:
            with naming_oserrors(self.path):
                if fmt == "native":
                    f = layout.n_features
                    self._features = NpyStreamWriter(
                        self.tmp / "features.npy", np.dtype(dtype), (f,)
                    )
                    self._lengths = NpyStreamWriter(self.tmp / "lengths.npy", np.int64)
                    self._ambiguous = NpyStreamWriter(self.tmp / "ambiguous.npy", np.int64)
                    self._gc = NpyStreamWriter(self.tmp / "gc.npy", np.float32)
                    self._sources = NpyStreamWriter(self.tmp / "sources.npy", np.int32)
                    self._ids = open(self.tmp / "ids.txt", "wb")  # noqa: SIM115
                else:
                    self._matrix = NpyStreamWriter(
                        self._tmp_npy, np.float32, (1 + layout.n_features,)
                    )
                    self._ids = open(self._tmp_ids, "wb")  # noqa: SIM115
        except BaseException:
            self.abort()
            raise

    @property
    def directory(self) -> Path:
        """Where side files (log, provenance) go: the temporary dataset dir, or beside."""
        return self.tmp if self.fmt == "native" else self.npy_path.parent

    def ids_file(self) -> Path:
        """The ids written so far (flushed), for checks before the dataset is closed."""
        with naming_oserrors(self.path):
            self._ids.flush()
        return self.tmp / "ids.txt" if self.fmt == "native" else self._tmp_ids

    def add_source(self, info: dict[str, Any]) -> int:
        self.sources.append(info)
        return len(self.sources) - 1

    def append(
        self,
        features: np.ndarray,
        lengths: np.ndarray,
        ids: list[str],
        gc: np.ndarray | None = None,
        ambiguous: np.ndarray | None = None,
        sources: np.ndarray | int = -1,
    ) -> None:
        """Append ``n`` rows: features (n x F), lengths (n,), ids (n), optional columns."""
        n = features.shape[0]
        if len(ids) != n or lengths.shape != (n,):
            raise ValueError(f"append: {n} feature rows, {len(ids)} ids, {lengths.shape} lengths")
        if n == 0:
            return
        text = ("\n".join(ids) + "\n").encode()
        self._ids_digest.update(text)
        with naming_oserrors(self.path):
            self._ids.write(text)
            if self.fmt == "native":
                self._features.write(features)
                self._lengths.write(lengths)
                self._ambiguous.write(np.full(n, -1, np.int64) if ambiguous is None else ambiguous)
                self._gc.write(np.full(n, np.nan, np.float32) if gc is None else gc)
                self._sources.write(np.broadcast_to(np.asarray(sources, np.int32), (n,)))
            else:
                block = np.empty((n, 1 + self.layout.n_features), np.float32)
                block[:, 0] = lengths
                block[:, 1:] = features
                self._matrix.write(block)
        self.n_rows += n

    def finish(self, provenance: dict[str, Any] | None = None) -> list[tuple[Path, Path]]:
        """Complete every file under its temporary name; returns the (temporary, final)
        moves that :func:`commit_outputs` makes."""
        manifest = {
            "format": FORMAT_NAME,
            "schema_version": SCHEMA_VERSION,
            "kmervae_version": __version__,
            "n_rows": self.n_rows,
            "n_features": self.layout.n_features,
            "dtype": self.dtype,
            "layout": self.layout.to_json(),
            "ids_sha256": self._ids_digest.hexdigest(),
            "sources": self.sources,
            "provenance": provenance or {},
        }
        text = json.dumps(manifest, indent=2) + "\n"
        with naming_oserrors(self.path):
            self._ids.close()
            if self.fmt == "native":
                for writer in (
                    self._features,
                    self._lengths,
                    self._ambiguous,
                    self._gc,
                    self._sources,
                ):
                    writer.close()
                (self.tmp / "manifest.json").write_text(text)
                return [(self.tmp, self.path)]
            self._matrix.close()
            self._tmp_side.write_text(text)
        return [
            (self._tmp_ids, self.ids_final),
            (self._tmp_npy, self.npy_path),
            (self._tmp_side, self._side_final),
        ]

    def close(self, provenance: dict[str, Any] | None = None) -> Path:
        """Finish the files and move them into place together; returns the dataset path."""
        commit_outputs(self.finish(provenance))
        return self.path

    def abort(self) -> None:
        """Discard everything written so far (also after :meth:`finish`, before the commit)."""
        with contextlib.suppress(OSError):  # a full disk fails the flush of close() again
            if hasattr(self, "_ids"):
                self._ids.close()
        if self.fmt == "native":
            for name in ("_features", "_lengths", "_ambiguous", "_gc", "_sources"):
                writer = getattr(self, name, None)
                if writer is not None:
                    writer.abort()
            remove_path(self.tmp)
        else:
            if hasattr(self, "_matrix"):
                self._matrix.abort()
            for tmp in (self._tmp_npy, self._tmp_ids, self._tmp_side):
                remove_path(tmp)

    def __enter__(self) -> DatasetWriter:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is not None:
            self.abort()


def iter_row_blocks(n_rows: int, block_rows: int) -> Iterable[tuple[int, int]]:
    for start in range(0, n_rows, block_rows):
        yield start, min(start + block_rows, n_rows)
