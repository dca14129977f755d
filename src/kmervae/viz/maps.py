"""2-D maps of the embedding space (t-SNE with openTSNE, or UMAP) and the MAP folder.

A map (a directory, written under a temporary name and renamed when complete)::

    manifest.json     format "kmervae-map", schema version, n_rows, method, params
                      (perplexity asked and used, iterations, seed, neighbours source …),
                      the embeddings (path, n_rows, ids SHA-256, model fingerprint), the
                      graph (path) or null, the colouring, seconds, peak RSS, provenance
    coordinates.npy   float32, N x 2: the map
    ids.txt           N lines: the contig of each row
    lengths.npy       int64, N: contig lengths (-1 when the embeddings have none)
    gc.npy            float32, N: G+C fraction (NaN when unknown)
    map.tsv           contig_id, x, y, length, gc (a header line first)
    map.png           the map, coloured as asked
    kmervae.log       the log of the command (CLI)

Rows are the embeddings' rows in order, less those under ``--min-length``. Read a map with
:func:`open_map` (memory-mapped, checked).
"""

from __future__ import annotations

import hashlib
import logging
import resource
import warnings
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from kmervae.errors import InputError, KmervaeError
from kmervae.io.dataset import count_lines, iter_id_blocks
from kmervae.io.manifest import read_json_manifest
from kmervae.io.npy import load_column

log = logging.getLogger(__name__)

#: what a map can be coloured by besides a labels column
BUILTIN_COLOURS = ("gc", "length", "cluster")

FORMAT_NAME = "kmervae-map"
SCHEMA_VERSION = 1
#: fewer rows than this make no map worth drawing
MIN_ROWS = 10
#: rows per block when streaming through memory-mapped arrays
BLOCK_ROWS = 65536
#: rows of the seeded sample the PCA initialisation is fitted on
PCA_SAMPLE = 100_000
UMAP_HINT = "umap needs: pip install 'kmervae[umap]'"


def peak_rss_bytes() -> int:
    """Peak resident memory of this process so far, in bytes (Linux reports KiB)."""
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


# ---------------------------------------------------------------------------- rows and graph


def rows_at_least(lengths: np.ndarray, min_length: int) -> np.ndarray | None:
    """Rows (int64, ascending) whose length is at least ``min_length``; None means all."""
    if min_length <= 0:
        return None
    keep = [
        np.flatnonzero(np.asarray(lengths[s : s + BLOCK_ROWS]) >= min_length) + s
        for s in range(0, len(lengths), BLOCK_ROWS)
    ]
    rows = np.concatenate(keep) if keep else np.zeros(0, np.int64)
    return None if len(rows) == len(lengths) else rows.astype(np.int64)


def select_ids(blocks: Iterable[list[str]], rows: np.ndarray | None) -> Iterator[list[str]]:
    """The ids of ``rows`` (ascending) from blocks of all ids in row order."""
    start = 0
    for block in blocks:
        if rows is None:
            yield block
        else:
            lo, hi = np.searchsorted(rows, [start, start + len(block)])
            yield [block[r - start] for r in rows[lo:hi].tolist()]
        start += len(block)


def check_graph_ids(graph: Any, embeddings: Any) -> None:
    """Raise an InputError unless ``graph`` (a :class:`~kmervae.index.graph.KnnGraph`) lists
    the same contigs, in the same order, as ``embeddings``: by count, by the SHA-256 of the
    ids, and where the checksums differ (other line endings) id by id in blocks."""
    if graph.n_rows != embeddings.n_rows:
        raise InputError(
            f"{graph.path}: the graph has {graph.n_rows} contigs, the embeddings "
            f"{embeddings.path} {embeddings.n_rows}: a graph of other contigs"
        )
    store = graph.manifest.get("store", {})
    want = embeddings.manifest.get("ids_sha256")
    if want and store.get("ids_sha256") == want:
        return
    start = 0
    emb_blocks = embeddings.iter_ids()
    pending: list[str] = []
    for block in graph.iter_ids():
        while len(pending) < len(block):
            more = next(emb_blocks, None)
            if more is None:
                break
            pending.extend(more)
        mine, pending = pending[: len(block)], pending[len(block) :]
        if mine != block:
            pairs = zip(mine, block, strict=False)
            bad = next((i for i, (a, b) in enumerate(pairs) if a != b), len(mine))
            theirs = mine[bad] if bad < len(mine) else None
            raise InputError(
                f"{graph.path}: row {start + bad + 1} is {block[bad]!r} in the graph but "
                f"{theirs!r} in the embeddings {embeddings.path}: a graph of other contigs "
                "(build it with kmervae index + kmervae knn from these embeddings)"
            )
        start += len(block)


