"""The index protocol: one small interface every vector-store backend implements.

A *store* is a folder holding a backend's data and ``manifest.json``::

    manifest.json   format "kmervae-index", schema version, backend, dim, metric, n_rows,
                    schema (metadata column -> type), the model that made the embeddings
                    (fingerprint, path, config), backend parameters and version, and a
                    history: one entry per build/add with its inputs' checksums and the
                    provenance (kmervae version, command line)
    kmervae.log     the logs of the commands that wrote it (CLI)
    ...             the backend's files (``lance/`` for LanceDB, ``*.npy`` for exact)

Life cycle (build/add/search/save/open)::

    store = create_index(path, dim=384, schema={"length": "int64"}, backend="lance")
    store.add(ids, vectors, {"length": lengths})    # as many blocks as needed
    store.save(history)                              # index built, folder moved into place
    store = open_index(path)                         # any backend, from the manifest
    store.search(queries, k=10, where="length >= 5000")
    store.add(...); store.save(history)              # append, committed atomically

Every row has a 0-based ``row`` number (its position in the store, stable: rows are never
removed), an ``id`` (unique) and a float32 embedding of ``dim`` columns. Distances are
Euclidean (not squared). A new store appears only when :meth:`StoreBase.save` succeeds;
an ``add`` to an existing store becomes visible only when ``save`` rewrites the manifest.

A server backend (e.g. Milvus) fits by implementing the ``_``-methods of :class:`StoreBase`.
"""

from __future__ import annotations

import abc
import contextlib
import errno
import json
import logging
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from kmervae._version import __version__
from kmervae.errors import InputError, KmervaeError
from kmervae.index.filters import COLUMN_NAME, Filter, parse_filter
from kmervae.io.atomic import check_writable, remove_path, replace_path, temporary_name
from kmervae.io.ids import id_hashes
from kmervae.io.manifest import read_json_manifest
from kmervae.io.npy import first_bad_row

log = logging.getLogger(__name__)

FORMAT_NAME = "kmervae-index"
SCHEMA_VERSION = 1
METRIC = "euclidean"
#: names that are not metadata columns
RESERVED = ("id", "embedding", "row")
#: metadata column types and the NumPy dtype each is held in
COLUMN_TYPES: dict[str, Any] = {
    "int64": np.int64,
    "float32": np.float32,
    "float64": np.float64,
    "string": np.str_,
}


@dataclass
class SearchResult:
    """Nearest neighbours of ``n`` queries.

    Attributes
    ----------
    rows : int64 (n, k), store rows of the neighbours, nearest first; -1 pads a query with
        fewer than k matches (a filter that few rows pass).
    distances : float32 (n, k), Euclidean distances; +inf where ``rows`` is -1.
    """

    rows: np.ndarray
    distances: np.ndarray

    def __len__(self) -> int:
        return int(self.rows.shape[0])


def storage_error(exc: BaseException, path: Path) -> KmervaeError:
    """One line naming ``path`` for what a storage engine (the file system, LanceDB, FAISS)
    raised while writing it: a full disk, a vanished or read-only folder."""
    text = str(exc)
    if getattr(exc, "errno", None) == errno.ENOSPC or "No space left on device" in text:
        reason = "no space left on device"
    elif isinstance(exc, OSError) and exc.strerror:
        reason = exc.strerror[:1].lower() + exc.strerror[1:]
    else:
        # engines append their source location (", /…/writer.rs:258:9")
        reason = re.sub(r",\s*\S+\.rs:\d+:\d+$", "", text.strip().splitlines()[0] if text else "")
        reason = reason or type(exc).__name__
    where = getattr(exc, "filename", None)
    detail = f" ({where})" if where and str(where) != str(path) else ""
    return KmervaeError(f"{path}: {reason}{detail}")


@contextlib.contextmanager
def storage_errors(path: Path) -> Iterator[None]:
    """Turn what the storage engines raise while writing ``path`` (OSError, the
    RuntimeError of LanceDB and FAISS) into one line naming ``path``."""
    try:
        yield
    except (OSError, RuntimeError) as exc:
        raise storage_error(exc, path) from exc


def check_positive_params(params: Mapping[str, Any], names: Sequence[str]) -> None:
    """Refuse a parameter among ``names`` that is set but not an integer >= 1."""
    for name in names:
        value = params.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
            raise KmervaeError(f"{name} must be an integer >= 1, got {value!r}")


