"""Queries against a store: by contig id, by embeddings, or by new sequences; TSV output.

Searches go through :func:`kmervae.distributed.fanout.search_blocks`, which runs the same
block function in this process or on Dask workers.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from kmervae.errors import InputError, KmervaeError
from kmervae.index.protocol import SearchResult, StoreBase
from kmervae.io.npy import first_bad_row

log = logging.getLogger(__name__)

TSV_HEADER = ("query", "rank", "neighbour", "distance", "length")


def exclude_self(result: SearchResult, self_rows: np.ndarray, k: int) -> SearchResult:
    """Drop each query's own row from k + 1 neighbours (or the farthest, when the query's
    row was not among them: an exact duplicate can outrank it).

    Parameters
    ----------
    result : rows int64 and distances float32, (n, k + 1).
    self_rows : int64 (n,), the row of each query.

    Returns
    -------
    SearchResult with (n, k) arrays.
    """
    rows, dist = result.rows, result.distances
    drop = rows == self_rows[:, None]
    none = ~drop.any(axis=1)
    drop[none, -1] = True
    first = np.argmax(drop, axis=1)
    drop = np.zeros_like(drop)
    drop[np.arange(len(rows)), first] = True
    keep = ~drop
    n = rows.shape[0]
    return SearchResult(rows[keep].reshape(n, k), dist[keep].reshape(n, k))


def search_by_ids(
    store: StoreBase,
    ids: Sequence[str],
    k: int,
    *,
    where: str | None = None,
    client: Any = None,
) -> SearchResult:
    """Neighbours of contigs already in the store (each excluding itself).

    Returns
    -------
    SearchResult, (len(ids), k).

    Raises
    ------
    InputError
        An id not in the store; k not smaller than the store.
    """
    from kmervae.distributed.fanout import search_blocks

    if k >= len(store):
        raise KmervaeError(
            f"k = {k} is larger than the store allows for queries by id "
            f"({len(store)} contigs, one of them the query itself)"
        )
    rows = store.lookup(list(ids))
    vectors = store.take(rows, ["embedding"])["embedding"]
    found = search_blocks(store, vectors, k + 1, where=where, client=client)
    return exclude_self(found, rows, k)


def embed_fasta(
    fasta: str | Path, model: str | Path, store: StoreBase, threads: int | None = None
) -> tuple[list[str], np.ndarray]:
    """Profile and embed new sequences in a temporary folder (removed afterwards).

    Returns
    -------
    (ids, mu) : record ids and float32 (n, latent) embeddings.

    Raises
    ------
    InputError
        The model is not the one that made the store's embeddings.
    """
    from kmervae.io.embeddings import open_embeddings
    from kmervae.kmers.profile import profile_fasta
    from kmervae.model.embed import embed_profiles, load_encoder

    encoder = load_encoder(model, device="cpu", threads=threads)
    if store.model_fingerprint and encoder.fingerprint != store.model_fingerprint:
        raise InputError(
            f"{model}: model {encoder.fingerprint[:12]} is not the model of the store "
            f"({store.model_fingerprint[:12]}); its embeddings live in another space"
        )
    with tempfile.TemporaryDirectory(prefix=".kmervae-search-") as tmp:
        profiles = Path(tmp) / "profiles"
        profile_fasta([fasta], profiles, threads=threads or 1)
        check_kmers(fasta, profiles, encoder.config.ks)
        out = Path(tmp) / "embeddings"
        embed_profiles(encoder, profiles, out, threads=threads, device="cpu")
        emb = open_embeddings(out)
        names, mu = emb.ids(), np.array(emb.mu, dtype=np.float32)
    check_finite_queries(fasta, names, mu)
    return names, mu


def check_kmers(fasta: str | Path, profiles: Path, ks: Sequence[int]) -> None:
    """Refuse records of ``fasta`` (profiled into ``profiles``) without a single k-mer of
    A/C/G/T for one of the model's ``ks``: empty records, runs of N, records shorter than
    k. Their embedding would say nothing about them."""
    from kmervae.io.dataset import open_dataset

    ds = open_dataset(profiles)
    empty = np.zeros(ds.n_rows, bool)
    missing_k = np.zeros(ds.n_rows, np.int64)
    for start in range(0, ds.n_rows, 65536):
        block = np.asarray(ds.features[start : start + 65536], dtype=np.float32)
        for k in sorted(ks, reverse=True):  # the largest k is the first to go missing
            none = block[:, ds.layout.group_slice(k)].sum(axis=1) <= 0
            new = none & ~empty[start : start + len(block)]
            missing_k[start : start + len(block)][new] = k
            empty[start : start + len(block)] |= none
    if not empty.any():
        return
    bad = np.flatnonzero(empty)
    first = int(bad[0])
    ident = ds.ids()[first]
    length = int(ds.lengths(first, first + 1)[0])
    more = f"; {len(bad) - 1} more record(s) like it" if len(bad) > 1 else ""
    k = int(missing_k[first])
    raise InputError(
        f"{fasta}: record {ident!r} (record {first + 1}, {length} bp) has no {k}-mer of "
        f"A/C/G/T bases, so it has no embedding{more}"
    )


def check_finite_queries(source: str | Path, names: Sequence[str], x: np.ndarray) -> None:
    """Refuse a query row with NaN or inf: it has no neighbours, whatever the filter."""
    row = first_bad_row(x)
    if row >= 0:
        raise InputError(
            f"{source}: query {names[row]!r} (row {row + 1}) is not finite (NaN or inf)"
        )


def check_hit_columns(store: StoreBase, columns: Sequence[str]) -> None:
    """Refuse a column of ``search --columns`` that the store does not have (one line
    naming the store and the columns it has)."""
    unknown = [c for c in columns if c not in store.schema]
    if unknown:
        raise InputError(
            f"{store.path}: no column {unknown[0]!r} (columns: {', '.join(store.schema)})"
        )


def search_record(
    store: StoreBase, provenance: dict[str, Any], columns: Sequence[str] = ()
) -> dict[str, Any]:
    """What the sidecar of a hits TSV records (see :func:`kmervae.provenance.sidecar_path`):
    its columns, the store searched and the provenance."""
    return {
        "kind": "search hits",
        "columns": [*TSV_HEADER, *hit_columns(columns)],
        "store": {
            "path": str(store.path.resolve()),
            "n_rows": store.n_committed,
            "model_fingerprint": store.model_fingerprint or None,
        },
        "provenance": provenance,
    }


def hit_columns(columns: Sequence[str]) -> list[str]:
    """The store columns added to the hits after the fixed ones (``length`` is one already)."""
    return [c for c in dict.fromkeys(columns) if c not in TSV_HEADER]


def write_search_tsv(
    fh: TextIO,
    store: StoreBase,
    query_ids: Sequence[str],
    result: SearchResult,
    columns: Sequence[str] = (),
) -> int:
    """Write a header line, then ``query, rank, neighbour, distance, length`` and the store
    ``columns`` of each hit (rank from 1; padded entries skipped); returns the number of
    hits written. A missing text value is written as an empty cell."""
    extra = hit_columns(columns)
    valid = result.rows >= 0
    rows = np.unique(result.rows[valid])
    names: dict[int, tuple[str, ...]] = {}
    if len(rows):
        has_length = "length" in store.schema
        got = store.take(rows, ["id", *(["length"] if has_length else []), *extra])
        lengths = got.get("length", np.full(len(rows), -1))
        cells = [got["id"].tolist(), lengths.tolist()] + [
            [_cell(v) for v in got[c].tolist()] for c in extra
        ]
        names = {
            int(r): tuple(str(v) for v in values)
            for r, values in zip(rows.tolist(), zip(*cells, strict=True), strict=True)
        }
    fh.write("\t".join([*TSV_HEADER, *extra]) + "\n")
    lines = 0
    for q, query in enumerate(query_ids):
        for rank in range(result.rows.shape[1]):
            row = int(result.rows[q, rank])
            if row < 0:
                continue
            ident, length, *more = names[row]
            tail = "".join("\t" + v for v in more)
            distance = result.distances[q, rank]
            fh.write(f"{query}\t{rank + 1}\t{ident}\t{distance:.6g}\t{length}{tail}\n")
            lines += 1
    return lines


def _cell(value: Any) -> str:
    """A metadata value as a TSV cell: floats in 6 significant digits, NaN and None empty,
    tabs and newlines of text replaced by spaces."""
    if value is None:
        return ""
    if isinstance(value, float):
        return "" if value != value else f"{value:.6g}"
    return str(value).replace("\t", " ").replace("\n", " ").replace("\r", " ")


def load_query_embeddings(path: str | Path, store: StoreBase) -> tuple[list[str], np.ndarray]:
    """Queries from a ``.npy`` (float (n, dim); named q1…qn; it carries no model, so it is
    taken to be in the store's space) or an embedding store folder (named by its ids; its
    model must be the store's).

    Raises
    ------
    InputError
        Not a float matrix or an embedding store, no rows, another dimension, another
        model, a row with NaN or inf.
    """
    path = Path(path)
    dim = store.dim
    if path.is_dir():
        from kmervae.io.embeddings import open_embeddings

        emb = open_embeddings(path)
        theirs, ours = emb.model_fingerprint, store.model_fingerprint
        if ours and theirs != ours:
            raise InputError(
                f"{path}: embeddings of model {theirs[:12] or 'unknown'}, the store "
                f"{store.path} holds model {ours[:12]} (different spaces; embed with the "
                "store's model)"
            )
        x = np.asarray(emb.mu, dtype=np.float32)
        names = emb.ids()
    else:
        if not path.is_file():
            raise InputError(f"{path}: no such file")
        try:
            x = np.load(path, mmap_mode="r", allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise InputError(f"{path}: not a readable .npy file ({exc})") from None
        if x.ndim == 1:
            x = x[None, :]
        if x.ndim != 2 or x.dtype.kind != "f":
            raise InputError(f"{path}: expected a 2-D float array, got {x.ndim}-D {x.dtype}")
        names = [f"q{i + 1}" for i in range(x.shape[0])]
    if x.shape[0] == 0:
        raise InputError(f"{path}: no queries (0 rows)")
    if x.shape[1] != dim:
        raise InputError(
            f"{path}: dimension mismatch: {x.shape[1]}-dimensional queries, the store holds {dim}"
        )
    x = np.ascontiguousarray(x, dtype=np.float32)
    check_finite_queries(path, names, x)
    return names, x
