"""What ``kmervae cluster`` reads: a k-NN graph (with the store it was built from, for the
contigs' lengths and GC), a map, or an embeddings folder; each checked on open."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from kmervae.errors import InputError
from kmervae.index.graph import FORMAT_NAME as GRAPH_FORMAT
from kmervae.index.graph import KnnGraph, open_knn_graph
from kmervae.io.embeddings import FORMAT_NAME as EMBEDDINGS_FORMAT
from kmervae.provenance import file_sha256

MAP_FORMAT = "kmervae-map"
KINDS = {GRAPH_FORMAT: "graph", MAP_FORMAT: "map", EMBEDDINGS_FORMAT: "embeddings"}


@dataclass
class ClusterInput:
    """The contigs to cluster.

    Attributes
    ----------
    kind : ``graph``, ``map`` or ``embeddings``.
    path : the folder.
    ids : the contig ids in row order.
    lengths : int64 (N,).
    gc : float32 (N,), NaN where unknown.
    graph : the k-NN graph (kind ``graph``).
    points : float32 (N, d) coordinates or embeddings (kinds ``map`` and ``embeddings``),
        memory-mapped.
    source : what the manifest records about the input.
    """

    kind: str
    path: Path
    ids: list[str]
    lengths: np.ndarray
    gc: np.ndarray
    graph: KnnGraph | None = None
    points: np.ndarray | None = None
    source: dict[str, Any] = field(default_factory=dict)

    @property
    def n_rows(self) -> int:
        return len(self.ids)


def input_kind(path: Path) -> str:
    """``graph``, ``map`` or ``embeddings``, from the folder's manifest."""
    manifest = path / "manifest.json"
    if not manifest.is_file():
        raise InputError(f"{path}: not a k-NN graph, map or embeddings folder (no manifest.json)")
    try:
        fmt = json.loads(manifest.read_text()).get("format")
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
        raise InputError(f"{manifest}: not valid JSON") from None
    if fmt not in KINDS:
        raise InputError(
            f"{path}: a {fmt!r} folder; cluster reads a k-NN graph (kmervae knn), a map "
            "(kmervae map) or embeddings (kmervae embed)"
        )
    return KINDS[fmt]


def store_ids(store: Any) -> tuple[list[str], str]:
    """A store's ids in row order, and their SHA-256 as ``kmervae knn`` writes them (one per
    line), in one pass."""
    digest = hashlib.sha256()
    ids: list[str] = []
    for block in store.iter_ids():
        digest.update(("\n".join(block) + "\n").encode())
        ids.extend(block)
    return ids, digest.hexdigest()


def open_cluster_input(path: str | Path, store_path: str | Path | None = None) -> ClusterInput:
    """Open and check what is to be clustered.

    For a graph, the store is ``store_path`` or the one its manifest names; it must hold
    the same contigs (count, model, and ids checksum).
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file or folder")
    kind = input_kind(path)
    found = _open_input(path, kind, store_path)
    found.source["manifest_sha256"] = file_sha256(path / "manifest.json")
    return found


def _open_input(path: Path, kind: str, store_path: str | Path | None) -> ClusterInput:
    if kind == "graph":
        return _graph_input(path, store_path)
    if store_path is not None:
        raise InputError("a store goes with a k-NN graph only; a map or embeddings carry their own")
    if kind == "map":
        from kmervae.viz.maps import open_map

        found = open_map(path)
        return ClusterInput(
            "map",
            path,
            found.ids(),
            np.asarray(found.lengths, np.int64),
            np.asarray(found.gc, np.float32),
            points=found.coordinates,
            source={"kind": "map", "path": str(path.resolve()), "n_rows": found.n_rows},
        )
    from kmervae.io.embeddings import open_embeddings

    emb = open_embeddings(path)
    gc = (
        np.asarray(emb.column("gc"), np.float32)
        if "gc" in emb.columns
        else np.full(len(emb), np.nan, np.float32)
    )
    return ClusterInput(
        "embeddings",
        path,
        emb.ids(),
        np.asarray(emb.lengths(), np.int64),
        gc,
        points=emb.mu,
        source={
            "kind": "embeddings",
            "path": str(path.resolve()),
            "n_rows": len(emb),
            "model_fingerprint": emb.model_fingerprint,
            "ids_sha256": emb.manifest.get("ids_sha256"),
        },
    )


def _graph_input(path: Path, store_path: str | Path | None) -> ClusterInput:
    from kmervae.index.protocol import open_index

    graph = open_knn_graph(path)
    recorded = graph.manifest.get("store", {})
    where = Path(store_path) if store_path is not None else Path(recorded.get("path", ""))
    if store_path is None and not (where / "manifest.json").is_file():
        raise InputError(
            f"{path}: its store {where} is gone; give the store (store: it holds the "
            "contigs' lengths and GC)"
        )
    store = open_index(where)
    if len(store) != graph.n_rows:
        raise InputError(
            f"{path}: the graph has {graph.n_rows} contigs but the store {where} has "
            f"{len(store)}: the graph does not belong to this store"
        )
    fingerprint = recorded.get("model_fingerprint")
    if fingerprint and store.model_fingerprint and fingerprint != store.model_fingerprint:
        raise InputError(
            f"{path}: the graph was built from embeddings of another model than the store "
            f"{where} holds: the graph does not belong to this store"
        )
    ids, checksum = store_ids(store)
    if recorded.get("ids_sha256") and recorded["ids_sha256"] != checksum:
        raise InputError(
            f"{path}: the store {where} holds other contig ids (ids checksum differs): the "
            "graph does not belong to this store"
        )
    lengths = np.empty(len(store), np.int64)
    gc = np.full(len(store), np.nan, np.float32)
    columns = ["length"] + (["gc"] if "gc" in store.columns else [])
    for first, block in store.iter_batches(columns):
        stop = first + len(block["length"])
        lengths[first:stop] = block["length"]
        if "gc" in block:
            gc[first:stop] = block["gc"]
    return ClusterInput(
        "graph",
        path,
        ids,
        lengths,
        gc,
        graph=graph,
        source={
            "kind": "graph",
            "path": str(path.resolve()),
            "n_rows": graph.n_rows,
            "k": graph.k,
            "store": {
                "path": str(where.resolve()),
                "n_rows": len(store),
                "model_fingerprint": store.model_fingerprint,
                "ids_sha256": recorded.get("ids_sha256"),
            },
        },
    )
