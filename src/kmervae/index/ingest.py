"""From embedding stores (``kmervae embed``) to an index store: build and add, streamed.

Every row gets its id, its embedding (mu, float32), ``length`` (int64), ``gc`` (float32,
NaN when unknown), ``source`` (the profiled file's name, e.g. ``marine_1.fa``) and
``source_path`` (its path as it was given to ``kmervae profile``), plus any extra columns of a
``--columns`` TSV keyed by id. For a dataset that records no files (a legacy matrix), both
name the dataset. Stores built before ``source_path`` existed keep their schema: rows added
to them get no ``source_path``. Embeddings of different models never share a store: the
model fingerprint recorded by ``kmervae embed`` must match.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from kmervae.errors import InputError, KmervaeError
from kmervae.index.filters import COLUMN_NAME
from kmervae.index.protocol import RESERVED, StoreBase, backends, create_index, open_index
from kmervae.io.embeddings import Embeddings, RowReader, open_embeddings, rechunk_ids
from kmervae.io.npy import first_bad_row
from kmervae.provenance import file_sha256

log = logging.getLogger(__name__)

#: the metadata every store has
BASE_SCHEMA = {"length": "int64", "gc": "float32", "source": "string", "source_path": "string"}
BLOCK_ROWS = 65536


@dataclass
class ExtraColumns:
    """Extra per-contig columns read from a TSV (header line; first column the id).

    Attributes
    ----------
    path : the TSV.
    schema : column -> ``float64`` (numbers; NaN where empty or where the TSV lacks an
        id) or ``string`` ('' where missing).
    values : column -> (m,) array over the TSV's rows.
    row_of : id -> TSV row.
    """

    path: Path
    schema: dict[str, str]
    values: dict[str, np.ndarray]
    row_of: dict[str, int]

    def for_ids(self, ids: Sequence[str]) -> dict[str, np.ndarray]:
        """(n,) arrays for ``ids``: NaN (numbers) or '' (text) where the TSV lacks the id."""
        rows = np.array([self.row_of.get(i, -1) for i in ids], dtype=np.int64)
        missing = rows < 0
        out: dict[str, np.ndarray] = {}
        for name, kind in self.schema.items():
            col = self.values[name]
            picked = col[np.where(missing, 0, rows)] if len(col) else np.empty(len(ids), col.dtype)
            if missing.any():
                if kind == "string":
                    picked = picked.astype(object)
                    picked[missing] = ""
                else:
                    picked = picked.astype(np.float64)
                    picked[missing] = np.nan
            out[name] = picked
        return out


def read_columns_tsv(path: str | Path) -> ExtraColumns:
    """Read a ``--columns`` TSV: a header, then one line per contig, the id first.

    Raises
    ------
    InputError
        Unreadable file, fewer than two columns, a column name that cannot be used in a
        filter, a repeated id.
    """
    import pyarrow as pa
    import pyarrow.csv as pacsv

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such columns file")
    try:
        table = pacsv.read_csv(
            path,
            parse_options=pacsv.ParseOptions(delimiter="\t"),
            convert_options=pacsv.ConvertOptions(strings_can_be_null=False),
        )
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputError(f"{path}: not a readable TSV ({exc})") from None
    if table.num_columns < 2:
        raise InputError(f"{path}: expected a header 'id<TAB>column…' and at least one column")
    names = table.column_names
    for name in names[1:]:
        if name in RESERVED or name in BASE_SCHEMA or not COLUMN_NAME.match(name):
            raise InputError(
                f"{path}: column {name!r} cannot be used (letters, digits and _ only; not "
                f"one of {', '.join([*RESERVED, *BASE_SCHEMA])})"
            )
    ids = [str(i) for i in table.column(0).to_pylist()]
    row_of: dict[str, int] = {}
    for row, ident in enumerate(ids):
        if ident in row_of:
            raise InputError(f"{path}: id {ident!r} appears twice")
        row_of[ident] = row
    schema: dict[str, str] = {}
    values: dict[str, np.ndarray] = {}
    for name in names[1:]:
        col = table.column(name)
        if pa.types.is_integer(col.type) or pa.types.is_floating(col.type):
            schema[name] = "float64"
            values[name] = col.cast(pa.float64()).to_numpy(zero_copy_only=False)
        else:
            schema[name] = "string"
            values[name] = np.array(
                ["" if v is None else str(v) for v in col.to_pylist()], dtype=object
            )
    listed = ", ".join(f"{name} ({kind})" for name, kind in schema.items())
    log.info("%s: %d rows, columns %s", path, len(ids), listed or "none")
    return ExtraColumns(path, schema, values, row_of)


def _source_files(emb: Embeddings) -> tuple[list[str], list[str]]:
    """(names, paths) of the files the embeddings' dataset was profiled from, in the order
    of its ``sources`` column (empty when the dataset or its list is gone)."""
    dataset = emb.manifest.get("dataset", {})
    path = Path(str(dataset.get("path", "")))
    try:
        manifest = json.loads((path / "manifest.json").read_text())
        sources = [s for s in manifest.get("sources", []) if isinstance(s, dict)]
    except (OSError, ValueError, AttributeError):
        return [], []
    names = [str(s.get("name") or Path(str(s.get("path", "?"))).name) for s in sources]
    paths = [str(s.get("path") or s.get("name", "?")) for s in sources]
    return names, paths


def open_embedding_input(path: str | Path) -> Embeddings:
    """Open an embedding store given to ``index build/add``; a bare ``.npy`` is refused
    (it has no ids)."""
    path = Path(path)
    if path.is_file() and path.suffix == ".npy":
        raise InputError(
            f"{path}: embeddings without ids; give the store folder 'kmervae embed' wrote "
            "(embeddings.npy with ids.txt and manifest.json)"
        )
    if not path.exists():
        raise InputError(f"{path}: no such embedding store")
    emb = open_embeddings(path)
    if emb.n_rows == 0:
        raise InputError(f"{path}: an embedding store without rows")
    return emb


def check_model(emb: Embeddings, fingerprint: str, where: str) -> None:
    """Refuse embeddings whose model fingerprint differs from ``fingerprint``."""
    theirs = emb.model_fingerprint
    if theirs != fingerprint:
        raise InputError(
            f"{emb.path}: embeddings of model {theirs[:12] or 'unknown'} cannot join {where} "
            f"of model {fingerprint[:12] or 'unknown'} (different spaces; re-embed with the "
            "same model)"
        )


def iter_store_rows(
    emb: Embeddings, extra: ExtraColumns | None, digest: Any, batch_rows: int = BLOCK_ROWS
) -> Iterator[tuple[list[str], np.ndarray, dict[str, np.ndarray]]]:
    """(ids, float32 (n, dim) embeddings, metadata columns) blocks of an embedding store;
    ``digest`` (a hashlib object) is fed the embedding bytes."""
    names, paths = _source_files(emb)
    dataset = Path(str(emb.manifest.get("dataset", {}).get("path", emb.path)))
    reader = RowReader(emb.path / "embeddings.npy", (emb.n_rows, emb.latent))
    try:
        yield from _blocks(
            emb,
            extra,
            digest,
            batch_rows,
            reader,
            np.array([*names, dataset.name], dtype=object),
            np.array([*paths, str(dataset)], dtype=object),
        )
    finally:
        reader.close()


def _blocks(
    emb: Embeddings,
    extra: ExtraColumns | None,
    digest: Any,
    batch_rows: int,
    reader: RowReader,
    names: np.ndarray,
    paths: np.ndarray,
) -> Iterator[tuple[list[str], np.ndarray, dict[str, np.ndarray]]]:
    """``names`` and ``paths``: (S + 1,) object arrays, the source files and, last, the
    dataset (for a row without a known source)."""
    start = 0
    for ids in rechunk_ids(emb.iter_ids(), batch_rows):
        stop = start + len(ids)
        mu = reader.read(start, stop)
        bad = first_bad_row(mu)
        if bad >= 0:
            raise InputError(
                f"{emb.path}: the embedding of {ids[bad]!r} (row {start + bad + 1}) is not "
                "finite (NaN or inf)"
            )
        digest.update(mu.tobytes())
        n = stop - start
        lengths = (
            np.asarray(emb.column("lengths")[start:stop])
            if "lengths" in emb.columns
            else np.full(n, -1, np.int64)
        )
        gc = (
            np.asarray(emb.column("gc")[start:stop])
            if "gc" in emb.columns
            else np.full(n, np.nan, np.float32)
        )
        last = len(names) - 1
        if "sources" in emb.columns:
            idx = np.asarray(emb.column("sources")[start:stop])
            idx = np.where((idx >= 0) & (idx < last), idx, last)
        else:
            idx = np.full(n, last)
        cols = {"length": lengths, "gc": gc, "source": names[idx], "source_path": paths[idx]}
        if extra is not None:
            cols.update(extra.for_ids(ids))
        yield ids, mu, cols
        start = stop


@dataclass
class IngestSummary:
    """What a build or add did."""

    path: Path
    n_added: int
    n_rows: int


def _input_record(emb: Embeddings, digest: str) -> dict[str, Any]:
    return {
        "path": str(emb.path.resolve()),
        "n_rows": emb.n_rows,
        "ids_sha256": emb.manifest.get("ids_sha256"),
        "embeddings_sha256": digest,
        "model_fingerprint": emb.model_fingerprint,
    }


def _ingest(
    store: StoreBase,
    inputs: Sequence[Embeddings],
    extra: ExtraColumns | None,
    progress: Callable[[int], None] | None,
) -> tuple[int, list[dict[str, Any]]]:
    n = 0
    records = []
    for emb in inputs:
        if emb.latent != store.dim:
            raise InputError(
                f"{emb.path}: dimension mismatch: {emb.latent}-dimensional embeddings, the "
                f"store holds {store.dim}"
            )
        digest = hashlib.sha256()
        for ids, mu, all_cols in iter_store_rows(emb, extra, digest):
            cols = {k: v for k, v in all_cols.items() if k in store.schema}  # older stores
            try:
                store.add(ids, mu, cols)
            except InputError as exc:  # a duplicate id, …: name the file it came from
                raise InputError(f"{emb.path}: {exc}") from None
            n += len(ids)
            if progress is not None:
                progress(len(ids))
        records.append(_input_record(emb, digest.hexdigest()))
    return n, records


def _extra_record(extra: ExtraColumns | None) -> dict[str, Any] | None:
    if extra is None:
        return None
    return {"path": str(extra.path.resolve()), "sha256": file_sha256(extra.path)}


def build_store(
    inputs: Sequence[str | Path],
    output: str | Path,
    *,
    backend: str = "lance",
    columns_tsv: str | Path | None = None,
    params: dict[str, Any] | None = None,
    provenance: dict[str, Any] | None = None,
    overwrite: bool = False,
    progress: Callable[[int], None] | None = None,
    on_store: Callable[[StoreBase], None] | None = None,
) -> IngestSummary:
    """Build a new index store from one or more embedding stores of one model.

    Parameters
    ----------
    inputs : embedding store folders written by ``kmervae embed``.
    output : the store folder to create (appears only when complete).
    backend : ``lance`` (default) or ``exact``.
    columns_tsv : extra per-contig columns, a TSV keyed by id.
    params : backend parameters (see :mod:`kmervae.index.lance`).
    provenance : recorded in the manifest's history.
    on_store : called with the store once its temporary folder exists (e.g. for a log).

    Raises
    ------
    InputError
        An input without ids, inputs of different models or dimensions, duplicate ids.
    """
    if not inputs:
        raise KmervaeError("no embedding stores given")
    embs = [open_embedding_input(p) for p in inputs]
    for emb in embs[1:]:
        check_model(emb, embs[0].model_fingerprint, f"{embs[0].path}")
    extra = read_columns_tsv(columns_tsv) if columns_tsv is not None else None
    schema = {**BASE_SCHEMA, **(extra.schema if extra else {})}
    model = dict(embs[0].manifest.get("model", {}))
    store_class = backends().get(backend)
    if store_class is not None:  # an unknown backend is named by create_index
        store_class.check_params(
            params or {}, dim=embs[0].latent, n_rows=sum(e.n_rows for e in embs)
        )
    with create_index(
        output,
        backend=backend,
        dim=embs[0].latent,
        schema=schema,
        model=model,
        params=params,
        overwrite=overwrite,
    ) as store:
        if on_store is not None:
            on_store(store)
        n, records = _ingest(store, embs, extra, progress)
        history = {
            "action": "build",
            "n_rows": n,
            "inputs": records,
            "columns": _extra_record(extra),
            "provenance": provenance or {},
        }
        path = store.save(history)
    log.info("built %s: %d rows, %d dimensions, backend %s", path, n, store.dim, backend)
    return IngestSummary(path, n, n)


def add_to_store(
    store_path: str | Path,
    inputs: Sequence[str | Path],
    *,
    columns_tsv: str | Path | None = None,
    provenance: dict[str, Any] | None = None,
    progress: Callable[[int], None] | None = None,
) -> IngestSummary:
    """Append embedding stores to an existing index store (committed only when all rows
    were added; on any error the store is left as it was).

    Raises
    ------
    InputError
        An input without ids, of another model or dimension; an id already in the store;
        extra columns that differ from the store's.
    """
    store = open_index(store_path)
    embs = [open_embedding_input(p) for p in inputs]
    for emb in embs:
        check_model(emb, store.model_fingerprint, f"the store {store.path}")
        if emb.latent != store.dim:
            raise InputError(
                f"{emb.path}: dimension mismatch: {emb.latent}-dimensional embeddings, the "
                f"store holds {store.dim}"
            )
    extra = read_columns_tsv(columns_tsv) if columns_tsv is not None else None
    wanted = {k: v for k, v in store.schema.items() if k not in BASE_SCHEMA}
    have = extra.schema if extra is not None else {}
    if set(have) != set(wanted):
        raise InputError(
            f"the store has extra columns {sorted(wanted) or 'none'}; columns_tsv gives "
            f"{sorted(have) or 'none'}"
        )
    with store:
        n, records = _ingest(store, embs, extra, progress)
        history = {
            "action": "add",
            "n_rows": n,
            "inputs": records,
            "columns": _extra_record(extra),
            "provenance": provenance or {},
        }
        store.save(history)
    log.info("added %d rows to %s (now %d)", n, store.path, len(store))
    return IngestSummary(store.path, n, len(store))