def check_partitions(params: Mapping[str, Any], n_rows: int | None, min_rows: int) -> None:
    """Refuse more IVF lists (``num_partitions``) than the ``n_rows`` rows to index, when
    the store is large enough (``ann_min_rows``, default ``min_rows``) to get lists."""
    parts = params.get("num_partitions")
    floor = params.get("ann_min_rows") or min_rows
    if parts is not None and n_rows is not None and n_rows >= floor and parts > n_rows:
        raise KmervaeError(
            f"num_partitions {parts} is more than the {n_rows} rows to index (one row a list "
            "at least)"
        )


def check_schema(schema: Mapping[str, str]) -> dict[str, str]:
    """Validate metadata column names and types; returns a plain dict."""
    out: dict[str, str] = {}
    for name, kind in schema.items():
        if name in RESERVED or not COLUMN_NAME.match(name):
            raise KmervaeError(
                f"column name {name!r} cannot be used (letters, digits and _ only; not one of "
                f"{', '.join(RESERVED)})"
            )
        if kind not in COLUMN_TYPES:
            raise KmervaeError(f"column {name}: unknown type {kind!r}")
        out[name] = kind
    return out


def read_manifest(path: Path) -> dict[str, Any]:
    """The manifest of the store at ``path`` (checked: format and schema version)."""
    return read_json_manifest(path / "manifest.json", FORMAT_NAME, SCHEMA_VERSION, "index store")


class _HashSet:
    """64-bit hashes of ids in sorted runs: membership in O(log n), 8 bytes per id."""

    def __init__(self) -> None:
        self.runs: list[np.ndarray] = []

    def hits(self, hashes: np.ndarray) -> np.ndarray:
        hit = np.zeros(len(hashes), bool)
        for run in self.runs:
            pos = np.searchsorted(run, hashes).clip(0, len(run) - 1)
            hit |= run[pos] == hashes
        return hit

    def insert(self, hashes: np.ndarray) -> None:
        self.runs.append(np.sort(hashes))
        if len(self.runs) > 8:
            self.runs = [np.sort(np.concatenate(self.runs))]


