"""MCL through the real ``mcl`` program (the mcl package, version 22): the graph is streamed
into ``mcxload`` once, as mcl's own binary matrix, and ``mcl`` runs on it for every
inflation asked for; ``mcxdump`` turns each result back into clusters of graph rows."""

from __future__ import annotations

import logging
import shutil
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from kmervae.cluster.graph import EdgeList
from kmervae.errors import KmervaeError

log = logging.getLogger(__name__)

PROGRAMS = ("mcl", "mcxload", "mcxdump")
INSTALL_HINT = (
    "install the mcl package (Debian/Ubuntu: apt-get install mcl; conda: conda install -c "
    "bioconda mcl)"
)
_BUFFER_BYTES = 8 << 20


def mcl_program(name: str = "mcl") -> str:
    """Path of one of the mcl package's programs, or one line saying how to install it."""
    found = shutil.which(name)
    if found is None:
        raise KmervaeError(f"the program {name!r} is not on PATH: {INSTALL_HINT}")
    return found


def check_mcl_installed() -> None:
    for name in PROGRAMS:
        mcl_program(name)


def _run(command: list[str], what: str, **kwargs: object) -> None:
    proc = subprocess.run(command, capture_output=True, text=True, **kwargs)  # type: ignore[call-overload]
    if proc.returncode != 0:
        tail = (proc.stderr or "").strip().splitlines()[-1:] or ["no message"]
        raise KmervaeError(f"{what} failed (exit {proc.returncode}): {tail[0]}")


def load_matrix(edges: EdgeList, path: Path) -> Path:
    """Stream ``edges`` into ``mcxload``: a symmetric binary mcl matrix of ``n_nodes`` rows
    at ``path`` (each pair is sent once and mirrored by mcxload)."""
    from kmervae.cluster.kernels import format_edges

    started = time.perf_counter()
    command = [
        mcl_program("mcxload"),
        "-123", "-",
        "-123-max", str(edges.n_nodes),
        "--stream-mirror",
        "--write-binary",
        "-o", str(path),
    ]  # fmt: skip
    buf = np.empty(_BUFFER_BYTES, np.uint8)
    proc = subprocess.Popen(
        command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    assert proc.stdin is not None
    try:
        e = 0
        while e < len(edges):
            e, nbytes = format_edges(edges.src, edges.dst, edges.weight, e, buf)
            proc.stdin.write(buf[:nbytes].tobytes())
        proc.stdin.close()
    except BrokenPipeError:
        pass
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    assert proc.stderr is not None
    err = proc.stderr.read().decode(errors="replace")
    if proc.wait() != 0:
        tail = err.strip().splitlines()[-1:] or ["no message"]
        raise KmervaeError(f"mcxload failed (exit {proc.returncode}): {tail[0]}")
    log.info(
        "mcl matrix of %d contigs and %d edges loaded in %.1f s",
        edges.n_nodes,
        len(edges),
        time.perf_counter() - started,
    )
    return path


def read_mcl_clusters(path: Path, n_nodes: int) -> np.ndarray:
    """Labels (int64 (n_nodes,), cluster codes from 0) of an mcl clustering file."""
    dump = path.with_name(path.name + ".txt")
    _run([mcl_program("mcxdump"), "-icl", str(path), "-o", str(dump)], "mcxdump")
    labels = np.full(n_nodes, -1, np.int64)
    with open(dump) as fh:
        for code, line in enumerate(fh):
            members = np.array(line.split(), dtype=np.int64)
            labels[members] = code
    dump.unlink()
    return labels


def run_mcl(
    matrix: Path,
    inflations: Sequence[float],
    n_nodes: int,
    *,
    threads: int = 1,
    resource: int | None = None,
) -> list[np.ndarray]:
    """Cluster a loaded matrix (:func:`load_matrix`) at each inflation.

    Returns one int64 (n_nodes,) label array per inflation (codes from 0; every node is in a
    cluster, an isolated one alone). The mcl cluster files are left beside ``matrix`` as
    ``NAME.I<inflation>``, for :mod:`kmervae.cluster.consensus`. ``resource`` is mcl's
    ``-resource`` (None: mcl's default pruning scheme).
    """
    out = []
    for inflation in inflations:
        started = time.perf_counter()
        target = cluster_file(matrix, inflation)
        command = [mcl_program("mcl"), str(matrix), "-I", f"{inflation:g}"]
        command += ["-te", str(max(1, threads)), "-o", str(target), "-V", "all"]
        if resource is not None:
            command += ["-resource", str(resource)]
        _run(command, f"mcl -I {inflation:g}")
        labels = read_mcl_clusters(target, n_nodes)
        log.info(
            "mcl -I %g: %d clusters in %.1f s",
            inflation,
            int(labels.max()) + 1 if n_nodes else 0,
            time.perf_counter() - started,
        )
        out.append(labels)
    return out


def cluster_file(matrix: Path, inflation: float) -> Path:
    return matrix.with_name(f"{matrix.name}.I{inflation:g}")
