"""HDBSCAN (fast-hdbscan) on a map or on embeddings, with parameters scaled with N."""

from __future__ import annotations

import logging
import time

import numpy as np

from kmervae.errors import KmervaeError

log = logging.getLogger(__name__)

#: the reference: min_cluster_size 1000, min_samples 100 on 4.8 M points
REFERENCE_POINTS = 4_800_000
REFERENCE_MIN_CLUSTER_SIZE = 1000
REFERENCE_MIN_SAMPLES = 100


def scaled_hdbscan_parameters(n_points: int) -> tuple[int, int]:
    """(min_cluster_size, min_samples) scaled from the reference to ``n_points``.

    Both shrink in proportion to N, with floors of 10 and 5 so that small sets still form
    clusters: 1 M points give (208, 21), 10 000 give (10, 5).
    """
    size = max(10, round(REFERENCE_MIN_CLUSTER_SIZE * n_points / REFERENCE_POINTS))
    samples = max(5, round(size * REFERENCE_MIN_SAMPLES / REFERENCE_MIN_CLUSTER_SIZE))
    return size, samples


def run_hdbscan(points: np.ndarray, *, min_cluster_size: int, min_samples: int) -> np.ndarray:
    """HDBSCAN labels of ``points`` (float (n, d)): int64 (n,), codes from 0, -1 noise.

    Reproducible (fast-hdbscan's ``reproducible`` mode). Low dimensions (a 2-D map) are
    what its k-d trees are fast on; hundreds of dimensions work but slowly.
    """
    from fast_hdbscan import HDBSCAN

    if min_cluster_size < 2:
        raise KmervaeError(f"the minimum cluster size must be at least 2, got {min_cluster_size}")
    if min_samples < 1:
        raise KmervaeError(f"min_samples must be at least 1, got {min_samples}")
    if len(points) <= min_cluster_size:
        raise KmervaeError(
            f"{len(points)} points cannot form clusters of at least {min_cluster_size}"
        )
    started = time.perf_counter()
    model = HDBSCAN(
        min_cluster_size=int(min_cluster_size), min_samples=int(min_samples), reproducible=True
    )
    labels = np.asarray(model.fit_predict(np.ascontiguousarray(points, np.float32)), np.int64)
    log.info(
        "hdbscan (min_cluster_size %d, min_samples %d): %d clusters, %d noise points in %.1f s",
        min_cluster_size,
        min_samples,
        int(labels.max()) + 1,
        int((labels < 0).sum()),
        time.perf_counter() - started,
    )
    return labels
