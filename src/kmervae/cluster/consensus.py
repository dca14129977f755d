"""Consensus of several clusterings through RCL (restricted contingency linkage, the
``rcl`` tool of the mcl package): one nested hierarchy, cut at chosen resolutions."""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from kmervae.cluster.mcl import mcl_program, read_mcl_clusters, run_program
from kmervae.errors import KmervaeError

log = logging.getLogger(__name__)

PROJECT = "rcl"


def write_mcl_clustering(labels: np.ndarray, path: Path) -> Path:
    """Labels (int (N,), -1 = in no cluster, then alone) as an mcl clustering file."""
    labels = np.asarray(labels, np.int64).copy()
    loose = labels < 0
    labels[loose] = labels.max(initial=-1) + 1 + np.arange(int(loose.sum()))
    order = np.argsort(labels, kind="stable")
    bounds = np.flatnonzero(np.r_[True, np.diff(labels[order]) != 0, True])
    text = path.with_name(path.name + ".lines")
    with open(text, "w") as fh:
        for a, b in itertools.pairwise(bounds.tolist()):
            fh.write(" ".join(map(str, order[a:b].tolist())) + "\n")
    run_program(
        [mcl_program("mcxload"), "-235-ai", str(text), "-o", str(path)], "mcxload", path.parent
    )
    text.unlink()
    return path


def run_rcl(
    matrix: Path,
    clusterings: Sequence[Path],
    resolutions: Sequence[int],
    n_nodes: int,
    *,
    threads: int = 1,
) -> list[np.ndarray]:
    """The RCL consensus of ``clusterings`` (mcl cluster files over ``matrix``'s nodes),
    cut at each resolution (roughly the size of the clusters it aims at: larger values
    give coarser clusters). Returns int64 (n_nodes,) labels per resolution."""
    if len(clusterings) < 2:
        raise KmervaeError("a consensus needs at least two clusterings")
    mcl_program("rcl")
    workdir = matrix.parent
    started = time.perf_counter()
    tab = workdir / "nodes.tab"
    with open(tab, "w") as fh:
        fh.writelines(f"{i}\t{i}\n" for i in range(n_nodes))
    run_program(
        ["rcl", "setup", PROJECT, "-n", str(matrix), "-t", str(tab), *map(str, clusterings)],
        "rcl setup",
        workdir,
        cwd=workdir,
    )
    tree = ["rcl", "tree", PROJECT, "-p", str(max(1, threads))]
    run_program(tree, "rcl tree", workdir, cwd=workdir)
    ordered = sorted(set(int(r) for r in resolutions))
    select = ["rcl", "select", PROJECT, "-r", " ".join(map(str, ordered))]
    run_program(select, "rcl select", workdir, cwd=workdir)
    out = []
    for resolution in resolutions:
        found = workdir / PROJECT / f"rcl.res{int(resolution)}.cls"
        if not found.is_file():
            raise KmervaeError(f"rcl select left no clustering at resolution {resolution}")
        out.append(read_mcl_clusters(found, n_nodes))
    log.info(
        "rcl consensus of %d clusterings at %d resolutions in %.1f s",
        len(clusterings),
        len(resolutions),
        time.perf_counter() - started,
    )
    return out
