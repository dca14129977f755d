"""What cluster quality is judged on: a cluster folder or clustering TSV, the evaluated
contigs with their lengths and GC (from an index store or a profile dataset), and the
clustering request that baselines are clustered with. The metrics are in
:mod:`kmervae.evaluate.clusters`; :func:`kmervae.evaluate.runner.run_clusters` ties them."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from kmervae.errors import InputError
from kmervae.io.dataset import ProfileDataset

log = logging.getLogger(__name__)

#: contigs read from a store or dataset at once
_BLOCK_ROWS = 65536


@dataclass(frozen=True)
class ClusterFile:
    """A clustering to evaluate: a ``kmervae cluster`` folder (one of its clusterings) or a
    plain ``contig_id<TAB>cluster`` (or VAMB) TSV.

    ``path``: what was named; ``file``: the TSV read; ``name``: the clustering's name;
    ``manifest``: the folder's manifest (None for a plain TSV).
    """

    path: Path
    file: Path
    name: str
    manifest: dict[str, Any] | None = None

    @property
    def request(self) -> dict[str, Any] | None:
        return None if self.manifest is None else self.manifest.get("request")


def open_cluster_file(path: str | Path, clustering: str | None = None) -> ClusterFile:
    """The clustering named by ``path`` (a cluster folder or a TSV file).

    ``clustering`` picks one of a folder's clusterings by name (default: the one written to
    ``clusters.tsv``, else the first).

    Raises
    ------
    InputError
        No such file or folder, a folder that is not a cluster folder, an unknown
        clustering name, ``clustering`` with a plain TSV.
    """
    from kmervae.cluster.output import FORMAT_NAME, SCHEMA_VERSION
    from kmervae.io.manifest import read_json_manifest

    path = Path(path)
    if path.is_file():
        if clustering is not None:
            raise InputError(
                f"clustering picks a clustering of a cluster folder; {path} is a plain "
                "clustering file"
            )
        return ClusterFile(path, path, path.stem)
    if not path.is_dir():
        raise InputError(f"{path}: no such cluster folder or clustering file")
    manifest = read_json_manifest(
        path / "manifest.json", FORMAT_NAME, SCHEMA_VERSION, "cluster folder"
    )
    entries = [e for e in manifest.get("clusterings", []) if isinstance(e, dict) and "file" in e]
    if not entries:
        raise InputError(f"{path}: the manifest lists no clustering")
    names = [str(e.get("name", e["file"])) for e in entries]
    if clustering is None:
        chosen = next((e for e in entries if e["file"] == "clusters.tsv"), entries[0])
    elif clustering in names:
        chosen = entries[names.index(clustering)]
    else:
        raise InputError(
            f"{path}: no clustering named {clustering!r} (clusterings: {', '.join(names)})"
        )
    file = path / str(chosen["file"])
    if not file.is_file():
        raise InputError(f"{file}: listed in {path}/manifest.json but missing")
    return ClusterFile(path, file, str(chosen.get("name", chosen["file"])), manifest)


@dataclass
class EvaluatedContigs:
    """The contigs a clustering is judged on, in the order of their source.

    Attributes
    ----------
    ids : (n,) contig ids.
    rows : int64 (n,), their rows in the source (store or dataset).
    lengths : int64 (n,) bp.
    gc : float64 (n,) GC fractions, NaN where unknown.
    clusters : int64 (n,) cluster codes (any numbering), -1 for a contig in no cluster.
    source : what the contigs were read from (``kind``, ``path``, ``n_rows``).
    not_found : clustered ids absent from the source.
    below_min_length : unclustered source contigs shorter than the minimum length (not
        evaluated).
    """

    ids: list[str]
    rows: np.ndarray
    lengths: np.ndarray
    gc: np.ndarray
    clusters: np.ndarray
    source: dict[str, Any]
    not_found: int = 0
    below_min_length: int = 0


_Block = tuple[int, list[str], np.ndarray, np.ndarray]


def _store_blocks(store: Any, expected: dict[str, Any] | None) -> Iterator[_Block]:
    """(first row, ids, lengths, gc) blocks of an index store; with ``expected`` (a cluster
    folder's ``store`` record) the rows and ids checksum must match it first."""
    from kmervae.cluster.inputs import store_ids

    if expected and expected.get("n_rows") not in (None, store.n_committed):
        raise InputError(
            f"{store.path}: {store.n_committed} rows, but the clustering was made from a store "
            f"of {expected['n_rows']} rows; give the store it was made from"
        )
    want = (expected or {}).get("ids_sha256")
    if want and store_ids(store)[1] != want:
        raise InputError(
            f"{store.path}: its ids differ from those of the store the clustering was made "
            "from (ids checksum); give the store it was made from"
        )
    columns = ["id"] + [c for c in ("length", "gc") if c in store.schema]
    for first, block in store.iter_batches(columns, _BLOCK_ROWS):
        ids = [str(i) for i in block["id"].tolist()]
        n = len(ids)
        lengths = block.get("length", np.zeros(n, np.int64))
        gc = block.get("gc", np.full(n, np.nan))
        yield first, ids, np.asarray(lengths, np.int64), np.asarray(gc, np.float64)


def _dataset_blocks(dataset: ProfileDataset) -> Iterator[_Block]:
    first = 0
    for ids in dataset.iter_ids():
        stop = first + len(ids)
        lengths = dataset.lengths(first, stop).astype(np.int64)
        yield first, ids, lengths, dataset.gc(first, stop).astype(np.float64)
        first = stop


def collect_contigs(
    blocks: Iterable[_Block],
    assignments: dict[str, str],
    source: dict[str, Any],
    *,
    min_length: int | None = None,
) -> EvaluatedContigs:
    """The evaluated contigs of a source: every clustered one and, with ``min_length``,
    every unclustered one at least that long (the clustering's input that ended in no
    cluster).

    Raises
    ------
    InputError
        Not one clustered id is in the source.
    """
    names: dict[str, int] = {}
    keep_ids: list[str] = []
    parts: dict[str, list[np.ndarray]] = {"rows": [], "lengths": [], "gc": [], "clusters": []}
    first_id: str | None = None
    found = below = 0
    for first, ids, lengths, gc in blocks:
        if first_id is None and ids:
            first_id = ids[0]
        named = [assignments.get(i) for i in ids]
        codes = np.array(
            [-1 if c is None else names.setdefault(c, len(names)) for c in named], np.int64
        )
        clustered = codes >= 0
        by_length = min_length is not None and source.get("has_length", True)
        long_enough = lengths >= min_length if by_length else np.zeros(len(ids), bool)
        keep = clustered | long_enough
        found += int(clustered.sum())
        below += int((~keep).sum()) if by_length else 0
        picked = np.flatnonzero(keep)
        keep_ids.extend(ids[i] for i in picked.tolist())
        parts["rows"].append(first + picked)
        parts["lengths"].append(lengths[picked])
        parts["gc"].append(gc[picked])
        parts["clusters"].append(codes[picked])
    if found == 0:
        raise InputError(
            f"none of the {len(assignments)} clustered ids is in {source['path']} (first "
            f"clustered id {next(iter(assignments))!r}, first {source['kind']} id "
            f"{first_id!r}); do the ids match?"
        )
    missing = len(assignments) - found
    if missing:
        log.warning(
            "%d of %d clustered ids are not in %s: left out",
            missing,
            len(assignments),
            source["path"],
        )

    def joined(key: str, dtype: Any) -> np.ndarray:
        return np.concatenate(parts[key]).astype(dtype) if parts[key] else np.zeros(0, dtype)

    return EvaluatedContigs(
        keep_ids,
        joined("rows", np.int64),
        joined("lengths", np.int64),
        joined("gc", np.float64),
        joined("clusters", np.int64),
        source,
        missing,
        below,
    )


def recorded_k(manifest: dict[str, Any] | None) -> int | None:
    """The neighbours per contig of the k-NN graph a cluster folder was made from (None:
    not recorded, e.g. HDBSCAN on a map)."""
    for key in ("input", "graph"):
        value = ((manifest or {}).get(key) or {}).get("k")
        if isinstance(value, int) and value > 0:
            return value
    return None


def read_cluster_request(path: str | Path) -> tuple[dict[str, Any], int | None]:
    """A clustering request, and the graph's k when recorded, from a cluster folder, its
    ``manifest.json`` or a JSON file that holds the request itself (``{"methods": ["mcl"],
    "graph": {...}, ...}``).

    Raises
    ------
    InputError
        No such file, not JSON, not a valid request.
    """
    import json

    path = Path(path)
    file = path / "manifest.json" if path.is_dir() else path
    if not file.is_file():
        raise InputError(f"{path}: no such cluster folder or request file")
    try:
        data = json.loads(file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{file}: not valid JSON ({exc})") from None
    k = None
    if isinstance(data, dict) and isinstance(data.get("request"), dict):
        k = recorded_k(data)
        data = data["request"]
    if not isinstance(data, dict):
        raise InputError(f"{file}: expected a JSON object holding a clustering request")
    cluster_request(data)  # checked now, before any work
    return data, k


def cluster_request(data: dict[str, Any] | None) -> Any:
    """A :class:`kmervae.cluster.run.ClusterRequest` from its dict (None: the defaults)."""
    from kmervae.cluster.run import ClusterRequest

    if data is None:
        return ClusterRequest()
    try:
        return ClusterRequest.from_dict(data)
    except TypeError as exc:  # an unknown or missing field
        raise InputError(f"not a clustering request: {exc}") from None


def request_min_length(data: dict[str, Any] | None) -> int:
    """The minimum contig length a clustering request applies (0: none)."""
    return int(cluster_request(data).graph.min_length)


def cluster_representation(
    vectors: np.ndarray,
    lengths: np.ndarray,
    request: dict[str, Any] | None,
    *,
    k: int = 50,
    threads: int | None = None,
) -> list[tuple[str, np.ndarray]]:
    """Cluster vectors as ``kmervae knn`` + ``kmervae cluster`` would (the one call into
    :func:`kmervae.cluster.run.cluster_vectors`).

    Parameters
    ----------
    vectors : float32 (n, d); lengths : int64 (n,).
    request : a recorded request (None: the defaults of ``kmervae cluster``).

    Returns
    -------
    (clustering name, int64 (n,) labels, -1 unclustered), one per clustering of the request.
    """
    import tempfile

    from kmervae.cluster.run import cluster_vectors

    with tempfile.TemporaryDirectory(prefix="kmervae-evaluate-") as tmp:
        return cluster_vectors(
            vectors, lengths, cluster_request(request), k=k, threads=threads, workdir=Path(tmp)
        )


def open_contigs(
    cf: ClusterFile,
    assignments: dict[str, str],
    store: str | Path | None,
    dataset: ProfileDataset | None,
    min_length: int | None,
) -> EvaluatedContigs:
    """Lengths and GC of the clustered contigs, from the first of: ``store``; the cluster
    folder's store; the map or embeddings the folder was clustered from; ``dataset``.

    Raises
    ------
    InputError
        None of them is at hand, or a store that is not the folder's (rows, ids checksum).
    """
    from kmervae.index import open_index

    manifest = cf.manifest or {}
    recorded = manifest.get("store") or {}
    made_from = manifest.get("input") or {}
    store_path = store
    if store_path is None and recorded.get("path") and Path(recorded["path"]).exists():
        store_path = recorded["path"]
    if store_path is not None:
        index = open_index(store_path)
        source = {
            "kind": "store",
            "path": str(index.path),
            "n_rows": index.n_committed,
            "has_length": "length" in index.schema,
            "has_gc": "gc" in index.schema,
        }
        for column, what in (("gc", "GC spread is"), ("length", "bp figures are")):
            if column not in index.schema:
                log.warning("%s has no %s column: %s not measured", index.path, column, what)
        check = recorded if cf.manifest is not None else None
        blocks: Iterable[_Block] = _store_blocks(index, check)
    elif made_from.get("kind") in ("map", "embeddings") and Path(made_from["path"]).exists():
        from kmervae.cluster.inputs import open_cluster_input

        found = open_cluster_input(made_from["path"])
        source = {
            "kind": found.kind,
            "path": str(found.path),
            "n_rows": found.n_rows,
            "has_length": True,
            "has_gc": True,
        }
        lengths = np.asarray(found.lengths, np.int64)
        blocks = [(0, found.ids, lengths, np.asarray(found.gc, np.float64))]
    elif dataset is not None:
        source = {
            "kind": "dataset",
            "path": str(dataset.path),
            "n_rows": dataset.n_rows,
            "has_length": True,
            "has_gc": 1 in dataset.layout.ks or dataset.kind == "native",
        }
        blocks = _dataset_blocks(dataset)
    elif cf.manifest is not None:
        gone = recorded.get("path") or made_from.get("path")
        raise InputError(
            f"{cf.path}: what it was clustered from ({gone}) is gone; give a store or a "
            "profile dataset (store, dataset) for the contigs' lengths and GC"
        )
    else:
        raise InputError(
            f"{cf.path}: a plain clustering file needs a store or a profile dataset (store, "
            "dataset) for the contigs' lengths and GC"
        )
    return collect_contigs(blocks, assignments, source, min_length=min_length)


def source_ids(store: str | Path | None, dataset: ProfileDataset | None) -> set[str]:
    """The contig ids of ``store`` (else ``dataset``; none: an empty set), read in blocks:
    what tells the columns of a clustering file without a header apart."""
    if store is not None:
        from kmervae.index import open_index

        blocks: Iterable[list[str]] = open_index(store).iter_ids()
    elif dataset is not None:
        blocks = dataset.iter_ids()
    else:
        return set()
    return {ident for block in blocks for ident in block}


def dataset_rows(contigs: EvaluatedContigs, dataset: ProfileDataset) -> np.ndarray:
    """int64 (n,): the dataset row of each evaluated contig, -1 where it has none."""
    if contigs.source["kind"] == "dataset":
        return contigs.rows
    where = {ident: i for i, ident in enumerate(contigs.ids)}
    out = np.full(len(contigs.ids), -1, np.int64)
    first = 0
    for ids in dataset.iter_ids():
        for j, ident in enumerate(ids):
            i = where.get(ident)
            if i is not None:
                out[i] = first + j
        first += len(ids)
    return out
