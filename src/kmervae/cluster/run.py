"""From a k-NN graph, a map or embeddings to clusterings: the API behind ``kmervae cluster``.

:class:`ClusterRequest` holds every choice (methods, graph recipe, inflations, resolutions,
HDBSCAN sizes, consensus levels, seed) and is recorded in the output's manifest, so the same
clustering can be redone on another representation (:func:`cluster_vectors`: the baselines
of ``kmervae evaluate clusters`` go through exactly this code).
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from kmervae.cluster.clusters import canonical_labels
from kmervae.cluster.graph import EdgeList, GraphOptions, build_edges, distance_quantiles
from kmervae.errors import KmervaeError

log = logging.getLogger(__name__)

METHODS = ("mcl", "leiden", "hdbscan")
#: RCL resolutions when a consensus is asked for without levels (a doubling, as rcl advises)
CONSENSUS_RESOLUTIONS = (100, 200, 400, 800, 1600)


@dataclass(frozen=True)
class ClusterRequest:
    """Everything that decides a clustering.

    Attributes
    ----------
    methods : ``mcl``, ``leiden`` (graph methods, together for a consensus) or ``hdbscan``.
    graph : how the k-NN graph becomes the clustering graph.
    inflations : MCL inflations (one clustering each, over one loaded matrix).
    resolutions : Leiden resolutions (one clustering each).
    leiden_iterations : Leiden passes (-1: until stable).
    leiden_implementation : ``igraph`` (its own C implementation, the default) or
        ``leidenalg``.
    mcl_resource : mcl's ``-resource``: neighbours each node keeps during the computation
        (None: mcl's own default scheme). Smaller is faster and coarser-grained in its
        pruning.
    min_cluster_size, min_samples : HDBSCAN (None: scaled with N from the reference).
    consensus : RCL resolutions of a consensus over all the graph clusterings (empty: none).
    seed : Leiden's seed.
    """

    methods: tuple[str, ...] = ("mcl",)
    graph: GraphOptions = field(default_factory=GraphOptions)
    inflations: tuple[float, ...] = (3.0,)
    resolutions: tuple[float, ...] = (1.0,)
    leiden_iterations: int = 2
    leiden_implementation: str = "igraph"
    mcl_resource: int | None = None
    min_cluster_size: int | None = None
    min_samples: int | None = None
    consensus: tuple[int, ...] = ()
    seed: int = 1

    def __post_init__(self) -> None:
        unknown = [m for m in self.methods if m not in METHODS]
        if not self.methods or unknown:
            raise KmervaeError(f"unknown method {unknown[:1]} (use {', '.join(METHODS)})")
        if "hdbscan" in self.methods and len(self.methods) > 1:
            raise KmervaeError("hdbscan clusters points, not the graph: use it alone")
        if len(set(self.methods)) != len(self.methods):
            raise KmervaeError("a method is named twice")
        if "mcl" in self.methods and (
            not self.inflations or any(not i > 1 for i in self.inflations)
        ):
            raise KmervaeError(f"MCL inflations must be above 1, got {list(self.inflations)}")
        if "leiden" in self.methods and (
            not self.resolutions or any(not r > 0 for r in self.resolutions)
        ):
            raise KmervaeError(f"Leiden resolutions must be above 0, got {list(self.resolutions)}")
        if self.leiden_iterations == 0 or self.leiden_iterations < -1:
            raise KmervaeError(
                f"Leiden iterations must be -1 or at least 1, got {self.leiden_iterations}"
            )
        if self.leiden_implementation not in ("igraph", "leidenalg"):
            raise KmervaeError(
                f"unknown Leiden implementation {self.leiden_implementation!r} (use igraph or "
                "leidenalg)"
            )
        if self.mcl_resource is not None and self.mcl_resource < 1:
            raise KmervaeError(f"the mcl resource must be at least 1, got {self.mcl_resource}")
        if self.min_cluster_size is not None and self.min_cluster_size < 2:
            raise KmervaeError(
                f"the minimum cluster size must be at least 2, got {self.min_cluster_size}"
            )
        if self.min_samples is not None and self.min_samples < 1:
            raise KmervaeError(f"min_samples must be at least 1, got {self.min_samples}")
        if self.consensus:
            if "hdbscan" in self.methods:
                raise KmervaeError("a consensus combines graph clusterings (mcl, leiden)")
            if any(r < 1 for r in self.consensus):
                raise KmervaeError(
                    f"consensus resolutions must be at least 1, got {list(self.consensus)}"
                )
            if self.n_graph_clusterings < 2:
                raise KmervaeError(
                    "a consensus needs at least two clusterings: give several inflations or "
                    "resolutions, or both methods"
                )

    @property
    def n_graph_clusterings(self) -> int:
        return len(self.inflations) * ("mcl" in self.methods) + len(self.resolutions) * (
            "leiden" in self.methods
        )

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["graph"] = self.graph.to_dict()
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ClusterRequest:
        """The request recorded in a cluster folder's manifest."""
        data = dict(data)
        graph = GraphOptions(**data.pop("graph", {}))
        tuples = ("methods", "inflations", "resolutions", "consensus")
        fields: dict[str, Any] = {k: tuple(v) if k in tuples else v for k, v in data.items()}
        return cls(graph=graph, **fields)


@dataclass
class Clustering:
    """One clustering of ``N`` contigs: ``labels`` int64 (N,) canonical, -1 unclustered."""

    name: str
    method: str
    parameter: float | None
    labels: np.ndarray

    @property
    def n_clusters(self) -> int:
        return int(self.labels.max(initial=0))


def _finish(name: str, method: str, parameter: float | None, raw: np.ndarray, keep: np.ndarray):
    labels = np.where(keep, raw, -1)
    return Clustering(name, method, parameter, canonical_labels(labels))


def cluster_edges(
    edges: EdgeList, request: ClusterRequest, workdir: Path, *, threads: int = 1
) -> list[Clustering]:
    """Every graph clustering the request asks for (then the consensus levels, if any)."""
    from kmervae.cluster.consensus import run_rcl, write_mcl_clustering
    from kmervae.cluster.leiden import run_leiden
    from kmervae.cluster.mcl import cluster_file, load_matrix, run_mcl

    out: list[Clustering] = []
    files: list[Path] = []
    matrix = None
    if "mcl" in request.methods or request.consensus:
        matrix = load_matrix(edges, workdir / "graph.mcx")
    if "mcl" in request.methods:
        assert matrix is not None
        found = run_mcl(
            matrix,
            request.inflations,
            edges.n_nodes,
            threads=threads,
            resource=request.mcl_resource,
        )
        for inflation, raw in zip(request.inflations, found, strict=True):
            out.append(_finish(f"mcl-I{inflation:g}", "mcl", inflation, raw, edges.nodes))
            files.append(cluster_file(matrix, inflation))
    if "leiden" in request.methods:
        found = run_leiden(
            edges,
            request.resolutions,
            seed=request.seed,
            iterations=request.leiden_iterations,
            implementation=request.leiden_implementation,
        )
        for resolution, raw in zip(request.resolutions, found, strict=True):
            out.append(_finish(f"leiden-r{resolution:g}", "leiden", resolution, raw, edges.nodes))
            if request.consensus:
                files.append(write_mcl_clustering(raw, workdir / f"leiden-r{resolution:g}.cls"))
    if request.consensus:
        assert matrix is not None
        levels = run_rcl(matrix, files, request.consensus, edges.n_nodes, threads=threads)
        consensus = [
            _finish(f"rcl-R{res}", "rcl", float(res), raw, edges.nodes)
            for res, raw in zip(request.consensus, levels, strict=True)
        ]
        out = consensus + out  # the consensus comes first: it is what was asked for
    return out


def check_not_degenerate(clusterings: Sequence[Clustering], n_nodes: int) -> None:
    """Warn about a clustering with one cluster; fail when every clustering has one."""
    single = [c for c in clusterings if c.n_clusters <= 1]
    for c in single:
        log.warning("%s put every clustered contig into one cluster", c.name)
    if len(single) == len(clusterings):
        raise KmervaeError(
            f"every clustering put all {n_nodes} contigs into one cluster; lower "
            "max_distance, raise the inflation or the resolution"
        )


def cluster_knn(
    indices: np.ndarray,
    distances: np.ndarray,
    lengths: np.ndarray | None,
    request: ClusterRequest,
    workdir: Path,
    *,
    threads: int = 1,
) -> tuple[list[Clustering], dict[str, Any]]:
    """Clusterings of a k-NN graph's arrays (see :func:`build_edges`), and a summary of the
    graph they came from (contigs, edges, isolated contigs).

    Raises
    ------
    KmervaeError
        No edge survives the recipe (the message gives the distance quantiles).
    """
    edges = build_edges(indices, distances, request.graph, lengths)
    n_graph = int(edges.nodes.sum())
    if n_graph == 0:
        raise KmervaeError(f"no contig is at least {request.graph.min_length} bp long (min_length)")
    if len(edges) == 0:
        quant = distance_quantiles(distances)
        text = ", ".join(f"{q} {v:.3g}" for q, v in quant.items()) or "none finite"
        raise KmervaeError(
            f"no edge left after thresholding (max_distance {request.graph.max_distance}, "
            f"min_length {request.graph.min_length}); the graph's distance quantiles: {text}"
        )
    degree = edges.degrees()
    summary = {
        "contigs": n_graph,
        "edges": len(edges),
        "isolated_contigs": int(((degree == 0) & edges.nodes).sum()),
        "mean_degree": float(2 * len(edges) / n_graph),
    }
    log.info(
        "clustering graph: %d contigs, %d edges, %d isolated",
        n_graph,
        len(edges),
        summary["isolated_contigs"],
    )
    clusterings = cluster_edges(edges, request, workdir, threads=threads)
    check_not_degenerate(clusterings, n_graph)
    return clusterings, summary


def cluster_points(
    points: np.ndarray, lengths: np.ndarray | None, request: ClusterRequest
) -> tuple[list[Clustering], dict[str, Any]]:
    """HDBSCAN of points (a map's coordinates or embeddings), contigs below the minimum
    length left out."""
    from kmervae.cluster.density import run_hdbscan, scaled_hdbscan_parameters

    keep = np.ones(len(points), bool)
    if request.graph.min_length > 0:
        if lengths is None:
            raise KmervaeError("a minimum length needs the contigs' lengths")
        keep = np.asarray(lengths) >= request.graph.min_length
    rows = np.flatnonzero(keep)
    size, samples = scaled_hdbscan_parameters(len(rows))
    size = request.min_cluster_size or size
    samples = request.min_samples or samples
    raw = np.full(len(points), -1, np.int64)
    raw[rows] = run_hdbscan(np.asarray(points)[rows], min_cluster_size=size, min_samples=samples)
    if not (raw >= 0).any():
        raise KmervaeError(
            f"HDBSCAN found no cluster: all {len(rows)} points are noise; lower "
            f"min_cluster_size (now {size}) or min_samples (now {samples})"
        )
    clustering = _finish("hdbscan", "hdbscan", None, raw, keep)
    check_not_degenerate([clustering], len(rows))
    summary = {
        "contigs": len(rows),
        "noise": int((raw[rows] < 0).sum()),
        "min_cluster_size": size,
        "min_samples": samples,
    }
    return [clustering], summary


def cluster_vectors(
    vectors: np.ndarray,
    lengths: np.ndarray,
    request: ClusterRequest,
    *,
    k: int = 50,
    threads: int | None = None,
    workdir: Path | None = None,
) -> list[tuple[str, np.ndarray]]:
    """Cluster any representation as ``kmervae knn`` + ``kmervae cluster`` would.

    The vectors go into a temporary exact store, through :func:`kmervae.index.knn.knn_graph`
    (exact, self excluded) and :func:`cluster_knn` (or HDBSCAN on the vectors).

    Parameters
    ----------
    vectors : float32 (n, d).
    lengths : int64 (n,).
    request : the recipe (e.g. ``ClusterRequest.from_dict(manifest["request"])``).
    k : neighbours per contig (capped at n - 1).

    Returns
    -------
    (name, labels int64 (n,), canonical, -1 unclustered) per clustering.
    """
    vectors = np.ascontiguousarray(vectors, np.float32)
    n = len(vectors)
    if "hdbscan" in request.methods:
        found, _ = cluster_points(vectors, lengths, request)
        return [(c.name, c.labels) for c in found]
    from kmervae.index.graph import open_knn_graph
    from kmervae.index.knn import knn_graph
    from kmervae.index.protocol import create_index, open_index

    if n < 2:
        raise KmervaeError(f"{n} contig(s) cannot be clustered")
    with tempfile.TemporaryDirectory(dir=workdir, prefix=".kmervae-cluster-") as tmp:
        root = Path(tmp)
        store = create_index(
            root / "store", backend="exact", dim=vectors.shape[1], schema={"length": "int64"}
        )
        with store:
            store.add(
                [str(i) for i in range(n)], vectors, {"length": np.asarray(lengths, np.int64)}
            )
            store.save({"action": "build"})
        knn_graph(
            open_index(root / "store"), root / "graph", min(k, n - 1), method="exact",
            threads=threads,
        )  # fmt: skip
        graph = open_knn_graph(root / "graph")
        found, _ = cluster_knn(
            graph.indices, graph.distances, lengths, request, root, threads=threads or 1
        )
        del graph
    return [(c.name, c.labels) for c in found]
