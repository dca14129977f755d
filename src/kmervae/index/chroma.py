"""``kmervae index build --from-chroma DIR``: import a ChromaDB collection of the research code.

A ChromaDB persistent folder keeps ids and metadata in ``chroma.sqlite3`` and the vectors in
HNSW segment folders (binary ``data_level0.bin`` files whose layout belongs to hnswlib and
changes between versions), so the folder is read through ChromaDB itself, imported lazily:
``pip install 'kmervae[chroma]'``. Ids, embeddings and the ``length`` metadata are read page by page
(``collection.get(limit, offset)``) and streamed into a new store.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from kmervae._extras import require
from kmervae.errors import InputError
from kmervae.index.ingest import BASE_SCHEMA, IngestSummary, read_columns_tsv
from kmervae.index.protocol import StoreBase, create_index

log = logging.getLogger(__name__)

PAGE = 10_000


def _chromadb() -> Any:
    return require("chromadb", extra="chroma", purpose="reading a ChromaDB folder")


def _collection(path: Path, name: str | None) -> Any:
    chromadb = _chromadb()
    if not (path / "chroma.sqlite3").is_file():
        raise InputError(f"{path}: not a ChromaDB folder (no chroma.sqlite3)")
    client = chromadb.PersistentClient(path=str(path))
    names = [getattr(c, "name", c) for c in client.list_collections()]
    if name is None:
        if len(names) != 1:
            raise InputError(
                f"{path}: {len(names)} collections ({', '.join(map(str, names)) or 'none'}); "
                "pick one (collection)"
            )
        name = str(names[0])
    elif name not in names:
        raise InputError(f"{path}: no collection {name!r} (has {', '.join(map(str, names))})")
    return client.get_collection(name)


def import_chroma(
    path: str | Path,
    output: str | Path,
    *,
    collection: str | None = None,
    backend: str = "lance",
    columns_tsv: str | Path | None = None,
    params: dict[str, Any] | None = None,
    provenance: dict[str, Any] | None = None,
    overwrite: bool = False,
    length_key: str = "length",
    on_store: Callable[[StoreBase], None] | None = None,
) -> IngestSummary:
    """Build a store from a ChromaDB collection (ids, embeddings, ``length`` metadata).

    The store records no model fingerprint (ChromaDB does not keep one).

    Raises
    ------
    KmervaeError
        chromadb is not installed (with the install command).
    InputError
        Not a ChromaDB folder, no or several collections without ``--collection``, an empty
        collection.
    """
    path = Path(path)
    col = _collection(path, collection)
    total = int(col.count())
    if total == 0:
        raise InputError(f"{path}: collection {col.name!r} is empty")
    first = col.get(limit=1, include=["embeddings"])
    dim = len(first["embeddings"][0])
    extra = read_columns_tsv(columns_tsv) if columns_tsv is not None else None
    schema = {**BASE_SCHEMA, **(extra.schema if extra else {})}
    source = f"chroma:{col.name}"
    with create_index(
        output,
        backend=backend,
        dim=dim,
        schema=schema,
        model={"fingerprint": "", "path": None, "imported_from": str(path.resolve())},
        params=params,
        overwrite=overwrite,
    ) as store:
        if on_store is not None:
            on_store(store)
        n = 0
        for offset in range(0, total, PAGE):
            page = col.get(limit=PAGE, offset=offset, include=["embeddings", "metadatas"])
            ids = [str(i) for i in page["ids"]]
            vectors = np.asarray(page["embeddings"], dtype=np.float32).reshape(len(ids), dim)
            metas = page.get("metadatas") or [None] * len(ids)
            lengths = np.array([int((m or {}).get(length_key, -1)) for m in metas], dtype=np.int64)
            cols: dict[str, np.ndarray] = {
                "length": lengths,
                "gc": np.full(len(ids), np.nan, np.float32),
                "source": np.full(len(ids), source, dtype=object),
                "source_path": np.full(len(ids), str(path.resolve()), dtype=object),
            }
            if extra is not None:
                cols.update(extra.for_ids(ids))
            store.add(ids, vectors, cols)
            n += len(ids)
        history = {
            "action": "import-chroma",
            "n_rows": n,
            "inputs": [{"path": str(path.resolve()), "collection": col.name, "n_rows": total}],
            "provenance": provenance or {},
        }
        out = store.save(history)
    log.info("imported %d contigs from %s (collection %s) into %s", n, path, col.name, out)
    return IngestSummary(out, n, n)
