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
        out = Path(tmp) / "embeddings"
        embed_profiles(encoder, profiles, out, threads=threads, device="cpu")
        emb = open_embeddings(out)
        return emb.ids(), np.array(emb.mu, dtype=np.float32)


def write_search_tsv(
    fh: TextIO, store: StoreBase, query_ids: Sequence[str], result: SearchResult
) -> int:
    """Write ``query, rank, neighbour, distance, length`` lines (rank from 1; padded
    entries skipped); returns the number of lines."""
    valid = result.rows >= 0
    rows = np.unique(result.rows[valid])
    names: dict[int, tuple[str, Any]] = {}
    if len(rows):
        got = store.take(rows, ["id", *(["length"] if "length" in store.schema else [])])
        lengths = got.get("length", np.full(len(rows), -1))
        names = {
            int(r): (str(i), int(n))
            for r, i, n in zip(rows.tolist(), got["id"].tolist(), lengths.tolist(), strict=True)
        }
    fh.write("\t".join(TSV_HEADER) + "\n")
    lines = 0
    for q, query in enumerate(query_ids):
        for rank in range(result.rows.shape[1]):
            row = int(result.rows[q, rank])
            if row < 0:
                continue
            ident, length = names[row]
            fh.write(f"{query}\t{rank + 1}\t{ident}\t{result.distances[q, rank]:.6g}\t{length}\n")
            lines += 1
    return lines


def load_query_embeddings(path: str | Path, dim: int) -> tuple[list[str], np.ndarray]:
    """Queries from a ``.npy`` (float (n, dim); named q1…qn) or an embedding store folder
    (named by its ids)."""
    path = Path(path)
    if path.is_dir():
        from kmervae.io.embeddings import open_embeddings

        emb = open_embeddings(path)
        x = np.asarray(emb.mu, dtype=np.float32)
        names = emb.ids()
    else:
        if not path.is_file():
            raise InputError(f"{path}: no such file")
        try:
            x = np.load(path, mmap_mode="r", allow_pickle=False)
        except (ValueError, OSError) as exc:
            raise InputError(f"{path}: not a readable .npy file ({exc})") from None
        if x.ndim == 1:
            x = x[None, :]
        if x.ndim != 2 or x.dtype.kind != "f":
            raise InputError(f"{path}: expected a 2-D float array, got {x.ndim}-D {x.dtype}")
        names = [f"q{i + 1}" for i in range(x.shape[0])]
    if x.shape[1] != dim:
        raise InputError(
            f"{path}: dimension mismatch: {x.shape[1]}-dimensional queries, the store holds {dim}"
        )
    return names, np.ascontiguousarray(x, dtype=np.float32)