def graph_neighbours(
    indices: np.ndarray,
    distances: np.ndarray,
    rows: np.ndarray | None = None,
    k: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The neighbours of ``rows`` among ``rows``, from a k-NN graph's arrays.

    Parameters
    ----------
    indices : int32/int64 (N, K) neighbour rows, -1 for a pruned edge (may be memory-mapped).
    distances : float32 (N, K), +inf where ``indices`` is -1.
    rows : int64 ascending rows kept (None: all); edges to other rows become pruned edges.
    k : keep the first ``k`` columns (the nearest); None: all.

    Returns
    -------
    (int32 (n, k) neighbour positions within ``rows``, -1 where none;
    float32 (n, k) distances, +inf where none). Read block by block: one copy of the kept
    columns, nothing more.
    """
    n_all = indices.shape[0]
    k = indices.shape[1] if k is None else min(k, indices.shape[1])
    n = n_all if rows is None else len(rows)
    out_idx = np.empty((n, k), np.int32)
    out_dist = np.empty((n, k), np.float32)
    position = None
    if rows is not None:
        position = np.full(n_all, -1, np.int32)
        position[rows] = np.arange(n, dtype=np.int32)
    for s in range(0, n, BLOCK_ROWS):
        take = slice(s, s + BLOCK_ROWS) if rows is None else rows[s : s + BLOCK_ROWS]
        idx = np.asarray(indices[take, :k], dtype=np.int64)
        dist = np.asarray(distances[take, :k], dtype=np.float32)
        valid = idx >= 0
        if position is not None:
            idx = np.where(valid, position[np.where(valid, idx, 0)], -1)
            valid = idx >= 0
        out_idx[s : s + len(idx)] = np.where(valid, idx, -1)
        out_dist[s : s + len(idx)] = np.where(valid, dist, np.inf)
    return out_idx, out_dist


# ---------------------------------------------------------------------------- initialisation


def pca_initialization(
    vectors: np.ndarray,
    rows: np.ndarray | None = None,
    *,
    seed: int = 1,
    sample: int = PCA_SAMPLE,
    target_std: float = 1e-4,
) -> np.ndarray:
    """Top two principal components of ``vectors[rows]``, scaled for t-SNE.

    The PCA is fitted on a seeded sample of at most ``sample`` rows (a dim x dim covariance),
    then every row is projected block by block, so memory is the output plus one block.
    Signs are fixed (largest loading positive) so a seed gives one answer. As openTSNE's own
    PCA initialisation: the first column is scaled to standard deviation ``target_std`` and a
    small seeded jitter separates identical rows.

    Returns
    -------
    float64 (n, 2)
    """
    n = len(vectors) if rows is None else len(rows)
    dim = vectors.shape[1]
    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(n, size=min(n, sample), replace=False))
    fit = np.asarray(vectors[pick if rows is None else rows[pick]], dtype=np.float64)
    mean = fit.mean(axis=0)
    fit -= mean
    _, vecs = np.linalg.eigh(fit.T @ fit)
    del fit
    comps = vecs[:, ::-1][:, : min(2, dim)]
    signs = np.sign(comps[np.argmax(np.abs(comps), axis=0), np.arange(comps.shape[1])])
    comps *= np.where(signs == 0, 1.0, signs)
    out = np.zeros((n, 2), np.float64)
    for s in range(0, n, BLOCK_ROWS):
        take = slice(s, s + BLOCK_ROWS) if rows is None else rows[s : s + BLOCK_ROWS]
        block = np.asarray(vectors[take], dtype=np.float64) - mean
        out[s : s + len(block), : comps.shape[1]] = block @ comps
    std = float(np.std(out[:, 0]))
    if not np.isfinite(std) or std == 0:  # all rows alike: nothing to unfold
        return rng.normal(0, target_std, (n, 2))
    out *= target_std / std
    out += rng.normal(0, 0.01 * target_std, out.shape)
    return out


# ---------------------------------------------------------------------------- t-SNE


def effective_perplexity(perplexity: float, k: int) -> float:
    """The perplexity a graph of ``k`` neighbours supports: at most k / 3."""
    return min(float(perplexity), k / 3.0)


def check_perplexity(perplexity: float, n: int) -> None:
    """Raise a KmervaeError when t-SNE cannot reach ``perplexity`` on ``n`` points: its
    neighbour search takes 3 x perplexity neighbours of each point, itself excluded."""
    if perplexity <= 0:
        raise KmervaeError(f"perplexity must be positive, got {perplexity:g}")
    if 3 * perplexity > n - 1:
        most = max((n - 1) // 3, 0)
        raise KmervaeError(
            f"perplexity {perplexity:g} is too big for {n} contigs: t-SNE needs more than "
            f"3 x perplexity contigs (use a perplexity of {most} or less)"
        )


def _graph_affinities(
    neighbors: np.ndarray, distances: np.ndarray, perplexity: float, threads: int
) -> Any:
    """openTSNE affinities from precomputed neighbours (PerplexityBasedNN with
    PrecomputedNeighbors), pruned edges included.

    openTSNE wants a full n x k table; a pruned edge (-1) becomes an edge to the row itself
    at distance +inf, whose affinity is 0, and a row with no edge at all gets k such edges at
    distance 1 (equal, finite, so the perplexity search does not divide by zero). Self edges
    are then removed from P, which is renormalised: such rows are placed by repulsion only.
    """
    from openTSNE.affinity import PerplexityBasedNN
    from openTSNE.nearest_neighbors import PrecomputedNeighbors

    n = neighbors.shape[0]
    pruned = neighbors < 0
    any_pruned = bool(pruned.any())
    if any_pruned:
        own = np.broadcast_to(np.arange(n, dtype=neighbors.dtype)[:, None], neighbors.shape)
        neighbors = np.where(pruned, own, neighbors)
        distances = np.where(pruned, np.inf, distances).astype(np.float32)
        empty = pruned.all(axis=1)
        distances[empty] = 1.0
        log.info(
            "%d of %d edges pruned in the graph; %d contigs have no neighbour",
            int(pruned.sum()),
            pruned.size,
            int(empty.sum()),
        )
    del pruned
    affinities = PerplexityBasedNN(
        perplexity=perplexity,
        knn_index=PrecomputedNeighbors(neighbors, distances),
        n_jobs=threads,
    )
    if any_pruned:
        from scipy import sparse

        p = affinities.P.tocsr()
        p = p - sparse.diags(p.diagonal(), format="csr")
        p.eliminate_zeros()
        total = p.sum()
        if total <= 0:
            raise KmervaeError("the graph has no edge between the mapped contigs")
        affinities.P = p / total
    return affinities


def tsne_map(
    vectors: np.ndarray,
    *,
    rows: np.ndarray | None = None,
    neighbors: np.ndarray | None = None,
    distances: np.ndarray | None = None,
    perplexity: float = 30.0,
    seed: int = 1,
    threads: int = 1,
    n_iter: int = 500,
    early_iter: int = 250,
    exaggeration: float | None = None,
    progress: Callable[[int], None] | None = None,
) -> np.ndarray:
    """A t-SNE map with openTSNE: FFT gradients, PCA initialisation, ``threads`` threads.

    Parameters
    ----------
    vectors : float32 (N, dim), may be memory-mapped (only read, in blocks, unless openTSNE
        must search neighbours itself).
    rows : int64 ascending rows of ``vectors`` to map (None: all); ``neighbors`` and
        ``distances`` are then numbered within ``rows`` (see :func:`graph_neighbours`).
    neighbors, distances : a precomputed k-NN graph, int (n, k) and float32 (n, k), itself
        excluded, -1 / +inf for pruned edges. None: openTSNE finds 3 x perplexity neighbours
        (exact below 1000 points, Annoy above), which needs ``vectors[rows]`` in memory.
    perplexity : with a graph it is capped at k / 3 (3 x perplexity <= k), and only the
        nearest 3 x perplexity columns are read.
    n_iter, early_iter : iterations of the normal phase and of the early exaggeration (12).
    exaggeration : of the normal phase (None: 1, plain t-SNE; > 1 tightens clusters, which
        helps for millions of points).
    progress : called with the iterations done, every 50.

    Returns
    -------
    float32 (n, 2): the same seed, threads and input give the same coordinates.
    """
    from openTSNE import TSNE
    from openTSNE.affinity import PerplexityBasedNN

    n = len(vectors) if rows is None else len(rows)
    threads = max(int(threads), 1)
    if n < MIN_ROWS:
        raise KmervaeError(f"{n} contigs are too few for a map (at least {MIN_ROWS})")
    init = pca_initialization(vectors, rows, seed=seed)
    if neighbors is None:
        check_perplexity(perplexity, n)
        data = vectors if rows is None else np.asarray(vectors[rows])
        affinities = PerplexityBasedNN(
            data, perplexity=perplexity, method="auto", n_jobs=threads, random_state=seed
        )
        del data
    else:
        if distances is None or distances.shape != neighbors.shape or len(neighbors) != n:
            raise ValueError("tsne_map: neighbors and distances must both be (n, k)")
        used = effective_perplexity(perplexity, neighbors.shape[1])
        if used < perplexity:
            log.warning(
                "perplexity %g capped at %.2f: the graph has k = %d neighbours "
                "(t-SNE needs 3 x perplexity <= k)",
                perplexity,
                used,
                neighbors.shape[1],
            )
        k = min(neighbors.shape[1], max(int(np.ceil(3 * used)), 1))
        affinities = _graph_affinities(neighbors[:, :k], distances[:, :k], used, threads)

    callbacks = None
    if progress is not None:

        def callback(iteration: int, error: float, embedding: np.ndarray) -> bool:
            log.debug("t-SNE iteration %d: KL divergence %.4f", iteration + 1, error)
            progress(50)
            return False

        callbacks = [callback]
    tsne = TSNE(
        n_components=2,
        n_iter=n_iter,
        early_exaggeration_iter=early_iter,
        exaggeration=exaggeration,
        negative_gradient_method="fft",
        n_jobs=threads,
        random_state=seed,
        callbacks=callbacks,
        callbacks_every_iters=50,
    )
    embedding = tsne.fit(affinities=affinities, initialization=init)
    coords = np.array(embedding, dtype=np.float32)
    del embedding, affinities
    if not np.isfinite(coords).all():
        raise KmervaeError("t-SNE diverged (non-finite coordinates); try another seed")
    return coords


# ---------------------------------------------------------------------------- UMAP


def import_umap() -> Any:
    """The ``umap`` module, or one KmervaeError line with the install hint."""
    try:
        import umap
    except ImportError:
        raise KmervaeError(UMAP_HINT) from None
    return umap


def umap_map(
    vectors: np.ndarray,
    *,
    rows: np.ndarray | None = None,
    neighbors: np.ndarray | None = None,
    distances: np.ndarray | None = None,
    n_neighbors: int = 15,
    min_dist: float = 0.1,
    seed: int = 1,
    threads: int = 1,
) -> np.ndarray:
    """A UMAP map (umap-learn, an optional extra); arguments as :func:`tsne_map`.

    With a graph, its nearest ``n_neighbors - 1`` neighbours (plus the point itself, as
    UMAP counts it) are UMAP's precomputed k-NN. UMAP is seeded, which makes it single
    threaded for its optimisation.

    Returns
    -------
    float32 (n, 2)
    """
    umap = import_umap()
    n = len(vectors) if rows is None else len(rows)
    if n < MIN_ROWS:
        raise KmervaeError(f"{n} contigs are too few for a map (at least {MIN_ROWS})")
    if n_neighbors < 2:
        raise KmervaeError(f"n_neighbors must be at least 2, got {n_neighbors}")
    if n_neighbors > n - 1:
        raise KmervaeError(
            f"n_neighbors {n_neighbors} is too big for {n} contigs (at most {n - 1})"
        )
    data = vectors if rows is None else np.asarray(vectors[rows])
    kwargs: dict[str, Any] = {}
    if neighbors is not None:
        if distances is None or distances.shape != neighbors.shape or len(neighbors) != n:
            raise ValueError("umap_map: neighbors and distances must both be (n, k)")
        k = min(n_neighbors - 1, neighbors.shape[1])
        n_neighbors = k + 1
        knn_idx = np.empty((n, k + 1), np.int64)
        knn_dist = np.empty((n, k + 1), np.float32)
        knn_idx[:, 0] = np.arange(n)
        knn_dist[:, 0] = 0.0
        knn_idx[:, 1:] = neighbors[:, :k]
        dist = np.asarray(distances[:, :k], np.float32)
        finite = np.isfinite(dist)
        # UMAP skips -1 edges, but its bandwidth search reads every distance: make pruned
        # ones finite and far, so they weigh nothing
        far = 10.0 * float(dist[finite].max()) if finite.any() else 1.0
        knn_dist[:, 1:] = np.where(finite, dist, far)
        kwargs["precomputed_knn"] = (knn_idx, knn_dist)
    model = umap.UMAP(
        n_components=2,
        n_neighbors=n_neighbors,
        min_dist=min_dist,
        random_state=seed,
        n_jobs=max(int(threads), 1),
        **kwargs,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        coords = model.fit_transform(data)
    return np.asarray(coords, dtype=np.float32)


# ---------------------------------------------------------------------------- categories


def category_codes(
    blocks: Iterable[list[str]], labels: dict[str, str | None], n: int
) -> tuple[np.ndarray, list[str], int]:
    """Integer codes of each row's category (cluster or label) for colouring.

    Parameters
    ----------
    blocks : the map's ids, in row order.
    labels : id -> category (None or absent: no category).
    n : rows.

    Returns
    -------
    (int32 (n,) codes, -1 for none; category names indexed by code; rows with a category).
    """
    codes = np.full(n, -1, np.int32)
    vocab: dict[str, int] = {}
    row = 0
    for block in blocks:
        for ident in block:
            value = labels.get(ident)
            if value is not None:
                codes[row] = vocab.setdefault(value, len(vocab))
            row += 1
    return codes, list(vocab), int((codes >= 0).sum())


# ---------------------------------------------------------------------------- the MAP folder


def _gc_text(value: float) -> str:
    return "NA" if value != value else f"{value:.4f}"


def write_map_arrays(
    folder: Path,
    coordinates: np.ndarray,
    lengths: np.ndarray,
    gc: np.ndarray,
    ids: Iterable[list[str]],
) -> str:
    """Write ``coordinates.npy``, ``lengths.npy``, ``gc.npy``, ``ids.txt`` and ``map.tsv``
    into ``folder`` (the temporary map folder); returns the SHA-256 of ``ids.txt``.

    coordinates float32 (n, 2); lengths int64 (n,); gc float32 (n,), NaN when unknown; ids
    in blocks, in row order. Raises KmervaeError if the ids are not n.
    """
    n = len(coordinates)
    np.save(folder / "coordinates.npy", np.ascontiguousarray(coordinates, np.float32))
    np.save(folder / "lengths.npy", np.ascontiguousarray(lengths, np.int64))
    np.save(folder / "gc.npy", np.ascontiguousarray(gc, np.float32))
    digest = hashlib.sha256()
    row = 0
    with (
        open(folder / "ids.txt", "wb") as ids_fh,
        open(folder / "map.tsv", "w", encoding="utf-8") as tsv,
    ):
        tsv.write("contig_id\tx\ty\tlength\tgc\n")
        for block in ids:
            if not block:
                continue
            end = row + len(block)
            if end > n:
                break
            text = ("\n".join(block) + "\n").encode()
            digest.update(text)
            ids_fh.write(text)
            xy = coordinates[row:end].tolist()
            tsv.writelines(
                f"{ident}\t{x:.6g}\t{y:.6g}\t{length}\t{_gc_text(g)}\n"
                for ident, (x, y), length, g in zip(
                    block, xy, lengths[row:end].tolist(), gc[row:end].tolist(), strict=True
                )
            )
            row = end
    if row != n:
        raise KmervaeError(f"{row} or more ids for {n} map rows")
    return digest.hexdigest()


class MapData:
    """A map opened for reading (memory-mapped; checks itself on open).

    Attributes
    ----------
    path : the map folder.
    manifest : its ``manifest.json``.
    n_rows : rows of the map.
    coordinates : float32 (N, 2), memory-mapped.
    lengths : int64 (N,), memory-mapped (-1 where unknown).
    gc : float32 (N,), memory-mapped (NaN where unknown).
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        name = str(self.path)
        if not self.path.is_dir():
            raise InputError(f"{name}: no such map folder")
        self.manifest: dict[str, Any] = read_json_manifest(
            self.path / "manifest.json", FORMAT_NAME, SCHEMA_VERSION, "map"
        )
        try:
            self.n_rows = int(self.manifest["n_rows"])
        except (KeyError, ValueError, TypeError):
            raise InputError(f"{name}/manifest.json: no row count") from None
        self.coordinates = self._array("coordinates", np.float32, (self.n_rows, 2))
        self.lengths = self._array("lengths", np.int64, (self.n_rows,))
        self.gc = self._array("gc", np.float32, (self.n_rows,))
        self.ids_path = self.path / "ids.txt"
        if not self.ids_path.is_file():
            raise InputError(f"{name}: missing ids.txt")
        n_ids = count_lines(self.ids_path)
        if n_ids != self.n_rows:
            raise InputError(f"{self.ids_path}: {n_ids} ids for {self.n_rows} map rows")

    def _array(self, column: str, dtype: type, shape: tuple[int, ...]) -> np.ndarray:
        return load_column(self.path, column, dtype, shape)

    @property
    def method(self) -> str:
        """``tsne`` or ``umap``."""
        return str(self.manifest.get("method", "tsne"))

    def iter_ids(self, block_bytes: int = 8 << 20) -> Iterator[list[str]]:
        """Ids in row order, in blocks."""
        return iter_id_blocks(self.ids_path, block_bytes)

    def ids(self) -> list[str]:
        """All ids as one list (use :meth:`iter_ids` for big maps)."""
        return [i for block in self.iter_ids() for i in block]

    def __len__(self) -> int:
        return self.n_rows

    def __repr__(self) -> str:
        return f"MapData({str(self.path)!r}, rows={self.n_rows}, method={self.method})"


def open_map(path: str | Path) -> MapData:
    """Open a map written by ``kmervae map`` (memory-mapped, checked)."""
    return MapData(path)


def axis_names(method: str) -> tuple[str, str]:
    """Axis labels of a map made by ``method``."""
    label = {"tsne": "t-SNE", "umap": "UMAP"}.get(method, method)
    return f"{label} 1", f"{label} 2"