class StoreBase(abc.ABC):
    """What every backend shares: the manifest, the atomic life cycle, the checks.

    Subclasses set :attr:`backend` and implement ``_create_data``, ``_open_data``,
    ``_append``, ``_commit``, ``_rollback``, ``_search``, ``_take``, ``_find``,
    ``_iter_batches`` and ``_has_id``.

    Attributes
    ----------
    path : the store folder.
    dim : embedding columns.
    schema : metadata column -> type (``int64``, ``float32``, ``float64``, ``string``).
    manifest : the manifest as last committed (or being built).
    """

    backend: ClassVar[str] = ""

    def __init__(self) -> None:
        self.path = Path()
        self.data_dir = Path()  # where the data is written: a temporary folder while building
        self.dim = 0
        self.schema: dict[str, str] = {}
        self.manifest: dict[str, Any] = {}
        self.n_rows = 0
        self.n_committed = 0
        self.new = False
        self._ids = _HashSet()
        self._ids_loaded = False

    # -- creating and opening ----------------------------------------------------------
    @classmethod
    def create(
        cls,
        path: str | Path,
        *,
        dim: int,
        schema: Mapping[str, str] | None = None,
        model: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
        overwrite: bool = False,
    ) -> StoreBase:
        """Start a new, empty store at ``path`` (written under a temporary name until
        :meth:`save`)."""
        store = cls()
        store.path = Path(path)
        check_writable(store.path, overwrite)
        if dim < 1:
            raise KmervaeError(f"embedding dimension must be at least 1, got {dim}")
        cls.check_params(params or {}, dim=int(dim))
        store.dim = int(dim)
        store.schema = check_schema(schema or {})
        store.new = True
        store.data_dir = temporary_name(store.path)
        remove_path(store.data_dir)
        store.data_dir.mkdir()
        store.manifest = {
            "format": FORMAT_NAME,
            "schema_version": SCHEMA_VERSION,
            "backend": cls.backend,
            "dim": store.dim,
            "metric": METRIC,
            "n_rows": 0,
            "schema": store.schema,
            "model": dict(model or {}),
            "params": dict(params or {}),
            "history": [],
        }
        store._ids_loaded = True
        try:
            with storage_errors(store.path):
                store._create_data()
        except BaseException:
            store._close()
            remove_path(store.data_dir)
            raise
        return store

    @classmethod
    def open(cls, path: str | Path) -> StoreBase:
        """Open a committed store for search and add."""
        store = cls()
        store.path = Path(path)
        store.data_dir = store.path
        store.manifest = read_manifest(store.path)
        if store.manifest.get("backend") != cls.backend:
            raise InputError(f"{path}: a {store.manifest.get('backend')} store, not {cls.backend}")
        try:
            store.dim = int(store.manifest["dim"])
            store.n_rows = store.n_committed = int(store.manifest["n_rows"])
            store.schema = check_schema(store.manifest.get("schema", {}))
        except (KeyError, ValueError, TypeError) as exc:
            raise InputError(f"{path}/manifest.json: bad dim, n_rows or schema ({exc})") from None
        store._open_data()
        return store

    @classmethod
    def check_params(
        cls, params: Mapping[str, Any], *, dim: int, n_rows: int | None = None
    ) -> None:
        """Refuse backend parameters that cannot work, before anything is written:
        ``n_rows``, when known, is the number of rows the store will hold."""
        return None

    # -- the protocol ------------------------------------------------------------------
    @property
    def model_fingerprint(self) -> str:
        """SHA-256 of the model weights that made the embeddings ('' when unknown)."""
        return str(self.manifest.get("model", {}).get("fingerprint", ""))

    @property
    def columns(self) -> dict[str, str]:
        """Every column a filter or :meth:`take` may name: ``id``, ``row`` and metadata."""
        return {"id": "string", "row": "int64", **self.schema}

    def __len__(self) -> int:
        return self.n_rows

    def add(
        self, ids: Sequence[str], vectors: np.ndarray, columns: Mapping[str, np.ndarray]
    ) -> None:
        """Append ``n`` rows (visible to search once :meth:`save` commits them).

        Parameters
        ----------
        ids : n unique ids, none already in the store.
        vectors : float32 (n, dim).
        columns : one (n,) array per metadata column of the schema.

        Raises
        ------
        KmervaeError
            Dimension mismatch, missing or extra columns, duplicate or empty ids,
            non-finite embeddings.
        """
        vectors = np.asarray(vectors)
        n = len(ids)
        if vectors.ndim != 2 or vectors.shape[1] != self.dim:
            raise KmervaeError(
                f"dimension mismatch: embeddings of shape {vectors.shape}, the store holds "
                f"{self.dim}-dimensional vectors"
            )
        if vectors.shape[0] != n:
            raise KmervaeError(f"{n} ids for {vectors.shape[0]} embeddings")
        if set(columns) != set(self.schema):
            raise KmervaeError(
                f"columns {sorted(columns)} do not match the store's {sorted(self.schema)}"
            )
        row = first_bad_row(vectors)
        if row >= 0:
            raise InputError(f"embedding of {ids[row]!r} is not finite")
        self._check_new_ids(list(ids))
        cols: dict[str, np.ndarray] = {}
        for name, kind in self.schema.items():
            values = np.asarray(columns[name])
            if values.shape != (n,):
                raise KmervaeError(f"column {name}: shape {values.shape}, expected ({n},)")
            cols[name] = values.astype(COLUMN_TYPES[kind]) if kind != "string" else values
        with storage_errors(self.path):
            self._append(list(ids), np.ascontiguousarray(vectors, np.float32), cols, self.n_rows)
        self.n_rows += n

    def save(self, history: Mapping[str, Any] | None = None) -> Path:
        """Commit: build the index structures, write the manifest, move a new store into
        place. ``history`` (inputs, provenance) is appended to the manifest's history."""
        with storage_errors(self.path):
            params = self._commit()
        manifest = dict(self.manifest)
        manifest["n_rows"] = self.n_rows
        manifest["params"] = {**manifest.get("params", {}), **params}
        manifest["kmervae_version"] = __version__
        if history is not None:
            manifest["history"] = [*manifest.get("history", []), dict(history)]
        text = json.dumps(manifest, indent=2) + "\n"
        target = self.data_dir / "manifest.json"
        tmp = temporary_name(target)
        try:
            with storage_errors(self.path):
                tmp.write_text(text)
                tmp.replace(target)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        self.manifest = manifest
        self.n_committed = self.n_rows
        if self.new:
            replace_path(self.data_dir, self.path)
            self.data_dir = self.path
            self.new = False
            self._reopen()
        return self.path

    def abort(self) -> None:
        """Discard everything added since the last commit (a new store: all of it)."""
        if self.new:
            self._close()
            remove_path(self.data_dir)
            return
        self.n_rows = self.n_committed
        try:
            self._rollback()
        except Exception as exc:  # e.g. the disk is still full: the manifest is the commit
            log.warning(
                "%s: rows of the failed add stay on disk, unused, until the next add (%s)",
                self.path,
                storage_error(exc, self.path),
            )

    def search(
        self, queries: np.ndarray, k: int, *, where: str | Filter | None = None
    ) -> SearchResult:
        """The ``k`` nearest rows of each query (Euclidean), optionally among those that
        pass a metadata filter.

        Parameters
        ----------
        queries : float32 (n, dim).
        k : neighbours per query, at most the store's size.
        where : a filter such as ``"length >= 5000"`` (see :mod:`kmervae.index.filters`).

        Returns
        -------
        SearchResult
            rows int64 (n, k) and distances float32 (n, k), nearest first; -1 / inf pad
            queries with fewer than k matches.
        """
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        if queries.ndim == 1:
            queries = queries[None, :]
        if queries.ndim != 2 or queries.shape[1] != self.dim:
            raise KmervaeError(
                f"dimension mismatch: queries of shape {queries.shape}, the store holds "
                f"{self.dim}-dimensional vectors"
            )
        self.check_k(k)
        flt = self.parse_where(where)
        if len(queries) == 0:
            return SearchResult(np.empty((0, k), np.int64), np.empty((0, k), np.float32))
        return self._search(queries, k, flt)

    def check_k(self, k: int) -> None:
        if k < 1:
            raise KmervaeError(f"k must be at least 1, got {k}")
        if k > self.n_committed:
            raise KmervaeError(f"k = {k} is larger than the store ({self.n_committed} contigs)")

    def parse_where(self, where: str | Filter | None) -> Filter | None:
        if where is None or isinstance(where, Filter):
            return where
        return parse_filter(where, self.columns)

    def lookup(self, ids: Sequence[str]) -> np.ndarray:
        """int64 (n,) rows of ``ids``; raises naming the first id not in the store."""
        rows = self._find(list(ids))
        missing = np.flatnonzero(rows < 0)
        if len(missing):
            more = f" ({len(missing) - 1} more)" if len(missing) > 1 else ""
            raise InputError(f"id {ids[int(missing[0])]!r} is not in {self.path}{more}")
        return rows

    def take(self, rows: np.ndarray, columns: Sequence[str]) -> dict[str, np.ndarray]:
        """Columns of the given rows: ``embedding`` float32 (n, dim), ``id`` (n,) str,
        metadata columns (n,) of their dtype. ``rows`` int64 (n,), each in [0, N)."""
        rows = np.asarray(rows, dtype=np.int64)
        unknown = [c for c in columns if c not in self.columns and c != "embedding"]
        if unknown:
            raise KmervaeError(f"unknown column {unknown[0]!r} (columns: {sorted(self.columns)})")
        if len(rows) and (rows.min() < 0 or rows.max() >= self.n_committed):
            raise KmervaeError(f"row out of range [0, {self.n_committed})")
        return self._take(rows, list(columns))

    def iter_batches(
        self, columns: Sequence[str], batch_rows: int = 65536, start: int = 0, stop: int = -1
    ) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
        """Rows ``start:stop`` (stop -1: all) in order, as (first row, columns) blocks."""
        stop = self.n_committed if stop < 0 else min(stop, self.n_committed)
        for first in range(start, stop, batch_rows):
            last = min(first + batch_rows, stop)
            yield first, self._take(np.arange(first, last, dtype=np.int64), list(columns))

    def iter_ids(self, batch_rows: int = 65536) -> Iterator[list[str]]:
        """Ids in row order, in blocks."""
        for _, block in self.iter_batches(["id"], batch_rows):
            yield [str(i) for i in block["id"].tolist()]

    def info(self) -> dict[str, Any]:
        """Counts, schema, model and history, for ``kmervae index info``."""
        model = self.manifest.get("model", {})
        return {
            "path": str(self.path),
            "backend": self.backend,
            "n_rows": self.n_committed,
            "dim": self.dim,
            "metric": self.manifest.get("metric", METRIC),
            "schema": {"id": "string", "embedding": f"float32[{self.dim}]", **self.schema},
            "model": {k: model.get(k) for k in ("fingerprint", "path", "backend") if k in model},
            "params": self.manifest.get("params", {}),
            "history": [
                {k: h.get(k) for k in ("action", "n_rows", "inputs") if k in h}
                for h in self.manifest.get("history", [])
            ],
        }

    def __enter__(self) -> StoreBase:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is not None:
            self.abort()

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({str(self.path)!r}, rows={self.n_committed}, dim={self.dim}, "
            f"model={self.model_fingerprint[:12] or '?'})"
        )

    # -- duplicate ids, with memory of 8 bytes per row ---------------------------------
    def _check_new_ids(self, ids: list[str]) -> None:
        if any(not i or "\n" in i or "\t" in i for i in ids):
            bad = next(i for i in ids if not i or "\n" in i or "\t" in i)
            raise InputError(f"id {bad!r}: ids must be non-empty, without tabs or newlines")
        if not self._ids_loaded:
            for block in self.iter_ids():
                self._ids.insert(id_hashes(block))
            self._ids_loaded = True
        hashes = id_hashes(ids)
        order = np.argsort(hashes, kind="stable")
        same = hashes[order][1:] == hashes[order][:-1]
        for j in np.flatnonzero(same):
            a, b = ids[order[j]], ids[order[j + 1]]
            if a == b:
                raise InputError(f"duplicate id {a!r} among the embeddings being added")
        for j in np.flatnonzero(self._ids.hits(hashes)):
            if self._has_id(ids[j]):
                raise InputError(f"duplicate id {ids[j]!r}: it is already in the store")
        self._ids.insert(hashes)

    # -- what a backend implements -----------------------------------------------------
    @abc.abstractmethod
    def _create_data(self) -> None:
        """Backend: create (or open) the data files."""

    @abc.abstractmethod
    def _open_data(self) -> None:
        """Backend: create (or open) the data files."""

    def _reopen(self) -> None:
        self._open_data()

    def _close(self) -> None:  # noqa: B027 - optional hook, a no-op by default
        """Release open handles (before the data folder is removed)."""

    @abc.abstractmethod
    def _append(
        self, ids: list[str], vectors: np.ndarray, columns: dict[str, np.ndarray], first: int
    ) -> None:
        """Backend: stage rows (visible only after :meth:`_commit`)."""

    @abc.abstractmethod
    def _commit(self) -> dict[str, Any]:
        """Make appended rows durable and indexed; returns parameters for the manifest."""

    @abc.abstractmethod
    def _rollback(self) -> None:
        """Backend: drop rows staged since the last commit."""

    @abc.abstractmethod
    def _search(self, queries: np.ndarray, k: int, flt: Filter | None) -> SearchResult:
        """Backend: the ``k`` nearest committed rows of each query."""

    @abc.abstractmethod
    def _take(self, rows: np.ndarray, columns: list[str]) -> dict[str, np.ndarray]:
        """Backend: the given columns of committed rows."""

    @abc.abstractmethod
    def _find(self, ids: list[str]) -> np.ndarray:
        """Backend: committed rows of ``ids`` (int64, -1 where absent)."""

    @abc.abstractmethod
    def _has_id(self, ident: str) -> bool:
        """Whether ``ident`` was added (committed or not)."""


def backends() -> dict[str, type[StoreBase]]:
    """Backend name -> class (imported here, lazily, so optional engines stay optional)."""
    from kmervae.index.exact import ExactStore
    from kmervae.index.faiss_store import FaissStore
    from kmervae.index.lance import LanceStore

    return {"lance": LanceStore, "faiss": FaissStore, "exact": ExactStore}


def create_index(path: str | Path, *, backend: str = "lance", **kwargs: Any) -> StoreBase:
    """Start a new store with ``backend`` (``lance`` default, ``exact``); see
    :meth:`StoreBase.create` for the arguments."""
    table = backends()
    if backend not in table:
        raise KmervaeError(f"unknown index backend {backend!r} (use one of {', '.join(table)})")
    return table[backend].create(path, **kwargs)


def open_index(path: str | Path) -> StoreBase:
    """Open a store written by :func:`create_index`, whatever its backend."""
    manifest = read_manifest(Path(path))
    table = backends()
    name = manifest.get("backend")
    if name not in table:
        raise InputError(f"{path}: unknown index backend {name!r}")
    return table[str(name)].open(path)
