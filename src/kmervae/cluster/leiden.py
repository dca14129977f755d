"""Leiden community detection (leidenalg on an igraph graph), modularity with a resolution."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

import numpy as np

from kmervae.cluster.graph import EdgeList

log = logging.getLogger(__name__)


def run_leiden(
    edges: EdgeList,
    resolutions: Sequence[float],
    *,
    seed: int = 1,
    iterations: int = 2,
) -> list[np.ndarray]:
    """Leiden partitions of the weighted graph, one per resolution.

    The objective is modularity with a resolution parameter (leidenalg's
    ``RBConfigurationVertexPartition``); ``iterations`` -1 iterates until no move improves
    it. Returns int64 (n_nodes,) label arrays (codes from 0; an isolated node alone).
    """
    import igraph as ig
    import leidenalg

    started = time.perf_counter()
    graph = ig.Graph(n=edges.n_nodes, edges=np.column_stack([edges.src, edges.dst]))
    weights = edges.weight.astype(np.float64)
    log.info(
        "igraph graph of %d contigs, %d edges in %.1f s",
        edges.n_nodes,
        len(edges),
        time.perf_counter() - started,
    )
    out = []
    for resolution in resolutions:
        started = time.perf_counter()
        partition = leidenalg.find_partition(
            graph,
            leidenalg.RBConfigurationVertexPartition,
            weights=weights,
            resolution_parameter=float(resolution),
            n_iterations=iterations,
            seed=int(seed),
        )
        labels = np.asarray(partition.membership, np.int64)
        log.info(
            "leiden resolution %g: %d clusters in %.1f s",
            resolution,
            len(partition),
            time.perf_counter() - started,
        )
        out.append(labels)
    return out
